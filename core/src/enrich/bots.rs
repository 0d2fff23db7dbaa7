//! Bot detection by case-insensitive substrings of the user agent.
//!
//! Origin of the list: written for Millimetric from crawler and tool names that identify
//! themselves (facts); it is checked against the crawler corpora in tests/ua_accuracy.rs.

/// Lower-case substrings; any one of them in the lower-cased UA makes it a bot.
pub const BOT_TOKENS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "scrape",
    "fetch",
    "archiv",
    "headless",
    "phantomjs",
    "lighthouse",
    "pagespeed",
    "pingdom",
    "uptime",
    "monitor",
    "validator",
    "preview",
    "facebookexternalhit",
    "facebookcatalog",
    "embedly",
    "quora link",
    "whatsapp",
    "skypeuripreview",
    "bitlybot",
    "mediapartners",
    "adsbot",
    "apis-google",
    "feedfetcher",
    "google-read-aloud",
    "google-inspectiontool",
    "googleother",
    "google-extended",
    "bingpreview",
    "baiduspider",
    "exabot",
    "ia_archiver",
    "semrush",
    "ahrefs",
    "mj12",
    "dotbot",
    "petalbot",
    "bytespider",
    "amazonbot",
    "applebot",
    "gptbot",
    "chatgpt-user",
    "oai-searchbot",
    "claudebot",
    "claude-web",
    "claude-user",
    "anthropic-ai",
    "perplexity",
    "cohere-ai",
    "ccbot",
    "diffbot",
    "youbot",
    "meta-externalagent",
    "meta-externalfetcher",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "go-http-client",
    "java/",
    "okhttp",
    "apache-httpclient",
    "libwww",
    "lwp-",
    "http_request",
    "node-fetch",
    "axios/",
    "undici",
    "postman",
    "insomnia",
    "httpie",
    "scrapy",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
    "cypress",
    "nutch",
    "heritrix",
    "wordpress",
    "guzzlehttp",
    "mechanize",
    "zgrab",
    "masscan",
    "nmap",
    "nikto",
    "sqlmap",
    "censys",
    "shodan",
    "netcraft",
    "statuscake",
    "site24x7",
    "newrelic",
    "datadog",
    "synthetic",
    "cloudflare-",
    "vercel-",
    "podcast",
    "feedburner",
    "telegrambot",
    "daumoa",
    "discordbot",
    "slackbot",
    "twitterbot",
    "linkedinbot",
    "redditbot",
    "qwantify",
    "seznambot",
    "mail.ru_bot",
    "yeti",
    "trendiction",
    "blexbot",
    "serpstat",
    "screaming frog",
    "siteimprove",
    "sitebulb",
    "contentking",
    "deepcrawl",
    "oncrawl",
    "searchatlas",
    "barkrowler",
    "checker",
    "analyzer",
    "extractor",
    "grader",
    "sleuth",
    "nagios",
    "check_http",
    "http-client",
    "httpclient",
    "http client",
    "resolver",
    "siphon",
    "qqdownload",
    "dareboost",
    "ptst",
    "gomezagent",
    "webmon",
    "imageproxy",
    "emailproxy",
    "larbin",
    "siters",
    "search engine",
    "favicon",
    "outbrain",
    "jersey/",
    "lua-resty",
    "unshorten",
    "browsershots",
    "sitesucker",
    "panscient",
    "mnogosearch",
    "hatena",
    "inoreader",
    "nuzzel",
    "robozilla",
    "statically",
    "php-requests",
    "requests/",
    "validator",
    "detector",
    "lookup",
    "wkhtmlto",
    "prerender",
    "rendertron",
    "metauri",
    "capture",
    "linkdex",
    "linkcheck",
    "link-resolver",
    "linkpreview",
    "linkwalker",
    "google-",
    "google page speed",
    "google search console",
    "google wireless",
    "duplexweb-google",
    "ahc/",
    "apachebench",
    "arachni",
    "biglotron",
    "btwebclient",
    "bidtellect",
    "blogtrottr",
    "datafeedwatch",
    "disqus/",
    "gigablast",
    "jetty/",
    "teoma",
    "transcoder",
    "httrack",
    "sparkler",
    "cloudflarediagnost",
    "dmbrowser",
    "adbeat",
    "catchpoint",
    "ips-agent",
    "whatcms",
    "[at]",
    "dataprovider",
    "appinsights",
    "daum",
    "optimizer",
    "twingly",
    "pcore-http",
    "thumbnail",
    "adscanner",
    "evc-batch",
    "theoldreader",
    "tracemyfile",
    "ning/",
    "feed finder",
    "nextcloud-news",
    "postrank",
    "torrent",
    "thinklab",
    "upflow/",
    "w3c",
    "rss-platform",
    "wordupinfosearch",
    "coccoc/",
    "collectd",
    "gobuster",
    "httpunit",
    "newspaper/",
    "sixy.ch",
    "venus/",
    "websitepulse",
    "wsr-agent",
    "goose/",
    "bw/",
    "datanyze",
];

/// Structural signs no browser shows: a URL or e-mail address in the UA (crawlers sign
/// themselves), or a bare product string with no platform in parentheses.
fn structural(ua: &str) -> bool {
    let lower = ua.to_ascii_lowercase();
    if lower.contains("http://") || lower.contains("https://") || lower.contains("www.") {
        return true;
    }
    if let Some((local, domain)) = ua.split_once('@') {
        if !local.is_empty() && domain.contains('.') && !domain.starts_with(' ') {
            return true;
        }
    }
    // HTTP libraries name themselves first: `PHP/5.5`, `Java/1.8`, `Go-http-client/1.1`.
    const LIBS: &[&str] = &["PHP/", "Java/", "Python", "Ruby", "Perl", "libcurl", "Dart/", "Deno/", "Bun/", "node"];
    if LIBS.iter().any(|l| ua.starts_with(l)) {
        return true;
    }
    // Bare names with no version and no platform ("EmailSiphon", "Xenu Link Sleuth 1.2e").
    !ua.contains('/') && !ua.contains('(')
}

pub fn is_bot(ua: &str) -> bool {
    let ua = ua.trim();
    if ua.is_empty() {
        return true; // browsers always send a UA
    }
    // CUBOT is a phone maker, not a robot.
    let lower = ua.to_ascii_lowercase().replace("cubot", "");
    contains_any_token(lower.as_bytes()) || structural(ua)
}

/// BOT_TOKENS grouped by first byte, built once per isolate (~250 entries, microseconds):
/// one pass over the UA then tries only the tokens that start with the byte at hand (second
/// byte compared before the rest), instead of scanning the UA once per token.
fn index() -> &'static [Vec<&'static [u8]>; 256] {
    static INDEX: std::sync::OnceLock<[Vec<&'static [u8]>; 256]> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let mut m: [Vec<&'static [u8]>; 256] = std::array::from_fn(|_| Vec::new());
        for t in BOT_TOKENS {
            m[t.as_bytes()[0] as usize].push(t.as_bytes());
        }
        m
    })
}

fn contains_any_token(lower: &[u8]) -> bool {
    let idx = index();
    (0..lower.len()).any(|i| {
        let rest = &lower[i..];
        idx[rest[0] as usize].iter().any(|t| rest.len() >= t.len() && rest[1] == t[1] && rest.starts_with(t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bots_and_tools() {
        for ua in [
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "curl/8.5.0",
            "python-requests/2.32.3",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ClaudeBot/1.0; +claudebot@anthropic.com",
            "",
        ] {
            assert!(is_bot(ua), "{ua:?} should be a bot");
        }
    }

    #[test]
    fn the_index_finds_exactly_what_a_plain_scan_finds() {
        assert!(BOT_TOKENS.iter().all(|t| t.len() >= 2), "the index needs two bytes per token");
        for ua in ["curl/8.5.0", "xx googlebot/2.1", "Mozilla/5.0 (compatible; ahrefsbot)", "Mozilla/5.0 Chrome/1 Safari/1", "zz", ""] {
            let lower = ua.to_ascii_lowercase();
            let plain = BOT_TOKENS.iter().any(|t| lower.contains(t));
            assert_eq!(contains_any_token(lower.as_bytes()), plain, "{ua}");
        }
    }

    #[test]
    fn browsers_are_not_bots() {
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:132.0) Gecko/20100101 Firefox/132.0",
        ] {
            assert!(!is_bot(ua), "{ua:?} should not be a bot");
        }
    }
}
