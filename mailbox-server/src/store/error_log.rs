//! Store errors as logs and 503s: the class of a failure only (never data), at most one
//! line a second.

use std::io;
use std::sync::atomic::Ordering;

use mailbox::StoreError;

use super::now_ms;

/// Error class for logs and 503s: the kind of failure, never data.
pub(super) fn class(err: &redb::Error) -> &'static str {
    match err {
        redb::Error::Io(e) if e.kind() == io::ErrorKind::InvalidData => "corrupted",
        redb::Error::Io(_) => "io",
        redb::Error::Corrupted(_) => "corrupted",
        redb::Error::ValueTooLarge(_) => "value too large",
        redb::Error::TransactionPoisoned => "poisoned",
        _ => "storage",
    }
}

pub(super) fn log_error(err: &redb::Error) -> StoreError {
    let class = class(err);
    if let Some(suppressed) = ERROR_LOG.note(now_ms() / 1000) {
        if suppressed > 0 {
            eprintln!(
                "mailbox-server: store error: {class} ({suppressed} more since the last line)"
            );
        } else {
            eprintln!("mailbox-server: store error: {class}");
        }
    }
    StoreError::Unavailable(class)
}

/// Store errors are logged at most once a second (one failing disk can fail every request):
/// the first of each second is printed with the count of those left out since.
pub(super) static ERROR_LOG: RateLimitedLog = RateLimitedLog::new();

/// At most one line a second, counting the ones left out.
pub(super) struct RateLimitedLog {
    /// Second of the last printed line, plus one (0: never).
    last: std::sync::atomic::AtomicU64,
    /// Lines left out since the last printed one.
    suppressed: std::sync::atomic::AtomicU64,
}

impl RateLimitedLog {
    pub(super) const fn new() -> Self {
        Self {
            last: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// One more event at second `now_s`: `Some(left out since the last line)` if a line is
    /// to be printed now, None if it is to be counted only.
    pub(super) fn note(&self, now_s: u64) -> Option<u64> {
        let stamp = now_s.saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        if last != stamp
            && self
                .last
                .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_are_logged_at_most_once_a_second_with_a_count() {
        let log = RateLimitedLog::new();
        assert_eq!(log.note(100), Some(0));
        for _ in 0..14_730 {
            assert_eq!(log.note(100), None);
        }
        assert_eq!(log.note(101), Some(14_730));
        assert_eq!(log.note(101), None);
        assert_eq!(log.note(105), Some(1));
    }
}
