//! The edgecc agent and the caller as ServiceNow users.
//!
//! An interaction's `assigned_to` (and a phone log's `agent`) is a
//! `sys_user` sys_id, found by looking the agent id up in the
//! `agent_user_field` column of `sys_user` (the Table API lookup of
//! [`super::table`], which accepts a row only if it carries the value, so a
//! field the table lacks finds no one rather than a stranger).
//!
//! The interaction's `opened_for` (and the phone log's `contact`) is the
//! caller: the `sys_user` whose `phone`, `mobile_phone` or `home_phone`
//! (`caller_user_fields`) is the caller's number, as ServiceNow's own
//! sample OpenFrame handler finds it
//! (`api-reference/server-api-reference/CTIOperationResponseAPI.md`:
//! `addQuery('phone', phone)` with `addOrCondition` on the other two). One
//! encoded query with `^OR` terms; exactly one row that carries the
//! number in one of those fields gives the sys_id, none or several leave
//! the field empty with a log line. The number is matched exactly as the
//! PBX gave it. `customer_contact` extends `sys_user`, so B2B contacts are
//! found too.
//!
//! Answers are kept in a bounded in-memory cache ([`USER_CACHE_MAX`]
//! agents, each for [`USER_CACHE_TTL_MS`]); a user added to ServiceNow later
//! is found once the entry lapses. An agent ServiceNow does not know, or a
//! lookup that failed, leaves `assigned_to` empty with a log line: the
//! record is delivered all the same, never held for a user.

use std::cell::RefCell;
use std::collections::HashMap;

use tracing::{info, warn};

use serde_json::Value;

use super::table::encode_value;
use super::ServiceNowAdapter;

/// The ServiceNow user table.
pub const USER_TABLE: &str = "sys_user";
/// Most agents whose answer is cached; when full, the cache starts over.
pub const USER_CACHE_MAX: usize = 4_096;
/// How long a cached answer (found or not) is used, in ms.
pub const USER_CACHE_TTL_MS: u64 = 10 * 60 * 1000;

/// One cached answer.
#[derive(Clone)]
struct Cached {
    /// The user's sys_id; `None`: ServiceNow has no such user.
    sys_id: Option<String>,
    /// Wall-clock ms after which the user is looked up again.
    until_ms: u64,
}

/// Agent id (or caller number) → cached answer. `RefCell`: the adapter
/// lives on one arbiter.
#[derive(Default)]
pub(super) struct UserCache {
    /// The entries, at most [`USER_CACHE_MAX`].
    entries: RefCell<HashMap<String, Cached>>,
}

impl UserCache {
    /// The cached answer for `agent`, if still fresh.
    fn get(&self, agent: &str, now_ms: u64) -> Option<Option<String>> {
        self.entries
            .borrow()
            .get(agent)
            .filter(|c| now_ms < c.until_ms)
            .map(|c| c.sys_id.clone())
    }

    /// Keeps an answer; a full cache is emptied first (a bound, not an LRU:
    /// thousands of distinct agents within ten minutes is not a contact
    /// centre edgecc serves).
    fn put(&self, agent: &str, sys_id: Option<String>, now_ms: u64) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= USER_CACHE_MAX && !entries.contains_key(agent) {
            entries.clear();
        }
        entries.insert(
            agent.to_string(),
            Cached {
                sys_id,
                until_ms: now_ms.saturating_add(USER_CACHE_TTL_MS),
            },
        );
    }

    /// Entries held (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.borrow().len()
    }
}

impl ServiceNowAdapter {
    /// The `sys_user` sys_id of edgecc agent `agent`, or `None` (unknown
    /// agent, or the lookup failed: logged, never an error).
    pub(super) async fn agent_user(&self, agent: &str) -> Option<String> {
        if agent.is_empty() {
            return None;
        }
        let now = crate::clock::now_ms();
        if let Some(answer) = self.users.get(agent, now) {
            return answer;
        }
        let field = &self.config.agent_user_field;
        match self.lookup(USER_TABLE, field, agent).await {
            Ok(found) => {
                if found.is_none() {
                    info!(agent, field = %field,
                        "No ServiceNow user has this agent id; assigned_to left empty.");
                }
                self.users.put(agent, found.clone(), now);
                found
            }
            Err(outcome) => {
                warn!(
                    agent,
                    ?outcome,
                    "ServiceNow user lookup failed; assigned_to left empty for this record."
                );
                None
            }
        }
    }
}

impl ServiceNowAdapter {
    /// The `sys_user` sys_id of the caller whose number is `number`, or
    /// `None` (no user or several carry it, `caller_user_fields` is empty,
    /// or the lookup failed: logged, never an error).
    pub(super) async fn caller_user(&self, number: &str) -> Option<String> {
        let fields: Vec<&str> = self
            .config
            .caller_user_fields
            .iter()
            .map(String::as_str)
            .collect();
        if number.is_empty() || fields.is_empty() {
            return None;
        }
        let now = crate::clock::now_ms();
        if let Some(answer) = self.callers.get(number, now) {
            return answer;
        }
        let value = encode_value(number);
        let query = fields
            .iter()
            .map(|f| format!("{f}={value}"))
            .collect::<Vec<_>>()
            .join("^OR");
        // Two rows are enough to tell "one" from "several".
        match self.query_rows(USER_TABLE, &query, &fields, 2).await {
            Ok(rows) => {
                let carrying: Vec<&str> = rows
                    .iter()
                    .filter(|r| {
                        fields
                            .iter()
                            .any(|f| r.get(*f).and_then(Value::as_str) == Some(number))
                    })
                    .filter_map(|r| r.get("sys_id").and_then(Value::as_str))
                    .collect();
                let found = match carrying.as_slice() {
                    [one] => Some(one.to_string()),
                    [] => {
                        info!(number, fields = %fields.join(","),
                            "No ServiceNow user has the caller's number; opened_for left empty.");
                        None
                    }
                    _ => {
                        info!(number, fields = %fields.join(","),
                            "Several ServiceNow users have the caller's number; opened_for left empty.");
                        None
                    }
                };
                self.callers.put(number, found.clone(), now);
                found
            }
            Err(outcome) => {
                warn!(
                    number,
                    ?outcome,
                    "ServiceNow caller lookup failed; opened_for left empty for this record."
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers lapse after the TTL; a full cache starts over rather than
    /// growing.
    #[test]
    fn cache_is_bounded_and_lapses() {
        let cache = UserCache::default();
        cache.put("a", Some("u1".into()), 0);
        cache.put("b", None, 0);
        assert_eq!(cache.get("a", 1), Some(Some("u1".to_string())));
        assert_eq!(cache.get("b", 1), Some(None));
        assert_eq!(cache.get("a", USER_CACHE_TTL_MS), None);
        for i in 0..USER_CACHE_MAX + 10 {
            cache.put(&format!("agent{i}"), None, 0);
        }
        assert!(cache.len() <= USER_CACHE_MAX);
    }
}
