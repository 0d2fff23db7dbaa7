//! Account names inside home-directory paths: `/Users/jane/…` (macOS), `/home/jane/…` (Linux),
//! `C:\Users\jane\…`, `\Documents and Settings\jane\…`, `\Profiles\jane\…` (Windows), as stack
//! traces, error messages and file names carry them. The span is the account name only, so
//! `/Users/[user]/Development/app` keeps the rest of the path.
//!
//! Websites have routes that look alike (`/users/jane` is a public profile page, `/home/feed`
//! a page), so the Unix forms are narrower than the Windows ones: `/Users/` with its capital,
//! `/home/NAME/` with a path after the name, and either only where a path starts (the start of
//! the text, after a space, a quote, a bracket, `=` or `:`, or `file://`), never inside a URL,
//! whose path `url_scrub` judges segment by segment.

use std::ops::Range;

/// Where a Unix path may start: not inside a host name, a word or another path.
fn path_starts(s: &[u8], at: usize) -> bool {
    at == 0
        || s[..at].ends_with(b"file://")
        || !(s[at - 1].is_ascii_alphanumeric() || matches!(s[at - 1], b'/' | b'.' | b'-' | b'_' | b'%'))
}

/// The account name from `from`: up to the next separator, quote or control character. A
/// Windows name may hold single spaces (`John Smith`) when a separator closes it.
fn name_at(s: &[u8], from: usize, spaces: bool) -> Range<usize> {
    let mut end = from;
    while end < s.len() && !matches!(s[end], b'/' | b'\\' | b'"' | b'\'' | b'<' | b'>' | b'|' | b'`') && !s[end].is_ascii_control() {
        if s[end] == b' ' && !spaces {
            break;
        }
        end += 1;
    }
    if spaces && s.get(end).is_none_or(|&b| !matches!(b, b'/' | b'\\')) {
        // Not closed by a separator: the name ends at its first space (`C:\Users\jane is`).
        if let Some(space) = s[from..end].iter().position(|&b| b == b' ') {
            end = from + space;
        }
    }
    from..end
}

fn starts_with_ignore_case(s: &[u8], at: usize, word: &[u8]) -> bool {
    s.get(at..at + word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word))
}

/// Windows: `X:\Users\`, `\Users\`, `\Documents and Settings\`, `\Profiles\` (either slash, any case).
fn windows_prefix(s: &[u8], sep: usize) -> Option<usize> {
    for dir in [&b"users"[..], b"documents and settings", b"profiles"] {
        let after = sep + 1 + dir.len();
        if starts_with_ignore_case(s, sep + 1, dir) && s.get(after).is_some_and(|&b| b == b'\\' || b == b'/') {
            let drive = sep >= 2 && s[sep - 1] == b':' && s[sep - 2].is_ascii_alphabetic();
            // With a forward slash only after a drive letter (`C:/Users/`): `/users/` is a route.
            if s[sep] == b'\\' || drive {
                return Some(after + 1);
            }
        }
    }
    None
}

/// Unix: `/Users/NAME` or `/home/NAME/…`, where a path starts.
fn unix_prefix(s: &[u8], sep: usize) -> Option<(usize, bool)> {
    if !path_starts(s, sep) {
        return None;
    }
    if s[sep..].starts_with(b"/Users/") {
        return Some((sep + 7, false));
    }
    s[sep..].starts_with(b"/home/").then_some((sep + 6, true))
}

/// The account name of every home-directory path in `text`, as byte ranges.
pub fn home_path_spans(text: &str) -> Vec<Range<usize>> {
    let s = text.as_bytes();
    let mut out: Vec<Range<usize>> = Vec::new();
    for sep in 0..s.len() {
        if !(s[sep] == b'/' || s[sep] == b'\\') || out.last().is_some_and(|r| r.end > sep) {
            continue;
        }
        let name = if let Some(from) = windows_prefix(s, sep) {
            name_at(s, from, true)
        } else if let Some((from, needs_more_path)) = unix_prefix(s, sep) {
            let name = name_at(s, from, false);
            if needs_more_path && s.get(name.end) != Some(&b'/') {
                continue;
            }
            name
        } else {
            continue;
        };
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// In a URL path judged segment by segment (both segments percent-decoded, without matrix
/// parameters): the segment between `Users` (with its capital, as macOS and Windows spell it;
/// a site's profile routes are `/users/`) and a folder home directories have
/// (`/Users/jdoe/Desktop`, any case: `is_home_folder`) is an account name. A site's own routes
/// under `Users` (`/Users/Edit/5`, `/Users/Index`: ASP.NET's convention) are not, nor is
/// `/Users/NAME` with nothing after it, which a site's route cannot be told apart from.
pub const USERS_SEGMENT: &str = "Users";

/// A folder that home directories have, the segment after an account name.
pub fn is_home_folder(segment: &str) -> bool {
    const HOME_FOLDERS: &[&str] = &[
        "desktop",
        "documents",
        "downloads",
        "library",
        "pictures",
        "music",
        "movies",
        "videos",
        "public",
        "appdata",
        "applications",
        "sites",
        "onedrive",
        "dropbox",
        "icloud drive",
        "google drive",
        "development",
        "developer",
        "dev",
        "projects",
        "src",
        "code",
        "repos",
        "git",
        "github",
        "workspace",
        "work",
        "go",
        ".ssh",
        ".config",
        ".local",
        ".cache",
    ];
    HOME_FOLDERS.iter().any(|f| f.eq_ignore_ascii_case(segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(t: &str) -> String {
        let mut out = t.to_string();
        for r in home_path_spans(t).into_iter().rev() {
            out.replace_range(r, "[user]");
        }
        out
    }

    #[test]
    fn account_names_in_home_directories() {
        for (t, want) in [
            ("File in /Users/jdoe/Development/app", "File in /Users/[user]/Development/app"),
            ("/Users/jdoe", "/Users/[user]"),
            ("open /home/akira/.ssh/config failed", "open /home/[user]/.ssh/config failed"),
            ("C:\\Users\\jdoe\\Desktop\\notes.txt", "C:\\Users\\[user]\\Desktop\\notes.txt"),
            ("c:/users/jdoe/AppData", "c:/users/[user]/AppData"),
            ("C:\\Users\\John Smith\\Documents", "C:\\Users\\[user]\\Documents"),
            ("at C:\\Users\\jdoe is missing", "at C:\\Users\\[user] is missing"),
            ("C:\\Documents and Settings\\jdoe\\Temp", "C:\\Documents and Settings\\[user]\\Temp"),
            ("C:\\Windows\\Profiles\\Armin\\Temp", "C:\\Windows\\Profiles\\[user]\\Temp"),
            ("\\\\server\\Users\\jdoe\\share", "\\\\server\\Users\\[user]\\share"),
            ("file:///Users/jdoe/report.pdf", "file:///Users/[user]/report.pdf"),
            ("path=/home/akira/src", "path=/home/[user]/src"),
            ("\"/Users/jdoe/x\"", "\"/Users/[user]/x\""),
        ] {
            assert_eq!(redacted(t), want, "{t}");
        }
    }

    #[test]
    fn website_routes_and_other_paths_are_kept() {
        for t in [
            "/users/jane-doe/settings",
            "https://site.example/users/jane",
            "https://site.example/Users/jane/posts",
            "https://site.example/home/jane/feed",
            "/home",
            "/home/feed",
            "/homepage/",
            "/root/.profile",
            "Users / Settings",
            "users/jane",
            "C:\\Program Files\\App",
            "/api/home/x/y",
        ] {
            assert_eq!(redacted(t), t);
        }
    }
}
