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

/// Goal: a batch written with `StateTree::apply` is atomic across a power
/// cut: after a cut that tears its log frame, none of its writes is there;
/// with the frame whole, all of them are (a removal included). Method:
/// close once (sled's files as a cut may leave them), then one batch of
/// three large puts and a removal; copy the log as a cut before the next
/// close leaves it, once
/// whole and once with the frame torn in the middle of the second value
/// (zeros from there on, as unwritten sectors read); reopen each copy.
#[tokio::test]
async fn a_state_batch_is_all_or_nothing_across_a_torn_frame() {
    use crate::util::cut_copy;
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    {
        let storage = open(&live);
        let tree = storage.state("batch").expect("tree");
        tree.put(b"old", b"before").await.expect("put");
    }
    let at_close = dir.path().join("at-close");
    crate::util::copy_dir(&live, &at_close);
    let storage = open(&live);
    let tree = storage.state("batch").expect("tree");
    let value = |b: u8| vec![b; 3_000];
    tree.apply(vec![
        (b"k1".to_vec(), Some(value(b'A'))),
        (b"k2".to_vec(), Some(value(b'B'))),
        (b"old".to_vec(), None),
        (b"k3".to_vec(), Some(value(b'C'))),
    ])
    .await
    .expect("apply");
    drop((tree, storage));
    // The cut comes before that close: no clean marker (cut_copy leaves it
    // out) and no live map saved at the close.
    let cut = |to: &std::path::Path| {
        cut_copy(&at_close, &live, to);
        let _ = std::fs::remove_file(to.join(edgecc_storage::LOG_DIR).join("live.map"));
    };
    let whole = dir.path().join("whole");
    cut(&whole);
    let torn = dir.path().join("torn");
    cut(&torn);
    // Tear the batch's frame inside k2's value, in the newest segment that
    // holds it.
    let log = torn.join(edgecc_storage::LOG_DIR);
    let mut segs: Vec<_> = std::fs::read_dir(&log)
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let find = |bytes: &[u8]| {
        bytes
            .windows(3_000)
            .position(|w| w == value(b'B').as_slice())
    };
    let (seg, mut bytes, at) = segs
        .iter()
        .rev()
        .find_map(|seg| {
            let bytes = std::fs::read(seg).expect("read segment");
            find(&bytes).map(|at| (seg.clone(), bytes, at))
        })
        .unwrap_or_else(|| panic!("k2's value is in a segment of {segs:?}"));
    for b in &mut bytes[at + 1_500..] {
        *b = 0;
    }
    std::fs::write(&seg, &bytes).expect("tear");

    let read = |dir: &std::path::Path| {
        let storage = open(dir);
        let tree = storage.state("batch").expect("tree");
        ["k1", "k2", "k3", "old"].map(|k| tree.get(k.as_bytes()).expect("get").is_some())
    };
    assert_eq!(read(&whole), [true, true, true, false], "the whole batch");
    assert_eq!(
        read(&torn),
        [false, false, false, true],
        "none of the torn batch"
    );
}
