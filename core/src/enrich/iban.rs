//! International bank account numbers inside text, found by their structure: a registered
//! country code, two check digits, the account part to exactly that country's length, and the
//! ISO 13616 check (mod 97 is 1). Written compact (`DE89370400440532013000`) or printed in
//! groups of four (`DE89 3704 0044 0532 0130 00`). An order number of the same shape whose
//! check digits are wrong is not an IBAN (one in 97 random ones passes; that is the check).

use std::ops::Range;

/// Every country of the SWIFT IBAN registry with its IBAN's total length, sorted by code
/// (territories write theirs with the parent's code: GF, GP, RE ... as FR; IM, JE, GG as GB),
/// and the 22 countries whose banks use IBANs outside the registry (Iran's Sheba, Morocco, the
/// West and Central African banks' BCEAO and BEAC zones, Angola, Cape Verde, Mozambique,
/// Madagascar, Comoros), as Sentry Relay's IBAN rule and bank registries list them.
const LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AO", 25),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BF", 28),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BJ", 28),
    (b"BR", 29),
    (b"BY", 28),
    (b"CF", 27),
    (b"CG", 27),
    (b"CH", 21),
    (b"CI", 28),
    (b"CM", 27),
    (b"CR", 22),
    (b"CV", 25),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"DZ", 26),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GA", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GQ", 27),
    (b"GR", 27),
    (b"GT", 28),
    (b"GW", 25),
    (b"HN", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IR", 26),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KM", 27),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MA", 28),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MG", 27),
    (b"MK", 19),
    (b"ML", 28),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"MZ", 25),
    (b"NE", 28),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SN", 28),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TD", 27),
    (b"TG", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

fn length_of(country: &[u8]) -> Option<usize> {
    LENGTHS.binary_search_by(|(c, _)| c.as_slice().cmp(country)).ok().map(|i| LENGTHS[i].1)
}

/// ISO 13616: the first four characters moved to the end, letters as 10..35, mod 97 is 1.
fn check_digits_hold(compact: &[u8]) -> bool {
    let (head, tail) = compact.split_at(4);
    let mut rem = 0u32;
    for &c in tail.iter().chain(head) {
        rem = match c.to_ascii_uppercase() {
            d @ b'0'..=b'9' => (rem * 10 + u32::from(d - b'0')) % 97,
            l @ b'A'..=b'Z' => (rem * 100 + u32::from(l - b'A') + 10) % 97,
            _ => return false,
        };
    }
    rem == 1
}

/// A letter or digit: an IBAN stands apart from them (an underscore is a separator:
/// `acct_DE89...`).
fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// The IBAN starting at `i`, if any: its end. `i` is at a word start, upper-case country code,
/// two digits; then the rest compact, or in groups of four separated by spaces.
fn iban_at(s: &[u8], i: usize) -> Option<usize> {
    let head = s.get(i..i + 4)?;
    if !(head[0].is_ascii_uppercase() && head[1].is_ascii_uppercase() && head[2].is_ascii_digit() && head[3].is_ascii_digit()) {
        return None;
    }
    let len = length_of(&head[..2])?;
    let mut compact = Vec::with_capacity(len);
    let mut j = i;
    let mut in_group = 0;
    while j < s.len() && compact.len() < len {
        let b = s[j];
        if b.is_ascii_alphanumeric() {
            compact.push(b);
            in_group += 1;
        } else if b == b' ' && in_group == 4 {
            // The printed form: groups of four, apart by spaces (several where a Unicode space
            // was spelled as ASCII ones: text_pii::ascii_separators).
            let next = j + s[j..].iter().take_while(|&&c| c == b' ').count();
            if !s.get(next).is_some_and(u8::is_ascii_alphanumeric) {
                break;
            }
            in_group = 0;
            j = next;
            continue;
        } else {
            break;
        }
        j += 1;
    }
    let ends_at_word_end = s.get(j).is_none_or(|&b| !word(b));
    (compact.len() == len && ends_at_word_end && check_digits_hold(&compact)).then_some(j)
}

/// Every IBAN in `text`, as byte ranges.
pub fn iban_spans(text: &str) -> Vec<Range<usize>> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 < s.len() {
        if (i == 0 || !word(s[i - 1])) && s[i].is_ascii_uppercase() {
            if let Some(end) = iban_at(s, i) {
                out.push(i..end);
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out
}

pub fn looks_like_iban(v: &str) -> bool {
    !iban_spans(v).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One valid IBAN for each of the registry's 89 countries and the 22 that use IBANs outside
    /// it (account parts made up, check digits computed), so every country's length is exercised.
    const VALID: &str = "AD0978942710639732891555 AE283009416531083386439 AL82203331634841980876917055 \
        AT084962316580861740 AZ08NABZ32222583861167817527 BA849087481698693720 BE21622338508282 \
        BG92BNBG62683163859900 BH29BMAG81742510166411 BI5852601815908301661318609 BR4712720184945313263694220C2 \
        BY27NBRB5423804338230Z59AB39 CH7294408966251267229 CR52628293047983395760 CY78828977709558493944217267 \
        CZ6650044769520155043487 DE15286483480880127754 DJ2713909960308246281948219 DK0904500396509359 \
        DO16BAGR96761901498775724456 EE430648064710638158 EG180300132939956610501715864 ES0855993856250575846003 \
        FI3236654201409964 FK2193518190937865 FO4170156750217051 FR6614777374033381713M74535 GB12NWBK56308374074647 \
        GE96NB0994186171721443 GI16NWBK125988332328154 GL9754108607699188 GR3965802405556734747216550 \
        GT17TRAJ50683085639204647556 HN85797543231948757491186252 HR0700577821254763445 HU71379712415496584277966835 \
        IE97AIBK65375754273298 IL843293887744694290805 IQ93NBIQ089246287424886 IS931608418318734844854556 \
        IT30X5801219709784172710195 JO71CBJO9436591471899095231319 KW42CBKU4883997798760620316108 KZ04056KZT0837966427 \
        LB05882243832059959713929005 LC72HEMM254988987389111701748958 LI53737657519298857AA LT074687648772993442 \
        LU666704963860370207 LV49BANK7310410483037 LY83487832647995492999076 MC6364639373071228615685245 \
        MD95AG907990943540501824 ME62582335388820811523 MK64858890780702871 MN687601895559797114 \
        MR4827063831155222861023437 MT48MALT379454641617MTLCAST058S MU64BOMM4322185029224038400MUR \
        NI36710497465075291703423667 NL88ABNA5744731632 NO9558068238671 OM591276842684656321223 PK09SCBL8656172440308193 \
        PL03349940962957508091419645 PS75PALS166923702872903852485 PT71459770251588993280123 QA12DOHB89519772639156ABCDEFG \
        RO93AAAA6B92357725591367 RS67219225977278176022 RU0204452560040702810412345678901 SA9110364369768070892889 \
        SC39SSCB28695826925340049496USD SD5730792440268599 SE5864086862739970624960 SI52570384665487060 \
        SK5546443378900295468504 SM53U9584120480537549943122 SO765289078666617603137 ST60215901092815901396245 \
        SV49CENR54739364351768235550 TL696057100094711717888 TN5955668722925051026777 TR275596983808399006011173 \
        UA930626845659376320141789664 VA78458628330591922762 VG40VPVG5177475162070855 XK874179726503194891 \
        YE8195711777741215472803852808 \
        AO87526018159083016613186 BF74BF0913909960308246281948 BJ16BJ2199351819093786579754 CF8132319487574911862527601 \
        CG3789555979711471049746507 CI59CI5291703423667127684268 CM9846563212233079244026859 CV62952890786666176031372 \
        DZ491590109281590139624595 GA4971177774121547280385280 GQ7084148525388853933633875 GW62004743957551313735379 \
        IR969075116372651676122202 KM9197299752882001826330434 MA94839548620579868282880729 MG3202227918058887180334018 \
        ML81ML7801759898347887838483 MZ62726167513613412524273 NE30NE1672326865635515058770 SN89SN6589481131144024264628 \
        TD4489751402614014193141705 TG25TG8649208312402344834782";

    #[test]
    fn every_registered_country_at_its_own_length() {
        let all: Vec<&str> = VALID.split_whitespace().collect();
        assert_eq!(all.len(), LENGTHS.len(), "one example per country");
        assert!(LENGTHS.windows(2).all(|w| w[0].0 < w[1].0), "LENGTHS must stay sorted for the binary search");
        for iban in all {
            assert_eq!(iban_spans(iban), vec![0..iban.len()], "{iban}");
            // one character short or long is not one
            assert!(!looks_like_iban(&iban[..iban.len() - 1]), "{iban} minus one");
            assert!(!looks_like_iban(&format!("{iban}7")), "{iban} plus one");
        }
    }

    /// Account numbers of countries that use IBANs outside SWIFT's registry (Iran's Sheba,
    /// Morocco, the West and Central African banks), which Sentry Relay's rule also catches.
    #[test]
    fn countries_outside_the_registry() {
        for iban in
            ["IR062960000000100324200001", "MA64011519000001205000534921", "SN08SN0100152000048500003035", "DZ580002100001113000000570"]
        {
            assert_eq!(crate::enrich::text_pii::redact(&format!("Refund to {iban}")), "Refund to [iban]", "{iban}");
        }
    }

    #[test]
    fn printed_in_groups_and_inside_text() {
        super::super::text_pii::assert_finds_one(
            iban_spans,
            &[
                ("DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
                ("Pay to GB82 WEST 1234 5698 7654 32 by Friday", "GB82 WEST 1234 5698 7654 32"),
                ("iban=FR1420041010050500013M02606;", "FR1420041010050500013M02606"),
                ("(NL91ABNA0417164300)", "NL91ABNA0417164300"),
                ("NO9386011117947.", "NO9386011117947"),
                ("IT60x0542811101000000123456", "IT60x0542811101000000123456"),
            ],
        );
    }

    #[test]
    fn shapes_with_wrong_check_digits_or_lengths_are_not_ibans() {
        for t in [
            // right country, length and shape; check digits off (Relay's own examples, made up)
            "NO9386011117945",
            "DE89370400440532013001",
            "DE33286483480880127754",
            "GB24NWBK56308374074647",
            "FR1014777374033381713M74535",
            "AT894962316580861740",
            // right check digits, wrong length; or inside a word; or a lower-case country
            "DE8937040044053201300",
            "fooNO9386011117947bar",
            "de89370400440532013000",
            // order numbers and references that start like one
            "DE2026-0001234",
            "FR75 Paris 2026",
            "SKU-NL91-ABNA",
            "AT1234567890123456",
            "ORDER DE12 3456 7890",
            "XX89370400440532013000",
        ] {
            assert!(!looks_like_iban(t), "{t}");
        }
    }
}
