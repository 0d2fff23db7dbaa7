//! A goal: what counts as a conversion. A custom event by name (`{"event": "signup"}`) or a
//! pageview whose path matches a pattern (`{"page": "/blog/*"}`, `*` any characters, `/`
//! included), either with property conditions (`"props": {"plan": "pro"}`: the event carries
//! each key with exactly that value). Checked here; spelled into SQL only through `sql::string`.

use crate::error::ApiError;
use crate::query::request::{bad, short, without_nulls, Dimension, Filter, Op};
use crate::storage::sql::string;
use serde_json::{json, Map, Value};

pub const MAX_PROPS: usize = 10;
const MAX_NAME: usize = 200;
const MAX_PATTERN: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Event(String),
    Page(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    pub target: Target,
    pub props: Vec<(String, String)>,
}

/// The columns a goal is tested on, as expressions of the statement it sits in.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    pub event_type: &'a str,
    pub event_name: &'a str,
    pub path: &'a str,
    pub prop_keys: &'a str,
    pub prop_values: &'a str,
}

/// A visit's event tuple (`sql::visits`' `vevs`, expanded as `ev`).
pub const VISIT_EVENT: Columns<'static> =
    Columns { event_type: "ev.2", event_name: "ev.3", path: "ev.5", prop_keys: "ev.6", prop_values: "ev.7" };

fn refused(what: &str, v: &Value) -> ApiError {
    bad(
        "invalid_goal",
        format!(
            "{what} is `{}`; a goal is {{\"event\": \"signup\"}} or {{\"page\": \"/blog/*\"}}, optionally with \"props\": {{\"plan\": \"pro\"}}.",
            short(v)
        ),
    )
}

fn text(v: &Value, max: usize) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control) => Some(s.clone()),
        _ => None,
    }
}

impl Goal {
    /// One goal as a client wrote it; `what` names it in a refusal (e.g. "`steps[2]`").
    pub fn parse(v: &Value, what: &str) -> Result<Goal, ApiError> {
        let obj = &without_nulls(v.as_object().ok_or_else(|| refused(what, v))?);
        if let Some(k) = obj.keys().find(|k| !["event", "page", "props"].contains(&k.as_str())) {
            return Err(bad("invalid_goal", format!("{what} has `{k}`; a goal takes event or page, and props.")));
        }
        let target = match (obj.get("event"), obj.get("page")) {
            (Some(e), None) => {
                let name = text(e, MAX_NAME).ok_or_else(|| refused(&format!("{what}.event"), e))?;
                if name == crate::ingest::event::PAGEVIEW_NAME {
                    // No custom event has the name (ingest refuses it): pageviews are reached by page.
                    return Err(bad(
                        "invalid_goal",
                        format!("{what}.event is `pageview`, the name pageviews have: a goal of pageviews is a page goal, such as {{\"page\": \"/*\"}}."),
                    ));
                }
                Target::Event(name)
            }
            (None, Some(p)) => {
                let p = text(p, MAX_PATTERN).filter(|p| p.starts_with('/') || p.starts_with('*')).ok_or_else(|| {
                    bad("invalid_goal", format!("{what}.page must be a path pattern such as \"/pricing\" or \"/blog/*\"."))
                })?;
                Target::Page(p)
            }
            _ => return Err(refused(what, v)),
        };
        Ok(Goal { target, props: props(obj.get("props"), what)? })
    }

    /// The goal as it is echoed in answers.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        match &self.target {
            Target::Event(e) => o.insert("event".into(), json!(e)),
            Target::Page(p) => o.insert("page".into(), json!(p)),
        };
        if !self.props.is_empty() {
            o.insert("props".into(), Value::Object(self.props.iter().map(|(k, v)| (k.clone(), json!(v))).collect()));
        }
        Value::Object(o)
    }

    /// The goal as a Stats API filter on events (`/v1/query`'s `goal`), meaning what `condition`
    /// means: its name (for a page goal, a pageview and the page pattern) and each property
    /// (never empty, so `is` finds exactly the events that carry it).
    pub fn to_filter(&self) -> Filter {
        let is = |dimension: Dimension, v: &str| Filter::Cond { op: Op::Is, dimension, values: vec![v.to_string()] };
        let mut all = match &self.target {
            Target::Event(e) => vec![is(Dimension::Name, e)],
            Target::Page(p) => vec![
                is(Dimension::EventType, "pageview"),
                Filter::Cond { op: Op::Matches, dimension: Dimension::Page, values: vec![pattern_regex(p)] },
            ],
        };
        all.extend(self.props.iter().map(|(k, v)| is(Dimension::Prop(k.clone()), v)));
        if all.len() == 1 {
            all.remove(0)
        } else {
            Filter::And(all)
        }
    }

    /// Whether an event is this goal, in SQL over `c`.
    pub fn condition(&self, c: Columns) -> String {
        let mut parts = vec![match &self.target {
            Target::Event(e) => format!("{} = {}", c.event_name, string(e)),
            Target::Page(p) => format!("{} = 'pageview' AND match({}, {})", c.event_type, c.path, string(&pattern_regex(p))),
        }];
        for (k, v) in &self.props {
            parts.push(format!(
                "has({keys}, {k}) AND arrayElement({vals}, indexOf({keys}, {k})) = {v}",
                keys = c.prop_keys,
                vals = c.prop_values,
                k = string(k),
                v = string(v)
            ));
        }
        format!("({})", parts.join(" AND "))
    }
}

fn props(v: Option<&Value>, what: &str) -> Result<Vec<(String, String)>, ApiError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let obj = v.as_object().filter(|o| o.len() <= MAX_PROPS).ok_or_else(|| {
        bad(
            "invalid_goal",
            format!("{what}.props is an object of at most {MAX_PROPS} property names and values, e.g. {{\"plan\": \"pro\"}}."),
        )
    })?;
    obj.iter()
        .map(|(k, val)| {
            let value = match val {
                Value::String(s) if !s.is_empty() && s != "(none)" && s.len() <= MAX_PATTERN && !s.chars().any(char::is_control) => {
                    s.clone()
                }
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(bad(
                        "invalid_goal",
                        format!("{what}.props.{k} must be a non-empty string (without control characters), a number or a boolean."),
                    ))
                }
            };
            if k.is_empty() || k.len() > 64 || k.chars().any(char::is_control) {
                return Err(bad(
                    "invalid_goal",
                    format!(
                        "{what}.props has a property name of {} bytes or with a control character; 1 to 64 printable bytes are taken.",
                        k.len()
                    ),
                ));
            }
            Ok((k.clone(), value))
        })
        .collect()
}

/// A page pattern as an anchored RE2 expression: `*` is any characters, everything else
/// itself (ASCII punctuation escaped), in the form ingest stores paths (`stored_form`).
pub fn pattern_regex(p: &str) -> String {
    let mut re = String::from("^");
    for ch in stored_form(p).chars() {
        match ch {
            '*' => re.push_str(".*"),
            c if c.is_ascii_punctuation() => {
                re.push('\\');
                re.push(c);
            }
            c => re.push(c),
        }
    }
    re.push('$');
    re
}

/// A pattern as the URL parser writes a path, as ingest stores it (enrich::url_scrub): beyond
/// ASCII, controls, spaces, quotes and the like percent-encoded (the path set of the `url`
/// crate Cargo.lock pins, upper-case hex; the test walks every printable ASCII character
/// against the parser, so an update that encodes more fails there), `\` as `/`; everything
/// else, `*` and what is encoded already, as written. Dot segments are not resolved: `*.`
/// stays a pattern for paths that end in a dot.
fn stored_form(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for ch in p.chars() {
        match ch {
            '\\' => out.push('/'),
            c if c.is_ascii_graphic() && !matches!(c, '"' | '#' | '<' | '>' | '?' | '`' | '{' | '}') => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(v: Value) -> Result<Goal, ApiError> {
        Goal::parse(&v, "`goal`")
    }

    #[test]
    fn goals_parse_and_echo() {
        let g = goal(json!({"event": "purchase", "props": {"plan": "pro", "seats": 3}})).unwrap();
        assert_eq!(g.target, Target::Event("purchase".into()));
        assert_eq!(g.to_json(), json!({"event": "purchase", "props": {"plan": "pro", "seats": "3"}}));
        assert_eq!(goal(json!({"page": "/blog/*"})).unwrap().target, Target::Page("/blog/*".into()));
        for bad in [
            json!("signup"),
            json!({}),
            json!({"event": "a", "page": "/"}),
            json!({"event": ""}),
            json!({"page": "pricing"}),
            json!({"event": "a", "props": {"k": {"x": 1}}}),
            json!({"event": "a", "props": [1]}),
            json!({"event": "a", "name": "A"}),
            json!({"event": "a", "props": {"k": "x\u{0}"}}),
            json!({"event": "a", "props": {"k": ""}}),
            json!({"event": "a", "props": {"k": "(none)"}}),
            json!({"event": "a", "props": {"k\u{1}": "x"}}),
            json!({"event": "pageview"}),
        ] {
            let e = goal(bad.clone()).unwrap_err();
            assert_eq!((e.status, e.code), (400, "invalid_goal"), "{bad}");
            assert!(e.message.contains("`goal`"), "{}", e.message);
        }
    }

    /// Ingest stores a page's path as the URL parser gives it: percent-encoded beyond ASCII and
    /// for spaces, quotes and the like. A goal written as a reader writes it (`/über uns`)
    /// matches those pageviews, as does one written in the stored form.
    #[test]
    fn a_page_pattern_is_matched_in_the_form_paths_are_stored() {
        let stored = |url: &str| crate::enrich::url_scrub::parse_and_scrub(url, false).unwrap().1.path;
        for (written, url) in [
            ("/über uns", "https://a.example/über uns"),
            ("/preise & kosten", "https://a.example/preise & kosten"),
            ("/a\"b<c>{d}`e", "https://a.example/a\"b<c>{d}`e"),
            ("/日本", "https://a.example/日本"),
            ("/%C3%BCber", "https://a.example/über"),
        ] {
            assert_eq!(pattern_regex(written), pattern_regex(&stored(url)), "{written} against {url}");
        }
        assert_eq!(pattern_regex("/日本/*"), format!("{}.*$", pattern_regex(&stored("https://a.example/日本/")).trim_end_matches('$')));
        // Every printable ASCII character inside a segment, encoded or kept as the parser does.
        for c in (b' '..=b'~').map(char::from).filter(|c| !matches!(c, '/' | '\\' | '*' | '%' | '?' | '#')) {
            let path = format!("/a{c}b");
            assert_eq!(pattern_regex(&path), pattern_regex(&stored(&format!("https://a.example{path}"))), "{c:?}");
        }
        // Dot segments are not resolved: `*.` is not every path.
        assert_eq!(pattern_regex("*."), "^.*\\.$");
        assert_eq!(pattern_regex("*/.."), "^.*\\/\\.\\.$");
    }

    #[test]
    fn patterns_become_anchored_expressions() {
        assert_eq!(pattern_regex("/a.b/*"), "^\\/a\\.b\\/.*$");
        assert_eq!(pattern_regex("*/edit"), "^.*\\/edit$");
        assert_eq!(pattern_regex("/über(1)"), "^\\/\\%C3\\%BCber\\(1\\)$", "paths are stored percent-encoded");
        let g = goal(json!({"page": "/blog/*", "props": {"k": "v"}})).unwrap();
        let sql = g.condition(VISIT_EVENT);
        assert!(sql.contains("ev.2 = 'pageview' AND match(ev.5, '^\\\\/blog\\\\/.*$')"), "{sql}");
        assert!(sql.contains("has(ev.6, 'k') AND arrayElement(ev.7, indexOf(ev.6, 'k')) = 'v'"), "{sql}");
        // What the patterns match on the server: tests/e2e_conversions.rs (`/*`, `/app/*`) and
        // bench/query (`/p/1*`) run them against ClickHouse.
    }

    #[test]
    fn a_goal_is_a_filter_on_events() {
        let g = goal(json!({"page": "/blog/*", "props": {"plan": "pro"}})).unwrap();
        assert_eq!(
            g.to_filter().to_json(),
            json!(["and", [["is", "", ["pageview"]], ["matches", "event:page", ["^\\/blog\\/.*$"]], ["is", "event:props:plan", ["pro"]]]])
        );
        assert_eq!(goal(json!({"event": "signup"})).unwrap().to_filter().to_json(), json!(["is", "event:name", ["signup"]]));
    }

    #[test]
    fn quotes_never_reach_sql_unescaped() {
        let g = goal(json!({"event": "a' OR 1=1 --", "props": {"k'": "v'"}})).unwrap();
        let sql = g.condition(VISIT_EVENT);
        assert!(!sql.contains("'a' OR") && sql.contains("'a\\' OR 1=1 --'") && sql.contains("'k\\''"), "{sql}");
    }
}
