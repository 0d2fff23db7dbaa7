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

/// How wide the id indexes' hash is. 96 bits: among n ids of one project, two share a hash
/// with odds of about n^2 / 2^97, 6 in 10^12 for a billion ids, far below a disk's own error
/// rate. (When two did, the later event would be taken for a copy of the earlier one.)
pub const ID_HASH_BYTES: usize = 12;

/// How the id indexes (`event_id_hashes`, `visitor_day_hashes`: migrations/0007) key an id:
/// the first `ID_HASH_BYTES` of its SHA-256, 12 bytes on disk whatever the id's length, where
/// a random UUID's text takes 36 that LZ4 cannot shrink. The SQL that computes it from a
/// column (for the materialized views) ...
pub fn id_hash_of(column: &str) -> String {
    format!("toFixedString(substring(SHA256({column}), 1, {ID_HASH_BYTES}), {ID_HASH_BYTES})")
}

/// ... and the same hash of `id`, computed here, as a literal to compare with that column.
pub fn id_hash(id: &str) -> String {
    id_hash_literal(&id_hash_hex(id))
}

/// A hash `id_hash_hex` printed, as that literal.
pub fn id_hash_literal(hex: &str) -> String {
    format!("unhex('{hex}')")
}

/// The hash as ClickHouse's `lower(hex(...))` prints it.
pub fn id_hash_hex(id: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::keys::hex(&Sha256::digest(id.as_bytes())[..ID_HASH_BYTES])
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

    /// The literal and the views' SQL must name one hash: the migration spells it as
    /// `id_hash_of` does, and the literal is SHA-256's first half (the test vector for "abc").
    #[test]
    fn one_id_hash_in_the_migration_and_the_literal() {
        assert_eq!(id_hash_hex("abc"), "ba7816bf8f01cfea414140de");
        assert_eq!(id_hash("abc"), "unhex('ba7816bf8f01cfea414140de')");
        let views_and_fills = include_str!("../../../migrations/0007_id_hashes.sql");
        let catch_up = include_str!("../../../migrations/0008_drop_old_id_indexes.sql");
        let views_again = include_str!("../../../migrations/0009_events_by_visitor.sql");
        for (migration, hashes) in [(views_and_fills, 2), (catch_up, 1), (views_again, 2)] {
            for column in ["event_id", "anonymous_id"] {
                assert_eq!(migration.matches(&id_hash_of(column)).count(), hashes, "{column} is hashed as id_hash_of does");
            }
            assert_eq!(migration.matches("SHA256(").count(), 2 * hashes, "no other spelling of the hash");
        }
    }
}
