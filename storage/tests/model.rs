//! Model-based property test: the outbox against an in-memory model of
//! what must be delivered, and in which order.

use std::collections::BTreeMap;

use edgecc_storage::{Outbox, Storage, StorageConfig};
use proptest::prelude::*;

use crate::util::{config, copy_dir, cut_copy, update};

/// Keys used by the generated operations (few, so keys collide often).
const KEYS: u8 = 4;

#[derive(Clone, Debug)]
enum Op {
    Append {
        key: u8,
        n: u8,
    },
    Take {
        max: u8,
    },
    Ack {
        pick: usize,
    },
    Retry {
        pick: usize,
        delay_s: u8,
    },
    DeadLetter {
        pick: usize,
    },
    Requeue {
        pick: usize,
    },
    RequeueAll,
    Advance {
        ms: u16,
    },
    Reopen,
    /// Reopen from sled's files as of the last clean close plus the live
    /// log, without the clean marker: what a power cut can leave.
    PowerCut,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS, 1u8..=2).prop_map(|(key, n)| Op::Append { key, n }),
        4 => (1u8..=4).prop_map(|max| Op::Take { max }),
        3 => any::<usize>().prop_map(|pick| Op::Ack { pick }),
        1 => (any::<usize>(), 0u8..3).prop_map(|(pick, delay_s)| Op::Retry { pick, delay_s }),
        1 => any::<usize>().prop_map(|pick| Op::DeadLetter { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Requeue { pick }),
        1 => Just(Op::RequeueAll),
        1 => (0u16..3000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Reopen),
        1 => Just(Op::PowerCut),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Status {
    Pending { not_before: u64 },
    InFlight { not_before: u64 },
    Dead,
}

/// What must hold: every record not acked, its key and status.
#[derive(Default)]
struct Model {
    records: BTreeMap<u64, (u8, Status)>,
    now: u64,
    /// Acked sequences per key, in ack order.
    acked: BTreeMap<u8, Vec<u64>>,
}

impl Model {
    /// Sequences that may be handed out now.
    fn eligible(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for key in 0..KEYS {
            let of_key: Vec<_> = self
                .records
                .iter()
                .filter(|(_, (k, _))| *k == key)
                .collect();
            if of_key
                .iter()
                .any(|(_, (_, s))| matches!(s, Status::InFlight { .. }))
            {
                continue;
            }
            let lowest_dead = of_key
                .iter()
                .find(|(_, (_, s))| *s == Status::Dead)
                .map(|(&seq, _)| seq);
            let head = of_key
                .iter()
                .find(|(_, (_, s))| matches!(s, Status::Pending { .. }));
            if let Some((&seq, (_, Status::Pending { not_before }))) = head {
                if lowest_dead.is_some_and(|d| d < seq) || *not_before > self.now {
                    continue;
                }
                out.push(seq);
            }
        }
        out
    }

    fn with_status(&self, pred: impl Fn(&Status) -> bool) -> Vec<u64> {
        self.records
            .iter()
            .filter(|(_, (_, s))| pred(s))
            .map(|(&seq, _)| seq)
            .collect()
    }

    fn ack(&mut self, seq: u64) {
        let (key, _) = self.records.remove(&seq).expect("model record");
        let list = self.acked.entry(key).or_default();
        assert!(
            list.last().is_none_or(|&last| last < seq),
            "key {key} out of order: {list:?} then {seq}"
        );
        list.push(seq);
    }
}

fn run(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StorageConfig {
        wal_bytes: edgecc_storage::WAL_BYTES_MIN,
        ..config()
    };
    let mut generation = 0u32;
    let mut live = dir.path().join("gen-0");
    // sled's files as of the last clean close.
    let at_checkpoint = dir.path().join("checkpoint");
    drop(Storage::open(&live, config.clone()).expect("open"));
    copy_dir(&live, &at_checkpoint);
    let mut storage = Some(Storage::open(&live, config.clone()).expect("open"));
    let outbox = |s: &Option<Storage>| -> Outbox { s.as_ref().expect("open").outbox() };
    let mut model = Model::default();
    let mut serial = 0u32;
    for op in ops {
        let ob = outbox(&storage);
        match op {
            Op::Append { key, n } => {
                let records: Vec<_> = (0..n)
                    .map(|_| {
                        serial += 1;
                        update(&format!("k{key}"), serial)
                    })
                    .collect();
                let seqs = rt.block_on(ob.append_batch(records)).expect("append");
                for seq in seqs {
                    model
                        .records
                        .insert(seq, (key, Status::Pending { not_before: 0 }));
                }
            }
            Op::Take { max } => {
                let eligible = model.eligible();
                let taken = ob.take_ready(usize::from(max), model.now);
                assert_eq!(
                    taken.len(),
                    eligible.len().min(usize::from(max)),
                    "eligible {eligible:?}"
                );
                for r in taken {
                    assert!(
                        eligible.contains(&r.seq),
                        "{} not eligible: {eligible:?}",
                        r.seq
                    );
                    let entry = model.records.get_mut(&r.seq).expect("model record");
                    assert_eq!(format!("k{}", entry.0), r.interaction_key);
                    if let Status::Pending { not_before } = entry.1 {
                        entry.1 = Status::InFlight { not_before };
                    }
                }
            }
            Op::Ack { pick } | Op::Retry { pick, .. } | Op::DeadLetter { pick } => {
                let in_flight = model.with_status(|s| matches!(s, Status::InFlight { .. }));
                if in_flight.is_empty() {
                    continue;
                }
                let seq = in_flight[pick % in_flight.len()];
                match op {
                    Op::Ack { .. } => {
                        rt.block_on(ob.ack(seq)).expect("ack");
                        model.ack(seq);
                    }
                    Op::Retry { delay_s, .. } => {
                        let not_before = model.now + u64::from(delay_s) * 1000;
                        rt.block_on(ob.retry(seq, "503", not_before))
                            .expect("retry");
                        model.records.get_mut(&seq).expect("model").1 =
                            Status::Pending { not_before };
                    }
                    _ => {
                        rt.block_on(ob.dead_letter(seq, "400"))
                            .expect("dead letter");
                        model.records.get_mut(&seq).expect("model").1 = Status::Dead;
                    }
                }
            }
            Op::Requeue { pick } => {
                let dead = model.with_status(|s| *s == Status::Dead);
                if dead.is_empty() {
                    continue;
                }
                let seq = dead[pick % dead.len()];
                rt.block_on(ob.requeue(seq)).expect("requeue");
                model.records.get_mut(&seq).expect("model").1 = Status::Pending { not_before: 0 };
            }
            Op::RequeueAll => {
                let dead = model.with_status(|s| *s == Status::Dead);
                assert_eq!(
                    rt.block_on(ob.requeue_all()).expect("requeue all"),
                    dead.len()
                );
                for seq in dead {
                    model.records.get_mut(&seq).expect("model").1 =
                        Status::Pending { not_before: 0 };
                }
            }
            Op::Advance { ms } => model.now += u64::from(ms),
            Op::Reopen | Op::PowerCut => {
                drop(ob);
                // Closing writes no frame: the log is as the cut found it.
                drop(storage.take());
                if matches!(op, Op::PowerCut) {
                    generation += 1;
                    let before = live;
                    live = dir.path().join(format!("gen-{generation}"));
                    cut_copy(&at_checkpoint, &before, &live);
                    drop(Storage::open(&live, config.clone()).expect("open after the cut"));
                }
                let _ = std::fs::remove_dir_all(&at_checkpoint);
                copy_dir(&live, &at_checkpoint);
                storage = Some(Storage::open(&live, config.clone()).expect("reopen"));
                for (_, status) in model.records.values_mut() {
                    if let Status::InFlight { not_before } = *status {
                        *status = Status::Pending { not_before };
                    }
                }
            }
        }
        let stats = outbox(&storage).stats(model.now).expect("stats");
        let dead = model.with_status(|s| *s == Status::Dead).len() as u64;
        assert_eq!(stats.depth, model.records.len() as u64 - dead);
        assert_eq!(stats.dead_letters, dead);
    }
    // Finally everything still owed must come out, each key in order.
    let ob = outbox(&storage);
    rt.block_on(async {
        ob.requeue_all().await.expect("requeue all");
        for seq in model.with_status(|s| matches!(s, Status::InFlight { .. })) {
            ob.retry(seq, "", 0).await.expect("retry");
        }
    });
    model.now = u64::MAX / 2;
    for (_, status) in model.records.values_mut() {
        *status = Status::Pending { not_before: 0 };
    }
    rt.block_on(async {
        loop {
            let batch = ob.take_ready(16, model.now);
            if batch.is_empty() {
                break;
            }
            for r in batch {
                ob.ack(r.seq).await.expect("ack");
                model.ack(r.seq);
            }
        }
    });
    assert!(
        model.records.is_empty(),
        "never delivered: {:?}",
        model.records
    );
}

proptest! {
    /// Goal: whatever the sequence of appends, takes, acks, retries, dead
    /// letters, re-queues, reopens and power cuts (sled's files as of the
    /// last clean close with the live log), the outbox hands out exactly
    /// the records the model says are eligible, keeps each key in order and
    /// finally delivers everything not acked. Method: run random operation
    /// sequences against the outbox and a simple in-memory model side by side.
    #[test]
    fn outbox_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
