//! edgecc-record-kind: the one definition of the kinds of CRM record.
//!
//! The actors (`edgecc-actors`) decide which kind each record is; the
//! outbox (`edgecc-storage`) stores the kind with the record; the daemon's
//! CRM adapters route by it. All three use this type, so there is no
//! second list of kinds and no conversion between crates. It lives beside
//! storage because storage owns its on-disk encoding: bincode 1.3.3 writes
//! a kind as its variant index (a `u32`), so variants are only ever
//! appended, never reordered or removed (the test below pins each index,
//! and `storage/tests/fixture.rs` reads an outbox written earlier).
//!
//! It depends on serde only, so the domain crate stays free of storage.

use serde::{Deserialize, Serialize};

/// What a CRM record asks the CRM to do, with its stable wire name (in
/// JSON, logs, the CLI and correlation ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordKind {
    /// Create the interaction (the CRM's case for this call): on accept,
    /// queue timeout, abandon, missed direct call, outbound answer.
    #[serde(rename = "interaction.create")]
    InteractionCreate,
    /// Something happened on the interaction (hold, transfer, end, ...).
    #[serde(rename = "interaction.update")]
    InteractionUpdate,
    /// The phone log of an accepted call.
    #[serde(rename = "phone_log.create")]
    PhoneLogCreate,
    /// A callback task (queue timeout, abandon, missed direct call).
    #[serde(rename = "work_item.create")]
    WorkItemCreate,
}

impl RecordKind {
    /// Every kind, in declaration (and on-disk index) order.
    pub const ALL: [RecordKind; 4] = [
        Self::InteractionCreate,
        Self::InteractionUpdate,
        Self::PhoneLogCreate,
        Self::WorkItemCreate,
    ];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InteractionCreate => "interaction.create",
            Self::InteractionUpdate => "interaction.update",
            Self::PhoneLogCreate => "phone_log.create",
            Self::WorkItemCreate => "work_item.create",
        }
    }

    /// The kind named `name` (a wire name from [`Self::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::RecordKind;
    use bincode::Options;

    /// Every kind reads back from its wire name, and its serde name is the
    /// same wire name; an unknown name is no kind.
    #[test]
    fn wire_names_round_trip() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).expect("kind serializes"),
                serde_json::Value::String(kind.as_str().to_owned())
            );
        }
        assert_eq!(RecordKind::parse("interaction.delete"), None);
    }

    /// The on-disk index of each kind, as storage's bincode options (fixed
    /// int, little endian) write it: these bytes are in existing data
    /// directories and must never change.
    #[test]
    fn bincode_indices_are_pinned() {
        let opts = bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .with_little_endian();
        let expected: [(RecordKind, [u8; 4]); 4] = [
            (RecordKind::InteractionCreate, [0, 0, 0, 0]),
            (RecordKind::InteractionUpdate, [1, 0, 0, 0]),
            (RecordKind::PhoneLogCreate, [2, 0, 0, 0]),
            (RecordKind::WorkItemCreate, [3, 0, 0, 0]),
        ];
        for (kind, bytes) in expected {
            assert_eq!(opts.serialize(&kind).expect("encodes"), bytes, "{kind:?}");
            let back: RecordKind = opts.deserialize(&bytes).expect("decodes");
            assert_eq!(back, kind);
        }
    }
}
