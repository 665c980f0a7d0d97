//! What must hold on every seed.

use std::collections::{BTreeMap, BTreeSet};

use client_core::Status;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A client deposited two different blobs at one address with the same hedge `r`
    /// (`blob[0..16)`): the same effective header and body keys (hence key and nonce)
    /// encrypted two plaintexts (the mailbox holds their XOR). Two different blobs at one
    /// address with different hedges are counted ([`crate::Wire`]), not a violation.
    KeyReuse {
        /// Whose key.
        device: &'static str,
        /// Where.
        address: [u8; 32],
        /// Byte positions in which the two blobs agree (about 4 of 1,024 by chance).
        equal_bytes: usize,
    },
    /// A message was shown twice, or a sender's messages out of the order they were written.
    Order {
        /// Whose screen.
        device: &'static str,
        /// The message shown too late or again.
        text: String,
    },
    /// A message neither reached the other person after the heal phase nor is marked as not
    /// delivered (`Conflict` or `Failed`): it was lost without a word.
    Undelivered {
        /// Who wrote it.
        sender: &'static str,
        /// Its index among what that person wrote.
        index: u64,
        /// The status the sender's screen shows.
        status: Status,
        /// A notice the sender's conversation shows (interference, rollback), if any: it says
        /// something went wrong, but not that this message is not delivered.
        notice: Option<&'static str>,
    },
    /// The app could not load its state (unlock or history) after a restart.
    StateFailedToLoad {
        /// Whose.
        device: &'static str,
        /// The error shown.
        error: String,
    },
    /// The screen does not show what the history holds.
    ScreenDisagrees {
        /// Whose.
        device: &'static str,
        /// Messages on screen.
        shown: usize,
        /// Messages in the stored history.
        stored: usize,
    },
    /// An app was not running and unlocked at the end of the heal phase.
    NotRunningAtEnd {
        /// Whose.
        device: &'static str,
    },
    /// A message is marked *delivered* on its sender's screen, but the other person never
    /// received it.
    FalseDelivered {
        /// Who wrote it.
        sender: &'static str,
        /// Its index among what that person wrote.
        index: u64,
    },
    /// A notice was raised with no cause in the run (a rollback on a device never restored
    /// and never without power; interference with nobody interfering; an invite taken by
    /// nobody).
    FalseNotice {
        /// Whose screen.
        device: &'static str,
        /// What it says.
        notice: &'static str,
    },
    /// After the heal phase the join has not completed on this device, and the joiner was not
    /// told that someone else took the invite.
    JoinIncomplete {
        /// Whose.
        device: &'static str,
    },
    /// A message whose `send` returned `Ok` (stored on the device) is not in its sender's
    /// history at the end, and no restore to an older backup explains it.
    Vanished {
        /// Who wrote it.
        sender: &'static str,
        /// Its index among what that person wrote.
        index: u64,
    },
    /// A conversation ended for a reason the run gives no cause for (its session no longer
    /// loads: protocol version 1).
    Ended {
        /// Whose.
        device: &'static str,
        /// Why, as the user is told.
        reason: String,
    },
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Violation::KeyReuse {
                device,
                address,
                equal_bytes,
            } => write!(
                f,
                "key reuse: {device} deposited two different blobs with the same hedge at {} (equal in {equal_bytes} of {} byte positions)",
                crate::trace::short(address),
                protocol::BLOB_LEN
            ),
            Violation::Order { device, text } => {
                let what = parse_text(text)
                    .map_or_else(|| text.clone(), |(s, i)| format!("{s}'s message {i}"));
                write!(f, "order: {device} showed {what} twice or out of order")
            }
            Violation::Undelivered {
                sender,
                index,
                status,
                notice,
            } => {
                write!(
                    f,
                    "lost without a word: {sender}'s message {index} never arrived, and its sender sees {status:?}"
                )?;
                match notice {
                    Some(notice) => write!(f, " (the conversation shows the {notice} notice)"),
                    None => Ok(()),
                }
            }
            Violation::StateFailedToLoad { device, error } => {
                write!(f, "state failed to load on {device}: {error}")
            }
            Violation::ScreenDisagrees {
                device,
                shown,
                stored,
            } => write!(
                f,
                "{device}'s screen shows {shown} messages, its history holds {stored}"
            ),
            Violation::NotRunningAtEnd { device } => {
                write!(f, "{device}'s app was not running at the end")
            }
            Violation::FalseDelivered { sender, index } => write!(
                f,
                "false delivery: {sender}'s message {index} is marked delivered, but the other person never received it"
            ),
            Violation::FalseNotice { device, notice } => write!(
                f,
                "false notice: {device} is told \"{notice}\", but nothing in the run caused it"
            ),
            Violation::JoinIncomplete { device } => write!(
                f,
                "join incomplete: after the heal phase {device}'s conversation is not joined, and nobody was told the invite was taken"
            ),
            Violation::Ended { device, reason } => {
                write!(f, "{device}'s conversation ended: {reason}")
            }
            Violation::Vanished { sender, index } => write!(
                f,
                "vanished: {sender}'s message {index} was stored, then disappeared from {sender}'s history"
            ),
        }
    }
}

impl Violation {
    /// A short name for the kind, for tallies.
    pub fn kind(&self) -> &'static str {
        match self {
            Violation::KeyReuse { .. } => "key-reuse",
            Violation::Order { .. } => "order",
            Violation::Undelivered { .. } => "undelivered",
            Violation::StateFailedToLoad { .. } => "state-failed-to-load",
            Violation::ScreenDisagrees { .. } => "screen-disagrees",
            Violation::NotRunningAtEnd { .. } => "not-running",
            Violation::FalseDelivered { .. } => "false-delivered",
            Violation::FalseNotice { .. } => "false-notice",
            Violation::JoinIncomplete { .. } => "join-incomplete",
            Violation::Ended { .. } => "ended",
            Violation::Vanished { .. } => "vanished",
        }
    }
}

/// `alice00017|…` → (`alice`, 17).
pub fn parse_text(text: &str) -> Option<(&str, u64)> {
    let head = text.split('|').next()?;
    let digits = head.get(head.len().checked_sub(5)?..)?;
    let name = head.get(..head.len() - 5)?;
    Some((name, digits.parse().ok()?))
}

/// For each message written, by (sender, index): the sender's earlier messages that its
/// writer's device no longer had when it wrote it (lost with a restore to an older backup,
/// and not in that backup). Such a pair was written on two copies of one device, neither of
/// which knew the other's message: they are concurrent, and no order between them can be
/// kept (the reader may have shown the later one before the copy holding the earlier one
/// came back).
pub type Concurrent = BTreeMap<(String, u64), BTreeSet<u64>>;

/// The first message in `shown` that repeats or comes before an earlier one of its sender
/// that was written knowing it: each sender's messages must be shown in *causal* order (a
/// message never before one its writer's device had already written). Without restores that
/// is the order they were written in; a restore forks the sender's device, and messages of
/// the two copies that never knew each other ([`Concurrent`]) may show in either order.
/// A message in `lost_shown` (this device showed it, then lost it with its own state, and its
/// sender sent it again) may come back after later ones, but only once, like any other.
pub fn check_order(
    device: &'static str,
    shown: &[String],
    lost_shown: &BTreeSet<String>,
    concurrent: &Concurrent,
) -> Option<Violation> {
    let mut earlier: Vec<(&str, Vec<u64>)> = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for text in shown {
        let violation = || {
            Some(Violation::Order {
                device,
                text: text.clone(),
            })
        };
        let Some((sender, index)) = parse_text(text) else {
            return violation();
        };
        if !seen.insert(text.as_str()) {
            return violation();
        }
        if lost_shown.contains(text) {
            continue;
        }
        let Some(at) = earlier.iter().position(|(s, _)| *s == sender) else {
            earlier.push((sender, vec![index]));
            continue;
        };
        let Some((_, indices)) = earlier.get_mut(at) else {
            continue;
        };
        let knew = |later: u64| {
            concurrent
                .get(&(sender.to_owned(), later))
                .is_none_or(|unknown| !unknown.contains(&index))
        };
        if indices.iter().any(|&j| j >= index && knew(j)) {
            return violation();
        }
        indices.push(index);
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn order_checks_repeats_and_reversals_per_sender() {
        let texts = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let none = BTreeSet::new();
        let causal = Concurrent::new();
        assert_eq!(
            check_order("x", &texts(&["bob00001|a", "bob00002|"]), &none, &causal),
            None
        );
        assert!(check_order("x", &texts(&["bob00002|", "bob00001|"]), &none, &causal).is_some());
        assert!(check_order("x", &texts(&["bob00002|", "bob00002|"]), &none, &causal).is_some());
        // Lost with the device's own restore, sent again: back after later ones, once.
        let lost: BTreeSet<String> = texts(&["bob00001|"]).into_iter().collect();
        assert_eq!(
            check_order("x", &texts(&["bob00002|", "bob00001|"]), &lost, &causal),
            None
        );
        assert!(
            check_order(
                "x",
                &texts(&["bob00001|", "bob00002|", "bob00001|"]),
                &lost,
                &causal
            )
            .is_some()
        );
        // Bob's device wrote 1, was restored to a backup from before it, and wrote 2: the two
        // are concurrent and may show in either order, but 3 (written after 2, knowing 2) may
        // not show before 2, and 2 only once.
        let mut fork = Concurrent::new();
        fork.insert(("bob".to_owned(), 2), BTreeSet::from([1]));
        fork.insert(("bob".to_owned(), 3), BTreeSet::from([1]));
        let order = |v: &[&str]| check_order("x", &texts(v), &none, &fork);
        assert_eq!(order(&["bob00002|", "bob00001|", "bob00003|"]), None);
        assert_eq!(order(&["bob00002|", "bob00003|", "bob00001|"]), None);
        assert!(order(&["bob00003|", "bob00002|"]).is_some());
        assert!(order(&["bob00002|", "bob00001|", "bob00002|"]).is_some());
        // Without the fork, 1 after 2 is out of order.
        assert!(check_order("x", &texts(&["bob00002|", "bob00001|"]), &none, &causal).is_some());
        assert_eq!(parse_text("alice00017|zz"), Some(("alice", 17)));
    }
}
