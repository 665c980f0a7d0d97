//! The write-ahead log that makes a 201 durable without a B-tree fsync per batch.
//!
//! Each batch of stored messages is appended to a preallocated log file and `fdatasync`ed
//! before anyone is answered; the same batch is committed to redb without an fsync
//! (`Durability::None`). Every few seconds, or when the log is nearly full, redb commits
//! durably (a checkpoint) and the log starts a new epoch from its beginning. After a crash,
//! the records of the current epoch are replayed into redb before the server listens.
//!
//! Overwriting preallocated blocks needs no file-system metadata update, so each batch costs
//! one cheap device flush instead of redb's commit of every dirty page.
//!
//! Layout (little-endian):
//! - header block (4096 bytes): `MAGIC (8) ‖ epoch (u64) ‖ fnv1a64 of the previous 16 bytes`;
//! - then records: `epoch (u64) ‖ body_len (u32) ‖ address (32) ‖ expires_ms (u64) ‖ body ‖
//!   fnv1a64 of everything before it in the record`.
//!
//! Replay stops at the first record that has another epoch or a bad checksum: a torn write can
//! only hit records that were never acknowledged, because acknowledgement waits for the flush.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: &[u8; 8] = b"HUSHWAL1";
const HEADER_LEN: u64 = 4096;
/// Size the log is preallocated to; a checkpoint happens before it would overflow.
pub const WAL_BYTES: u64 = 128 << 20;
const RECORD_FIXED: usize = 8 + 4 + 32 + 8 + 8;

/// One stored message, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Message address.
    pub address: [u8; 32],
    /// Expiry, milliseconds since the Unix epoch.
    pub expires_ms: u64,
    /// Message body.
    pub body: Vec<u8>,
}

/// The open log.
pub struct Wal {
    file: File,
    epoch: u64,
    /// Where the next record goes.
    offset: u64,
    buffer: Vec<u8>,
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at.checked_add(8)?)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at.checked_add(4)?)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
}

impl Wal {
    /// Opens (creating and preallocating) the log at `path` and returns it with the records
    /// of its current epoch, which the caller must replay before new writes.
    pub fn open(path: &Path) -> io::Result<(Self, Vec<Record>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        if len < WAL_BYTES {
            // Write real zeros (not a sparse hole) so later overwrites need no metadata.
            let zeros = vec![0u8; 1 << 20];
            let mut at = len;
            while at < WAL_BYTES {
                let n = (WAL_BYTES - at).min(zeros.len() as u64);
                file.write_all_at(zeros.get(..n as usize).unwrap_or_default(), at)?;
                at += n;
            }
            file.sync_all()?;
        }
        let mut header = [0u8; 24];
        file.read_exact_at(&mut header, 0)?;
        let valid = header.get(..8) == Some(MAGIC.as_slice())
            && u64_at(&header, 16) == Some(fnv1a64(header.get(..16).unwrap_or_default()));
        let epoch = if valid {
            u64_at(&header, 8).unwrap_or(0)
        } else {
            0
        };
        let mut wal = Self {
            file,
            epoch,
            offset: HEADER_LEN,
            buffer: Vec::new(),
        };
        let records = if valid { wal.read_epoch()? } else { Vec::new() };
        Ok((wal, records))
    }

    fn read_epoch(&mut self) -> io::Result<Vec<Record>> {
        let mut data = vec![0u8; (WAL_BYTES - HEADER_LEN) as usize];
        self.file.read_exact_at(&mut data, HEADER_LEN)?;
        let mut records = Vec::new();
        let mut at = 0usize;
        while let Some((record, len)) = self.parse(&data, at) {
            records.push(record);
            at += len;
        }
        self.offset = HEADER_LEN + at as u64;
        Ok(records)
    }

    fn parse(&self, data: &[u8], at: usize) -> Option<(Record, usize)> {
        if u64_at(data, at)? != self.epoch {
            return None;
        }
        let body_len = u32_at(data, at + 8)? as usize;
        let total = RECORD_FIXED.checked_add(body_len)?;
        let record = data.get(at..at.checked_add(total)?)?;
        let (content, sum) = record.split_at(total - 8);
        if u64_at(sum, 0)? != fnv1a64(content) {
            return None;
        }
        let address = <[u8; 32]>::try_from(content.get(12..44)?).ok()?;
        let expires_ms = u64_at(content, 44)?;
        let body = content.get(52..)?.to_vec();
        Some((
            Record {
                address,
                expires_ms,
                body,
            },
            total,
        ))
    }

    /// Bytes `records` would take in the log.
    pub fn encoded_len(bodies: impl Iterator<Item = usize>) -> u64 {
        bodies.map(|n| (RECORD_FIXED + n) as u64).sum()
    }

    /// Whether `bytes` more fit before the log must be checkpointed.
    pub fn fits(&self, bytes: u64) -> bool {
        self.offset.saturating_add(bytes) <= WAL_BYTES
    }

    /// Appends `records` and flushes them to the device. Returns only once they are durable.
    pub fn append<'a>(
        &mut self,
        records: impl Iterator<Item = (&'a [u8; 32], &'a [u8])>,
    ) -> io::Result<()> {
        self.buffer.clear();
        for (address, value) in records {
            // `value` is the stored form: expires_ms (big-endian, 8) ‖ body.
            let (expires, body) = value.split_at(value.len().min(8));
            let expires_ms = u64::from_be_bytes(<[u8; 8]>::try_from(expires).unwrap_or_default());
            let start = self.buffer.len();
            self.buffer.extend_from_slice(&self.epoch.to_le_bytes());
            let body_len = u32::try_from(body.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
            self.buffer.extend_from_slice(&body_len.to_le_bytes());
            self.buffer.extend_from_slice(address);
            self.buffer.extend_from_slice(&expires_ms.to_le_bytes());
            self.buffer.extend_from_slice(body);
            let sum = fnv1a64(self.buffer.get(start..).unwrap_or_default());
            self.buffer.extend_from_slice(&sum.to_le_bytes());
        }
        if !self.fits(self.buffer.len() as u64) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "log full"));
        }
        self.file.write_all_at(&self.buffer, self.offset)?;
        self.file.sync_data()?;
        self.offset += self.buffer.len() as u64;
        Ok(())
    }

    /// Starts a new epoch: everything logged so far is durable elsewhere and is forgotten.
    pub fn new_epoch(&mut self) -> io::Result<()> {
        let epoch = self.epoch.wrapping_add(1).max(1);
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&epoch.to_le_bytes());
        let sum = fnv1a64(&header);
        header.extend_from_slice(&sum.to_le_bytes());
        self.file.write_all_at(&header, 0)?;
        self.file.sync_data()?;
        self.epoch = epoch;
        self.offset = HEADER_LEN;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(expires: u64, body: &[u8]) -> Vec<u8> {
        let mut v = expires.to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn replays_the_current_epoch_only_and_stops_at_a_torn_record() -> io::Result<()> {
        let dir = std::env::temp_dir().join(format!("hush-wal-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("wal");
        let _ = std::fs::remove_file(&path);

        let (mut wal, records) = Wal::open(&path)?;
        assert!(records.is_empty());
        wal.new_epoch()?;
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let (va, vb) = (value(10, b"alpha"), value(20, b"beta"));
        wal.append([(&a, va.as_slice()), (&b, vb.as_slice())].into_iter())?;
        drop(wal);

        let (mut wal, records) = Wal::open(&path)?;
        assert_eq!(
            records,
            vec![
                Record {
                    address: a,
                    expires_ms: 10,
                    body: b"alpha".to_vec()
                },
                Record {
                    address: b,
                    expires_ms: 20,
                    body: b"beta".to_vec()
                },
            ]
        );
        // A record torn in the middle is not replayed; the ones before it are.
        let vc = value(30, b"gamma");
        let torn_at = wal.offset;
        wal.append([(&c, vc.as_slice())].into_iter())?;
        wal.file.write_all_at(&[0xff], torn_at + 50)?;
        drop(wal);
        let (mut wal, records) = Wal::open(&path)?;
        assert_eq!(records.len(), 2);

        // After a checkpoint the old records are gone.
        wal.new_epoch()?;
        drop(wal);
        let (_, records) = Wal::open(&path)?;
        assert!(records.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
