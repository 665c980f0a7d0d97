//! What the store's tests share: temporary folders, a small configuration, messages, a
//! crash copy, and consistency checks of the index against the segments.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailbox::{PutOutcome, Store};
use protocol::Address;
use redb::{ReadableDatabase, ReadableTable};

use super::index::{Entry, INDEX, META, STORED_BYTES};
use super::now_ms;
use super::segment::{self, Location};
use super::{DiskStore, StoreConfig, WriterHandle};

pub(super) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mailbox-server-test-{}-{name}-{}",
        std::process::id(),
        now_ms()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
pub(super) fn config(ttl: Duration, quota: u64) -> StoreConfig {
    StoreConfig {
        reserve_bytes: 0,
        free_space: crate::disk::statvfs_free(),
        ttl,
        quota_bytes: quota,
        cache_bytes: 1 << 20,
        checkpoint_every: Duration::from_secs(10),
        max_body: 1024,
    }
}
pub(super) async fn close(store: DiskStore, writer: WriterHandle) {
    drop(store);
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .ok();
}
/// What `kill -9` leaves: the files as the kernel holds them, without a checkpoint.
pub(super) fn copy_as_crashed(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to.join("segments"))?;
    std::fs::copy(from.join("index.redb"), to.join("index.redb"))?;
    for id in segment::list(&from.join("segments"))? {
        std::fs::copy(
            segment::path_of(&from.join("segments"), id),
            segment::path_of(&to.join("segments"), id),
        )?;
    }
    Ok(())
}
pub(super) fn body(i: u32) -> Vec<u8> {
    let len = 1 + (i as usize * 37) % 1024;
    (0..len).map(|j| (i as usize + j) as u8).collect()
}
pub(super) fn address(i: u32) -> Address {
    let mut a = [0xaa; 32];
    let (head, _) = a.split_at_mut(4);
    head.copy_from_slice(&i.to_le_bytes());
    Address(a)
}
/// Every index entry points at a record of its own address and length.
pub(super) fn assert_index_consistent(store: &DiskStore) -> Result<u64, redb::Error> {
    let txn = store.db.get()?.begin_read()?;
    let table = txn.open_table(INDEX)?;
    let mut bytes = 0;
    for row in table.iter()? {
        let (address, value) = row?;
        let entry = Entry::decode(&value.value());
        if entry.is_spent() {
            // Points at a tombstone of its address (with or without a digest).
            segment::tombstone_digest(&store.files, entry.at, &address.value())?;
            continue;
        }
        let found = segment::read_body(&store.files, entry.at, &address.value())?;
        assert_eq!(found.map(|b| b.len()), Some(entry.at.len as usize));
        bytes += u64::from(entry.at.len);
    }
    let stored = txn
        .open_table(META)?
        .get(STORED_BYTES)?
        .map_or(0, |g| g.value());
    assert_eq!(stored, bytes, "the quota counter matches the index");
    Ok(bytes)
}
/// The index entry of `address`, if any.
pub(super) fn entry_of(store: &DiskStore, address: &Address) -> Result<Option<Entry>, redb::Error> {
    let txn = store.db.get()?.begin_read()?;
    let table = txn.open_table(INDEX)?;
    Ok(table.get(&address.0)?.map(|g| Entry::decode(&g.value())))
}
/// The bytes of the record at `at`, from the segment files in `seg_dir`.
pub(super) fn record_bytes(seg_dir: &Path, at: Location) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; segment::RECORD_FIXED + at.len as usize];
    segment::open(seg_dir, at.segment)?.read_exact_at(&mut bytes, at.offset)?;
    Ok(bytes)
}
/// Whether any segment file in `seg_dir` holds `needle`.
pub(super) fn segments_hold(seg_dir: &Path, needle: &[u8]) -> io::Result<bool> {
    for id in segment::list(seg_dir)? {
        let bytes = std::fs::read(segment::path_of(seg_dir, id))?;
        if bytes.windows(needle.len()).any(|w| w == needle) {
            return Ok(true);
        }
    }
    Ok(false)
}
/// A body no other test body contains by chance.
pub(super) fn secret(i: u8) -> Vec<u8> {
    (0..700u32)
        .map(|j| (j.wrapping_mul(131) as u8) ^ i ^ 0x5a)
        .collect()
}
/// Stores `body` at `address` in the store in `dir` and closes it: the message is then
/// held by the last durable index commit.
pub(super) async fn store_durably(
    dir: &Path,
    address: &Address,
    body: &[u8],
) -> Result<(), redb::Error> {
    let (store, writer) = DiskStore::open(dir, config(Duration::from_secs(60), 1 << 30))?;
    assert_eq!(
        store.put_if_absent(address, body).await,
        Ok(PutOutcome::Stored)
    );
    close(store, writer).await;
    Ok(())
}
/// Puts an unusable thing (a directory) where the index file is, so that opening the
/// index fails as it does on a full disk; returns where the real file went.
pub(super) fn break_index_file(dir: &Path) -> io::Result<PathBuf> {
    let aside = dir.join("index.redb.aside");
    std::fs::rename(dir.join("index.redb"), &aside)?;
    std::fs::create_dir(dir.join("index.redb"))?;
    Ok(aside)
}
pub(super) fn mend_index_file(dir: &Path, aside: &Path) -> io::Result<()> {
    std::fs::remove_dir(dir.join("index.redb"))?;
    std::fs::rename(aside, dir.join("index.redb"))
}
