//! The index's schema: redb tables from each address to where its message is, and the
//! transaction helpers the writer and recovery share (first-write-wins insert, delete).
//!
//! Tables:
//! - `index`: address (32 bytes) → expiry (u64 ms since the Unix epoch, big-endian) ‖
//!   segment (u64 LE) ‖ record offset (u64 LE) ‖ body length (u32 LE). An entry of length 0
//!   is a *spent* address: it points at the tombstone of the deleted message (whose expiry it
//!   keeps) and holds no body (message bodies are never empty). The deleted body's digest is
//!   not in the index: a PUT at a spent address reads it from that tombstone (and a put-back
//!   of the deleted bytes replaces the spent entry with a live one). So recording
//!   digests changed nothing here, and an index written before digests is read as it is (its
//!   spent entries point at tombstones without a digest: spent for any body).
//! - `segments`: segment id → (earliest expiry, latest expiry) of its records: what purge
//!   walks, oldest first. A segment whose latest expiry has passed is purged (its index
//!   entries removed) and its file deleted after the next durable commit.
//! - `meta`: `"stored_bytes"` → total body bytes indexed (for the quota); `"applied_segment"`
//!   and `"applied_offset"` → how far the segments are reflected in the index.

use std::io;

use mailbox::{PutOutcome, StoreError};
use redb::{ReadableTable, TableDefinition};

use super::segment::Location;

pub(super) const INDEX: TableDefinition<[u8; 32], [u8; ENTRY_LEN]> = TableDefinition::new("index");
pub(super) const SEGMENTS: TableDefinition<u64, (u64, u64)> = TableDefinition::new("segments");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const STORED_BYTES: &str = "stored_bytes";
pub(super) const APPLIED_SEGMENT: &str = "applied_segment";
pub(super) const APPLIED_OFFSET: &str = "applied_offset";
pub(super) const ENTRY_LEN: usize = 8 + 8 + 8 + 4;

/// One index entry: when the message expires and where its body is; or, with length 0, a
/// spent address: until when, and where its tombstone is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) expires: u64,
    pub(super) at: Location,
}

pub(super) fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes
        .get(at..at.saturating_add(N))
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .unwrap_or([0; N])
}

impl Entry {
    /// Whether this entry marks a spent address (its message deleted) rather than a message.
    pub(super) fn is_spent(&self) -> bool {
        self.at.len == 0
    }

    pub(super) fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        let (expires, rest) = out.split_at_mut(8);
        expires.copy_from_slice(&self.expires.to_be_bytes());
        let (segment, rest) = rest.split_at_mut(8);
        segment.copy_from_slice(&self.at.segment.to_le_bytes());
        let (offset, len) = rest.split_at_mut(8);
        offset.copy_from_slice(&self.at.offset.to_le_bytes());
        len.copy_from_slice(&self.at.len.to_le_bytes());
        out
    }

    pub(super) fn decode(value: &[u8; ENTRY_LEN]) -> Self {
        Self {
            expires: u64::from_be_bytes(array_at(value, 0)),
            at: Location {
                segment: u64::from_le_bytes(array_at(value, 8)),
                offset: u64::from_le_bytes(array_at(value, 16)),
                len: u32::from_le_bytes(array_at(value, 24)),
            },
        }
    }
}

/// The tables of one write transaction.
pub(super) struct Tables<'t> {
    pub(super) index: redb::Table<'t, [u8; 32], [u8; ENTRY_LEN]>,
    pub(super) segments: redb::Table<'t, u64, (u64, u64)>,
    pub(super) meta: redb::Table<'t, &'static str, u64>,
    pub(super) stored: u64,
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t redb::WriteTransaction) -> Result<Self, redb::Error> {
        let index = txn.open_table(INDEX)?;
        let segments = txn.open_table(SEGMENTS)?;
        let meta = txn.open_table(META)?;
        let stored = meta.get(STORED_BYTES)?.map_or(0, |g| g.value());
        Ok(Self {
            index,
            segments,
            meta,
            stored,
        })
    }

    /// First-write-wins insert of a `len`-byte body at `address`: unless a live message
    /// holds the address (409) or it is spent (410), and only within `quota` (None skips it),
    /// the index points at the
    /// body that `place` put somewhere (staged in the active segment, or where recovery found
    /// it). The common case, a fresh address, costs one B-tree insert: the entry is written
    /// first and, if the old one turns out to be live (409) or the quota is exceeded (507),
    /// the old entry is put back and `unplace` withdraws the staged body, all inside the
    /// same uncommitted transaction, so nobody ever sees the intermediate state and no
    /// refused body is ever flushed.
    pub(super) fn put(
        &mut self,
        address: &[u8; 32],
        expires: u64,
        now: u64,
        quota: Option<u64>,
        place: impl FnOnce() -> io::Result<Location>,
        unplace: impl FnOnce(Location),
    ) -> Result<Result<PutOutcome, StoreError>, redb::Error> {
        let at = place()?;
        let previous = self
            .index
            .insert(address, Entry { expires, at }.encode())?
            .map(|g| Entry::decode(&g.value()));
        let refusal = match previous {
            Some(entry) if entry.expires > now && entry.is_spent() => Some(PutOutcome::Spent),
            Some(entry) if entry.expires > now => Some(PutOutcome::AlreadyExists),
            _ => None,
        };
        let freed = previous.map_or(0, |e| u64::from(e.at.len));
        let after = self
            .stored
            .saturating_sub(freed)
            .saturating_add(u64::from(at.len));
        let over_quota = refusal.is_none() && quota.is_some_and(|q| after > q);
        if refusal.is_some() || over_quota {
            match previous {
                Some(entry) => self.index.insert(address, entry.encode())?,
                None => self.index.remove(address)?,
            };
            unplace(at);
            return Ok(match refusal {
                Some(outcome) => Ok(outcome),
                None => Err(StoreError::QuotaReached),
            });
        }
        self.stored = after;
        Ok(Ok(PutOutcome::Stored))
    }

    /// Puts a `len`-byte body back at `address`, whose entry is a live spent one (the caller
    /// checked that; it holds no bytes): within `quota` (None skips it; checked before
    /// `place`, so a refused body is never staged), the spent entry gives way to one pointing
    /// at the body that `place` put somewhere (staged in the active segment, or where
    /// recovery found it), live until `expires` (the deleted message's own expiry), and the
    /// body's bytes join the quota count.
    pub(super) fn put_back(
        &mut self,
        address: &[u8; 32],
        expires: u64,
        len: u32,
        quota: Option<u64>,
        place: impl FnOnce() -> io::Result<Location>,
    ) -> Result<Result<PutOutcome, StoreError>, redb::Error> {
        let after = self.stored.saturating_add(u64::from(len));
        if quota.is_some_and(|q| after > q) {
            return Ok(Err(StoreError::QuotaReached));
        }
        let at = place()?;
        self.index.insert(address, Entry { expires, at }.encode())?;
        self.stored = after;
        Ok(Ok(PutOutcome::Stored))
    }

    /// Removes the entry at `address`, if any, and its bytes from the quota count.
    pub(super) fn remove(&mut self, address: &[u8; 32]) -> Result<Option<Entry>, redb::Error> {
        let removed = self
            .index
            .remove(address)?
            .map(|g| Entry::decode(&g.value()));
        if let Some(entry) = removed {
            self.stored = self.stored.saturating_sub(u64::from(entry.at.len));
        }
        Ok(removed)
    }

    /// Marks `address` spent until `expires`: its entry (the deleted message's, whose bytes
    /// leave the quota) is replaced by a zero-length one pointing at the delete's tombstone
    /// `at`, so that purge removes it with the tombstone's segment. Returns the replaced entry.
    pub(super) fn spend(
        &mut self,
        address: &[u8; 32],
        expires: u64,
        at: Location,
    ) -> Result<Option<Entry>, redb::Error> {
        let spent = Entry {
            expires,
            at: Location { len: 0, ..at },
        };
        let replaced = self
            .index
            .insert(address, spent.encode())?
            .map(|g| Entry::decode(&g.value()));
        if let Some(entry) = replaced {
            self.stored = self.stored.saturating_sub(u64::from(entry.at.len));
        }
        Ok(replaced)
    }

    pub(super) fn finish(mut self) -> Result<(), redb::Error> {
        self.meta.insert(STORED_BYTES, self.stored)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_round_trip() {
        let entry = Entry {
            expires: 0x0102_0304_0506_0708,
            at: Location {
                segment: 9,
                offset: 1 << 40,
                len: 1024,
            },
        };
        assert_eq!(Entry::decode(&entry.encode()), entry);
        assert_eq!(entry.encode()[..8], 0x0102_0304_0506_0708u64.to_be_bytes());
    }
}
