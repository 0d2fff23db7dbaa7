//! Attribution: UTM parameters, ad-platform click ids, and source + medium derived from the
//! referrer. Rules: UTM beats the referrer; a same-site referrer is not a source; no referrer and
//! no campaign is `direct`.

use super::pii::{self, is_pii_value};
use super::{referrer_hosts, url_scrub};
use url::form_urlencoded;
use url::Url;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    pub source: String,
    pub medium: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub utm_term: String,
    pub utm_content: String,
    /// The parameter name of the first click id found (`gclid`, `fbclid`, ...).
    pub click_id_type: String,
    pub click_id: String,
}

/// Click-id parameters, in the order we prefer when several are present, with the source
/// and medium each implies when no UTM says otherwise. (The names are public facts.)
pub const CLICK_IDS: &[(&str, &str, &str)] = &[
    ("gclid", "Google", "paid"),
    ("gbraid", "Google", "paid"),
    ("wbraid", "Google", "paid"),
    ("dclid", "Google", "paid"),
    ("msclkid", "Bing", "paid"),
    ("fbclid", "Facebook", "social"),
    ("ttclid", "TikTok", "paid"),
    ("twclid", "X", "paid"),
    ("li_fat_id", "LinkedIn", "paid"),
    ("yclid", "Yandex", "paid"),
    ("igshid", "Instagram", "social"),
    ("rdt_cid", "Reddit", "paid"),
    ("sccid", "Snapchat", "paid"),
    ("epik", "Pinterest", "paid"),
];

const MAX_VALUE_CHARS: usize = 200;

fn clean_value(v: &str) -> String {
    let v = v.trim();
    if v.is_empty() || is_pii_value(v) {
        return String::new();
    }
    v.chars().take(MAX_VALUE_CHARS).collect()
}

/// A UTM or `ref` value: what the page URL's scrubber keeps of its pair (`raw`, as sent), so a
/// nested URL is scrubbed and a value the stored query loses is not kept here either.
fn scrubbed_value(raw: &str) -> String {
    let kept = url_scrub::scrub_query_pair(raw);
    kept.and_then(|pair| form_urlencoded::parse(pair.as_bytes()).next().map(|(_, v)| clean_value(&v))).unwrap_or_default()
}

/// Click ids are long opaque strings by design: dropped only when one smuggles personal data
/// (`pii::is_personal_id`, every class but the opaque-token rule), decoded or as sent (`raw`,
/// where a `+` is still a phone number's).
fn clean_click_id(v: &str, raw: &str) -> String {
    let v = v.trim();
    let (forms, _) = pii::decoded_forms(raw, false);
    if v.is_empty() || pii::is_personal_id(v) || forms.iter().any(|f| pii::is_personal_id(f.trim())) {
        return String::new();
    }
    v.chars().take(MAX_VALUE_CHARS).collect()
}

fn same_site(a: &str, b: &str) -> bool {
    let strip = |h: &str| h.trim_end_matches('.').to_ascii_lowercase().trim_start_matches("www.").to_string();
    strip(a) == strip(b)
}

/// `page`: the page URL as sent (before scrubbing, which drops click ids as opaque tokens: each
/// click id is checked for personal data here, and each UTM or `ref` value is what the
/// scrubber keeps of it). `referrer`: the parsed referrer, if any.
pub fn attribute(page: &Url, referrer: Option<&Url>) -> Attribution {
    let mut a = Attribution::default();
    let mut ref_param = String::new();
    for raw in page.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let Some((name, value)) = form_urlencoded::parse(raw.as_bytes()).next() else { continue };
        let raw_value = raw.split_once('=').map_or("", |(_, v)| v);
        let name = name.to_ascii_lowercase();
        let slot = match name.as_str() {
            "utm_source" => &mut a.utm_source,
            "utm_medium" => &mut a.utm_medium,
            "utm_campaign" => &mut a.utm_campaign,
            "utm_term" => &mut a.utm_term,
            "utm_content" => &mut a.utm_content,
            "ref" | "source" => &mut ref_param,
            _ => {
                if a.click_id.is_empty() || click_rank(&name) < click_rank(&a.click_id_type) {
                    if let Some((id, _, _)) = CLICK_IDS.iter().find(|(id, _, _)| *id == name) {
                        let v = clean_click_id(&value, raw_value);
                        if !v.is_empty() {
                            a.click_id_type = id.to_string();
                            a.click_id = v;
                        }
                    }
                }
                continue;
            }
        };
        if slot.is_empty() {
            *slot = scrubbed_value(raw);
        }
    }

    let referrer = referrer.filter(|r| !same_site(r.host_str().unwrap_or(""), page.host_str().unwrap_or("")));
    let from_referrer = referrer.map(|r| {
        let host = r.host_str().unwrap_or("").trim_start_matches("www.").to_ascii_lowercase();
        match referrer_hosts::lookup(&host) {
            Some((name, medium)) => (name.to_string(), medium.as_str().to_string()),
            None => (host, "referral".to_string()),
        }
    });
    let from_click = CLICK_IDS.iter().find(|(id, _, _)| *id == a.click_id_type).map(|(_, s, m)| (s.to_string(), m.to_string()));

    (a.source, a.medium) = if !a.utm_source.is_empty() {
        let medium = if !a.utm_medium.is_empty() {
            a.utm_medium.clone()
        } else if let Some((_, m)) = &from_click {
            m.clone()
        } else if let Some((_, m)) = &from_referrer {
            m.clone()
        } else {
            "(none)".to_string()
        };
        (a.utm_source.clone(), medium)
    } else if let Some(click) = from_click {
        click
    } else if let Some(r) = from_referrer {
        r
    } else if !ref_param.is_empty() {
        (ref_param, "referral".to_string())
    } else if !a.utm_medium.is_empty() {
        (String::new(), a.utm_medium.clone())
    } else {
        (String::new(), "direct".to_string())
    };
    a
}

fn click_rank(name: &str) -> usize {
    CLICK_IDS.iter().position(|(id, _, _)| *id == name).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(page: &str, referrer: Option<&str>) -> Attribution {
        let p = Url::parse(page).unwrap();
        let r = referrer.map(|r| Url::parse(r).unwrap());
        attribute(&p, r.as_ref())
    }

    #[test]
    fn utm_beats_referrer() {
        let a = at("https://shop.com/?utm_source=newsletter&utm_medium=email&utm_campaign=bf26", Some("https://www.google.com/"));
        assert_eq!((a.source.as_str(), a.medium.as_str()), ("newsletter", "email"));
        assert_eq!(a.utm_campaign, "bf26");
        // utm_source without medium: medium falls back to the referrer's
        let a = at("https://shop.com/?UTM_SOURCE=gg", Some("https://www.google.com/"));
        assert_eq!((a.source.as_str(), a.medium.as_str()), ("gg", "search"));
    }

    #[test]
    fn referrer_classes() {
        assert_eq!(at("https://a.com/", Some("https://www.google.co.uk/")).medium, "search");
        assert_eq!(at("https://a.com/", Some("https://chatgpt.com/")).source, "ChatGPT");
        assert_eq!(at("https://a.com/", Some("https://chatgpt.com/")).medium, "ai");
        assert_eq!(at("https://a.com/", Some("https://www.perplexity.ai/search/x")).medium, "ai");
        assert_eq!(at("https://a.com/", Some("https://claude.ai/chat/1")).medium, "ai");
        assert_eq!(at("https://a.com/", Some("https://l.facebook.com/l.php")).medium, "social");
        assert_eq!(at("https://a.com/", Some("https://mail.google.com/")).medium, "email");
        let a = at("https://a.com/", Some("https://blog.example.org/post"));
        assert_eq!((a.source.as_str(), a.medium.as_str()), ("blog.example.org", "referral"));
        let a = at("https://a.com/", None);
        assert_eq!((a.source.as_str(), a.medium.as_str()), ("", "direct"));
    }

    #[test]
    fn same_site_referrer_is_not_a_source() {
        let a = at("https://www.a.com/pricing", Some("https://a.com/"));
        assert_eq!((a.source.as_str(), a.medium.as_str()), ("", "direct"));
    }

    #[test]
    fn click_ids() {
        let a = at("https://a.com/?fbclid=IwAR1&gclid=Cj0KCQ", None);
        assert_eq!((a.click_id_type.as_str(), a.click_id.as_str()), ("gclid", "Cj0KCQ"));
        assert_eq!((a.source.as_str(), a.medium.as_str()), ("Google", "paid"));
        let a = at("https://a.com/?msclkid=abc", Some("https://www.bing.com/"));
        assert_eq!((a.source.as_str(), a.medium.as_str()), ("Bing", "paid"));
        let a = at("https://a.com/?fbclid=IwAR1", None);
        assert_eq!(a.medium, "social");
        let a = at("https://a.com/?ref=producthunt", None);
        assert_eq!((a.source.as_str(), a.medium.as_str()), ("producthunt", "referral"));
    }

    #[test]
    fn real_length_click_ids_are_kept() {
        // Click ids are long opaque strings by design; they must not be mistaken for secrets.
        let gclid = "Cj0KCQiA6Ou5BhCrARIsAPoTxrAX9mJq2Q4yqY0cEv1RkQW8vN3T5pF7sL2dH9kB_aEaAkkLEALw_wcB";
        let a = at(&format!("https://a.com/?gclid={gclid}"), None);
        assert_eq!((a.click_id_type.as_str(), a.click_id.as_str()), ("gclid", gclid));
        let fbclid = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk";
        assert_eq!(at(&format!("https://a.com/?fbclid={fbclid}"), None).click_id, fbclid);
        // ...while an e-mail address smuggled in as a click id is still dropped.
        assert_eq!(at("https://a.com/?gclid=jane%40example.com", None).click_id, "");
    }

    #[test]
    fn pii_in_campaign_values_is_dropped() {
        let a = at("https://a.com/?utm_source=news&utm_content=jane%40example.com", None);
        assert_eq!(a.utm_content, "");
        assert_eq!(a.utm_source, "news");
    }
}
