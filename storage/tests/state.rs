//! Persisted state trees: durable put/remove, direct reads.

use crate::util::open;

/// Goal: state survives a reopen and trees are separate. Method: put into
/// two trees, remove one key, reopen, read back with get and iter.
#[tokio::test]
async fn state_put_remove_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let storage = open(dir.path());
        let mappings = storage.state("mappings").expect("tree");
        let agents = storage.state("agents").expect("tree");
        mappings.put(b"corr-1", b"sys_id_1").await.expect("put");
        mappings.put(b"corr-2", b"sys_id_2").await.expect("put");
        mappings.remove(b"corr-1").await.expect("remove");
        agents.put(b"agent-7", b"ready").await.expect("put");
        assert!(storage.state("").is_err());
    }
    let storage = open(dir.path());
    let mappings = storage.state("mappings").expect("tree");
    assert_eq!(mappings.get(b"corr-1").expect("get"), None);
    assert_eq!(
        mappings.get(b"corr-2").expect("get"),
        Some(b"sys_id_2".to_vec())
    );
    let all: Vec<_> = mappings.iter().collect::<Result<_, _>>().expect("iter");
    assert_eq!(all, vec![(b"corr-2".to_vec(), b"sys_id_2".to_vec())]);
    let agents = storage.state("agents").expect("tree");
    assert_eq!(
        agents.get(b"agent-7").expect("get"),
        Some(b"ready".to_vec())
    );
}
