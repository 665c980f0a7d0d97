//! Recovery: bringing the index up to date with the segments (the write-ahead log) after a
//! crash or a failed index, before anything is served from it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable};

use super::index::{APPLIED_OFFSET, APPLIED_SEGMENT, Entry, Tables};
use super::now_ms;
use super::segment::{self, ActiveSegment, Files, Location};
use crate::disk::Disk;

/// What recovery hands the writer.
pub(super) struct Recovered {
    /// Records re-applied from the segments.
    pub(super) replayed: usize,
    /// The new active segment (a fresh file: nothing is appended after a possibly torn tail).
    pub(super) active: ActiveSegment,
    /// Segments holding records, with their (earliest, latest) expiry.
    pub(super) segments: BTreeMap<u64, (u64, u64)>,
}

/// Brings the index up to date with the segments and commits it durably.
///
/// Segments at or after the index's applied position are scanned (verified record by
/// record, stopping at a torn tail) and their live records indexed first-write-wins, in the
/// order they were written, which reproduces the writer's decisions; a tombstone marks its
/// address spent until the deleted message's expiry. A refused write is never written, so
/// the only message record that can follow a live tombstone at its address is a put-back
/// (the deleted bytes again, with the deleted message's expiry): it makes the address live
/// again, pointing at it. Segment files before the applied position that the index no
/// longer lists are leftovers of a purge whose file deletion did not happen, and are deleted.
pub(super) fn recover(
    db: &Database,
    dir: &Path,
    files: &Files,
    disk: &Disk,
) -> Result<Recovered, redb::Error> {
    let txn = db.begin_write()?;
    let now = now_ms();
    let mut replayed = 0;
    let mut segments = BTreeMap::new();
    let mut wiped = BTreeMap::new();
    let on_disk = segment::list(dir)?;
    let next = {
        let mut tables = Tables::open(&txn)?;
        let applied_segment = tables.meta.get(APPLIED_SEGMENT)?.map_or(0, |g| g.value());
        let applied_offset = tables.meta.get(APPLIED_OFFSET)?.map_or(0, |g| g.value());
        for row in tables.segments.iter()? {
            let (id, expiry) = row?;
            segments.insert(id.value(), expiry.value());
        }
        for &id in &on_disk {
            if id < applied_segment && !segments.contains_key(&id) {
                segment::remove(dir, files, id)?;
                continue;
            }
            let file = Arc::new(segment::open(dir, id)?);
            files
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id, Arc::clone(&file));
            if id >= applied_segment {
                let from = if id == applied_segment {
                    applied_offset
                } else {
                    0
                };
                let mut range = segments.get(&id).copied();
                let records = segment::scan(&file, id, from)?;
                if records.is_empty() && range.is_none() && from == 0 {
                    // Not one record and not listed: the active segment and spare of a
                    // start that wrote nothing (or a torn first batch). Nothing points into
                    // it; ids are not reused (the next one is past every listed file).
                    drop(file);
                    segment::remove(dir, files, id)?;
                    continue;
                }
                for (offset, record) in records {
                    range = Some(
                        range.map_or((record.expires_ms, record.expires_ms), |(lo, hi)| {
                            (lo.min(record.expires_ms), hi.max(record.expires_ms))
                        }),
                    );
                    if record.is_tombstone() {
                        // Redo the delete: its index change may not have been durable. The
                        // address is spent until the deleted message's expiry, if that is
                        // still ahead; the message's record is wiped again.
                        let at = Location {
                            segment: id,
                            offset,
                            len: 0,
                        };
                        let replaced = if record.expires_ms > now {
                            tables.spend(&record.address, record.expires_ms, at)?
                        } else {
                            tables.remove(&record.address)?
                        };
                        if let Some(entry) = replaced.filter(|e| !e.is_spent())
                            && let Some(file) = segment::wipe(files, entry.at)?
                        {
                            wiped.insert(entry.at.segment, file);
                        }
                        continue;
                    }
                    if record.expires_ms <= now {
                        continue;
                    }
                    let len = u32::try_from(record.body.len()).unwrap_or(u32::MAX);
                    let at = Location {
                        segment: id,
                        offset,
                        len,
                    };
                    let spent = tables
                        .index
                        .get(&record.address)?
                        .map(|g| Entry::decode(&g.value()))
                        .is_some_and(|e| e.is_spent() && e.expires > now);
                    if spent {
                        // A put-back: the writer writes no refused body, and the only body it
                        // stores at a live spent address is the deleted one (its digest
                        // matched the tombstone's, checked then; checking again could only
                        // drop an acknowledged write). Live again until its own expiry.
                        let _ = tables.put_back(
                            &record.address,
                            record.expires_ms,
                            len,
                            None,
                            || Ok(at),
                        )?;
                    } else {
                        // Already indexed (a non-durable commit that survived) or not:
                        // either way the index now points at the first live record for
                        // the address.
                        let _ = tables.put(
                            &record.address,
                            record.expires_ms,
                            now,
                            None,
                            || Ok(at),
                            |_| {},
                        )?;
                    }
                    replayed += 1;
                }
                if let Some(range) = range {
                    tables.segments.insert(id, range)?;
                    segments.insert(id, range);
                }
            }
        }
        for file in wiped.values() {
            file.sync_data()?;
        }
        let next = on_disk
            .last()
            .copied()
            .unwrap_or(0)
            .max(applied_segment)
            .saturating_add(1);
        tables.meta.insert(APPLIED_SEGMENT, next)?;
        tables.meta.insert(APPLIED_OFFSET, 0)?;
        tables.finish()?;
        next
    };
    txn.commit()?;
    // Created only once the index is committed, and removed again if creating it fails: a
    // failed start leaves no file behind.
    let active = ActiveSegment::create(dir, next, Arc::clone(files), disk.clone())?;
    Ok(Recovered {
        replayed,
        active,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;
    use std::time::Duration;

    use mailbox::{PutOutcome, Store};
    use protocol::Address;

    use super::super::DiskStore;
    use super::super::testing::*;
    use super::segment;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_loses_no_acknowledged_write_and_ignores_a_torn_tail() -> Result<(), redb::Error>
    {
        let dir = temp_dir("crash");
        let crashed = temp_dir("crashed");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for i in 0..500u32 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store.put_if_absent(&address(i), &body(i)).await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.ok(), Some(Ok(PutOutcome::Stored)));
        }
        // kill -9 now: nothing was checkpointed since the open.
        copy_as_crashed(&dir, &crashed)?;
        let store = Arc::try_unwrap(store).map_err(|_| io::Error::other("store still shared"))?;
        close(store, writer).await;

        // A torn, never acknowledged last batch: half a record after the last one.
        use std::os::unix::fs::FileExt;
        let seg_dir = crashed.join("segments");
        let mut last = 0;
        let mut end = 0;
        for id in segment::list(&seg_dir)? {
            let records = segment::scan(&segment::open(&seg_dir, id)?, id, 0)?;
            if let Some((offset, record)) = records.last() {
                last = id;
                end = offset + (segment::RECORD_FIXED + record.body.len()) as u64;
            }
        }
        let file = segment::open(&seg_dir, last)?;
        let mut torn = last.to_le_bytes().to_vec();
        torn.extend_from_slice(&100u32.to_le_bytes());
        torn.extend_from_slice(&[0xbb; 40]);
        file.write_all_at(&torn, end)?;
        drop(file);

        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        for i in 0..500u32 {
            assert_eq!(
                store.get(&address(i)).await,
                Ok(Some(body(i))),
                "message {i}"
            );
        }
        assert_eq!(
            store.put_if_absent(&address(7), b"other").await,
            Ok(PutOutcome::AlreadyExists),
            "first write still wins after recovery"
        );
        let bytes = assert_index_consistent(&store)?;
        assert_eq!(bytes, (0..500).map(|i| body(i).len() as u64).sum::<u64>());
        // Recovery started a new segment rather than appending after the torn tail.
        assert!(segment::list(&seg_dir)?.last().copied().unwrap_or(0) > last);
        assert_eq!(
            store.put_if_absent(&address(1000), &body(1000)).await,
            Ok(PutOutcome::Stored)
        );
        close(store, writer).await;

        // A second crash-free reopen has nothing left to re-apply and still reads everything.
        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get(&address(1000)).await, Ok(Some(body(1000))));
        assert_eq!(store.get(&address(499)).await, Ok(Some(body(499))));
        assert_index_consistent(&store)?;
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
        Ok(())
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_after_a_delete_does_not_bring_the_message_back() -> Result<(), redb::Error> {
        let dir = temp_dir("delete-crash");
        let crashed = temp_dir("delete-crashed");
        let checkpointed = Address([0x44; 32]);
        store_durably(&dir, &checkpointed, &secret(4)).await?;

        // Messages only in the write-ahead log, some deleted between others: recovery steps
        // over the wiped records and re-applies the ones after them.
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        for i in 0..60u32 {
            assert_eq!(
                store.put_if_absent(&address(i), &body(i)).await,
                Ok(PutOutcome::Stored)
            );
            if (10..20).contains(&i) {
                assert_eq!(store.delete(&address(i)).await, Ok(()));
            }
        }
        assert_eq!(store.delete(&checkpointed).await, Ok(()));
        // kill -9 now: the deletes' index commits were not durable.
        copy_as_crashed(&dir, &crashed)?;
        close(store, writer).await;

        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get(&checkpointed).await, Ok(Some(Vec::new())));
        for i in 0..60u32 {
            let expected = Some(if (10..20).contains(&i) {
                Vec::new()
            } else {
                body(i)
            });
            assert_eq!(store.get(&address(i)).await, Ok(expected), "message {i}");
        }
        assert!(!segments_hold(&crashed.join("segments"), &secret(4))?);
        let kept = (0..60).filter(|i| !(10..20).contains(i));
        let kept_bytes = kept.map(|i| body(i).len() as u64).sum::<u64>();
        assert_eq!(assert_index_consistent(&store)?, kept_bytes);
        // Still spent (the tombstones were re-applied), and that survives a restart too.
        let spent = Some(Vec::new());
        assert_eq!(
            store.get_many(&[checkpointed, address(12)]).await,
            Ok(vec![spent.clone(), spent.clone()])
        );
        for a in [checkpointed, address(12)] {
            assert_eq!(
                store.put_if_absent(&a, &secret(6)).await,
                Ok(PutOutcome::AlreadyExists)
            );
        }
        assert!(!segments_hold(&crashed.join("segments"), &secret(6))?);
        assert_eq!(
            assert_index_consistent(&store)?,
            kept_bytes,
            "no bytes charged"
        );
        close(store, writer).await;
        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get(&checkpointed).await, Ok(Some(Vec::new())));
        assert_eq!(
            store.get_many(&[checkpointed, address(13)]).await,
            Ok(vec![spent.clone(), spent.clone()])
        );
        assert_eq!(
            store.put_if_absent(&address(12), b"new").await,
            Ok(PutOutcome::AlreadyExists)
        );
        assert_eq!(assert_index_consistent(&store)?, kept_bytes);
        close(store, writer).await;

        // Reads from the segments alone (the index unusable) do not bring them back either,
        // and see the addresses spent.
        let aside = break_index_file(&crashed)?;
        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert!(store.write_health().is_err());
        assert_eq!(
            store
                .get_many(&[address(13), checkpointed, address(30), address(900)])
                .await,
            Ok(vec![spent.clone(), spent, Some(body(30)), None])
        );
        assert_eq!(store.get(&address(13)).await, Ok(Some(Vec::new())));
        close(store, writer).await;
        mend_index_file(&crashed, &aside)?;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
        Ok(())
    }
    #[tokio::test]
    async fn recovery_redoes_a_delete_whose_wipe_did_not_reach_the_disk() -> Result<(), redb::Error>
    {
        use std::os::unix::fs::FileExt;
        let dir = temp_dir("delete-redo");
        let crashed = temp_dir("delete-redone");
        let a = Address([0x55; 32]);
        store_durably(&dir, &a, &secret(5)).await?;
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        let at = entry_of(&store, &a)?.map(|e| e.at);
        let at = at.ok_or_else(|| io::Error::other("no entry"))?;
        let before = record_bytes(&dir.join("segments"), at)?;
        assert_eq!(store.delete(&a).await, Ok(()));
        copy_as_crashed(&dir, &crashed)?;
        close(store, writer).await;
        // The crash came after the tombstone was flushed, before the wipe was: the record is
        // whole again in the copy (and the durable index still points at it).
        segment::open(&crashed.join("segments"), at.segment)?.write_all_at(&before, at.offset)?;
        assert!(segments_hold(&crashed.join("segments"), &secret(5))?);

        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
        assert_eq!(store.get_many(&[a]).await, Ok(vec![Some(Vec::new())]));
        assert!(!segments_hold(&crashed.join("segments"), &secret(5))?);
        assert_eq!(assert_index_consistent(&store)?, 0);
        assert_eq!(
            store.put_if_absent(&a, b"again").await,
            Ok(PutOutcome::AlreadyExists)
        );
        assert_eq!(
            store.put_if_absent(&a, &secret(5)).await,
            Ok(PutOutcome::Spent)
        );
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
        Ok(())
    }
    #[tokio::test]
    async fn a_spent_address_answers_by_its_digest_from_an_index_rebuilt_from_the_segments()
    -> Result<(), redb::Error> {
        let dir = temp_dir("digest-rebuild");
        let (a, b) = (Address([0x71; 32]), Address([0x72; 32]));
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        for (address, body) in [(a, secret(7)), (b, secret(8))] {
            assert_eq!(
                store.put_if_absent(&address, &body).await,
                Ok(PutOutcome::Stored)
            );
        }
        assert_eq!(store.delete(&a).await, Ok(()));
        close(store, writer).await;

        // The index is lost: a start rebuilds it from every segment.
        std::fs::remove_file(dir.join("index.redb"))?;
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
        assert_eq!(store.get(&b).await, Ok(Some(secret(8))));
        assert_eq!(
            store.put_if_absent(&a, &secret(9)).await,
            Ok(PutOutcome::AlreadyExists)
        );
        assert_eq!(
            store.put_if_absent(&a, &secret(7)).await,
            Ok(PutOutcome::Spent)
        );
        assert_eq!(assert_index_consistent(&store)?, secret(8).len() as u64);
        assert!(!segments_hold(&dir.join("segments"), &secret(7))?);
        close(store, writer).await;

        // Reads from the segments alone see it spent too.
        let aside = break_index_file(&dir)?;
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        assert!(store.write_health().is_err());
        assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
        assert_eq!(store.get(&b).await, Ok(Some(secret(8))));
        close(store, writer).await;
        mend_index_file(&dir, &aside)?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
    #[tokio::test]
    async fn a_put_back_survives_a_crash_and_an_index_rebuilt_from_the_segments()
    -> Result<(), redb::Error> {
        let dir = temp_dir("put-back-recovery");
        let crashed = temp_dir("put-back-recovered");
        let (a, b, c) = (
            Address([0xc1; 32]),
            Address([0xc2; 32]),
            Address([0xc3; 32]),
        );
        // The last durable index commit holds `a` live.
        store_durably(&dir, &a, &secret(21)).await?;
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        for (address, body) in [(b, secret(22)), (c, secret(23))] {
            assert_eq!(
                store.put_if_absent(&address, &body).await,
                Ok(PutOutcome::Stored)
            );
        }
        // `a` back once; `b` back, then deleted again; `c` back twice.
        for (address, body, rounds, spent) in [
            (a, secret(21), 1, false),
            (b, secret(22), 1, true),
            (c, secret(23), 2, false),
        ] {
            for _ in 0..rounds {
                assert_eq!(store.delete(&address).await, Ok(()));
                assert_eq!(
                    store.put_back(&address, &body).await,
                    Ok(PutOutcome::Stored)
                );
            }
            if spent {
                assert_eq!(store.delete(&address).await, Ok(()));
            }
        }
        let entries = [
            entry_of(&store, &a)?,
            entry_of(&store, &b)?,
            entry_of(&store, &c)?,
        ];
        // kill -9 now: all of it is in the write-ahead log only.
        copy_as_crashed(&dir, &crashed)?;
        close(store, writer).await;

        let expected = vec![Some(secret(21)), Some(Vec::new()), Some(secret(23))];
        let bytes = (secret(21).len() + secret(23).len()) as u64;
        for folder in [&dir, &crashed] {
            let (store, writer) =
                DiskStore::open(folder, config(Duration::from_secs(60), 1 << 30))?;
            assert_eq!(store.get_many(&[a, b, c]).await, Ok(expected.clone()));
            assert_eq!(
                [
                    entry_of(&store, &a)?,
                    entry_of(&store, &b)?,
                    entry_of(&store, &c)?
                ],
                entries,
                "live again until the deleted messages' own expiry"
            );
            assert_eq!(assert_index_consistent(&store)?, bytes);
            assert!(!segments_hold(&folder.join("segments"), &secret(22))?);
            assert_eq!(
                store.put_if_absent(&a, &secret(21)).await,
                Ok(PutOutcome::AlreadyExists)
            );
            assert_eq!(
                store.put_if_absent(&b, &secret(22)).await,
                Ok(PutOutcome::Spent)
            );
            close(store, writer).await;
        }

        // The index is lost: a start rebuilds it from every segment, in order.
        std::fs::remove_file(crashed.join("index.redb"))?;
        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get_many(&[a, b, c]).await, Ok(expected));
        assert_eq!(
            [
                entry_of(&store, &a)?,
                entry_of(&store, &b)?,
                entry_of(&store, &c)?
            ]
            .map(|e| e.map(|e| (e.expires, e.is_spent()))),
            entries.map(|e| e.map(|e| (e.expires, e.is_spent())))
        );
        assert_eq!(assert_index_consistent(&store)?, bytes);
        // The second tombstone of `b` still tells its bytes from others.
        assert_eq!(
            store.put_back(&b, &secret(24)).await,
            Ok(PutOutcome::AlreadyExists)
        );
        assert_eq!(
            store.put_back(&b, &secret(22)).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(store.get(&b).await, Ok(Some(secret(22))));
        close(store, writer).await;

        // Reads from the segments alone see the put-backs too.
        let aside = break_index_file(&crashed)?;
        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert!(store.write_health().is_err());
        assert_eq!(
            store.get_many(&[a, b, c]).await,
            Ok(vec![Some(secret(21)), Some(secret(22)), Some(secret(23))])
        );
        close(store, writer).await;
        mend_index_file(&crashed, &aside)?;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
        Ok(())
    }
    #[tokio::test]
    async fn a_tombstone_from_before_digests_spends_the_address_for_any_body()
    -> Result<(), redb::Error> {
        let dir = temp_dir("old-tombstone");
        let seg_dir = dir.join("segments");
        std::fs::create_dir_all(&seg_dir)?;
        let (old, kept, new) = (
            Address([0x81; 32]),
            Address([0x82; 32]),
            Address([0x83; 32]),
        );
        let expires_ms = super::now_ms() + 60_000;
        let record = |address: Address, body: Vec<u8>, tombstone| segment::Record {
            address: address.0,
            expires_ms,
            body,
            tombstone,
        };
        // A data folder as the code before digests left it (a delete whose index commit was
        // not durable: the message's record not wiped yet, its tombstone of length 0), then
        // a delete by this code.
        segment::write_for_test(
            &seg_dir,
            1,
            &[
                record(old, secret(11), false),
                record(kept, secret(12), false),
                record(old, Vec::new(), true),
                record(new, secret(13), false),
                record(new, segment::digest(&secret(13)).to_vec(), true),
            ],
        )?;
        for _ in 0..2 {
            let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
            assert_eq!(store.get(&old).await, Ok(Some(Vec::new())));
            assert_eq!(store.get(&kept).await, Ok(Some(secret(12))));
            for body in [secret(11), secret(14)] {
                assert_eq!(
                    store.put_if_absent(&old, &body).await,
                    Ok(PutOutcome::Spent),
                    "no digest: spent for any body"
                );
                assert_eq!(
                    store.put_back(&old, &body).await,
                    Ok(PutOutcome::Spent),
                    "no digest: nothing can be put back"
                );
            }
            assert_eq!(
                store.put_if_absent(&new, &secret(14)).await,
                Ok(PutOutcome::AlreadyExists)
            );
            assert_eq!(
                store.put_back(&new, &secret(14)).await,
                Ok(PutOutcome::AlreadyExists)
            );
            assert_eq!(
                store.put_if_absent(&new, &secret(13)).await,
                Ok(PutOutcome::Spent)
            );
            assert_eq!(assert_index_consistent(&store)?, secret(12).len() as u64);
            assert!(
                !segments_hold(&seg_dir, &secret(11))?,
                "the delete was redone"
            );
            close(store, writer).await;
        }
        let aside = break_index_file(&dir)?;
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(
            store.get_many(&[old, kept, new]).await,
            Ok(vec![Some(Vec::new()), Some(secret(12)), Some(Vec::new())])
        );
        assert_eq!(store.get(&old).await, Ok(Some(Vec::new())));
        close(store, writer).await;
        mend_index_file(&dir, &aside)?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
    #[tokio::test]
    async fn starts_that_write_nothing_leave_no_segment_files_behind() -> Result<(), redb::Error> {
        let dir = temp_dir("empty-segments");
        let seg_dir = dir.join("segments");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 20))?;
        assert_eq!(
            store.put_if_absent(&address(1), &body(1)).await,
            Ok(PutOutcome::Stored)
        );
        close(store, writer).await;
        for _ in 0..4 {
            let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 20))?;
            assert_eq!(store.get(&address(1)).await, Ok(Some(body(1))));
            close(store, writer).await;
        }
        // The segment with the message, the last start's active segment and its spare.
        let left = segment::list(&seg_dir)?;
        assert!(left.len() <= 3, "segment files left: {left:?}");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 20))?;
        assert_eq!(store.get(&address(1)).await, Ok(Some(body(1))));
        assert_index_consistent(&store)?;
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
