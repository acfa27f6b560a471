//! Reference fields of table mode: the interaction's `channel` (an
//! `awa_service_channel`) and `queue` (an `awa_queue`), and a work item's
//! `queue`. ServiceNow stores a sys_id there; edgecc's own strings (`phone`,
//! a queue id) would be stored as broken references. The sys_ids come from
//! `[crm.servicenow]`: `service_channel`, and `awa_queues` (edgecc queue id
//! → `awa_queue` sys_id). A queue without a mapping leaves the field unset.

use edgecc_storage::RecordKind;
use serde_json::{Map, Value};
use tracing::warn;

use super::{ServiceNowAdapter, ServiceNowConfig, UNMAPPED_LOGGED_MAX};
use crate::net::SettingError;

/// Length of a sys_id: 32 hexadecimal digits.
pub const SYS_ID_LEN: usize = 32;

/// Whether `value` is a sys_id (32 lower-case hexadecimal digits).
pub fn is_sys_id(value: &str) -> bool {
    value.len() == SYS_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks that `crm.servicenow.<key>` holds a sys_id.
pub(super) fn check_sys_id(key: &str, value: &str) -> Result<(), SettingError> {
    if is_sys_id(value) {
        Ok(())
    } else {
        Err(SettingError::new(
            &format!("crm.servicenow.{key}"),
            format!("`{value}` is not a sys_id (32 characters of 0-9 and a-f)"),
        ))
    }
}

/// The reference fields `record`'s row gets (field, sys_id), and the
/// edgecc queue that has no `awa_queues` entry, if any.
pub(super) fn references(
    kind: RecordKind,
    data: &Map<String, Value>,
    c: &ServiceNowConfig,
) -> (Vec<(&'static str, String)>, Option<String>) {
    let mut fields = Vec::new();
    let queue_key = match kind {
        RecordKind::InteractionCreate => {
            if let Some(channel) = &c.service_channel {
                fields.push(("channel", channel.clone()));
            }
            "queue"
        }
        RecordKind::WorkItemCreate => "queue",
        // A transfer to a queue, or an overflow, moves the interaction.
        RecordKind::InteractionUpdate => "to_queue",
        RecordKind::PhoneLogCreate => return (fields, None),
    };
    let Some(queue) = data.get(queue_key).and_then(Value::as_str) else {
        return (fields, None);
    };
    match c.awa_queues.get(queue) {
        Some(sys_id) => {
            fields.push(("queue", sys_id.clone()));
            (fields, None)
        }
        None => (fields, Some(queue.to_string())),
    }
}

impl ServiceNowAdapter {
    /// Logs (once per queue) an edgecc queue of `data` that has no
    /// `awa_queues` entry: its records leave `queue` empty.
    pub(super) fn note_unmapped_queue(&self, kind: RecordKind, data: &Map<String, Value>) {
        let (_, unmapped) = references(kind, data, &self.config);
        let Some(queue) = unmapped else { return };
        let mut logged = self.unmapped_queues.borrow_mut();
        if logged.len() < UNMAPPED_LOGGED_MAX && logged.insert(queue.clone()) {
            warn!(queue = %queue, key = %format!("crm.servicenow.awa_queues.{queue}"),
                "No awa_queue sys_id for this queue; its ServiceNow records leave `queue` empty.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// Mapped queues and the channel become sys_ids; an unmapped queue is
    /// reported, not sent; a phone log carries no reference.
    #[test]
    fn queues_and_channel_map_to_sys_ids() {
        let mut c = ServiceNowConfig::with_instance("https://x.service-now.com");
        let q = "0123456789abcdef0123456789abcdef".to_string();
        let ch = "fedcba9876543210fedcba9876543210".to_string();
        c.awa_queues.insert("sales".into(), q.clone());
        c.service_channel = Some(ch.clone());
        let create = data(json!({"queue": "sales", "channel": "phone"}));
        let (f, unmapped) = references(RecordKind::InteractionCreate, &create, &c);
        assert_eq!(f, vec![("channel", ch.clone()), ("queue", q.clone())]);
        assert_eq!(unmapped, None);
        let work = data(json!({"queue": "support"}));
        let (f, unmapped) = references(RecordKind::WorkItemCreate, &work, &c);
        assert!(f.is_empty());
        assert_eq!(unmapped.as_deref(), Some("support"));
        let moved = data(json!({"event": "transfer", "to_queue": "sales"}));
        let (f, _) = references(RecordKind::InteractionUpdate, &moved, &c);
        assert_eq!(f, vec![("queue", q)]);
        let (f, _) = references(RecordKind::PhoneLogCreate, &create, &c);
        assert!(f.is_empty());
        assert!(is_sys_id(&ch));
        assert!(!is_sys_id("sales"));
        assert!(!is_sys_id("0123456789ABCDEF0123456789ABCDEF"));
        let e = check_sys_id("service_channel", "phone").unwrap_err();
        assert_eq!(e.key, "crm.servicenow.service_channel");
    }
}
