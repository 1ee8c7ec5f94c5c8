//! Segment files: the record frame, and reading a folder of segments back after a crash.
//!
//! A segment is named by the sequence of its first record (`00000000000000000042.wal`), so
//! the folder listing alone orders them. Reading stops at the first record that is cut off
//! or fails its checksum; in the last segment that is a torn write and the rest of the file
//! is cut off, anywhere else it is corruption.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Recovered, WalError};

/// Bytes before a record's body: length, checksum, sequence.
pub(crate) const HEADER: usize = 16;
/// Largest body accepted back at read time (a larger length is damage, not a record).
const MAX_BODY: u32 = 512 * 1024 * 1024;

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// What was appended.
    pub body: Vec<u8>,
}

/// A segment on disk.
#[derive(Debug, Clone)]
pub(crate) struct SegmentFile {
    pub first_seq: u64,
    pub path: PathBuf,
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

fn checksum(seq: u64, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(body);
    hasher.finalize()
}

/// Appends one record's frame to `out`.
pub(crate) fn encode(seq: u64, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(seq, body).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(body);
}

/// The segments in `dir`, oldest first (files not named like a segment are left alone).
pub(crate) fn list(dir: &Path) -> Result<Vec<SegmentFile>, WalError> {
    let io = |source| WalError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let first_seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first_seq) = first_seq {
            segments.push(SegmentFile { first_seq, path });
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// Where reading a segment stopped early, and why.
struct Damage {
    offset: u64,
    reason: String,
}

/// Reads one segment's records into `records`; the damage that ended it early, if any.
fn read_segment(path: &Path, records: &mut Vec<Record>) -> Result<Option<Damage>, WalError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| WalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let mut at = 0usize;
    while at < bytes.len() {
        let damage = |reason: &str| {
            Ok(Some(Damage {
                offset: at as u64,
                reason: reason.to_string(),
            }))
        };
        if bytes.len() - at < HEADER {
            return damage("record header cut off");
        }
        let word = |i: usize| u32::from_le_bytes(bytes[at + i..at + i + 4].try_into().expect("4"));
        let (len, crc) = (word(0), word(4));
        let seq = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8"));
        if len > MAX_BODY {
            return damage("record length out of range");
        }
        let end = at + HEADER + len as usize;
        if end > bytes.len() {
            return damage("record body cut off");
        }
        let body = &bytes[at + HEADER..end];
        if checksum(seq, body) != crc {
            return damage("checksum mismatch");
        }
        if let Some(previous) = records.last() {
            if seq != previous.seq + 1 {
                return damage(&format!(
                    "sequence {seq} after {} (records missing)",
                    previous.seq
                ));
            }
        }
        records.push(Record {
            seq,
            body: body.to_vec(),
        });
        at = end;
    }
    Ok(None)
}

/// Reads every segment; cuts a torn tail off the last one.
pub(crate) fn recover(dir: &Path) -> Result<(Vec<SegmentFile>, Recovered), WalError> {
    let segments = list(dir)?;
    let mut recovered = Recovered::default();
    for (i, segment) in segments.iter().enumerate() {
        let Some(damage) = read_segment(&segment.path, &mut recovered.records)? else {
            continue;
        };
        if i + 1 != segments.len() {
            return Err(WalError::Corrupt {
                path: segment.path.clone(),
                offset: damage.offset,
                reason: damage.reason,
            });
        }
        let io = |source| WalError::Io {
            path: segment.path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment.path)
            .map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        file.set_len(damage.offset).map_err(io)?;
        file.sync_all().map_err(io)?;
        recovered.truncated_bytes = size - damage.offset;
        tracing::warn!(
            segment = %segment.path.display(),
            offset = damage.offset,
            cut = recovered.truncated_bytes,
            reason = %damage.reason,
            "write-ahead log: torn tail cut off (a write interrupted by a crash; it was never acknowledged)"
        );
    }
    Ok((segments, recovered))
}

/// Makes a folder's entries (a created or deleted segment) durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
