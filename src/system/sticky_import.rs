//! The one-time import of the `sticky_customers` state tree (caller number
//! → agent id, written by `POST /api/v1/calls/{id}/sticky` before issue 18
//! moved sticky customers into the actors' book) into the actors' state,
//! as the book's records (`s/{ani}`, source `agent`), before the actors
//! are restored from it.
//!
//! Idempotent and safe at a power cut: the book's records go in one atomic
//! batch, then the old entries are removed in another. A number the book
//! already holds keeps its entry (set since, or imported by a start cut
//! short before the removal), so running it again imports nothing twice
//! and overwrites nothing newer. Entries that are not a caller number and
//! an agent id (not UTF-8, empty, too long) are logged and removed.

use edgecc_actors::durable::StateRecord;
use edgecc_actors::sticky::{StickyEntry, StickySource, STICKY_ANI_LEN_MAX};
use edgecc_actors::AgentId;
use edgecc_storage::{StateTree, StorageError};
use tracing::{info, warn};

/// Longest agent id taken from the old tree (longer is not an id).
const AGENT_ID_LEN_MAX: usize = 256;

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Entries written into the actors' state.
    pub imported: usize,
    /// Numbers the book already held (kept as they were).
    pub already: usize,
    /// Entries that were not a number and an agent id (dropped).
    pub invalid: usize,
}

/// Moves every entry of `legacy` into `actors` (see the module doc), at
/// wall-clock `now_ms` as the entries' set time.
pub async fn import(
    legacy: &StateTree,
    actors: &StateTree,
    now_ms: u64,
) -> Result<Imported, StorageError> {
    let mut done = Imported::default();
    let mut puts = Vec::new();
    let mut removes = Vec::new();
    for entry in legacy.iter() {
        let (key, value) = entry?;
        removes.push((key.clone(), None));
        let parsed = String::from_utf8(key)
            .ok()
            .zip(String::from_utf8(value).ok())
            .filter(|(ani, agent)| {
                !ani.is_empty()
                    && ani.len() <= STICKY_ANI_LEN_MAX
                    && !agent.is_empty()
                    && agent.len() <= AGENT_ID_LEN_MAX
            });
        let Some((ani, agent)) = parsed else {
            warn!(
                tree = "sticky_customers",
                "Old sticky entry is not a caller number and an agent id; dropped."
            );
            done.invalid += 1;
            continue;
        };
        let record = StateRecord::Sticky(StickyEntry {
            ani,
            agent: AgentId::new(agent),
            source: StickySource::Agent,
            set_ms: now_ms,
        });
        let key = record.key().to_bytes();
        if actors.get(&key)?.is_some() {
            done.already += 1;
            continue;
        }
        match serde_json::to_vec(&record) {
            Ok(value) => {
                puts.push((key, Some(value)));
                done.imported += 1;
            }
            Err(e) => {
                warn!(error = %e, "Old sticky entry cannot be encoded; dropped.");
                done.invalid += 1;
            }
        }
    }
    if removes.is_empty() {
        return Ok(done);
    }
    if !puts.is_empty() {
        actors.apply(puts).await?;
    }
    legacy.apply(removes).await?;
    info!(
        imported = done.imported,
        already = done.already,
        invalid = done.invalid,
        "Sticky customers of the old sticky_customers tree moved into the actors' book."
    );
    Ok(done)
}
