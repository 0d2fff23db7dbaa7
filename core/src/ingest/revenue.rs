//! An event's revenue: `{"amount": "19.99", "currency": "EUR"}`. The amount is a decimal
//! (a string or a JSON number; at most 12 digits before the point and 6 after; negative for a
//! refund), kept as its exact text and stored as `Decimal(18, 6)`, never a float. The
//! currency is an ISO 4217 code. Anything else is refused, naming what to fix.

use crate::error::ApiError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Active ISO 4217 currency codes (2025), without the test code, "no currency", precious
/// metals and the IMF's units of account, which no sale is priced in.
pub const CURRENCIES: [&str; 169] = [
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB",
    "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC",
    "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF",
    "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF",
    "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU",
    "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR",
    "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP",
    "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU",
    "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
];

/// Digits after the point of a currency's minor unit (ISO 4217): 2 but for these.
const NO_MINOR_UNIT: [&str; 17] =
    ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"];
const THREE_DIGITS: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
const FOUR_DIGITS: [&str; 2] = ["CLF", "UYW"];

/// How many digits after the point a currency's minor unit has (yen 0, euro cents 2, fils 3).
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        c if NO_MINOR_UNIT.contains(&c) => 0,
        c if THREE_DIGITS.contains(&c) => 3,
        c if FOUR_DIGITS.contains(&c) => 4,
        _ => 2,
    }
}

const MAX_INT_DIGITS: usize = 12;
const MAX_FRACTION_DIGITS: usize = 6;

/// A decimal amount as exact text (`-?digits[.digits]`, within Decimal(18, 6)). Written into a
/// row as a bare JSON number with exactly these digits, which ClickHouse reads into the
/// decimal column without passing through a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount(String);

impl Default for Amount {
    fn default() -> Self {
        Amount("0".into())
    }
}

impl Amount {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text of a decimal within bounds, canonical (no leading zeros, no `+`); None if it is not one.
    pub fn parse(text: &str) -> Option<Amount> {
        let (neg, int, frac) = split(text)?;
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        if int.len() > MAX_INT_DIGITS || frac.len() > MAX_FRACTION_DIGITS {
            return None;
        }
        let int = if int.is_empty() { "0" } else { int };
        let zero = int == "0" && frac.is_empty();
        let sign = if neg && !zero { "-" } else { "" };
        Some(Amount(if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") }))
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.0.clone()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Amount::parse(raw.get().trim_matches('"')).ok_or_else(|| serde::de::Error::custom("not a decimal amount"))
    }
}

/// A decimal's parts: (negative, digits before the point, digits after), or None if the text
/// is not `-?digits[.digits]`.
fn split(text: &str) -> Option<(bool, &str, &str)> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let ok = !int.is_empty() && all_digits(int) && all_digits(frac) && !(digits.contains('.') && frac.is_empty());
    ok.then_some((neg, int, frac))
}

/// A decimal's text as millionths (exact), for sums (ClickHouse writes a sum of Decimal(18, 6)
/// with six places, "19.990000", and more digits before the point than one amount has).
pub fn micros(text: &str) -> Option<i128> {
    let (neg, int, frac) = split(text)?;
    if int.len() > 30 || frac.len() > MAX_FRACTION_DIGITS {
        return None;
    }
    let m = int.parse::<i128>().ok()? * 1_000_000 + format!("{frac:0<6}").parse::<i128>().ok()?;
    Some(if neg { -m } else { m })
}

/// Millionths back to the shortest exact decimal text ("20", "19.99", "-0.000001").
pub fn format_micros(m: i128) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let (int, frac) = (m.abs() / 1_000_000, m.abs() % 1_000_000);
    let frac = format!("{frac:06}");
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revenue {
    pub amount: Amount,
    pub currency: String,
}

fn refused(why: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_revenue",
        format!("{why} `revenue` is {{\"amount\": \"19.99\", \"currency\": \"EUR\"}}: a decimal (at most {MAX_INT_DIGITS} digits before the point and {MAX_FRACTION_DIGITS} after) and an ISO 4217 code."),
    )
}

/// A JSON number's exact text. An integer is exact; a fraction was read as a float, whose
/// shortest text is the client's own only up to 15 significant digits: more are refused
/// (send those as a string).
fn number_text(n: &serde_json::Number) -> Result<String, ApiError> {
    let text = n.to_string();
    if n.is_f64() {
        let digits = text.trim_start_matches('-').replace('.', "");
        let significant = digits.trim_start_matches('0').len();
        if significant > 15 {
            return Err(refused(&format!(
                "`revenue.amount` {text} has more digits than a JSON number carries exactly; send it as a string, e.g. \"{text}\"."
            )));
        }
    }
    Ok(text)
}

/// An event's `revenue`, checked.
pub fn parse(v: &Value) -> Result<Revenue, ApiError> {
    let obj = v.as_object().ok_or_else(|| refused("`revenue` is not an object."))?;
    if let Some(k) = obj.keys().find(|k| *k != "amount" && *k != "currency") {
        return Err(refused(&format!("`revenue.{k}` is not taken.")));
    }
    let text = match obj.get("amount") {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => number_text(n)?,
        Some(_) => return Err(refused("`revenue.amount` must be a string or a number.")),
        None => return Err(refused("`revenue.amount` is missing.")),
    };
    let amount = Amount::parse(&text)
        .ok_or_else(|| refused(&format!("`revenue.amount` `{}` is not a decimal in range.", text.chars().take(40).collect::<String>())))?;
    let currency = match obj.get("currency") {
        Some(Value::String(c)) => c.trim().to_ascii_uppercase(),
        _ => return Err(refused("`revenue.currency` is missing.")),
    };
    if !CURRENCIES.contains(&currency.as_str()) {
        return Err(ApiError::bad_request(
            "invalid_currency",
            format!(
                "`revenue.currency` `{}` is not an ISO 4217 currency code; use one such as \"EUR\", \"USD\" or \"JPY\".",
                currency.chars().take(12).collect::<String>()
            ),
        ));
    }
    Ok(Revenue { amount, currency })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_keep_their_exact_digits() {
        for (text, want) in [
            ("19.99", "19.99"),
            ("007.50", "7.5"),
            ("0", "0"),
            ("-0.00", "0"),
            ("-12.000001", "-12.000001"),
            ("999999999999.999999", "999999999999.999999"),
        ] {
            assert_eq!(Amount::parse(text).unwrap().as_str(), want, "{text}");
        }
        for bad in ["", "-", ".5", "5.", "1e3", "+1", "1,50", "1000000000000", "0.0000001", "NaN", "1.2.3", " 1"] {
            assert_eq!(Amount::parse(bad), None, "{bad}");
        }
        // Into a row as a bare number with the same digits (serde_json::to_string; never
        // to_value, which would read it back through a float); back from one or a string.
        let text = serde_json::to_string(&Amount::parse("123456789012.123456").unwrap()).unwrap();
        assert_eq!(text, "123456789012.123456");
        let back: Amount = serde_json::from_str("123456789012.123456").unwrap();
        assert_eq!(back.as_str(), "123456789012.123456");
        let quoted: Amount = serde_json::from_str("\"19.99\"").unwrap();
        assert_eq!(quoted.as_str(), "19.99");
        assert!(serde_json::from_str::<Amount>("true").is_err());
    }

    #[test]
    fn revenue_is_a_decimal_and_a_currency_or_refused() {
        let r = parse(&json!({"amount": "19.99", "currency": "eur"})).unwrap();
        assert_eq!((r.amount.as_str(), r.currency.as_str()), ("19.99", "EUR"));
        assert_eq!(parse(&json!({"amount": 5, "currency": "JPY"})).unwrap().amount.as_str(), "5");
        assert_eq!(parse(&json!({"amount": 19.99, "currency": "USD"})).unwrap().amount.as_str(), "19.99");
        assert_eq!(parse(&json!({"amount": -5.5, "currency": "USD"})).unwrap().amount.as_str(), "-5.5", "a refund");
        assert_eq!(parse(&json!({"amount": 999999999999999u64, "currency": "USD"})).unwrap_err().code, "invalid_revenue", "13 digits");
        // A number with more digits than a float keeps is refused, never rounded.
        let body = r#"{"amount": 123456789012.123456, "currency": "EUR"}"#;
        let e = parse(&serde_json::from_str(body).unwrap()).unwrap_err();
        assert!(e.message.contains("send it as a string"), "{}", e.message);
        // A number's value, whatever its spelling: 1e3 is 1000 (a string must be plain digits).
        assert_eq!(parse(&serde_json::from_str(r#"{"amount": 1e3, "currency": "EUR"}"#).unwrap()).unwrap().amount.as_str(), "1000");
        for (bad, code) in [
            (json!(19.99), "invalid_revenue"),
            (json!({"amount": "19.99"}), "invalid_revenue"),
            (json!({"currency": "EUR"}), "invalid_revenue"),
            (json!({"amount": "1e3", "currency": "EUR"}), "invalid_revenue"),
            (json!({"amount": true, "currency": "EUR"}), "invalid_revenue"),
            (json!({"amount": "1", "currency": "EUR", "tax": 1}), "invalid_revenue"),
            (json!({"amount": "1", "currency": "EURO"}), "invalid_currency"),
            (json!({"amount": "1", "currency": "XXX"}), "invalid_currency"),
            (json!({"amount": "1", "currency": 978}), "invalid_revenue"),
        ] {
            let e = parse(&bad).unwrap_err();
            assert_eq!((e.status, e.code), (400, code), "{bad}");
            assert!(e.message.contains("revenue"), "{}", e.message);
        }
    }

    #[test]
    fn sums_of_decimals_are_exact() {
        assert_eq!(micros("19.990000"), Some(19_990_000));
        assert_eq!(micros("-0.000001"), Some(-1));
        assert_eq!(micros("12345678901234567890.5"), Some(12_345_678_901_234_567_890_500_000));
        assert_eq!((micros("x"), micros("1.0000001"), micros("")), (None, None, None));
        let sum = ["0.1", "0.2", "999999999999.999999"].iter().map(|t| micros(t).unwrap()).sum::<i128>();
        assert_eq!(format_micros(sum), "1000000000000.299999");
        assert_eq!((format_micros(20_000_000), format_micros(-1), format_micros(0)), ("20".into(), "-0.000001".into(), "0".into()));
    }

    #[test]
    fn minor_units_name_listed_currencies() {
        for c in NO_MINOR_UNIT.iter().chain(&THREE_DIGITS).chain(&FOUR_DIGITS) {
            assert!(CURRENCIES.contains(c), "{c}");
        }
        assert_eq!((minor_digits("JPY"), minor_digits("EUR"), minor_digits("KWD"), minor_digits("CLF")), (0, 2, 3, 4));
    }

    #[test]
    fn the_currency_list_is_codes_once_each() {
        let mut seen = std::collections::BTreeSet::new();
        for c in CURRENCIES {
            assert!(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()), "{c}");
            assert!(seen.insert(c), "{c} twice");
        }
    }
}
