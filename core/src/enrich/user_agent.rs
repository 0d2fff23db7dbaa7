//! Coarse user-agent classification: browser family, OS family, device type, bot flag.
//! A token scan, not a regex set: nothing to build on a cold isolate, a few microseconds
//! per UA. Coarse by design (no versions, no device models): we promise no fingerprinting.
//! Agreement with uap-core's test cases is measured by `tests/ua_accuracy.rs`.

use super::bots::is_bot;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent {
    pub browser: &'static str,
    pub os: &'static str,
    pub device: &'static str,
    pub is_bot: bool,
}

pub fn classify(ua: &str) -> UserAgent {
    let bot = is_bot(ua);
    let os = os_family(ua);
    UserAgent { browser: browser_family(ua), os, device: if bot { "bot" } else { device_type(ua, os) }, is_bot: bot }
}

pub fn browser_family(ua: &str) -> &'static str {
    let has = |t: &str| ua.contains(t);
    if has("Edg/") || has("Edge/") || has("EdgA/") || has("EdgiOS/") {
        "Edge"
    } else if has("UCBrowser") || has("UCWEB") || has("UBrowser/") || has("UC Browser") {
        "UC Browser"
    } else if has("OPR/") || has("Opera") || has("OPiOS/") || has("OPT/") {
        "Opera"
    } else if has("SamsungBrowser/") {
        "Samsung Internet"
    } else if has("YaBrowser/") || has("YaSearchBrowser/") {
        "Yandex Browser"
    } else if has("FBAN/") || has("FBAV/") || has("FB_IAB/") {
        "Facebook"
    } else if has("Instagram") {
        "Instagram"
    } else if has("Trident/") && (has("rv:11") || has("MSIE ")) || has("MSIE ") {
        // Products that embed IE's engine and say so (Outlook, AOL, QQ, Sleipnir, ...).
        const SHELLS: &[&str] = &[
            "MSOffice",
            "Outlook",
            "AOL ",
            "baidubrowser",
            "QQBrowser",
            "Sleipnir",
            "chromeframe/",
            "Windows Live",
            "PTST/",
            "Avant",
            "Maxthon",
            "360SE",
            "TheWorld",
        ];
        if SHELLS.iter().any(|t| has(t)) {
            "Other"
        } else {
            "IE"
        }
    } else if has("Firefox/") || has("FxiOS/") {
        only_products(
            ua,
            &["Mozilla", "Gecko", "Firefox", "FxiOS", "AppleWebKit", "Safari", "Version", "Mobile", "Tablet", "Ubuntu", "Fedora", "Linux"],
            "Firefox",
        )
    } else if has("CriOS/") || has("Chrome/") || has("Chromium/") || has("HeadlessChrome") {
        only_products(
            ua,
            &[
                "Mozilla",
                "AppleWebKit",
                "Chrome",
                "CriOS",
                "Chromium",
                "HeadlessChrome",
                "Safari",
                "Version",
                "Mobile",
                "Ubuntu",
                "Fedora",
                "Linux",
            ],
            "Chrome",
        )
    } else if ua.starts_with("Safari") && has("CFNetwork/") {
        "Safari"
    } else if has("AppleWebKit/") && (has("iPhone") || has("iPad") || has("iPod")) && !has("Safari/") {
        // An iOS web view (WKWebView) inside an app: Safari's engine, reported as Safari.
        "Safari"
    } else if has("AppleWebKit/") && (has("Mac OS X") || has("iPhone") || has("iPad") || has("iPod")) && !has("Android") {
        only_products(ua, &["Mozilla", "AppleWebKit", "Version", "Mobile", "Safari"], "Safari")
    } else {
        "Other"
    }
}

/// `family` when every `Product/version` token outside parentheses is one of `allowed`: a
/// browser built on Chrome, Safari or Firefox (Brave aside, which hides) names itself with an
/// extra token (`Vivaldi/`, `Whale/`, `Puffin/`, `[FBAN/`...), and is then not that browser.
fn only_products(ua: &str, allowed: &[&str], family: &'static str) -> &'static str {
    let mut depth = 0i32;
    let mut outside = String::with_capacity(ua.len());
    for c in ua.chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            _ if depth <= 0 => outside.push(c),
            _ => {}
        }
    }
    let extra = outside.split_whitespace().any(|tok| match tok.split_once('/') {
        // `Firefox-4.0/4.0b8pre`: a product with its version glued on is still that product.
        Some((name, _)) => {
            !name.is_empty() && !allowed.iter().any(|a| name == *a || name.strip_prefix(a).is_some_and(|r| r.starts_with('-')))
        }
        None => false,
    });
    if extra {
        "Other"
    } else {
        family
    }
}

pub fn os_family(ua: &str) -> &'static str {
    let has = |t: &str| ua.contains(t);
    let lower = ua.to_ascii_lowercase();
    let lhas = |t: &str| lower.contains(t);
    if has("Windows Phone") || has("Windows Mobile") || has("ZuneWP7") || has("wds 7") || has("wds 8") {
        "Windows Phone"
    } else if has("iPhone")
        || has("iPad")
        || has("iPod")
        || has("iOS;")
        || has("iOS ")
        || has("-iOS")
        || has("iPh OS")
        || has("iPd OS")
        || has("CriOS/")
        || has("FxiOS/")
        || has("EdgiOS/")
        || has("OPiOS/")
    {
        "iOS"
    } else if has("CFNetwork/") || has("Darwin/") {
        // Apple's networking stack: Macs say their CPU architecture or model, iOS devices do not.
        if has("x86_64") || has("i386") || has("Mac") || has("arm64e") && !has("iP") || !has("CFNetwork/") {
            "macOS"
        } else {
            "iOS"
        }
    } else if lhas("android") || has("Adr ") || has("Silk/") || has("Silk-Accelerated") || has("JUC") || has("Quest") || has("Kindle") {
        "Android"
    } else if has("CrOS") || has("CitrixChromeApp") && has("X11") {
        "Chrome OS"
    } else if has("Windows") || has("Win64") || has("Win32") || has("WinNT") || has("Win98") || has("Win95") {
        "Windows"
    } else if has("Mac OS X") || has("Macintosh") || has("Mac_PowerPC") || has("macOS") {
        "macOS"
    } else if has("SmartTV")
        || has("SMART-TV")
        || has("GoogleTV")
        || has("Web0S")
        || has("webOS")
        || has("CrKey")
        || has("NetCast")
        || has("HbbTV")
        || has("Tizen")
        || has("BSD")
        || has("SunOS")
        || has("Solaris")
    {
        // TV platforms and the non-Linux Unixes: not a family we name, and not Linux.
        "Other"
    } else if lhas("linux")
        || has("X11")
        || has("Ubuntu")
        || has("Fedora")
        || has("Debian")
        || has("MeeGo")
        || has("Maemo")
        || has("Sailfish")
    {
        "Linux"
    } else {
        "Other"
    }
}

pub fn device_type(ua: &str, os: &'static str) -> &'static str {
    let has = |t: &str| ua.contains(t);
    if has("iPad") || has("Tablet") || has("Kindle") || has("Silk/") || has("PlayBook") {
        "tablet"
    } else if has("SmartTV") || has("SMART-TV") || has("PlayStation") || has("Xbox") || has("Nintendo") || has("CrKey") {
        "other"
    } else if os == "Android" {
        if has("Mobile") {
            "mobile"
        } else {
            "tablet"
        }
    } else if has("Mobi") || has("iPhone") || has("iPod") || os == "Windows Phone" || has("BlackBerry") || has("Opera Mini") {
        "mobile"
    } else if matches!(os, "Windows" | "macOS" | "Linux" | "Chrome OS") {
        "desktop"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers() {
        let c = classify("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36");
        assert_eq!((c.browser, c.os, c.device, c.is_bot), ("Chrome", "Windows", "desktop", false));
        let c = classify("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1");
        assert_eq!((c.browser, c.os, c.device), ("Safari", "iOS", "mobile"));
        let c = classify(
            "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0 Mobile/15E148 Safari/604.1",
        );
        assert_eq!((c.browser, c.os, c.device), ("Chrome", "iOS", "tablet"));
        let c = classify("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:132.0) Gecko/20100101 Firefox/132.0");
        assert_eq!((c.browser, c.os, c.device), ("Firefox", "macOS", "desktop"));
        let c = classify(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        );
        assert_eq!(c.browser, "Edge");
        let c = classify("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36");
        assert_eq!((c.browser, c.os, c.device), ("Samsung Internet", "Android", "mobile"));
        let c = classify("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36");
        assert_eq!(c.device, "tablet");
        let c = classify("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
        assert_eq!((c.os, c.device), ("Chrome OS", "desktop"));
    }

    #[test]
    fn bots_are_flagged_and_typed() {
        let c = classify("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert_eq!((c.device, c.is_bot), ("bot", true));
        let c = classify("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)");
        assert!(c.is_bot);
        assert_eq!(classify("").browser, "Other");
    }
}
