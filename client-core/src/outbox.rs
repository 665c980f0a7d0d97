//! Sending: encrypt and commit, then deliver the outbox.
//!
//! A message is encrypted and committed together with the advanced session and its outgoing
//! blobs in one strict transaction *before* any blob leaves the device; the outbox is then
//! delivered by [`Client::flush`], with no lock held. An unacknowledged blob is retried byte
//! for byte at its original address (also after a reload or a crash), so a retry can never
//! put different bytes under the same key and nonce.

use protocol::{Session, WriteKey};
use zeroize::Zeroizing;

use crate::client::Client;
use crate::error::ClientError;
use crate::join::join_all;
use crate::platform::{Deposit, Durability, NetError, Platform, RecordStore, Transport, Write};
use crate::records::{
    self, Conversation, ConversationState, HELLO_SEQ, Message, OUTGOING_PREFIX, Outgoing, Status,
};

/// What a flush of the outbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushOutcome {
    /// Blobs acknowledged (201, or 409 over our own bytes) in this flush.
    pub delivered: u32,
    /// Blobs still waiting for a later flush.
    pub pending: u32,
    /// The last error seen, if any blob failed (typed, so the UI can tell a wrong mailbox
    /// address from one that cannot be reached).
    pub last_error: Option<NetError>,
    /// Blobs the mailbox refused because a different blob already sat at their address
    /// (an invite someone else joined first; a message marked `Conflict`). Not retried.
    pub conflicts: u32,
}

/// One outbox record: its name and content.
type OutgoingRecord = (String, Outgoing);
/// One message's outbox records, with its history number.
type MessageRecords = (u64, Vec<OutgoingRecord>);

/// What became of one message's blobs in a flush.
struct MessageResult {
    acknowledged: Vec<String>,
    remaining: usize,
    failed: bool,
    conflict: bool,
}

impl<P: Platform> Client<P> {
    /// Encrypts `text` and commits it with the advanced session and its outgoing blobs in one
    /// strict transaction. Returns the history entry's sequence number. Nothing is sent yet:
    /// call [`Client::flush`] (the UI does so right away).
    pub async fn send(&self, id: &str, text: &str) -> Result<u64, ClientError> {
        let key = self.key()?;
        let text = Zeroizing::new(text.to_owned());
        let _guard = self.lock_conversation(id).await?;
        let mut conversation = self.conversation(&key, id).await?;
        let ConversationState::Active { session, .. } = &conversation.state else {
            return Err(ClientError::NotJoined);
        };
        let pickle_key = Self::pickle_key(&key);
        let mut live = Session::from_pickle(&pickle_key, session)?;
        let blobs = live.encrypt(&mut self.rng(), text.as_bytes())?;
        let seq = conversation.next_seq;
        let now = self.now_ms();
        conversation.next_seq += 1;
        conversation.last_activity_ms = now;
        if let ConversationState::Active { session, .. } = &mut conversation.state {
            *session = live.pickle(&pickle_key);
        }
        let message = Message {
            seq,
            outgoing: true,
            text: text.to_string(),
            time_ms: now,
            status: Status::Sending,
        };
        let mut writes = vec![
            self.put(&key, records::conversation_key(id), &conversation),
            self.put(&key, records::message_key(id, seq), &message),
        ];
        for (part, blob) in blobs.into_iter().enumerate() {
            let outgoing = Outgoing {
                write_key: blob.write_key.0,
                blob: blob.blob,
            };
            writes.push(self.put(&key, records::outgoing_key(id, seq, part), &outgoing));
        }
        // Strict: these keys are about to be used on the wire; a power loss must not undo it.
        self.store().commit(writes, Durability::Strict).await?;
        Ok(seq)
    }

    /// Delivers every unacknowledged blob (of every conversation), each with its original
    /// bytes to its original address. Acknowledged blobs are removed, and a message whose
    /// blobs are all acknowledged becomes `Sent`; a message whose blob was refused is shown
    /// as `Failed` and retried by the next flush. No lock is held during any request.
    ///
    /// **In order:** within a conversation, a message's first PUT is made only once every
    /// earlier message of that conversation is acknowledged; after a failure the rest of the
    /// conversation's outbox waits for the next flush. So the mailbox receives each person's
    /// messages in the order they were written (a request that timed out but arrives late
    /// is the identical blob that the retry sends), and the peer can read them in that order.
    pub async fn flush(&self) -> Result<FlushOutcome, ClientError> {
        let key = self.key()?;
        let pending: Vec<OutgoingRecord> = self.read_prefix(&key, OUTGOING_PREFIX).await?;
        // Conversations are delivered side by side: one whose mailbox never answers costs
        // its own deadline, not every other conversation's.
        let mut conversations: Vec<(String, Vec<MessageRecords>)> = Vec::new();
        for (id, seq, items) in group_by_message(pending) {
            match conversations.iter_mut().find(|(c, _)| *c == id) {
                Some((_, messages)) => messages.push((seq, items)),
                None => conversations.push((id, vec![(seq, items)])),
            }
        }
        let runs = conversations
            .into_iter()
            .map(|(id, messages)| self.flush_conversation(id, messages))
            .collect();
        let mut outcome = FlushOutcome::default();
        for result in join_all(runs).await {
            let part = result?;
            outcome.delivered += part.delivered;
            outcome.pending += part.pending;
            outcome.conflicts += part.conflicts;
            if part.last_error.is_some() {
                outcome.last_error = part.last_error;
            }
        }
        Ok(outcome)
    }

    /// Delivers one conversation's outbox, message by message in order; stops at the first
    /// message that is not fully acknowledged (the rest waits for the next flush).
    async fn flush_conversation(
        &self,
        id: String,
        messages: Vec<MessageRecords>,
    ) -> Result<FlushOutcome, ClientError> {
        let key = self.key()?;
        let mut outcome = FlushOutcome::default();
        let Some(conversation) = self
            .read::<Conversation>(&key, &records::conversation_key(&id))
            .await?
        else {
            // The conversation was deleted: its blobs go with it.
            let deletes = messages
                .into_iter()
                .flat_map(|(_, items)| items)
                .map(|(name, _)| Write::Delete(name))
                .collect();
            self.store().commit(deletes, Durability::Relaxed).await?;
            return Ok(outcome);
        };
        let mailbox = conversation.mailbox.clone();
        drop(conversation);
        let mut blocked = false;
        for (seq, items) in messages {
            if blocked {
                outcome.pending += u32::try_from(items.len()).unwrap_or(u32::MAX);
                continue;
            }
            let result = self.deliver(&mailbox, &items, &mut outcome).await;
            blocked = result.remaining > 0;
            self.record_delivery(&id, seq, result).await?;
        }
        Ok(outcome)
    }

    /// PUTs each blob of one message; a 409 counts as ours only if the stored bytes are.
    async fn deliver(
        &self,
        mailbox: &str,
        items: &[OutgoingRecord],
        outcome: &mut FlushOutcome,
    ) -> MessageResult {
        let net = self.platform().net();
        let mut result = MessageResult {
            acknowledged: Vec::new(),
            remaining: 0,
            failed: false,
            conflict: false,
        };
        for (name, outgoing) in items {
            let write_key = WriteKey(outgoing.write_key);
            let delivered = match net.put(mailbox, &write_key, &outgoing.blob).await {
                Ok(Deposit::Stored) => Ok(true),
                // 409: our own earlier attempt, or someone else's blob. Only identical bytes
                // are ours (an address that has expired since cannot be told apart).
                Ok(Deposit::AlreadyStored) => net
                    .get(mailbox, &write_key.address())
                    .await
                    .map(|stored| stored.is_none_or(|stored| stored == outgoing.blob)),
                Err(err) => Err(err),
            };
            match delivered {
                Ok(true) => {
                    outcome.delivered += 1;
                    result.acknowledged.push(name.clone());
                }
                Ok(false) => {
                    // Retrying can never succeed: the mailbox keeps the first write.
                    result.conflict = true;
                    outcome.conflicts += 1;
                    result.acknowledged.push(name.clone());
                }
                Err(err) => {
                    // Unreachable or overloaded: still pending. Refused: shown as failed.
                    // Later blobs wait too, so that they reach the mailbox in order.
                    result.failed |= !err.is_transient();
                    result.remaining = items.len() - result.acknowledged.len();
                    outcome.pending += u32::try_from(result.remaining).unwrap_or(u32::MAX);
                    outcome.last_error = Some(err);
                    break;
                }
            }
        }
        result
    }

    /// Commits what a flush learnt about one message, under the conversation's lock (no
    /// network inside): acknowledged blobs leave the outbox, the message's status follows.
    async fn record_delivery(
        &self,
        id: &str,
        seq: u64,
        result: MessageResult,
    ) -> Result<(), ClientError> {
        let key = self.key()?;
        let _guard = self.lock_conversation(id).await?;
        let Some(mut conversation) = self
            .read::<Conversation>(&key, &records::conversation_key(id))
            .await?
        else {
            return Ok(());
        };
        let mut writes: Vec<Write> = result
            .acknowledged
            .iter()
            .map(|name| Write::Delete(name.clone()))
            .collect();
        if seq == HELLO_SEQ {
            if result.conflict {
                // Someone joined with this invite before us: the inviter is talking to them.
                conversation.state = ConversationState::InviteTaken;
                writes.push(self.put(&key, records::conversation_key(id), &conversation));
            }
        } else {
            let name = records::message_key(id, seq);
            if let Some(mut message) = self.read::<Message>(&key, &name).await? {
                let status = match (result.conflict, result.remaining, result.failed) {
                    (true, _, _) => Status::Conflict,
                    (false, 0, _) => Status::Sent,
                    (false, _, true) => Status::Failed,
                    (false, _, false) => Status::Sending,
                };
                if message.status != status && message.status != Status::Conflict {
                    message.status = status;
                    writes.push(self.put(&key, name, &message));
                }
            }
        }
        if !writes.is_empty() {
            self.store().commit(writes, Durability::Relaxed).await?;
        }
        Ok(())
    }
}

/// Groups outbox records (`out/{id}/{seq}-{part}`, in name order) by message.
fn group_by_message(pending: Vec<OutgoingRecord>) -> Vec<(String, u64, Vec<OutgoingRecord>)> {
    let mut groups: Vec<(String, u64, Vec<OutgoingRecord>)> = Vec::new();
    for (name, outgoing) in pending {
        let Some((id, seq)) = records::parse_outgoing_key(&name) else {
            continue;
        };
        match groups.last_mut() {
            Some((gid, gseq, items)) if *gid == id && *gseq == seq => items.push((name, outgoing)),
            _ => groups.push((id, seq, vec![(name, outgoing)])),
        }
    }
    groups
}
