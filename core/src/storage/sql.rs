//! Spelling values into ClickHouse SQL. ClickHouse 18.16 has no query parameters, so every
//! value a client chose reaches a statement through `string` (and identifiers only after
//! `ClickHouseConfig::check_names` or a whitelist).

/// A ClickHouse string literal: quoted, with backslashes and quotes escaped.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(string("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(string(""), "''");
        assert_eq!(string("x\\'); DROP TABLE events; --"), "'x\\\\\\'); DROP TABLE events; --'");
    }
}
