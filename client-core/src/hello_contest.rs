//! A hello that finds foreign bytes at its address (`docs/PROTOCOL.md` §8, "A contested
//! hello"). Two histories look the same to the joiner:
//!
//! * someone wrote there before our hello reached the mailbox (another joiner with the same
//!   invite, or an invite photographer's junk): the inviter never reads our hello, and the
//!   invite is taken for us;
//! * our hello *was* stored (its `201` lost to a crash or a dropped answer), the inviter read
//!   it and answered, and after the mailbox lifetime it expired and someone wrote at the freed
//!   address: the conversation is alive, and the inviter's answers (deposited again where
//!   they expired) are on their way.
//!
//! The second needs an earlier try at the hello: foreign bytes met at the very first try
//! (recorded durably before its PUT, `Outgoing::checked_ms`) take the invite at once. After
//! an earlier try, only the inviter's answer tells them apart. So such a contested hello is
//! not final at once: it stays in the outbox (our later blobs wait behind it, as behind any
//! blob not yet stored) while this device's polls of the conversation watch for the
//! inviter's answer, which acknowledges the hello and takes it out of the outbox. The invite is taken for us only
//! once the polls have watched for [`HELLO_CONTEST_MS`] since the contest was found, without
//! a gap longer than [`CONTEST_POLL_GAP_MS`]: an inviter that is online in that time deposits
//! its expired answers again within one retransmission interval
//! ([`crate::RETRANSMIT_AFTER_MS`]). Not persisted: after a restart, the watch starts again.

use crate::client::Client;
use crate::platform::Platform;

/// How long this device's polls watch for the inviter's answer after our hello found foreign
/// bytes at its address, before the invite counts as taken by someone else (ms): two
/// retransmission intervals, 10 minutes.
pub const HELLO_CONTEST_MS: u64 = 2 * crate::RETRANSMIT_AFTER_MS;

/// The longest gap between two successful polls (or pushed snapshots) of the conversation
/// that still counts as watching (ms): one retransmission interval, 5 minutes, above the
/// slowest pace of the app's watch (a subscription's snapshot every 2–4 minutes,
/// `crate::schedule::watch_refresh_delay_ms`). After a longer gap the watch starts again.
pub const CONTEST_POLL_GAP_MS: u64 = crate::RETRANSMIT_AFTER_MS;

/// The watch of one conversation's contested hello.
#[derive(Debug)]
pub(crate) struct HelloContest {
    /// The conversation.
    id: String,
    /// Since when polls have watched without a gap longer than [`CONTEST_POLL_GAP_MS`]: when
    /// a flush first found foreign bytes at the hello's address, then each poll after a gap
    /// (ms since the epoch; it only moves forward).
    watched_from_ms: u64,
    /// The last successful poll, or `None` before the first since the contest was found.
    polled_ms: Option<u64>,
    /// When a flush last tried the hello (ms since the epoch).
    tried_ms: u64,
}

impl HelloContest {
    /// A watch starting at `now`, when a flush first found foreign bytes at the hello address.
    fn new(id: &str, now: u64) -> Self {
        HelloContest {
            id: id.to_owned(),
            watched_from_ms: now,
            polled_ms: None,
            tried_ms: now,
        }
    }

    /// A successful poll at `now`: after a gap longer than [`CONTEST_POLL_GAP_MS`] (or at
    /// the first), the watch starts again from it.
    fn note_poll(&mut self, now: u64) {
        if self
            .polled_ms
            .is_none_or(|polled| now.saturating_sub(polled) > CONTEST_POLL_GAP_MS)
        {
            self.watched_from_ms = now;
        }
        self.polled_ms = Some(now);
    }

    /// Whether, at `now`, polls have watched for [`HELLO_CONTEST_MS`] since the contest was
    /// found, the last of them no longer than [`CONTEST_POLL_GAP_MS`] ago.
    fn settled(&self, now: u64) -> bool {
        self.polled_ms.is_some_and(|polled| {
            now.saturating_sub(polled) <= CONTEST_POLL_GAP_MS
                && now.saturating_sub(self.watched_from_ms) >= HELLO_CONTEST_MS
        })
    }
}

impl<P: Platform> Client<P> {
    /// Whether the contest of conversation `id`'s hello, found again by a flush at `now`, is
    /// settled against us: polls watched for [`HELLO_CONTEST_MS`] without the inviter's answer
    /// (it would have taken the hello out of the outbox, and the flush would not have tried
    /// it). The first call for a conversation starts the watch and answers `false`.
    pub(crate) fn hello_contest_settled(&self, id: &str, now: u64) -> bool {
        let mut contests = self.hello_contests.borrow_mut();
        match contests.iter().find(|c| c.id == id) {
            Some(contest) => contest.settled(now),
            None => {
                contests.push(HelloContest::new(id, now));
                false
            }
        }
    }

    /// Whether a flush at `now` leaves conversation `id`'s hello alone: it is contested and
    /// was tried less than [`crate::RETRANSMIT_RECHECK_MS`] ago (a flush with later blobs
    /// waiting runs every few seconds; the hello needs a PUT and a GET each time). Otherwise
    /// notes the try.
    pub(crate) fn hello_contest_quiet(&self, id: &str, now: u64) -> bool {
        let mut contests = self.hello_contests.borrow_mut();
        let Some(contest) = contests.iter_mut().find(|c| c.id == id) else {
            return false;
        };
        if now
            < contest
                .tried_ms
                .saturating_add(crate::RETRANSMIT_RECHECK_MS)
        {
            return true;
        }
        contest.tried_ms = now;
        false
    }

    /// Notes a successful poll of conversation `id` at `now` for the watch of its contested
    /// hello, if it has one.
    pub(crate) fn note_contest_poll(&self, id: &str, now: u64) {
        if let Some(contest) = self
            .hello_contests
            .borrow_mut()
            .iter_mut()
            .find(|c| c.id == id)
        {
            contest.note_poll(now);
        }
    }

    /// Forgets the watch of conversation `id`'s hello (settled either way).
    pub(crate) fn end_hello_contest(&self, id: &str) {
        self.hello_contests.borrow_mut().retain(|c| c.id != id);
    }

    /// Keeps the watches of the conversations for which `contested` is true (their hello is
    /// still in the outbox, not stored) and forgets the others: the inviter's answer took
    /// the hello out, or the conversation is gone.
    pub(crate) fn keep_hello_contests(&self, contested: impl Fn(&str) -> bool) {
        self.hello_contests
            .borrow_mut()
            .retain(|c| contested(&c.id));
    }

    /// When a flush should try the contested hellos again (ms since the epoch), if any is
    /// watched: [`crate::RETRANSMIT_RECHECK_MS`] (1 minute) after `now`, so that the verdict
    /// comes within a minute of the watch being complete, at two requests a minute.
    pub(crate) fn hello_contest_recheck_ms(&self, now: u64) -> Option<u64> {
        (!self.hello_contests.borrow().is_empty())
            .then(|| now.saturating_add(crate::RETRANSMIT_RECHECK_MS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;

    /// A contest found at 0, polled at `polls`, asked at `now`.
    fn settled(polls: &[u64], now: u64) -> bool {
        let mut contest = HelloContest::new("c", 0);
        for &at in polls {
            contest.note_poll(at);
        }
        contest.settled(now)
    }

    #[test]
    fn the_watch_needs_polls_covering_the_whole_contest_time() {
        let every_minute: Vec<u64> = (0..=10).map(|m| m * MINUTE).collect();
        assert!(settled(&every_minute, 10 * MINUTE));
        assert!(!settled(
            every_minute.get(..10).unwrap_or_default(),
            10 * MINUTE - 1
        ));
        // No poll at all: never settled, however long ago the contest was found.
        assert!(!settled(&[], 100 * MINUTE));
        // Polls 4 minutes apart (a subscription's pace) still watch.
        assert!(settled(
            &[0, 4 * MINUTE, 8 * MINUTE, 10 * MINUTE],
            10 * MINUTE
        ));
        // Away for an hour, then one poll: the watch starts again at that poll.
        assert!(!settled(&[MINUTE, 61 * MINUTE], 62 * MINUTE));
        assert!(settled(
            &[MINUTE, 61 * MINUTE, 66 * MINUTE, 71 * MINUTE],
            71 * MINUTE
        ));
        // Polls stopped more than a gap ago: the watch is not current.
        assert!(!settled(&every_minute, 16 * MINUTE));
    }
}
