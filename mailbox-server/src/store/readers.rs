//! What readers look addresses up in: the index database, shared with the writer, or,
//! while the index cannot be used, its copy rebuilt in memory from the segments.

use std::collections::HashMap;
use std::collections::hash_map::Entry::{Occupied, Vacant};
use std::io;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use redb::Database;

use super::index::Entry;
use super::now_ms;
use super::segment::{self, Files, Location};

/// The index database, shared by readers and the writer. After a failed index write redb
/// refuses every later operation until it is reopened, so the writer can take it out, reopen
/// it and put the new one in (readers use the segments' view meanwhile, see [`MemIndex`]).
///
/// While the index cannot be used (it failed and cannot be reopened yet, typically on a full
/// disk), readers use a [`MemIndex`] built from the segments instead: reads never depend on
/// the index being writable.
#[derive(Clone, Default)]
pub(super) struct SharedDb {
    db: Arc<RwLock<Option<Arc<Database>>>>,
    fallback: Arc<RwLock<Option<Arc<MemIndex>>>>,
}

impl SharedDb {
    pub(super) fn get(&self) -> Result<Arc<Database>, redb::Error> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| io::Error::other("index reopening").into())
    }

    pub(super) fn set(&self, db: Option<Arc<Database>>) {
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = db;
    }

    pub(super) fn fallback(&self) -> Option<Arc<MemIndex>> {
        self.fallback
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_fallback(&self, index: Option<Arc<MemIndex>>) {
        *self
            .fallback
            .write()
            .unwrap_or_else(PoisonError::into_inner) = index;
    }
}

/// The index rebuilt in memory from the segments alone (every verified record, in write
/// order; the first live record of an address wins, as in the writer, a live tombstone
/// leaves a spent entry, and a message record after it is a put-back that makes the address
/// live again, as in recovery), for reads while the
/// on-disk index cannot be used. Costs about 100 bytes of memory per stored message and one
/// read of every segment to build; it is dropped once the index is back.
pub(super) struct MemIndex(pub(super) HashMap<[u8; 32], Entry>);

impl MemIndex {
    /// Scans every segment in `dir` (registering its file in `files` for reads).
    pub(super) fn build(dir: &Path, files: &Files) -> io::Result<Self> {
        let now = now_ms();
        let mut map = HashMap::new();
        for id in segment::list(dir)? {
            let known = files
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&id)
                .cloned();
            let file = match known {
                Some(file) => file,
                None => {
                    let file = Arc::new(segment::open(dir, id)?);
                    files
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(id, Arc::clone(&file));
                    file
                }
            };
            for (offset, record) in segment::scan(&file, id, 0)? {
                // A tombstone's entry has length 0, as in the index (its digest stays in
                // the segment: reads only need to know the address is spent).
                let len = if record.is_tombstone() {
                    0
                } else {
                    u32::try_from(record.body.len()).unwrap_or(u32::MAX)
                };
                let at = Location {
                    segment: id,
                    offset,
                    len,
                };
                let entry = Entry {
                    expires: record.expires_ms,
                    at,
                };
                if record.is_tombstone() {
                    // Spent until the deleted message's expiry, as in the index.
                    if record.expires_ms > now {
                        map.insert(record.address, entry);
                    } else {
                        map.remove(&record.address);
                    }
                    continue;
                }
                if record.expires_ms > now {
                    match map.entry(record.address) {
                        // A put-back: the deleted message, live again (see `recovery`).
                        Occupied(mut spent) if spent.get().is_spent() => {
                            spent.insert(entry);
                        }
                        Occupied(_) => {}
                        Vacant(free) => {
                            free.insert(entry);
                        }
                    }
                }
            }
        }
        Ok(Self(map))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mailbox::{PutOutcome, Store};

    use super::super::DiskStore;
    use super::super::testing::*;
    use super::super::writer::Job;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_never_depend_on_the_index_being_writable() -> Result<(), redb::Error> {
        let dir = temp_dir("index-down");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        for i in 0..300u32 {
            assert_eq!(
                store.put_if_absent(&address(i), &body(i)).await,
                Ok(PutOutcome::Stored)
            );
        }
        // A deleted message: its address is spent.
        assert_eq!(store.delete(&address(5)).await, Ok(()));
        // The index fails while running and cannot be reopened (as on a full disk).
        let aside = break_index_file(&dir)?;
        assert_eq!(store.send(Job::BreakIndex).await, Ok(()));
        assert!(
            store
                .put_if_absent(&address(900), &body(900))
                .await
                .is_err()
        );
        assert!(store.write_health().is_err());
        for i in (0..300u32).filter(|&i| i != 5) {
            assert_eq!(
                store.get(&address(i)).await,
                Ok(Some(body(i))),
                "message {i}"
            );
        }
        assert_eq!(store.get(&address(900)).await, Ok(None));
        assert_eq!(store.get(&address(5)).await, Ok(Some(Vec::new())));
        assert_eq!(
            store.get_many(&[address(5)]).await,
            Ok(vec![Some(Vec::new())]),
            "the segments' view keeps it spent"
        );
        close(store, writer).await;

        // A start while the index cannot be opened serves reads from the segments.
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        assert!(store.write_health().is_err(), "health says writes fail");
        assert_eq!(
            store
                .get_many(&[address(0), address(299), address(900), address(5)])
                .await,
            Ok(vec![Some(body(0)), Some(body(299)), None, Some(Vec::new())])
        );
        assert!(
            store
                .put_if_absent(&address(901), &body(901))
                .await
                .is_err()
        );
        // The index becomes usable again: the writer reopens it (at most once a second)
        // and writes resume, without a restart.
        mend_index_file(&dir, &aside)?;
        let mut resumed = false;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if store.put_if_absent(&address(901), &body(901)).await == Ok(PutOutcome::Stored) {
                resumed = true;
                break;
            }
        }
        assert!(resumed, "writes resume once the index can be written");
        assert_eq!(store.write_health(), Ok(()));
        assert_eq!(store.get(&address(901)).await, Ok(Some(body(901))));
        assert_eq!(store.get(&address(7)).await, Ok(Some(body(7))));
        assert_eq!(
            store.put_if_absent(&address(5), &body(5)).await,
            Ok(PutOutcome::Spent),
            "still spent once the index is back"
        );
        assert_eq!(
            store.put_if_absent(&address(5), &body(6)).await,
            Ok(PutOutcome::AlreadyExists),
            "and taken for another body"
        );
        assert_index_consistent(&store)?;
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
