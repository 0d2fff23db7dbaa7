//! Listing a KV namespace whole: every key (under a prefix), page after page.

use worker::kv::KvStore;

/// Every key of `kv` that starts with `prefix`, in KV's order.
pub async fn all_keys(kv: &KvStore, prefix: &str) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut list = kv.list().prefix(prefix.to_string());
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        let page = list.execute().await.map_err(|e| format!("could not list KV keys: {e}"))?;
        keys.extend(page.keys.into_iter().map(|k| k.name));
        match page.cursor {
            Some(c) if !page.list_complete => cursor = Some(c),
            _ => return Ok(keys),
        }
    }
}
