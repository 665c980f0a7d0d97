//! Messages read by a copy of the peer's device that was lost (`docs/PROTOCOL.md` §8, "Read
//! and lost"): the reader deletes what it read ([`Client::set_delete_after_read`]), then goes
//! back to an older copy of its device (a restored profile, a power loss under relaxed
//! commits). The copy it returned to never read those blobs, and their addresses are spent:
//! nothing there to read again. The sender's blobs stay unacknowledged for ever, and a
//! retransmission check finds their addresses spent, which otherwise means "read, its
//! acknowledgement is on the way".
//!
//! So a blob found spent, and still unacknowledged [`LOST_READ_AFTER_MS`] after that was first
//! seen, is taken as read and lost: it leaves the outbox (our floor passes it, so the reader
//! holds nothing behind it) and its message is encrypted *again*, as new blobs with new
//! sequence numbers at later addresses, under the same message id
//! (`protocol::Session::encrypt_resend`): a reader that did keep it (its acknowledgement was
//! only late, say the app closed right after reading) shows it once. No key, nonce or address
//! is used twice. The sequence number is not abandoned: the reader may have counted it, and
//! its acknowledgement digests are checked against what we sent.

use std::collections::BTreeSet;

use crate::client::{Client, HistoryEntry};
use crate::error::ClientError;
use crate::platform::{Durability, Platform, RecordStore, Write};
use crate::records::{self, BlobKind, Conversation, Message, Status};
use crate::vault::VaultKey;

/// How long a blob of ours is found spent and still unacknowledged before its message is sent
/// again (ms): one retransmission interval, 5 minutes. A reader acknowledges within
/// [`crate::ACK_DELAY_READING_MAX_MS`] of reading while its app is open; past this, a lost
/// copy of its device is the likely reader, and a needless re-send costs one blob that the
/// reader recognises by its message id.
pub const LOST_READ_AFTER_MS: u64 = crate::RETRANSMIT_AFTER_MS;

/// How long an unreadable notice that stands only on lost evidence
/// ([`records::LostEvidence`]: what a lost copy of this device read, or wrote, and the peer
/// deleted) waits for the peer at most before our restore signals end the conversation (ms):
/// a day. The peer puts back what it kept as soon as it reads our acknowledgement, which it
/// does when it next has the app open; so the wait is for the peer, and it ends sooner, one
/// [`crate::RETRANSMIT_AFTER_MS`] after the peer is known to have read a blob of ours sealed
/// since ([`Client::signal_at`]). A day bounds how long the two devices may write past each
/// other unseen when neither can learn that the other reads them.
pub const LOST_EVIDENCE_WAIT_MS: u64 = 24 * 60 * 60 * 1_000;

impl<P: Platform> Client<P> {
    /// Notes which of conversation `id`'s checked blobs (sequence numbers `checked`) read as
    /// `spent` at `now`, and sends again the messages of those spent and unacknowledged for
    /// [`LOST_READ_AFTER_MS`]: their blobs leave the outbox, the messages are queued (and
    /// encrypted at once, [`Client::resend_squatted`]) and are *sending* again. Returns the
    /// messages queued, as the history shows them.
    pub(crate) async fn resend_lost_reads(
        &self,
        key: &VaultKey,
        id: &str,
        checked: &[u32],
        spent: &[u32],
        now: u64,
    ) -> Result<Vec<HistoryEntry>, ClientError> {
        let due: Vec<u32> = {
            let mut seen = self.spent_seen.borrow_mut();
            // A blob no longer spent (or no longer checked: acknowledged) starts again.
            seen.retain(|(c, seq, _)| c != id || spent.contains(seq) || !checked.contains(seq));
            for seq in spent {
                if !seen.iter().any(|(c, s, _)| c == id && s == seq) {
                    seen.push((id.to_owned(), *seq, now));
                }
            }
            seen.iter()
                .filter(|(c, _, since)| c == id && now >= since.saturating_add(LOST_READ_AFTER_MS))
                .map(|(_, seq, _)| *seq)
                .collect()
        };
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let queued = {
            let _guard = self.lock_conversation(id).await?;
            let mut conversation = self.conversation(key, id).await?;
            if conversation.ended.is_some() {
                return Ok(Vec::new());
            }
            let mut writes = Vec::new();
            let mut messages = BTreeSet::new();
            for (name, seq, outgoing) in self.outbox(key, id).await? {
                if !due.contains(&seq) {
                    continue;
                }
                writes.push(Write::Delete(name));
                if let BlobKind::Data { message } = outgoing.kind {
                    messages.insert(message);
                }
            }
            let mut queued = Vec::new();
            for message_seq in messages {
                let name = records::message_key(id, message_seq);
                let Some(mut message) = self.read::<Message>(key, &name).await? else {
                    continue;
                };
                if !message.outgoing || matches!(message.status, Status::Conflict) {
                    continue;
                }
                let queue = &mut conversation.recovery.resend;
                let fresh = !queue.contains(&message_seq);
                if fresh {
                    queue.push(message_seq);
                }
                if message.status != Status::Sending {
                    message.status = Status::Sending;
                    writes.push(self.put(key, name, &message));
                }
                if fresh {
                    queued.push(HistoryEntry::from(&message));
                }
            }
            conversation.recovery.resend.sort_unstable();
            writes.push(self.put(key, records::conversation_key(id), &conversation));
            self.store().commit(writes, Durability::Strict).await?;
            queued
        };
        self.spent_seen
            .borrow_mut()
            .retain(|(c, seq, _)| c != id || !due.contains(seq));
        if !queued.is_empty() {
            self.resend_squatted(id).await?;
        }
        Ok(queued)
    }

    /// When conversation `id`'s unreadable notice calls for our restore signals (ms since the
    /// epoch), or `None` with no notice (`docs/PROTOCOL.md` §6.9, `docs/CLIENT.md`).
    ///
    /// - Answers of the peer's that this state cannot read, or the peer's behind signal, seen
    ///   by this app session, or no lost evidence: 5 minutes after the notice was raised
    ///   ([`records::UnreadableNotice::signal_at_ms`]), so that one altered blob does not end
    ///   the conversation.
    /// - Lost evidence alone: the peer may simply be away, and it puts back what the lost copy
    ///   read once it reads our acknowledgement. So 5 minutes after the peer is known to have
    ///   read a blob of ours sealed since the evidence was found ([`Client::evidence_read_at`])
    ///   while the evidence still stands (it could not put them back, or it reads us and we
    ///   cannot read it), at most [`LOST_EVIDENCE_WAIT_MS`] after the notice, and never
    ///   before its first 5 minutes.
    ///
    /// **Never ends a conversation on the peer's absence alone for less than a day**, where
    /// ending it after 5 minutes ended on both sides conversations that a restored profile
    /// would have got back whole (a fresh outside trial in Chromium).
    pub(crate) fn signal_at(&self, id: &str, conversation: &Conversation) -> Option<u64> {
        let notice = conversation.unreadable?;
        if self.answer_unreadable(id) || conversation.lost_evidence.is_none() {
            return Some(notice.signal_at_ms());
        }
        let longest = notice.since_ms.saturating_add(LOST_EVIDENCE_WAIT_MS);
        let read = self
            .evidence_read
            .borrow()
            .iter()
            .find(|(c, _)| c == id)
            .map(|(_, at)| {
                at.saturating_add(crate::RETRANSMIT_AFTER_MS)
                    .max(notice.signal_at_ms())
            });
        Some(read.map_or(longest, |read| read.min(longest)))
    }

    /// Notes, at `now`, that the peer read a blob of ours sealed since conversation `id`'s
    /// lost evidence was found (the first time only; [`Client::signal_at`]).
    pub(crate) fn evidence_read_at(&self, id: &str, now: u64) {
        let mut read = self.evidence_read.borrow_mut();
        if !read.iter().any(|(c, _)| c == id) {
            read.push((id.to_owned(), now));
        }
    }

    /// Forgets what [`Client::evidence_read_at`] noted for conversation `id` (its evidence
    /// was answered).
    pub(crate) fn forget_evidence_read(&self, id: &str) {
        self.evidence_read.borrow_mut().retain(|(c, _)| c != id);
    }

    /// Notes [`Client::evidence_read_at`] where a retransmission check of conversation `id`
    /// found `spent` (our sequence numbers read and deleted) one sealed since its lost
    /// evidence was found.
    pub(crate) async fn note_evidence_read(
        &self,
        key: &VaultKey,
        id: &str,
        spent: &[u32],
        now: u64,
    ) -> Result<(), ClientError> {
        if spent.is_empty() {
            return Ok(());
        }
        if let Some(evidence) = self.conversation(key, id).await?.lost_evidence
            && spent.iter().any(|seq| *seq >= evidence.after_seq)
        {
            self.evidence_read_at(id, now);
        }
        Ok(())
    }
}
