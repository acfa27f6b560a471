//! The ARI wire format as Asterisk 22 writes it: timestamps with a `+0000`
//! offset, the channel, bridge, endpoint and application objects, error
//! bodies, and the small parsers the REST side needs (caller id, percent
//! decoding, parameters from the query string and a JSON body).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

/// The `asterisk_id` of every event (the captures' MAC address).
pub const ASTERISK_ID: &str = "02:fc:00:00:00:01";

/// Formats ms since the epoch as Asterisk does: `2026-11-21T16:35:19.394+0000`
/// (milliseconds, no colon in the offset).
pub fn ari_time(ms: u64) -> String {
    crate::clock::utc_ms(ms, "+0000")
}

/// The current time in the ARI format.
pub fn now() -> String {
    ari_time(crate::clock::now_ms())
}

/// A caller or connected party.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    /// Display name.
    pub name: String,
    /// Number.
    pub number: String,
}

impl Party {
    /// A party from a name and a number.
    pub fn new(name: &str, number: &str) -> Party {
        Party {
            name: name.to_owned(),
            number: number.to_owned(),
        }
    }

    /// `{"name","number"}`.
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "number": self.number})
    }
}

/// Parses an ARI `callerId`: `"Alice" <5551234>`, `Alice <5551234>`, or a
/// bare number.
pub fn parse_caller_id(s: &str) -> Party {
    let s = s.trim();
    if let (Some(lt), true) = (s.rfind('<'), s.ends_with('>')) {
        let number = s[lt + 1..s.len() - 1].trim();
        let name = s[..lt].trim().trim_matches('"').trim();
        return Party::new(name, number);
    }
    Party::new("", s)
}

/// Where a channel is in the dialplan (the `dialplan` object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dialplan {
    /// Context.
    pub context: String,
    /// Extension.
    pub exten: String,
    /// Priority.
    pub priority: u32,
    /// Application running now (`Stasis`, `AppDial2`, `Wait`, or empty).
    pub app_name: String,
    /// Its arguments.
    pub app_data: String,
}

impl Dialplan {
    /// A dialplan position.
    pub fn new(context: &str, exten: &str, priority: u32, app_name: &str, app_data: &str) -> Self {
        Dialplan {
            context: context.to_owned(),
            exten: exten.to_owned(),
            priority,
            app_name: app_name.to_owned(),
            app_data: app_data.to_owned(),
        }
    }

    /// The `dialplan` object.
    pub fn to_json(&self) -> Value {
        json!({
            "context": self.context,
            "exten": self.exten,
            "priority": self.priority,
            "app_name": self.app_name,
            "app_data": self.app_data,
        })
    }
}

/// The Q.850 text Asterisk gives a hang-up cause (`cause_txt`).
pub fn cause_txt(cause: u16) -> &'static str {
    match cause {
        0 => "Unknown",
        1 => "Unallocated (unassigned) number",
        3 => "No route to destination",
        16 => "Normal Clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "User alerting, no answer",
        21 => "Call Rejected",
        27 => "Destination out of order",
        28 => "Invalid number format (addressing incomplete)",
        31 => "Normal, unspecified",
        34 => "Circuit/channel congestion",
        38 => "Network out of order",
        41 => "Temporary failure",
        42 => "Switching equipment congestion",
        127 => "Interworking, unspecified",
        _ => "Unknown",
    }
}

/// `{"message": …}`, the body of ARI's 4xx answers.
pub fn message(text: &str) -> Value {
    json!({ "message": text })
}

/// Decodes `%XX` escapes in a path segment (`agent-1%3B2` is `agent-1;2`).
/// Malformed escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Key prefix under which [`params`] puts the channel variables of a
/// `{"variables": {...}}` body.
pub const VARIABLE_PREFIX: &str = "variables:";

/// Request parameters: the query string, then the top-level scalar fields
/// of a JSON object body (ARI accepts both); the query wins. The entries of
/// a `variables` object come as `variables:<name>`.
pub fn params(query: &str, body: &[u8]) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        for (k, v) in map {
            match v {
                Value::Object(vars) if k == "variables" => {
                    for (name, value) in vars {
                        let value = match value {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        out.insert(format!("{VARIABLE_PREFIX}{name}"), value);
                    }
                }
                Value::String(s) => {
                    out.insert(k, s);
                }
                Value::Number(n) => {
                    out.insert(k, n.to_string());
                }
                Value::Bool(b) => {
                    out.insert(k, b.to_string());
                }
                _ => {}
            }
        }
    }
    if let Ok(q) =
        actix_web::web::Query::<Vec<(String, String)>>::from_query(query).map(|q| q.into_inner())
    {
        for (k, v) in q {
            out.insert(k, v);
        }
    }
    out
}

/// An event envelope: `type`, `timestamp`, the given fields, `asterisk_id`
/// and `application`.
pub fn event(kind: &str, app: &str, fields: Map<String, Value>) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::String(kind.to_owned()));
    m.insert("timestamp".into(), Value::String(now()));
    for (k, v) in fields {
        m.insert(k, v);
    }
    m.insert("asterisk_id".into(), Value::String(ASTERISK_ID.to_owned()));
    m.insert("application".into(), Value::String(app.to_owned()));
    Value::Object(m)
}

/// `GET /asterisk/info`, shaped as the capture.
pub fn asterisk_info(startup: &str) -> Value {
    json!({
        "build": {"os": "Linux", "kernel": "6.18.44-emulated", "machine": "x86_64",
                  "options": "OPTIONAL_API", "date": startup, "user": "root"},
        "system": {"version": "22.10.1", "entity_id": ASTERISK_ID},
        "config": {"name": "edgecc-ari-emulator", "default_language": "en",
                   "setid": {"user": "", "group": ""}},
        "status": {"startup_time": startup, "last_reload_time": startup},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps have milliseconds and a `+0000` offset without a colon.
    #[test]
    fn ari_time_formats_like_asterisk() {
        assert_eq!(ari_time(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(ari_time(1_795_278_919_394), "2026-11-21T16:35:19.394+0000");
    }

    /// Caller ids parse in the forms ARI accepts.
    #[test]
    fn caller_id_forms() {
        assert_eq!(
            parse_caller_id("\"Alice\" <5551234>"),
            Party::new("Alice", "5551234")
        );
        assert_eq!(parse_caller_id("Bob <42>"), Party::new("Bob", "42"));
        assert_eq!(parse_caller_id("5551234"), Party::new("", "5551234"));
    }

    /// Escapes decode; malformed ones are kept.
    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("agent-1%3B2"), "agent-1;2");
        assert_eq!(percent_decode("a%zz%"), "a%zz%");
        assert_eq!(percent_decode("x%4"), "x%4");
    }

    /// Query parameters win over JSON body fields.
    #[test]
    fn params_merge_query_and_body() {
        let p = params(
            "app=edgecc&callerId=%22A%22+%3C1%3E",
            br#"{"app":"x","timeout":5,"variables":{"EDGECC_CALL":"c-1"}}"#,
        );
        assert_eq!(p["app"], "edgecc");
        assert_eq!(p["variables:EDGECC_CALL"], "c-1");
        assert_eq!(p["timeout"], "5");
        assert_eq!(p["callerId"], "\"A\" <1>");
    }
}
