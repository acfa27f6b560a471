//! The old `sticky_customers` tree (written by the HTTP API before issue
//! 18) is moved into the actors' sticky book once at start: idempotent,
//! never overwriting a newer entry (`edgecc::system::sticky_import`).

use edgecc::state_port::read_snapshot;
use edgecc::system::sticky_import::{import, Imported};
use edgecc_actors::durable::StateRecord;
use edgecc_actors::sticky::{StickyEntry, StickySource};
use edgecc_actors::AgentId;
use edgecc_storage::{Storage, StorageConfig};

/// Goal: the old tree's numbers reach the book once, an entry set since
/// is not overwritten, bad entries are dropped, and a second run (or a
/// run after a start cut short before the removal) changes nothing.
/// Method: a data directory with both trees, imported twice; the
/// actors' snapshot read back as a restart reads it.
#[actix_rt::test]
async fn old_entries_are_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let legacy = storage.state("sticky_customers").unwrap();
    let actors = storage.state("actor_state").unwrap();
    legacy.put(b"+4930111", b"ann").await.unwrap();
    legacy.put(b"+4930222", b"bob").await.unwrap();
    legacy.put(b"+4930333", b"").await.unwrap();
    legacy.put(b"\xff\xfe", b"ann").await.unwrap();
    // +4930222 was set again in the new book (to carl) before the import.
    let newer = StateRecord::Sticky(StickyEntry {
        ani: "+4930222".into(),
        agent: AgentId::new("carl"),
        source: StickySource::Api,
        set_ms: 5,
    });
    actors
        .put(
            &newer.key().to_bytes(),
            &serde_json::to_vec(&newer).unwrap(),
        )
        .await
        .unwrap();

    let first = import(&legacy, &actors, 1_000).await.unwrap();
    assert_eq!(
        first,
        Imported {
            imported: 1,
            already: 1,
            invalid: 2
        }
    );
    assert_eq!(legacy.iter().count(), 0, "the old tree is emptied");
    let book = read_snapshot(&actors).snapshot.sticky;
    assert_eq!(book.len(), 2);
    assert_eq!(book["+4930111"].agent, AgentId::new("ann"));
    assert_eq!(book["+4930111"].source, StickySource::Agent);
    assert_eq!(book["+4930111"].set_ms, 1_000);
    assert_eq!(book["+4930222"].agent, AgentId::new("carl"), "newer kept");

    assert_eq!(
        import(&legacy, &actors, 2_000).await.unwrap(),
        Imported::default()
    );
    // A start cut short after the book's batch, before the removal.
    legacy.put(b"+4930111", b"ann").await.unwrap();
    let again = import(&legacy, &actors, 3_000).await.unwrap();
    assert_eq!((again.imported, again.already), (0, 1));
    assert_eq!(
        read_snapshot(&actors).snapshot.sticky["+4930111"].set_ms,
        1_000
    );
}
