//! Free space on the store's disk, and the reserve the store leaves free.
//!
//! The writer refuses a batch of PUTs (`507 disk full`) when it would leave less than the
//! reserve free, and segments are zero-filled ahead of use only into space above the
//! reserve; so neither the store's own growth nor its pre-allocation fills the disk, and the
//! index (redb, which cannot survive a failed write without a restart) always has room for
//! its commits, purges and checkpoints. When something else fills the disk, the same check
//! refuses writes until space returns; reads go on throughout.
//!
//! The index cannot wait for space, though: opening it after a crash, a checkpoint, or
//! recording a purge all write to it, and redb fails for good (until reopened) on a write
//! error. So the store also keeps a small *ballast* file (`DATA/ballast`, half the reserve
//! and at most 32 MiB), created only when the disk has room for it above the reserve. When
//! less than the ballast is free, it is deleted before the index writes or opens, which gives
//! redb that much room however the disk filled up; it comes back once space does.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use mailbox::StoreError;

/// Reports the bytes free for an unprivileged writer on the file system holding a path.
pub type FreeSpace = Arc<dyn Fn(&Path) -> io::Result<u64> + Send + Sync>;

/// Largest default reserve: 64 MiB.
pub const MAX_DEFAULT_RESERVE: u64 = 64 << 20;

/// Free bytes from `statvfs(2)` (`f_bavail × f_frsize`).
pub fn statvfs_free() -> FreeSpace {
    Arc::new(|path: &Path| {
        let stat = rustix::fs::statvfs(path)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    })
}

/// The default reserve for the file system holding `path`: an eighth of its size, at most
/// [`MAX_DEFAULT_RESERVE`] (so a small disk stays usable).
pub fn default_reserve(path: &Path) -> u64 {
    rustix::fs::statvfs(path)
        .map(|s| s.f_blocks.saturating_mul(s.f_frsize) / 8)
        .map_or(MAX_DEFAULT_RESERVE, |eighth| {
            eighth.min(MAX_DEFAULT_RESERVE)
        })
}

/// Largest ballast file: 32 MiB, half the largest default reserve (its size bounds the index's
/// unsaved backlog, see `store`).
pub const MAX_BALLAST: u64 = 32 << 20;

/// The store's disk: where it is, how much to leave free, and how to ask.
#[derive(Clone)]
pub struct Disk {
    dir: PathBuf,
    reserve: u64,
    free: FreeSpace,
    ballast: PathBuf,
    ballast_bytes: u64,
}

impl Disk {
    /// The disk holding `dir`, keeping `reserve` bytes free, asking `free`; the ballast file
    /// is `dir/ballast`.
    pub fn new(dir: &Path, reserve: u64, free: FreeSpace) -> Self {
        Self {
            dir: dir.to_path_buf(),
            reserve,
            free,
            ballast: dir.join("ballast"),
            ballast_bytes: (reserve / 2).min(MAX_BALLAST),
        }
    }

    /// Size of the ballast file.
    pub fn ballast_bytes(&self) -> u64 {
        self.ballast_bytes
    }

    /// Deletes the ballast file if less than its size is free, so that the index has room
    /// to write. Returns whether it did.
    pub fn release_ballast_if_tight(&self) -> bool {
        let tight = (self.free)(&self.dir).is_ok_and(|free| free < self.ballast_bytes);
        if tight && std::fs::remove_file(&self.ballast).is_ok() {
            eprintln!("mailbox-server: disk nearly full; released the ballast file for the index");
            return true;
        }
        false
    }

    /// Re-creates the ballast file if it is missing and the disk has room for it above the
    /// reserve. A failed attempt leaves no file.
    pub fn restore_ballast(&self) {
        if self.ballast_bytes == 0
            || self.ballast.exists()
            || !self.has_room_for(self.ballast_bytes)
        {
            return;
        }
        let write = || -> io::Result<()> {
            let tmp = self.ballast.with_extension("new");
            let file = std::fs::File::create(&tmp)?;
            let zeros = vec![0u8; 1 << 20];
            let mut left = self.ballast_bytes;
            while left > 0 {
                let n = left.min(zeros.len() as u64);
                std::io::Write::write_all(&mut &file, zeros.get(..n as usize).unwrap_or_default())?;
                left -= n;
            }
            file.sync_all()?;
            std::fs::rename(&tmp, &self.ballast)
        };
        if write().is_err() {
            let _ = std::fs::remove_file(self.ballast.with_extension("new"));
        }
    }

    /// Whether `bytes` more can be written and still leave the reserve free. If the free
    /// space cannot be read, yes (the write itself will then say).
    pub fn has_room_for(&self, bytes: u64) -> bool {
        match (self.free)(&self.dir) {
            Ok(free) => free >= self.reserve.saturating_add(bytes),
            Err(_) => true,
        }
    }
}

/// Whether the store's writes are working, as its last writes (or free-space checks) left
/// it: what `GET /v1/health` reports. Shared by the writer thread and the request handlers.
#[derive(Debug, Default, Clone)]
pub struct WriteHealth(Arc<AtomicU8>);

const OK: u8 = 0;
const DISK_FULL: u8 = 1;
const FAILING: u8 = 2;

impl WriteHealth {
    /// Writes work.
    pub fn set_ok(&self) {
        self.0.store(OK, Ordering::Relaxed);
    }

    /// Writes are refused: less than the reserve is free.
    pub fn set_disk_full(&self) {
        self.0.store(DISK_FULL, Ordering::Relaxed);
    }

    /// A write failed (an I/O error); the next batch tries again.
    pub fn set_failing(&self) {
        self.0.store(FAILING, Ordering::Relaxed);
    }

    /// The state as a store answer.
    pub fn get(&self) -> Result<(), StoreError> {
        match self.0.load(Ordering::Relaxed) {
            OK => Ok(()),
            DISK_FULL => Err(StoreError::DiskFull),
            _ => Err(StoreError::Unavailable("io")),
        }
    }

    /// Whether the last state was a failure of either kind.
    pub fn is_failing(&self) -> bool {
        self.0.load(Ordering::Relaxed) != OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn room_is_what_is_free_above_the_reserve() {
        let free = Arc::new(AtomicU64::new(100));
        let probe = Arc::clone(&free);
        let disk = Disk::new(
            Path::new("."),
            40,
            Arc::new(move |_: &Path| Ok(probe.load(Ordering::Relaxed))),
        );
        assert!(disk.has_room_for(60));
        assert!(!disk.has_room_for(61));
        free.store(0, Ordering::Relaxed);
        assert!(!disk.has_room_for(0));
        let unknown = Disk::new(
            Path::new("."),
            40,
            Arc::new(|_: &Path| Err(io::Error::other("no statvfs"))),
        );
        assert!(unknown.has_room_for(u64::MAX));
        assert!(!unknown.release_ballast_if_tight());
        assert!(default_reserve(Path::new(".")) <= MAX_DEFAULT_RESERVE);
        assert!(statvfs_free()(Path::new(".")).is_ok());
    }

    #[test]
    fn health_reports_the_last_state() {
        let health = WriteHealth::default();
        assert_eq!(health.get(), Ok(()));
        health.set_disk_full();
        assert_eq!(health.get(), Err(StoreError::DiskFull));
        health.set_failing();
        assert!(health.is_failing());
        health.set_ok();
        assert!(!health.is_failing());
    }
}
