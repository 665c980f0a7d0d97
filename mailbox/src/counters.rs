//! Counts of request outcomes: the only thing the hosts log about traffic.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// The class of a finished request, by status code and cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// 201.
    Created,
    /// 200 for `GET /v1/m/..`.
    Hit,
    /// 404 for `GET /v1/m/..`.
    Miss,
    /// 200 for `POST /v1/fetch`.
    Fetched,
    /// 409.
    Conflict,
    /// 403.
    Forbidden,
    /// 400.
    BadRequest,
    /// 413.
    TooLarge,
    /// 507.
    Quota,
    /// 503.
    StoreError,
    /// Health, preflight, unknown routes and methods.
    Other,
    /// 400 for a body that could not be read to its end (malformed or aborted).
    BadBody,
    /// 408: the body did not arrive in time.
    BodyTimeout,
    /// 507 because the disk is (nearly) full.
    DiskFull,
    /// 204 for `DELETE /v1/m/..`.
    Deleted,
    /// 410: a PUT at an address whose message was deleted.
    Spent,
}

const OUTCOMES: [(Outcome, &str); 16] = [
    (Outcome::Created, "created"),
    (Outcome::Hit, "hit"),
    (Outcome::Miss, "miss"),
    (Outcome::Fetched, "fetch"),
    (Outcome::Conflict, "conflict"),
    (Outcome::Forbidden, "forbidden"),
    (Outcome::BadRequest, "bad_request"),
    (Outcome::TooLarge, "too_large"),
    (Outcome::Quota, "quota"),
    (Outcome::StoreError, "store_error"),
    (Outcome::Other, "other"),
    (Outcome::BadBody, "bad_body"),
    (Outcome::BodyTimeout, "body_timeout"),
    (Outcome::DiskFull, "disk_full"),
    (Outcome::Deleted, "deleted"),
    (Outcome::Spent, "spent"),
];

/// Lock-free counters of outcomes, plus fetched address and message totals.
#[derive(Debug, Default)]
pub struct Counters {
    outcomes: [AtomicU64; OUTCOMES.len()],
    fetch_addresses: AtomicU64,
    fetch_found: AtomicU64,
}

impl Counters {
    /// Counts one finished request.
    pub fn record(&self, outcome: Outcome) {
        if let Some(slot) = OUTCOMES
            .iter()
            .position(|(o, _)| *o == outcome)
            .and_then(|i| self.outcomes.get(i))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts the addresses asked for and the messages found by one fetch.
    pub fn record_fetch(&self, asked: usize, found: usize) {
        self.fetch_addresses
            .fetch_add(asked as u64, Ordering::Relaxed);
        self.fetch_found.fetch_add(found as u64, Ordering::Relaxed);
    }

    /// How many requests ended with `outcome`.
    pub fn get(&self, outcome: Outcome) -> u64 {
        OUTCOMES
            .iter()
            .position(|(o, _)| *o == outcome)
            .and_then(|i| self.outcomes.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Sum over all outcomes: changes whenever any request finished.
    pub fn total(&self) -> u64 {
        self.outcomes
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl fmt::Display for Counters {
    /// `created=1 hit=0 ...`: counts only, never data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ((_, name), count) in OUTCOMES.iter().zip(&self.outcomes) {
            write!(f, "{name}={} ", count.load(Ordering::Relaxed))?;
        }
        write!(
            f,
            "fetch_addresses={} fetch_found={}",
            self.fetch_addresses.load(Ordering::Relaxed),
            self.fetch_found.load(Ordering::Relaxed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_prints_only_numbers() {
        let c = Counters::default();
        c.record(Outcome::Created);
        c.record(Outcome::Created);
        c.record(Outcome::Miss);
        c.record_fetch(16, 3);
        assert_eq!(c.get(Outcome::Created), 2);
        assert_eq!(c.total(), 3);
        let line = c.to_string();
        assert!(line.starts_with("created=2 hit=0 miss=1 "));
        assert!(line.ends_with("fetch_addresses=16 fetch_found=3"));
    }
}
