//! Outbox records and their on-disk encoding.
//!
//! Every stored value is framed the same way (see the `outbox` module header
//! for the full layout): a schema-version byte, a CRC32 of the payload, then
//! the bincode 1.3.3 payload (fixed-int, little-endian). Decoding checks the
//! frame before the payload, so a torn or rotten value is reported as a
//! [`DecodeError`] and never as a panic or a garbage record.

use bincode::Options;
use serde::{Deserialize, Serialize};

/// Largest JSON body a record may carry, in bytes. CRM records are small
/// documents (typically 0.5-4 KiB); 64 KiB leaves ample headroom for long
/// notes while keeping a sled leaf node (about 16 records) near a megabyte.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// Longest correlation id or interaction key, in bytes. They are ids (call
/// ids, UUID-derived keys), not text; a bound keeps a bad caller from storing
/// megabytes in what should be a key.
pub const ID_BYTES_MAX: usize = 256;

/// Longest retry error or dead-letter reason kept, in bytes. Longer strings
/// are truncated (at a char boundary): a CRM error page is not worth storing
/// whole on every attempt.
pub const REASON_BYTES_MAX: usize = 4 * 1024;

/// Upper bound on an encoded value accepted by the decoder, in bytes. It is
/// larger than any value this version writes (body, ids, reason, framing) and
/// stops a corrupt length prefix from asking for a giant allocation.
pub const VALUE_BYTES_MAX: u64 = 2 * (BODY_BYTES_MAX as u64) + 64 * 1024;

/// Schema version of the record payload written by this version.
pub const RECORD_SCHEMA_V1: u8 = 1;

/// Schema version of the dead-letter payload written by this version.
pub const DEAD_LETTER_SCHEMA_V1: u8 = 1;

/// Schema version of a pending-index entry written by this version.
pub const PENDING_SCHEMA_V1: u8 = 1;

/// Frame header: version byte plus CRC32.
const FRAME_HEADER_BYTES: usize = 1 + 4;

/// What a record asks the CRM to do: the one definition, shared with the
/// actors, lives in the `edgecc-record-kind` crate beside this one. The
/// bincode encoding stores the variant index, so variants must only ever be
/// appended, never reordered (that crate's test pins each index).
pub use edgecc_record_kind::RecordKind;

/// A record as handed to [`crate::Outbox::append`]; storage gives it a
/// sequence and delivery bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecord {
    /// Stable per CRM record; becomes the idempotency key at the CRM, so a
    /// replay after a crash is harmless.
    pub correlation_id: String,
    /// The interaction (call id) the record belongs to: records of one key
    /// are delivered in append order.
    pub interaction_key: String,
    /// What the CRM is asked to do.
    pub kind: RecordKind,
    /// JSON bytes, opaque to storage (at most [`BODY_BYTES_MAX`]).
    pub body: Vec<u8>,
    /// When the fact happened, in ms since the epoch (injected time).
    pub created_at_ms: u64,
}

/// A stored record, as returned by `take_ready` and `list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position in the outbox (big-endian key): iteration is append order.
    pub seq: u64,
    /// Stable idempotency key at the CRM.
    pub correlation_id: String,
    /// The interaction this record belongs to (ordering key).
    pub interaction_key: String,
    /// What the CRM is asked to do.
    pub kind: RecordKind,
    /// JSON bytes, opaque to storage.
    pub body: Vec<u8>,
    /// When the fact happened (ms since the epoch); used for age and expiry.
    pub created_at_ms: u64,
    /// How many delivery attempts failed so far (drives the backoff).
    pub attempts: u32,
    /// Not delivered before this time (ms); 0 means at once.
    pub next_attempt_at_ms: u64,
    /// The last delivery error, shown by the CLI.
    pub last_error: Option<String>,
}

impl Record {
    /// A fresh record from what the caller appended.
    pub(crate) fn from_new(seq: u64, new: &NewRecord) -> Record {
        Record {
            seq,
            correlation_id: new.correlation_id.clone(),
            interaction_key: new.interaction_key.clone(),
            kind: new.kind,
            body: new.body.clone(),
            created_at_ms: new.created_at_ms,
            attempts: 0,
            next_attempt_at_ms: 0,
            last_error: None,
        }
    }
}

/// A dead-lettered record with the reason it was parked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The record's original sequence: a re-queue puts it back there.
    pub seq: u64,
    /// Why it was parked (CRM rejection, expiry, corruption).
    pub reason: String,
    /// The decoded record, or `None` when the stored bytes were undecodable.
    pub record: Option<Record>,
    /// The stored bytes as they were found, kept for forensics.
    pub raw: Vec<u8>,
}

/// Why stored bytes could not be turned back into a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The value is shorter than its frame header.
    #[error("value truncated: {len} bytes")]
    Truncated {
        /// Length found.
        len: usize,
    },
    /// Written by a schema version this build does not know (a newer build,
    /// or a corrupt first byte).
    #[error("unknown schema version {version}")]
    UnknownVersion {
        /// Version byte found.
        version: u8,
    },
    /// The payload does not match its CRC32: torn or rotten bytes.
    #[error("checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    Checksum {
        /// CRC stored in the frame.
        stored: u32,
        /// CRC of the payload as read.
        computed: u32,
    },
    /// The checksum matched but bincode could not decode the payload.
    #[error("payload does not decode: {message}")]
    Payload {
        /// bincode's message.
        message: String,
    },
    /// The payload names another sequence than its key.
    #[error("sequence mismatch: key {key}, payload {payload}")]
    SeqMismatch {
        /// Sequence from the sled key.
        key: u64,
        /// Sequence from the payload.
        payload: u64,
    },
}

/// The V1 record payload. Frozen: a later schema adds `RecordV2` and keeps
/// decoding this one.
#[derive(Serialize, Deserialize)]
struct RecordV1 {
    seq: u64,
    correlation_id: String,
    interaction_key: String,
    kind: RecordKind,
    body: Vec<u8>,
    created_at_ms: u64,
    attempts: u32,
    next_attempt_at_ms: u64,
    last_error: Option<String>,
}

/// The V1 dead-letter payload. Frozen like [`RecordV1`].
#[derive(Serialize, Deserialize)]
struct DeadLetterV1 {
    seq: u64,
    reason: String,
    raw: Vec<u8>,
}

/// The one bincode configuration used for writing and reading: fixed-size
/// integers, little-endian, bounded, no trailing bytes.
fn codec() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(VALUE_BYTES_MAX)
}

fn frame(version: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    out.push(version);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn unframe(bytes: &[u8], known: u8) -> Result<&[u8], DecodeError> {
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    if bytes[0] != known {
        return Err(DecodeError::UnknownVersion { version: bytes[0] });
    }
    let stored = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let payload = &bytes[FRAME_HEADER_BYTES..];
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(payload)
}

/// Encodes a record (current schema). Fails only if bincode fails, which
/// for these plain types means a value over [`VALUE_BYTES_MAX`].
pub(crate) fn encode_record(record: &Record) -> Result<Vec<u8>, bincode::Error> {
    let v1 = RecordV1 {
        seq: record.seq,
        correlation_id: record.correlation_id.clone(),
        interaction_key: record.interaction_key.clone(),
        kind: record.kind,
        body: record.body.clone(),
        created_at_ms: record.created_at_ms,
        attempts: record.attempts,
        next_attempt_at_ms: record.next_attempt_at_ms,
        last_error: record.last_error.clone(),
    };
    let payload = codec().serialize(&v1)?;
    Ok(frame(RECORD_SCHEMA_V1, &payload))
}

/// Decodes a stored record and checks it against its key's sequence.
pub fn decode_record(key_seq: u64, bytes: &[u8]) -> Result<Record, DecodeError> {
    let payload = unframe(bytes, RECORD_SCHEMA_V1)?;
    let v1: RecordV1 = codec()
        .deserialize(payload)
        .map_err(|e| DecodeError::Payload {
            message: e.to_string(),
        })?;
    if v1.seq != key_seq {
        return Err(DecodeError::SeqMismatch {
            key: key_seq,
            payload: v1.seq,
        });
    }
    Ok(Record {
        seq: v1.seq,
        correlation_id: v1.correlation_id,
        interaction_key: v1.interaction_key,
        kind: v1.kind,
        body: v1.body,
        created_at_ms: v1.created_at_ms,
        attempts: v1.attempts,
        next_attempt_at_ms: v1.next_attempt_at_ms,
        last_error: v1.last_error,
    })
}

/// Encodes a dead letter around the record's raw stored bytes.
pub(crate) fn encode_dead_letter(
    seq: u64,
    reason: &str,
    raw: &[u8],
) -> Result<Vec<u8>, bincode::Error> {
    let v1 = DeadLetterV1 {
        seq,
        reason: reason.to_owned(),
        raw: raw.to_vec(),
    };
    let payload = codec().serialize(&v1)?;
    Ok(frame(DEAD_LETTER_SCHEMA_V1, &payload))
}

/// Decodes a dead letter; its inner record is decoded when possible.
pub fn decode_dead_letter(key_seq: u64, bytes: &[u8]) -> Result<DeadLetter, DecodeError> {
    let payload = unframe(bytes, DEAD_LETTER_SCHEMA_V1)?;
    let v1: DeadLetterV1 = codec()
        .deserialize(payload)
        .map_err(|e| DecodeError::Payload {
            message: e.to_string(),
        })?;
    if v1.seq != key_seq {
        return Err(DecodeError::SeqMismatch {
            key: key_seq,
            payload: v1.seq,
        });
    }
    let record = decode_record(key_seq, &v1.raw).ok();
    Ok(DeadLetter {
        seq: v1.seq,
        reason: v1.reason,
        record,
        raw: v1.raw,
    })
}

/// What the delivery index needs of a pending record, kept in the
/// `pending` tree next to it so that open never reads the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PendingEntry {
    /// Hash of the record's interaction key (see `index::key_hash`).
    pub(crate) key: u64,
    /// The record's `next_attempt_at_ms`.
    pub(crate) not_before_ms: u64,
}

/// Sequences per `pending` chunk, as a shift: chunk = seq >> 5 (32 seqs).
/// Chunks make open read 32 times fewer sled entries.
pub(crate) const CHUNK_SHIFT: u32 = 5;

/// Bytes of one entry in a chunk: slot u8 | key_hash u64 LE | not_before u64 LE.
const CHUNK_ENTRY_BYTES: usize = 17;

/// The `pending` tree key of a sequence's chunk (big-endian chunk number).
pub(crate) fn chunk_of(seq: u64) -> u64 {
    seq >> CHUNK_SHIFT
}

/// The entries of one chunk, by slot (`seq & 31`).
pub(crate) type Chunk = std::collections::BTreeMap<u8, PendingEntry>;

/// The sequence of `slot` in `chunk`.
pub(crate) fn chunk_seq(chunk: u64, slot: u8) -> u64 {
    (chunk << CHUNK_SHIFT) | u64::from(slot)
}

/// The slot of a sequence in its chunk.
pub(crate) fn chunk_slot(seq: u64) -> u8 {
    (seq & ((1 << CHUNK_SHIFT) - 1)) as u8
}

/// Encodes a chunk: the usual frame around its entries in slot order.
pub(crate) fn encode_chunk(chunk: &Chunk) -> Vec<u8> {
    let mut payload = Vec::with_capacity(chunk.len() * CHUNK_ENTRY_BYTES);
    for (&slot, entry) in chunk {
        payload.push(slot);
        payload.extend_from_slice(&entry.key.to_le_bytes());
        payload.extend_from_slice(&entry.not_before_ms.to_le_bytes());
    }
    frame(PENDING_SCHEMA_V1, &payload)
}

/// Decodes a chunk, checking its frame, size and slot order.
pub(crate) fn decode_chunk(bytes: &[u8]) -> Result<Chunk, DecodeError> {
    let payload = unframe(bytes, PENDING_SCHEMA_V1)?;
    let bad = |message: String| DecodeError::Payload { message };
    if payload.len() % CHUNK_ENTRY_BYTES != 0 {
        return Err(bad(format!("pending chunk of {} bytes", payload.len())));
    }
    let mut chunk = Chunk::new();
    let u64_at = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    for e in payload.chunks_exact(CHUNK_ENTRY_BYTES) {
        let slot = e[0];
        if u32::from(slot) >= 1 << CHUNK_SHIFT
            || chunk.last_key_value().is_some_and(|(&l, _)| l >= slot)
        {
            return Err(bad(format!("pending chunk slot {slot} out of order")));
        }
        let entry = PendingEntry {
            key: u64_at(&e[1..9]),
            not_before_ms: u64_at(&e[9..17]),
        };
        chunk.insert(slot, entry);
    }
    Ok(chunk)
}

/// Truncates a reason to [`REASON_BYTES_MAX`] at a char boundary.
pub(crate) fn bounded_reason(reason: &str) -> String {
    if reason.len() <= REASON_BYTES_MAX {
        return reason.to_owned();
    }
    let mut end = REASON_BYTES_MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// The sled key of a sequence: big-endian, so byte order is append order.
pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence of a sled key, or `None` for a key of the wrong length.
pub(crate) fn key_seq(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Every intact record value found anywhere in `bytes` (a damaged sled
/// file, for salvage): at each offset that starts like a V1 record, the
/// payload is decoded and kept only if its CRC32 matches. Dead-letter
/// values are found too: the record inside is framed the same way.
pub(crate) fn scan_records(bytes: &[u8]) -> Vec<Record> {
    let lenient = bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(VALUE_BYTES_MAX)
        .allow_trailing_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at + FRAME_HEADER_BYTES < bytes.len() {
        if bytes[at] != RECORD_SCHEMA_V1 {
            at += 1;
            continue;
        }
        let stored =
            u32::from_le_bytes([bytes[at + 1], bytes[at + 2], bytes[at + 3], bytes[at + 4]]);
        let mut rest = &bytes[at + FRAME_HEADER_BYTES..];
        let before = rest.len();
        let decoded: Option<RecordV1> = lenient.deserialize_from(&mut rest).ok();
        let used = before - rest.len();
        let payload = &bytes[at + FRAME_HEADER_BYTES..at + FRAME_HEADER_BYTES + used];
        match decoded {
            Some(v1) if crc32fast::hash(payload) == stored => {
                out.push(Record {
                    seq: v1.seq,
                    correlation_id: v1.correlation_id,
                    interaction_key: v1.interaction_key,
                    kind: v1.kind,
                    body: v1.body,
                    created_at_ms: v1.created_at_ms,
                    attempts: v1.attempts,
                    next_attempt_at_ms: v1.next_attempt_at_ms,
                    last_error: v1.last_error,
                });
                at += FRAME_HEADER_BYTES + used;
            }
            _ => at += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> Record {
        Record {
            seq,
            correlation_id: "c-1".into(),
            interaction_key: "call-1".into(),
            kind: RecordKind::PhoneLogCreate,
            body: br#"{"a":1}"#.to_vec(),
            created_at_ms: 42,
            attempts: 3,
            next_attempt_at_ms: 99,
            last_error: Some("503".into()),
        }
    }

    /// A record survives an encode/decode round trip unchanged.
    #[test]
    fn round_trip() {
        let bytes = encode_record(&sample(7)).expect("encode");
        assert_eq!(decode_record(7, &bytes), Ok(sample(7)));
    }

    /// A pending chunk round-trips; a flipped byte is detected.
    #[test]
    fn pending_chunk_round_trip() {
        let mut chunk = Chunk::new();
        for (slot, nb) in [(0u8, 0u64), (7, 99), (31, 5)] {
            let entry = PendingEntry {
                key: 0xdead_beef_0123_4567 ^ u64::from(slot),
                not_before_ms: nb,
            };
            chunk.insert(slot, entry);
        }
        let bytes = encode_chunk(&chunk);
        assert_eq!(bytes.len(), 5 + 3 * 17);
        assert_eq!(decode_chunk(&bytes), Ok(chunk));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode_chunk(&bad).is_err(), "byte {i}");
        }
        assert_eq!(chunk_seq(chunk_of(1234), chunk_slot(1234)), 1234);
    }

    /// Any single flipped byte is reported as an error, never a wrong record.
    #[test]
    fn flipped_bytes_are_detected() {
        let bytes = encode_record(&sample(7)).expect("encode");
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode_record(7, &bad).is_err(), "byte {i}");
        }
        assert!(decode_record(8, &bytes).is_err());
    }

    /// Long reasons are cut at a char boundary.
    #[test]
    fn reasons_are_bounded() {
        let long = "é".repeat(REASON_BYTES_MAX);
        let cut = bounded_reason(&long);
        assert!(cut.len() <= REASON_BYTES_MAX);
        assert!(long.starts_with(&cut));
    }
}
