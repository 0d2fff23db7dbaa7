//! Referrer hosts we name, with their medium.
//!
//! Origin: curated by hand for Millimetric from each service's own public domain names
//! (facts, not a copied list); no third-party referrer database (Snowplow/Matomo are GPL)
//! was used. Apache-2.0 like the rest of the project. Add entries freely; keep them sorted by medium.
//!
//! Matching: an entry `example.com` matches the host itself and any subdomain of it;
//! an entry ending in `.` (`google.`) matches that label followed by any public suffix
//! (`google.com`, `google.co.uk`, `www.google.de`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Search,
    Social,
    Email,
    Ai,
}

impl Medium {
    pub fn as_str(self) -> &'static str {
        match self {
            Medium::Search => "search",
            Medium::Social => "social",
            Medium::Email => "email",
            Medium::Ai => "ai",
        }
    }
}

use Medium::*;

/// (host pattern, source name, medium). More specific hosts first: the first match wins.
pub const HOSTS: &[(&str, &str, Medium)] = &[
    // AI assistants and answer engines (before their parents' search/email entries)
    ("chatgpt.com", "ChatGPT", Ai),
    ("chat.openai.com", "ChatGPT", Ai),
    ("openai.com", "OpenAI", Ai),
    ("perplexity.ai", "Perplexity", Ai),
    ("claude.ai", "Claude", Ai),
    ("gemini.google.com", "Gemini", Ai),
    ("bard.google.com", "Gemini", Ai),
    ("aistudio.google.com", "Gemini", Ai),
    ("notebooklm.google.com", "NotebookLM", Ai),
    ("copilot.microsoft.com", "Copilot", Ai),
    ("copilot.cloud.microsoft", "Copilot", Ai),
    ("m365copilot.com", "Copilot", Ai),
    ("chat.mistral.ai", "Mistral Le Chat", Ai),
    ("chat.deepseek.com", "DeepSeek", Ai),
    ("deepseek.com", "DeepSeek", Ai),
    ("grok.com", "Grok", Ai),
    ("x.ai", "Grok", Ai),
    ("meta.ai", "Meta AI", Ai),
    ("poe.com", "Poe", Ai),
    ("you.com", "You.com", Ai),
    ("phind.com", "Phind", Ai),
    ("huggingface.co", "HuggingChat", Ai),
    ("character.ai", "Character.AI", Ai),
    ("pi.ai", "Pi", Ai),
    ("kimi.com", "Kimi", Ai),
    ("kimi.moonshot.cn", "Kimi", Ai),
    ("chat.qwen.ai", "Qwen", Ai),
    ("tongyi.aliyun.com", "Qwen", Ai),
    ("doubao.com", "Doubao", Ai),
    ("yiyan.baidu.com", "ERNIE Bot", Ai),
    ("felo.ai", "Felo", Ai),
    ("andisearch.com", "Andi", Ai),
    // webmail (before the search engines that share their parent domains)
    ("mail.google.com", "Gmail", Email),
    ("inbox.google.com", "Gmail", Email),
    ("outlook.live.com", "Outlook", Email),
    ("outlook.office.com", "Outlook", Email),
    ("outlook.office365.com", "Outlook", Email),
    ("mail.yahoo.com", "Yahoo Mail", Email),
    ("mail.yahoo.co.jp", "Yahoo Mail", Email),
    ("mail.proton.me", "Proton Mail", Email),
    ("mail.protonmail.com", "Proton Mail", Email),
    ("mail.aol.com", "AOL Mail", Email),
    ("mail.zoho.com", "Zoho Mail", Email),
    ("app.fastmail.com", "Fastmail", Email),
    ("mail.yandex.ru", "Yandex Mail", Email),
    ("e.mail.ru", "Mail.ru", Email),
    ("icloud.com", "iCloud Mail", Email),
    ("mailchi.mp", "Mailchimp", Email),
    ("substack.com", "Substack", Email),
    ("beehiiv.com", "beehiiv", Email),
    // search engines
    ("google.", "Google", Search),
    ("bing.com", "Bing", Search),
    ("duckduckgo.com", "DuckDuckGo", Search),
    ("search.yahoo.com", "Yahoo", Search),
    ("search.yahoo.co.jp", "Yahoo", Search),
    ("yahoo.", "Yahoo", Search),
    ("yandex.", "Yandex", Search),
    ("ya.ru", "Yandex", Search),
    ("baidu.com", "Baidu", Search),
    ("ecosia.org", "Ecosia", Search),
    ("search.brave.com", "Brave Search", Search),
    ("startpage.com", "Startpage", Search),
    ("qwant.com", "Qwant", Search),
    ("kagi.com", "Kagi", Search),
    ("naver.com", "Naver", Search),
    ("seznam.cz", "Seznam", Search),
    ("sogou.com", "Sogou", Search),
    ("so.com", "360 Search", Search),
    ("daum.net", "Daum", Search),
    ("ask.com", "Ask", Search),
    ("aol.com", "AOL", Search),
    ("mojeek.com", "Mojeek", Search),
    ("search.aol.com", "AOL", Search),
    ("search.naver.com", "Naver", Search),
    // social networks and communities
    ("facebook.com", "Facebook", Social),
    ("fb.com", "Facebook", Social),
    ("fb.me", "Facebook", Social),
    ("messenger.com", "Facebook", Social),
    ("instagram.com", "Instagram", Social),
    ("threads.net", "Threads", Social),
    ("threads.com", "Threads", Social),
    ("twitter.com", "X", Social),
    ("x.com", "X", Social),
    ("t.co", "X", Social),
    ("linkedin.com", "LinkedIn", Social),
    ("lnkd.in", "LinkedIn", Social),
    ("reddit.com", "Reddit", Social),
    ("redd.it", "Reddit", Social),
    ("news.ycombinator.com", "Hacker News", Social),
    ("youtube.com", "YouTube", Social),
    ("youtu.be", "YouTube", Social),
    ("tiktok.com", "TikTok", Social),
    ("pinterest.", "Pinterest", Social),
    ("pin.it", "Pinterest", Social),
    ("bsky.app", "Bluesky", Social),
    ("mastodon.social", "Mastodon", Social),
    ("mastodon.online", "Mastodon", Social),
    ("lobste.rs", "Lobsters", Social),
    ("producthunt.com", "Product Hunt", Social),
    ("quora.com", "Quora", Social),
    ("discord.com", "Discord", Social),
    ("discordapp.com", "Discord", Social),
    ("slack.com", "Slack", Social),
    ("t.me", "Telegram", Social),
    ("telegram.org", "Telegram", Social),
    ("web.whatsapp.com", "WhatsApp", Social),
    ("wa.me", "WhatsApp", Social),
    ("vk.com", "VK", Social),
    ("weibo.com", "Weibo", Social),
    ("tumblr.com", "Tumblr", Social),
    ("medium.com", "Medium", Social),
    ("dev.to", "DEV", Social),
    ("stackoverflow.com", "Stack Overflow", Social),
    ("github.com", "GitHub", Social),
    ("snapchat.com", "Snapchat", Social),
    ("twitch.tv", "Twitch", Social),
    ("xing.com", "XING", Social),
];

/// The registrable-ish part used for `google.` style entries: true when `host` is
/// `label.<suffix>` or `<sub>.label.<suffix>` with a suffix of one or two short labels.
fn matches_label_any_suffix(host: &str, label_dot: &str) -> bool {
    let label = &label_dot[..label_dot.len() - 1];
    let parts: Vec<&str> = host.split('.').collect();
    parts.iter().enumerate().any(|(i, p)| {
        if *p != label {
            return false;
        }
        let suffix = &parts[i + 1..];
        match suffix.len() {
            1 => true,
            // co.uk, com.au, co.jp: a short second-level label
            2 => suffix[0].len() <= 3,
            _ => false,
        }
    })
}

pub fn lookup(host: &str) -> Option<(&'static str, Medium)> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    HOSTS.iter().find_map(|(pat, name, medium)| {
        let hit = if pat.ends_with('.') {
            matches_label_any_suffix(host, pat)
        } else {
            host == *pat || (host.len() > pat.len() && host.ends_with(pat) && host.as_bytes()[host.len() - pat.len() - 1] == b'.')
        };
        hit.then_some((*name, *medium))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_resolve_to_source_and_medium() {
        assert_eq!(lookup("www.google.com"), Some(("Google", Search)));
        assert_eq!(lookup("google.co.uk"), Some(("Google", Search)));
        assert_eq!(lookup("news.google.de"), Some(("Google", Search)));
        assert_eq!(lookup("mail.google.com"), Some(("Gmail", Email)));
        assert_eq!(lookup("gemini.google.com"), Some(("Gemini", Ai)));
        assert_eq!(lookup("chatgpt.com"), Some(("ChatGPT", Ai)));
        assert_eq!(lookup("www.perplexity.ai"), Some(("Perplexity", Ai)));
        assert_eq!(lookup("claude.ai"), Some(("Claude", Ai)));
        assert_eq!(lookup("copilot.microsoft.com"), Some(("Copilot", Ai)));
        assert_eq!(lookup("l.facebook.com"), Some(("Facebook", Social)));
        assert_eq!(lookup("t.co"), Some(("X", Social)));
        assert_eq!(lookup("out.reddit.com"), Some(("Reddit", Social)));
        assert_eq!(lookup("news.ycombinator.com"), Some(("Hacker News", Social)));
    }

    #[test]
    fn lookalikes_do_not_match() {
        assert_eq!(lookup("notgoogle.com"), None);
        assert_eq!(lookup("google.evil.example.com"), None);
        assert_eq!(lookup("myx.com"), None);
        assert_eq!(lookup("example.com"), None);
        assert_eq!(lookup("bing.com.evil.io"), None);
    }
}
