//! The trickle flush of the index file between checkpoints.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the trickle thread flushes redb's file.
pub(super) const TRICKLE_EVERY: Duration = Duration::from_millis(200);

/// A thread that flushes redb's file to the device every [`TRICKLE_EVERY`].
///
/// Between checkpoints redb writes the pages it evicts from its (small) cache into the file
/// without flushing them; left alone, the kernel would hold them until the checkpoint's
/// fsync, which then stalls writes for as long as it takes to write them all. Flushing in
/// small steps keeps that final flush short. It changes nothing about correctness: it only
/// makes bytes durable earlier; redb's own commit protocol still decides what is valid.
pub(super) struct Trickle {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Trickle {
    /// Stops the thread and waits for it.
    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Starts flushing `db_file` every [`TRICKLE_EVERY`].
pub(super) fn spawn_trickle_flush(db_file: &Path) -> std::io::Result<Trickle> {
    let file = std::fs::File::open(db_file)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("mailbox-trickle".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(TRICKLE_EVERY);
                let _ = file.sync_data();
            }
        })?;
    Ok(Trickle { stop, thread })
}
