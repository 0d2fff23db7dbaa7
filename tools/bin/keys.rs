//! The key lifecycle from a terminal, for local state and production alike: it calls the admin
//! API of the Worker at --url (wrangler dev's, or the deployed one's) with ADMIN_TOKEN from the
//! environment.
//!
//!   keys --url URL create PROJECT [--kinds publishable,secret,read_only] [--origins A,B]
//!        [--retention 30|90|365] [--hash-routing] [--limit N] [--timezone ZONE]
//!   keys --url URL list PROJECT
//!   keys --url URL rotate HASH [--grace SECONDS]
//!   keys --url URL revoke HASH
//!   keys --url URL set HASH [--origins A,B] [--allow-null-origin true|false] [--retention N]
//!        [--hash-routing true|false] [--limit N] [--timezone ZONE] [--domains A,B]
//!        (--domains: a pk_live_ key's sites, for Plausible's Events API; on create too)
//!   keys --url URL close PROJECT [--days 0..30]     the project's data deleted then (default 30)
//!   keys --url URL closure PROJECT | reopen PROJECT  the closure scheduled, or cancelled
//!   keys --url URL delete-project PROJECT           every key and all data of the project, now
//!   keys --url URL quota PROJECT [--monthly N|none] [--hard-cap true|false]
//!        without options: the quota and this month's use; with them: set (both, or none)
//!   keys --url URL usage all [--from YYYY-MM-DD] [--to YYYY-MM-DD]  every project's usage
use serde_json::{json, Map, Value};

fn usage() -> ! {
    eprintln!("usage: ADMIN_TOKEN=... keys --url URL create PROJECT [--kinds ...] [--origins ...] [--retention N] [--hash-routing] [--limit N] [--timezone Z]");
    eprintln!("       keys --url URL list PROJECT | rotate HASH [--grace S] | revoke HASH | set HASH [options]");
    eprintln!("       keys --url URL close PROJECT [--days N] | closure PROJECT | reopen PROJECT | delete-project PROJECT");
    eprintln!("       keys --url URL quota PROJECT [--monthly N|none] [--hard-cap true|false] | usage all [--from D] [--to D]");
    std::process::exit(2)
}

/// A flag's `true` or `false`; anything else is a mistake, never quietly `false`.
fn true_or_false(v: String) -> bool {
    match v.as_str() {
        "true" => true,
        "false" => false,
        _ => usage(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut url = None;
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--url" {
            url = args.get(i + 1).cloned();
            i += 2;
        } else {
            rest.push(args[i].clone());
            i += 1;
        }
    }
    let url = url.unwrap_or_else(|| usage());
    let token = std::env::var("ADMIN_TOKEN").unwrap_or_else(|_| {
        eprintln!("keys: set ADMIN_TOKEN in the environment");
        std::process::exit(2)
    });
    let (cmd, target) = match (rest.first(), rest.get(1)) {
        (Some(c), Some(t)) => (c.as_str(), t.clone()),
        _ => usage(),
    };
    let mut opts = Map::new();
    let mut j = 2;
    while j < rest.len() {
        let flag = rest[j].as_str();
        let val = rest.get(j + 1).cloned();
        let take = |v: Option<String>| v.unwrap_or_else(|| usage());
        match flag {
            "--kinds" => {
                opts.insert("kinds".into(), json!(take(val).split(',').collect::<Vec<_>>()));
                j += 2;
            }
            "--domains" => {
                opts.insert("domains".into(), json!(take(val).split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>()));
                j += 2;
            }
            "--origins" => {
                opts.insert("allowed_origins".into(), json!(take(val).split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>()));
                j += 2;
            }
            "--retention" => {
                opts.insert("retention_days".into(), json!(take(val).parse::<u16>().unwrap_or_else(|_| usage())));
                j += 2;
            }
            "--limit" => {
                opts.insert("events_per_minute".into(), json!(take(val).parse::<u32>().unwrap_or_else(|_| usage())));
                j += 2;
            }
            "--allow-null-origin" => {
                opts.insert("allow_null_origin".into(), json!(true_or_false(take(val))));
                j += 2;
            }
            "--timezone" => {
                opts.insert("timezone".into(), json!(take(val)));
                j += 2;
            }
            "--days" => {
                opts.insert("delete_after_days".into(), json!(take(val).parse::<u32>().unwrap_or_else(|_| usage())));
                j += 2;
            }
            "--grace" => {
                opts.insert("grace_seconds".into(), json!(take(val).parse::<u64>().unwrap_or_else(|_| usage())));
                j += 2;
            }
            "--monthly" => {
                let v = take(val);
                let n = if v == "none" { Value::Null } else { json!(v.parse::<u64>().unwrap_or_else(|_| usage())) };
                opts.insert("monthly_events".into(), n);
                j += 2;
            }
            "--hard-cap" => {
                opts.insert("hard_cap".into(), json!(true_or_false(take(val))));
                j += 2;
            }
            "--from" | "--to" => {
                opts.insert(flag[2..].into(), json!(take(val)));
                j += 2;
            }
            "--hash-routing" if cmd == "create" => {
                opts.insert("hash_routing".into(), json!(true));
                j += 1;
            }
            "--hash-routing" => {
                opts.insert("hash_routing".into(), json!(true_or_false(take(val))));
                j += 2;
            }
            _ => usage(),
        }
    }
    let base = url.trim_end_matches('/');
    let (method, path, body) = match cmd {
        "create" => {
            opts.insert("project_id".into(), json!(target));
            ("POST", "/admin/keys".to_string(), Value::Object(opts))
        }
        "list" => ("GET", format!("/admin/keys?project_id={target}"), Value::Null),
        "rotate" => ("POST", format!("/admin/keys/{target}/rotate"), Value::Object(opts)),
        "revoke" => ("POST", format!("/admin/keys/{target}/revoke"), Value::Null),
        "set" => ("PATCH", format!("/admin/keys/{target}"), Value::Object(opts)),
        "close" => ("POST", format!("/admin/projects/{target}/closure"), Value::Object(opts)),
        "closure" => ("GET", format!("/admin/projects/{target}/closure"), Value::Null),
        "reopen" => ("DELETE", format!("/admin/projects/{target}/closure"), Value::Null),
        "delete-project" => ("DELETE", format!("/admin/projects/{target}"), Value::Null),
        "quota" if opts.is_empty() => ("GET", format!("/admin/projects/{target}/quota"), Value::Null),
        "quota" => ("PUT", format!("/admin/projects/{target}/quota"), Value::Object(opts)),
        "usage" if target == "all" => {
            let q: Vec<String> = opts.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
            ("GET", format!("/admin/usage?{}", q.join("&")), Value::Null)
        }
        _ => usage(),
    };
    let req = ureq::request(method, &format!("{base}{path}")).set("Authorization", &format!("Bearer {token}"));
    let resp = if body.is_null() { req.call() } else { req.set("Content-Type", "application/json").send_string(&body.to_string()) };
    let (ok, text) = match resp {
        Ok(r) => (true, r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(_, r)) => (false, r.into_string().unwrap_or_default()),
        Err(e) => (false, format!("{{\"error\":{{\"code\":\"unreachable\",\"message\":\"{e}\"}}}}")),
    };
    let pretty = serde_json::from_str::<Value>(&text).map(|v| serde_json::to_string_pretty(&v).unwrap_or(text.clone())).unwrap_or(text);
    println!("{pretty}");
    std::process::exit(if ok { 0 } else { 1 });
}
