//! What the API and the WebSocket show: the agent desktop's snapshot, the
//! team and queue views of the wallboard, and an interaction's CRM sync
//! state. Built from the actors' views (the registry's [`CenterSnapshot`]
//! or one agent's [`AgentSnapshot`]): time in state, presence, per-party
//! mute and queue waits all come from there; the hub adds
//! only the caller number of a call that already ended.

use edgecc_actors::agent::{AgentState, NotReadyReason};
use edgecc_actors::call::supervision::SuperviseMode;
use edgecc_actors::events::{AgentView, CallView};
use edgecc_actors::recent::RecentCall;
use edgecc_actors::registry::{AgentSnapshot, CenterSnapshot, RecentCallOf, Snapshot};
use edgecc_actors::{AgentId, CallId};
use serde::Serialize;
use serde_json::{json, Value};

use super::error::ApiError;

use super::hub::state_name;
use super::AppState;

/// Reads the registry's snapshot.
pub async fn center(state: &AppState, with_queues: bool) -> Result<CenterSnapshot, ApiError> {
    state
        .registry
        .send(Snapshot { with_queues })
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))
}

/// `call` among `agent`'s recent calls (or its current one), with the
/// caller's number, as the registry keeps them.
pub async fn recent_call(
    state: &AppState,
    agent: &AgentId,
    call: &CallId,
) -> Result<Option<RecentCall>, ApiError> {
    state
        .registry
        .send(RecentCallOf {
            agent: agent.clone(),
            call: call.clone(),
        })
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))
}

/// An interaction's CRM sync state.
#[derive(Clone, Debug, Serialize)]
pub struct InteractionView {
    /// The local interaction id (= the call id); the key for transfers and
    /// updates whatever the CRM says.
    pub interaction_id: String,
    /// `delivered` (CRM confirmed), `pending` (in the outbox), `dead` (a
    /// record was refused: see the dead letters), or `local` (nothing sent
    /// yet, or no CRM configured).
    pub sync_state: &'static str,
    /// The CRM record's link once the CRM confirmed the interaction.
    pub crm_link: Option<String>,
}

/// The sync state of interaction `call` (storage reads only).
pub fn interaction(state: &AppState, call: &CallId) -> InteractionView {
    let key = call.0.as_str();
    let link = state
        .crm_links
        .as_ref()
        .and_then(|t| t.get(key.as_bytes()).ok().flatten())
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let held = state.storage.outbox().interaction(key);
    let (dead, pending) = (held.dead > 0, held.pending > 0);
    let sync_state = if dead {
        "dead"
    } else if pending {
        "pending"
    } else if link.is_some() {
        // An empty link: the CRM confirmed but gave no link.
        "delivered"
    } else {
        "local"
    };
    InteractionView {
        interaction_id: call.0.clone(),
        sync_state,
        crm_link: link.filter(|l| !l.is_empty()),
    }
}

/// The reason of a Not Ready state, as text.
fn reason_text(view: &AgentView) -> Option<String> {
    match &view.state {
        AgentState::NotReady { reason } => Some(match reason {
            NotReadyReason::Code(c) => c.clone(),
            NotReadyReason::System(s) => {
                format!("system:{}", serde_json::to_value(s).ok()?.as_str()?)
            }
        }),
        _ => None,
    }
}

/// One call as `agent`'s desktop shows it (mute is the agent's own).
pub fn call_json(state: &AppState, view: &CallView, agent: &AgentView, now_ms: u64) -> Value {
    let talking_since = match &agent.state {
        AgentState::Talking { call, since_ms, .. } if call == &view.call => Some(*since_ms),
        _ => None,
    };
    json!({
        "call_id": view.call,
        "ani": view.ani,
        "dnis": view.dnis,
        "attached": view.attached,
        "phase": view.phase,
        "queue": view.queue,
        "held": view.held,
        "muted": view.muted.contains(&agent.agent),
        "consult_from": consulted_by(view, &agent.agent),
        // How a supervisor the agent hears joins (whisper, barge): the
        // desktop says so, without naming the supervisor. A silent monitor
        // stays silent: it is not sent to the agent at all.
        "supervised": view.supervisors.iter()
            .filter(|s| s.agent == agent.agent && s.mode != SuperviseMode::Monitor)
            .map(|s| s.mode)
            .collect::<Vec<_>>(),
        "parties": view.parties,
        "offered_to": view.offers.iter().map(|(a, _)| a).collect::<Vec<_>>(),
        // Accepted on the desktop, the phone not answered yet: the desktop
        // says "waiting for your phone to answer".
        "waiting_for_phone": view.answer_pending.contains(&agent.agent),
        "connected_since_ms": talking_since,
        "duration_ms": talking_since.map(|s| now_ms.saturating_sub(s)),
        "terminal": view.terminal,
        "interaction": interaction(state, &view.call),
        // The consult or conference leg, from this agent's side: the
        // desktop's consult status and which consult buttons apply.
        "pending_leg": view.pending_leg.as_ref().map(|p| json!({
            "kind": p.kind, "from": p.from, "to": p.to, "answered": p.answered,
            "mine": p.from == agent.agent,
        })),
        // When this agent's offer stops ringing (the no-answer countdown).
        "offer_deadline_ms": view.offers.iter().zip(&view.offer_deadlines_ms)
            .find(|((a, _), _)| a == &agent.agent).map(|(_, d)| d),
    })
}

/// The consult `agent` is rung for or talks on (the consulted side), if
/// any: its wallboard row and desktop show who consults, not the caller.
fn consulted_by<'a>(view: &'a CallView, agent: &AgentId) -> Option<&'a AgentId> {
    view.pending_leg
        .as_ref()
        .filter(|p| p.kind == "consult" && &p.to == agent)
        .map(|p| &p.from)
}

/// One agent as the wallboard shows it.
pub fn agent_json(view: &AgentView, calls: &[CallView], now_ms: u64) -> Value {
    let since = view.state_since_ms;
    let call = view
        .state
        .call()
        .and_then(|c| calls.iter().find(|v| &v.call == c))
        .map(|c| {
            // The consulted agent talks to a colleague, not the caller.
            let consult_from = consulted_by(c, &view.agent);
            let ani = if consult_from.is_some() {
                None
            } else {
                Some(&c.ani)
            };
            json!({"call_id": c.call, "ani": ani, "phase": c.phase, "held": c.held,
                   "queue": c.queue, "supervisors": c.supervisors,
                   "consult_from": consult_from})
        });
    json!({
        "agent_id": view.agent,
        "state": state_name(view),
        "reason": reason_text(view),
        "pending": view.pending,
        "state_since_ms": since,
        "time_in_state_ms": now_ms.saturating_sub(since),
        "call": call,
        "stats": view.stats,
    })
}

/// The agent desktop's full state: agent, state and time in it, the current
/// call (or offer) with everything the screen shows, and the queues the
/// agent serves with their calls waiting ([`super::desk_queues::panel`]).
pub async fn desktop(state: &AppState, agent: &AgentId) -> Result<Value, ApiError> {
    let (view, call_view) = state
        .registry
        .send(AgentSnapshot(agent.clone()))
        .await
        .map_err(|e| ApiError::unavailable(format!("contact center: {e}")))?
        .ok_or_else(|| ApiError::not_found(format!("unknown agent {agent}")))?;
    let view = &view;
    let now_ms = crate::clock::now_ms();
    let recent = match view.state.call() {
        Some(c) if call_view.as_ref().is_none_or(|v| &v.call != c) => {
            recent_call(state, agent, c).await?
        }
        _ => None,
    };
    let call = view.state.call().map(|c| {
        match call_view.as_ref().filter(|v| &v.call == c) {
            Some(v) => call_json(state, v, view, now_ms),
            // Ended (wrap-up): what the registry remembers of it.
            None => {
                let ani = recent.map(|r| r.ani);
                json!({
                    "call_id": c,
                    "ani": ani,
                    "attached": [],
                    "phase": "ended",
                    "held": false,
                    "muted": false,
                    "duration_ms": null,
                    "interaction": interaction(state, c),
                })
            }
        }
    });
    let offer = matches!(view.state, AgentState::Reserved { .. });
    let since = view.state_since_ms;
    let queues = super::desk_queues::panel(state, agent, now_ms).await?;
    Ok(json!({
        "type": "snapshot",
        "now_ms": now_ms,
        "agent": {
            "agent_id": view.agent,
            "state": state_name(view),
            "detail": view.state,
            "reason": reason_text(view),
            "pending": view.pending,
            "state_since_ms": since,
            "time_in_state_ms": now_ms.saturating_sub(since),
            "stats": view.stats,
            // Logged out: since when, if this box saw the logout (else the
            // desktop shows no time, not the time since edgecc started).
            "logged_out_ms": view.logged_out_ms,
        },
        "offer": offer,
        "call": call,
        "reason_codes": state.reason_codes(),
        "desktop_grace_ms": state.http.desktop_grace_ms,
        // The queues the agent serves: calls waiting, the oldest's start.
        "queues": queues,
    }))
}

/// The team: every agent with state, time in state and current call.
pub fn team(snap: &CenterSnapshot, now_ms: u64) -> Vec<Value> {
    snap.agents
        .iter()
        .map(|a| agent_json(a, &snap.calls, now_ms))
        .collect()
}

/// The queues: waiting calls, longest wait, Ready agents (all from the
/// queue views of `snap`); each waiting caller's number only with
/// `show_numbers`. Service level and the other period figures are the
/// reports' (`GET /api/v1/reports/wallboard`).
pub fn queues(snap: &CenterSnapshot, show_numbers: bool) -> Vec<Value> {
    snap.queues
        .iter()
        .map(|q| {
            let waits = &q.wait_ms;
            let waiting: Vec<Value> = q
                .waiting
                .iter()
                .zip(waits)
                .map(|(c, w)| {
                    if !show_numbers {
                        return json!({"call_id": c, "wait_ms": w});
                    }
                    let ani = snap
                        .calls
                        .iter()
                        .find(|v| &v.call == c)
                        .map(|v| v.ani.clone());
                    json!({"call_id": c, "ani": ani, "wait_ms": w})
                })
                .collect();
            json!({
                "queue_id": q.queue,
                "waiting": q.waiting.len(),
                "waiting_calls": waiting,
                "longest_wait_ms": waits.iter().copied().max().unwrap_or(0),
                "ready_agents": q.ready,
            })
        })
        .collect()
}

/// The wallboard's full state.
pub async fn wallboard(state: &AppState) -> Result<Value, ApiError> {
    let snap = center(state, true).await?;
    let now_ms = crate::clock::now_ms();
    Ok(json!({
        "type": "wallboard",
        "now_ms": now_ms,
        "agents": super::wallboard::with_names(state, team(&snap, now_ms)),
        "queues": queues(&snap, true),
        "calls": snap.calls.len(),
        "ended": snap.ended,
    }))
}

/// Whom a call can go to, for an agent's transfer and consult picker: every
/// agent with its state and whether it can take a transfer now (`free`:
/// Ready; `busy`: on or offered a call, or in wrap-up; `not_ready`;
/// `logged_out`), and every queue with its waiting calls and Ready agents
/// (no caller numbers).
pub fn directory(snap: &CenterSnapshot) -> Value {
    let agents: Vec<Value> = snap
        .agents
        .iter()
        .map(|a| {
            let state = state_name(a);
            let availability = match state {
                "ready" => "free",
                "reserved" | "talking" | "wrap_up" => "busy",
                other => other,
            };
            json!({"agent_id": a.agent, "state": state, "availability": availability})
        })
        .collect();
    let queues: Vec<Value> = snap
        .queues
        .iter()
        .map(|q| {
            json!({"queue_id": q.queue, "waiting": q.waiting.len(), "ready_agents": q.ready.len()})
        })
        .collect();
    json!({"agents": agents, "queues": queues})
}
