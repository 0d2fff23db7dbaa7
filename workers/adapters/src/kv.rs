//! Listing a KV namespace whole: every key (under a prefix), page after page.

use serde_json::Value;
use worker::kv::{Key, KvStore};

/// Every key of `kv` that starts with `prefix`, in KV's order.
pub async fn all_keys(kv: &KvStore, prefix: &str) -> Result<Vec<String>, String> {
    Ok(all_entries(kv, prefix).await?.into_iter().map(|(name, _)| name).collect())
}

/// Every key of `kv` that starts with `prefix`, with the metadata stored with it (a listing
/// returns both: one operation a thousand keys, where reading each value is one a key).
pub async fn all_entries(kv: &KvStore, prefix: &str) -> Result<Vec<(String, Option<Value>)>, String> {
    Ok(all_listed(kv, prefix).await?.into_iter().map(|k| (k.name, k.metadata)).collect())
}

/// Every key of `kv` that starts with `prefix` as the listing gives it: name, expiry, metadata.
pub async fn all_listed(kv: &KvStore, prefix: &str) -> Result<Vec<Key>, String> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut list = kv.list().prefix(prefix.to_string());
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        let page = list.execute().await.map_err(|e| format!("could not list KV keys: {e}"))?;
        entries.extend(page.keys);
        match page.cursor {
            Some(c) if !page.list_complete => cursor = Some(c),
            _ => return Ok(entries),
        }
    }
}
