//! Sending: encrypt and commit, then deliver the outbox; acknowledgements, retransmission and
//! squatted addresses (issue #10, `docs/CLIENT.md` "Delivery").
//!
//! A message is encrypted and committed together with the advanced session and its outgoing
//! blobs in one strict transaction *before* any blob leaves the device; the outbox is then
//! delivered by [`Client::flush`], with no lock held.
//!
//! **No key reuse.** A blob is deposited, and deposited again, only byte for byte at its one
//! address (also after a reload or a crash), so a retry can never put different bytes under
//! the same key and nonce. A blob stays in the outbox (sealed) from its encryption until the
//! peer's acknowledgement covers its sequence number; a message whose address was taken by
//! foreign bytes is encrypted *again*, as new blobs with new sequence numbers at later
//! addresses (the abandoned ones are never written by us again).
//!
//! **Floor.** Every blob carries `floor` = our lowest sequence number of a hello or data blob
//! still in the outbox (or the session's next one): the peer counts every lower one as
//! settled, so neither an abandoned sequence number nor an acknowledgement-only blob it never
//! reads holds its acknowledgements or our later messages back.

use std::collections::BTreeSet;

use hmac::{Hmac, KeyInit, Mac};
use protocol::{Address, OutgoingBlob, Session, WINDOW, WriteKey};
use rand_core::Rng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::client::{Client, DECOY_KEY_LABEL, HistoryEntry};
use crate::decoys::{FETCH_BATCH, padded_batches};
use crate::error::ClientError;
use crate::join::join_all;
use crate::platform::{Deposit, Durability, NetError, Platform, RecordStore, Transport, Write};
use crate::records::{
    self, ACK_PREFIX, AckDue, BlobKind, Conversation, ConversationState, EndReason, Interference,
    KEPT_HELLO_PREFIX, KeptHello, KeptLostBlob, KeptLostBlobs, Message, OUTGOING_PREFIX, Outgoing,
    Status,
};
use crate::vault::VaultKey;

/// Label of the vault subkey that hedges message ids ([`Client::new_message_id`]).
const MESSAGE_ID_KEY_LABEL: &str = "message-id";

/// Shortest delay before an owed acknowledgement goes out (ms).
pub const ACK_DELAY_MIN_MS: u64 = 2_000;
/// Longest delay before an owed acknowledgement goes out (ms). The delay is uniform in
/// [`ACK_DELAY_MIN_MS`, `ACK_DELAY_MAX_MS`): reading and acknowledging are not tied to one
/// instant, and a reply written within it carries the acknowledgement instead (no extra
/// blob).
pub const ACK_DELAY_MAX_MS: u64 = 8_000;
/// Shortest delay of an owed acknowledgement in the conversation open in front
/// ([`Client::set_reading`]), where the person is likely to reply (ms).
pub const ACK_DELAY_READING_MIN_MS: u64 = 20_000;
/// Longest such delay (ms). A reply typed within it carries the acknowledgement, so a chat
/// going back and forth costs no acknowledgement-only blobs; the other side sees *delivered*
/// with the reply, or at most 40 s after reading. (Measured in workerd: an acknowledgement
/// blob for every message read was about a third of a subscribed user's operations,
/// `tests/bench/edge-cost.mjs`.)
pub const ACK_DELAY_READING_MAX_MS: u64 = 40_000;
/// A blob the mailbox stored and the peer has not acknowledged is checked again (is it still
/// on the mailbox?) this long after it was last seen there (ms): 5 minutes.
pub const RETRANSMIT_AFTER_MS: u64 = 5 * 60 * 1_000;
/// After a retransmission check that found blobs gone and deposited them again, the next
/// check comes this much sooner than usual (ms): 1 minute.
pub const RETRANSMIT_RECHECK_MS: u64 = 60 * 1_000;
/// Longest interval between retransmission checks of a conversation whose unconfirmed blobs
/// are all acknowledgement-only (ms): 1 hour. Such blobs are confirmed only by the peer's
/// next blob, so the one that ends a chat stays unconfirmed until the peer writes again; the
/// interval doubles from [`RETRANSMIT_AFTER_MS`] with each check that finds them all still on
/// the mailbox, up to this. Losing one delays nothing the peer reads (every later blob
/// carries the same acknowledgements, and an acknowledgement-only blob starts no sending
/// chain): it matters only to the peer's *delivered* marks, and to the peer's order once a
/// later blob of ours stands behind it, which is checked at the usual pace again.
pub const RETRANSMIT_ACK_MAX_MS: u64 = 60 * 60 * 1_000;
/// Most blobs one conversation checks per flush: one fetch request of the usual size
/// ([`FETCH_BATCH`]), decoys included.
pub const MAX_RETRANSMIT_CHECK: usize = FETCH_BATCH;
/// How many times in a row a message whose address was taken is encrypted again at a later
/// address before it is given up ([`Status::Conflict`]) and the conversation says someone
/// interferes.
pub const MAX_RESENDS: u32 = 3;
/// Upcoming sending positions probed for blobs a lost copy of this device left (one padded
/// fetch).
pub const PROBE_POSITIONS: u32 = 48;

/// Of [`PROBE_POSITIONS`], while no send step is pending: the first positions of the sending
/// chain our next step starts (a lost copy that read a chain of the peer's we have not read
/// yet may have started it; the peer looks for it at its first [`WINDOW`] positions).
pub const NEXT_CHAIN_PROBE: u32 = 8;

/// Most of our sequence numbers abandoned in a row (their addresses unreadable by the peer):
/// below the receive window ([`WINDOW`] = 16), so the peer's window still reaches the next
/// blob we deposit.
pub const MAX_ABANDONED_RUN: u32 = WINDOW - 1;

/// Most of our data blobs sealed and not yet on the mailbox before another message is
/// sealed: a message sent meanwhile waits, as plaintext in the history and queued in
/// [`Recovery::resend`](records::Recovery::resend), until fewer wait (the mailbox stored
/// them). When a rollback or a squatted address makes the blobs still waiting go again behind
/// an earlier message, their positions are abandoned; kept this far below
/// [`MAX_ABANDONED_RUN`], the peer's window still reaches the blobs sent again, so the earlier
/// message keeps its place (simulator `all` seeds 1189, 2889: 22 and 26 blobs sealed while
/// the mailbox was down, too many to pull behind the message a restore made go again).
pub const MAX_SEALED_AHEAD: u32 = 8;

// A chain started after a rollback leaves at most `NEXT_CHAIN_SKIP_MAX` positions empty; the
// blobs sealed there and abandoned later must fit in the rest of the peer's window.
const _: () = assert!(protocol::NEXT_CHAIN_SKIP_MAX + MAX_SEALED_AHEAD <= MAX_ABANDONED_RUN);

/// Our next sending positions found taken ([`Client::taken_positions`]).
pub(crate) struct Taken {
    /// The first upcoming address when probed (the skip applies only if the session still
    /// starts there).
    first: Address,
    /// Taken positions in a row from it.
    count: u32,
    /// The blobs found at the probed addresses.
    found: Vec<(Address, Vec<u8>)>,
}

/// What [`Client::skip_taken`] moved past.
#[derive(Default)]
pub(crate) struct Skipped {
    /// The positions were at the start of the chain our pending ratchet step opens
    /// ([`Client::doubt_left_chain`] is then due).
    pub(crate) next_chain: bool,
    /// Blobs of a lost copy of this device among them, to keep on the mailbox
    /// ([`Client::keep_lost_blobs`]).
    pub(crate) lost: Vec<(WriteKey, Vec<u8>)>,
    /// Some of them were spent: a lost copy of this device wrote there and the peer read and
    /// deleted it ([`records::LostEvidence`], [`Skipped::note_evidence`]).
    pub(crate) spent: bool,
}

impl Skipped {
    /// Records in `conversation` the evidence these skipped positions give, if any and none
    /// stands: our next sequence number is that of `live`, which skipped them.
    pub(crate) fn note_evidence(&self, conversation: &mut Conversation, live: &Session, now: u64) {
        if !self.spent {
            return;
        }
        let after_seq = live.next_seq().max(live.peer_acknowledgement().next);
        match &mut conversation.lost_evidence {
            None => {
                conversation.lost_evidence = Some(records::LostEvidence {
                    since_ms: now,
                    after_seq,
                });
            }
            // Our numbers up to here are the lost copy's too: the peer's confirmation of
            // them may be of its blobs, not ours (`all --delete-after-read` seed 6220).
            Some(evidence) => evidence.after_seq = evidence.after_seq.max(after_seq),
        }
    }
}

/// What a flush of the outbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushOutcome {
    /// Blobs the mailbox stored (201, or 409 over our own bytes) in this flush.
    pub delivered: u32,
    /// Blobs still waiting for a later flush to reach the mailbox.
    pub pending: u32,
    /// The last error seen, if any blob failed (typed, so the UI can tell a wrong mailbox
    /// address from one that cannot be reached).
    pub last_error: Option<NetError>,
    /// Blobs the mailbox refused because a different blob already sat at their address (an
    /// invite someone else joined first; a message sent again at a later address, or given
    /// up on).
    pub conflicts: u32,
    /// Acknowledgement-only blobs the mailbox stored in this flush.
    pub acks_sent: u32,
    /// Stored but unacknowledged blobs deposited again because their address read empty
    /// (expired or lost).
    pub retransmitted: u32,
    /// When to flush next (ms since the epoch): an owed acknowledgement falls due or a
    /// retransmission check is due ([`Client::next_flush_ms`]).
    pub flush_at_ms: Option<u64>,
    /// Conversations that ended in this flush: the retransmission check found the other
    /// person's restore signal (`docs/PROTOCOL.md` §6.9; `EndReason::Diverged`).
    pub ended: u32,
    /// Our hellos as joiner deposited again, confirmed but expired, for a copy of the
    /// inviter's device restored to before it accepted ([`KeptHello`]).
    pub hellos_kept: u32,
    /// Conversations with messages held back by [`Client::send`] (while
    /// [`MAX_SEALED_AHEAD`] data blobs waited) whose earlier blobs are now all on the mailbox:
    /// poll them now. The poll reads the peer's acknowledgements first, so a rollback is found
    /// before new positions are picked; then it seals the held messages and asks for a flush
    /// (`PollOutcome::flush_at_ms`).
    pub poll_now: Vec<String>,
    /// Messages encrypted again because their blobs were read (spent) but never acknowledged:
    /// a copy of the peer's device that read them was lost (`docs/PROTOCOL.md` §8), as the
    /// history now shows them (*sending*). The peer gets them after the messages it read
    /// since: the one place where its history gives way on order.
    pub resent: Vec<HistoryEntry>,
    /// Blobs of ours the mailbox stored again where the peer had deleted them: its device went
    /// back to a copy that never read them (`crate::put_back`).
    pub put_back: u32,
    /// The messages some of whose blobs went back, as the history shows them. The peer's
    /// restored copy shows each where it comes, possibly after later ones it had not lost:
    /// the one place where order gives way (`docs/PROTOCOL.md` §8, "Read and lost"), as for
    /// [`FlushOutcome::resent`].
    pub put_back_messages: Vec<HistoryEntry>,
}

/// One outbox record: its name, sequence number and content.
pub(crate) type OutRecord = (String, u32, Outgoing);

/// What the mailbox did with one PUT.
enum Put {
    /// Stored (201), or our very bytes were there (409 read back).
    Stored,
    /// Different bytes were there (409 read back).
    Foreign,
    /// The address is spent (410): a blob stood there and its reader deleted it; nothing to
    /// deposit.
    Read,
}

/// What one conversation's delivery learnt, to commit under its lock.
#[derive(Default)]
struct Delivery {
    /// Outcome by sequence number, in send order.
    results: Vec<(u32, Put)>,
    /// The sequence number whose PUT the mailbox refused (not transient), if any.
    refused: Option<u32>,
    /// Whether this delivery made the first attempt ever at our hello: foreign bytes found
    /// then cannot be an expired hello of ours written over (`crate::hello_contest`).
    hello_first_try: bool,
}

impl<P: Platform> Client<P> {
    /// Encrypts `text` and commits it with the advanced session and its outgoing blobs in one
    /// strict transaction. Returns the history entry's sequence number. Nothing is sent yet:
    /// call [`Client::flush`] (the UI does so right away). The message carries our
    /// acknowledgement of the peer, so an owed acknowledgement-only blob is cancelled.
    pub async fn send(&self, id: &str, text: &str) -> Result<u64, ClientError> {
        let key = self.key()?;
        // Refused here, not only when sealed: a message held back while blobs wait for the
        // mailbox (`MAX_SEALED_AHEAD`) is sealed later, where a refusal would come too late.
        protocol::check_length(text.as_bytes())?;
        let text = Zeroizing::new(text.to_owned());
        let _guard = self.lock_conversation(id).await?;
        let mut conversation = self.conversation(&key, id).await?;
        if let Some(reason) = conversation.ended {
            return Err(ClientError::ConversationEnded { reason });
        }
        let mut live = Self::load_session(&key, &conversation)?;
        let seq = conversation.next_seq;
        // Messages waiting to be sent again (squatted) or to be sealed (held back below) go
        // first: order is kept.
        let (mut writes, pending_floor, sealed_ahead) = self
            .encrypt_queued(&key, id, &mut conversation, &mut live)
            .await?;
        let now = self.now_ms();
        // Sealed only while few of our data blobs wait for the mailbox: otherwise it waits in
        // the queue as plaintext, and is sealed once those are on the mailbox. A rollback or
        // a squatted address found meanwhile then abandons few positions, and the messages
        // sent again keep their place before this one (`MAX_SEALED_AHEAD`).
        let hold_back =
            !conversation.recovery.resend.is_empty() || sealed_ahead >= MAX_SEALED_AHEAD;
        let message_id = if hold_back {
            conversation.recovery.resend.push(seq);
            // Its id now, kept with it: a copy of this device restored to a backup holding
            // it queued seals it under the same id as the lost copy did, and the peer shows
            // it once.
            self.new_message_id(&key, id, seq, text.as_bytes())
        } else {
            let (_, mut blobs, message_id) = self
                .encrypt_entry(
                    &key,
                    id,
                    &mut live,
                    seq,
                    text.as_bytes(),
                    None,
                    pending_floor,
                    &mut conversation.recovery,
                )
                .await?;
            writes.append(&mut blobs);
            message_id
        };
        conversation.next_seq += 1;
        conversation.last_activity_ms = now;
        if let ConversationState::Active { session, .. } = &mut conversation.state {
            *session = live.pickle(&Self::pickle_key(&key));
        }
        let message = Message {
            seq,
            outgoing: true,
            text: text.to_string(),
            time_ms: now,
            status: Status::Sending,
            message_id,
        };
        let carries_ack = !writes.is_empty();
        writes.push(self.put(&key, records::conversation_key(id), &conversation));
        writes.push(self.put(&key, records::message_key(id, seq), &message));
        if carries_ack {
            // What was sealed carries our acknowledgement.
            writes.push(Write::Delete(records::ack_key(id)));
        }
        // Strict: these keys are about to be used on the wire; a power loss must not undo it.
        self.store().commit(writes, Durability::Strict).await?;
        Ok(seq)
    }

    /// The outbox record of a blob just sealed (not yet on the mailbox), as a write.
    pub(crate) fn put_outgoing(
        &self,
        key: &VaultKey,
        id: &str,
        blob: OutgoingBlob,
        kind: BlobKind,
    ) -> Write {
        let name = records::outgoing_key(id, blob.seq);
        let outgoing = Outgoing {
            write_key: blob.write_key.0,
            blob: blob.blob,
            kind,
            stored: false,
            checked_ms: 0,
        };
        self.put(key, name, &outgoing)
    }

    /// Encrypts history entry `entry`'s text on `live` into outbox writes: as a new message,
    /// or, given the `message_id` of its first sending, as that message again (the peer shows
    /// it once). `pending_floor`: the lowest sequence number of blobs encrypted earlier in the
    /// same transaction (not yet in the store). Returns the first new sequence number, the
    /// writes and the message id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn encrypt_entry(
        &self,
        key: &VaultKey,
        id: &str,
        live: &mut Session,
        entry: u64,
        text: &[u8],
        message_id: Option<[u8; 8]>,
        pending_floor: Option<u32>,
        recovery: &mut records::Recovery,
    ) -> Result<(u32, Vec<Write>, [u8; 8]), ClientError> {
        let floor = self.floor(key, id, live, pending_floor).await?;
        let first = live.next_seq();
        // A new chain's first positions left empty count as abandoned addresses: the peer
        // looks for the chain only at its first `W` positions, so blobs of ours pulled back
        // later (`MAX_ABANDONED_RUN`) must not push the chain's first readable blob past them
        // (simulator `restore` seed 1341: a chain started at position 15 after a rollback,
        // a second rollback pulled its 4 unsent blobs, and the messages sent again at 19 and
        // on were never read).
        if let Some(lead) = live.upcoming_chain_lead() {
            recovery.abandoned_run = lead;
        }
        let message_id = match message_id.filter(|m| *m != [0; 8]) {
            Some(message_id) => message_id,
            None => self.new_message_id(key, id, entry, text),
        };
        let blobs = live.encrypt_resend(&mut self.rng(), text, floor, message_id)?;
        let writes = blobs
            .into_iter()
            .map(|blob| self.put_outgoing(key, id, blob, BlobKind::Data { message: entry }))
            .collect();
        Ok((first, writes, message_id))
    }

    /// A new message's id, hedged like the protocol's blob hedges:
    /// `HMAC-SHA256(vault subkey "message-id", z ‖ u64be(len(id)) ‖ id ‖ u64be(entry) ‖ text)[0..8]`
    /// with `z` 32 fresh random bytes. A device restored together with its random generator
    /// (a VM snapshot) draws the same `z` again; were the id `z` alone, its next message would
    /// carry the id of one the lost copy sent, and the peer would drop it as already shown
    /// while acknowledging it (a false *delivered*). The text makes the ids differ.
    fn new_message_id(&self, key: &VaultKey, id: &str, entry: u64, text: &[u8]) -> [u8; 8] {
        let mut z = Zeroizing::new([0u8; 32]);
        self.rng().fill_bytes(&mut z[..]);
        let subkey = key.subkey(MESSAGE_ID_KEY_LABEL);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&subkey[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&z[..]);
        mac.update(&(id.len() as u64).to_be_bytes());
        mac.update(id.as_bytes());
        mac.update(&entry.to_be_bytes());
        mac.update(text);
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        match full.first_chunk::<8>().copied() {
            // Zero means "no id" to the protocol.
            Some(m) if m != [0; 8] => m,
            _ => [1, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    /// Our floor: the lowest sequence number of a blob still in the outbox that the peer must
    /// read (the hello, a message fragment), or the session's next one. Acknowledgement-only
    /// blobs stay in the outbox until confirmed (and are checked like the others) but never
    /// hold the floor: they show nothing, so the peer has no reason to wait for one, and one
    /// the peer never reads (sealed on a chain it no longer watches, after a restore) would
    /// otherwise keep every later message of ours held behind its gap (`docs/PROTOCOL.md` §8).
    async fn floor(
        &self,
        key: &VaultKey,
        id: &str,
        live: &Session,
        pending_floor: Option<u32>,
    ) -> Result<u32, ClientError> {
        let (outbox, _) = self
            .read_prefix_split::<Outgoing>(key, &records::outgoing_prefix(id))
            .await?;
        let lowest = outbox
            .iter()
            .filter(|(_, outgoing)| outgoing.kind.holds_floor())
            .filter_map(|(name, _)| records::parse_outgoing_key(name))
            .map(|(_, seq)| seq)
            .chain(pending_floor)
            .min();
        let next = live.next_seq();
        Ok(lowest.map_or(next, |l| l.min(next)))
    }

    /// Delivers the outbox of every conversation. First, every acknowledgement that is due
    /// is encrypted and committed ([`ACK_DELAY_MIN_MS`]). Then each blob not yet on the
    /// mailbox is PUT with its original bytes at its original address; then stored blobs
    /// the peer has not acknowledged are checked (at most [`MAX_RETRANSMIT_CHECK`] per
    /// conversation, once every [`RETRANSMIT_AFTER_MS`]) and deposited again, byte for
    /// byte, where their address reads empty. No lock is held during any request.
    ///
    /// **In order:** within a conversation a blob is PUT only once every earlier one is on
    /// the mailbox; after a failure the rest waits for the next flush. So the mailbox receives
    /// each person's blobs in the order they were written (a request that timed out but
    /// arrives late is the identical blob that the retry sends).
    pub async fn flush(&self) -> Result<FlushOutcome, ClientError> {
        let key = self.key()?;
        self.encrypt_due_acks(&key).await?;
        let (pending, dropped) = self
            .read_prefix_split::<Outgoing>(&key, OUTGOING_PREFIX)
            .await?;
        // Protocol-v1 outbox records (and names of no known form) can never be sent.
        let mut drops: Vec<Write> = dropped.into_iter().map(Write::Delete).collect();
        let mut conversations: Vec<(String, Vec<OutRecord>)> = Vec::new();
        for (name, outgoing) in pending {
            let Some((id, seq)) = records::parse_outgoing_key(&name) else {
                drops.push(Write::Delete(name));
                continue;
            };
            match conversations.iter_mut().find(|(c, _)| *c == id) {
                Some((_, items)) => items.push((name, seq, outgoing)),
                None => conversations.push((id, vec![(name, seq, outgoing)])),
            }
        }
        if !drops.is_empty() {
            self.store().commit(drops, Durability::Relaxed).await?;
        }
        self.keep_hello_contests(|id| {
            conversations.iter().any(|(c, items)| {
                c == id
                    && items
                        .iter()
                        .any(|(_, _, o)| o.kind == BlobKind::Hello && !o.stored)
            })
        });
        // Conversations are delivered side by side: one whose mailbox never answers costs
        // its own deadline, not every other conversation's.
        let ids: Vec<String> = conversations.iter().map(|(id, _)| id.clone()).collect();
        let runs = conversations
            .into_iter()
            .map(|(id, items)| self.flush_conversation(id, items))
            .collect();
        let mut outcome = FlushOutcome::default();
        for (id, result) in ids.into_iter().zip(join_all(runs).await) {
            let part = result?;
            if part.conflicts == 0 && part.last_error.is_none() && self.held_back(&key, &id).await?
            {
                outcome.poll_now.push(id);
            }
            outcome.delivered += part.delivered;
            outcome.pending += part.pending;
            outcome.conflicts += part.conflicts;
            outcome.acks_sent += part.acks_sent;
            outcome.retransmitted += part.retransmitted;
            outcome.resent.extend(part.resent);
            outcome.put_back += part.put_back;
            outcome.put_back_messages.extend(part.put_back_messages);
            outcome.hellos_kept += part.hellos_kept;
            if part.last_error.is_some() {
                outcome.last_error = part.last_error;
            }
        }
        if let Err(err) = self.keep_hellos(&key, &mut outcome).await {
            match err {
                ClientError::Network(err) => outcome.last_error = Some(err),
                other => return Err(other),
            }
        }
        outcome.flush_at_ms = self.next_flush_ms().await?;
        if let Some(at) = self.hello_contest_recheck_ms(self.now_ms()) {
            outcome.flush_at_ms = Some(outcome.flush_at_ms.map_or(at, |n| n.min(at)));
        }
        if !outcome.resent.is_empty() {
            // Their new blobs wait in the outbox: deliver them now.
            outcome.flush_at_ms = Some(self.now_ms());
        }
        Ok(outcome)
    }

    /// Whether conversation `id` has messages held back by [`Client::send`] (queued in
    /// [`Recovery::resend`](records::Recovery::resend)) and none of its data blobs waits for
    /// the mailbox any more: the next poll seals them ([`FlushOutcome::poll_now`]).
    async fn held_back(&self, key: &VaultKey, id: &str) -> Result<bool, ClientError> {
        let waiting = self
            .read::<Conversation>(key, &records::conversation_key(id))
            .await?
            .is_some_and(|c| !c.recovery.resend.is_empty() && c.ended.is_none());
        Ok(waiting && self.unstored_data_blobs(key, id).await? == 0)
    }

    /// Encrypts and commits (strictly, like a send) an acknowledgement-only blob for every
    /// conversation whose owed acknowledgement is due. It is deposited by the flush and kept,
    /// like any blob of ours, until the peer's next blob confirms it (deposited again if its
    /// address reads empty meanwhile), but never acknowledged for its own sake.
    async fn encrypt_due_acks(&self, key: &VaultKey) -> Result<(), ClientError> {
        let now = self.now_ms();
        for (name, due) in self.read_prefix_lenient::<AckDue>(key, ACK_PREFIX).await? {
            if due.due_ms > now {
                continue;
            }
            let Some(id) = name.strip_prefix(ACK_PREFIX) else {
                continue;
            };
            // A fork signal (below) must land where the peer reads: past the positions our
            // lost copy used, which the mailbox still holds.
            let unreadable = self
                .read::<Conversation>(key, &records::conversation_key(id))
                .await?
                .is_some_and(|c| c.unreadable.is_some());
            let taken = if unreadable {
                self.taken_positions(key, id).await
            } else {
                None
            };
            let _guard = self.lock_conversation(id).await?;
            match self.read_lenient::<AckDue>(key, &name).await? {
                Some(due) if due.due_ms <= now => {}
                _ => continue,
            }
            let forget = vec![Write::Delete(name.clone())];
            let Some(mut conversation) = self
                .read::<Conversation>(key, &records::conversation_key(id))
                .await?
            else {
                self.store().commit(forget, Durability::Relaxed).await?;
                continue;
            };
            if conversation.ended.is_some() {
                // Nobody can read it: the conversation cannot go on.
                self.store().commit(forget, Durability::Relaxed).await?;
                continue;
            }
            let mut live = match Self::load_session(key, &conversation) {
                Ok(live) => live,
                Err(ClientError::ConversationEnded { .. } | ClientError::NotJoined) => {
                    self.store().commit(forget, Durability::Relaxed).await?;
                    continue;
                }
                Err(err) => return Err(err),
            };
            let floor = self.floor(key, id, &live, None).await?;
            // While the peer's answers cannot be read (it answered a key this device lost to a
            // restore), the acknowledgement runs our pending ratchet step: the peer then sees a
            // chain it cannot follow and is told the conversation cannot go on, instead of
            // waiting for us for ever.
            let mut writes = vec![Write::Delete(name.clone())];
            let blobs = if conversation.unreadable.is_some() {
                let skipped = Self::skip_taken(&mut live, taken);
                skipped.note_evidence(&mut conversation, &live, self.now_ms());
                self.keep_lost_blobs(key, id, &live, skipped.lost, &mut writes)
                    .await?;
                live.encrypt_fork_signal(&mut self.rng(), floor)?
            } else {
                vec![live.encrypt_acknowledgement(&mut self.rng(), floor)?]
            };
            if let ConversationState::Active { session, .. } = &mut conversation.state {
                *session = live.pickle(&Self::pickle_key(key));
            }
            for blob in blobs {
                writes.push(self.put_outgoing(key, id, blob, BlobKind::Ack));
            }
            writes.push(self.put(key, records::conversation_key(id), &conversation));
            self.store().commit(writes, Durability::Strict).await?;
        }
        Ok(())
    }

    /// Delivers one conversation's outbox in send order, stopping at the first blob that is
    /// not stored; then runs its retransmission check.
    async fn flush_conversation(
        &self,
        id: String,
        items: Vec<OutRecord>,
    ) -> Result<FlushOutcome, ClientError> {
        let key = self.key()?;
        let mut outcome = FlushOutcome::default();
        let Some(conversation) = self
            .read::<Conversation>(&key, &records::conversation_key(&id))
            .await?
        else {
            // The conversation was deleted: its blobs go with it.
            let deletes = items
                .into_iter()
                .map(|(name, _, _)| Write::Delete(name))
                .collect();
            self.store().commit(deletes, Durability::Relaxed).await?;
            return Ok(outcome);
        };
        if conversation.ended.is_some() {
            return Ok(outcome);
        }
        let mailbox = conversation.mailbox.clone();
        let put_back = conversation
            .put_back
            .filter(|round| round.done_ms.is_none());
        drop(conversation);
        // What the peer's lost copy read goes back first: it lies before what we deposit now.
        if let Some(round) = put_back {
            // A round that a network error stops is resumed by a later flush (or given up,
            // `put_back::MAX_PUT_BACK_TRIES`); it never holds back what we send now, nor
            // reports its error as this flush's: our own blobs may well reach the mailbox.
            let (stored, messages, _failure) = self
                .put_back_kept(&key, &id, &mailbox, round, &items)
                .await?;
            outcome.put_back += stored;
            outcome.put_back_messages.extend(messages);
        }
        let net = self.platform().net();
        let mut delivery = Delivery::default();
        let unstored: Vec<&OutRecord> = items.iter().filter(|(_, _, o)| !o.stored).collect();
        let mut marks = Depositing {
            set: &self.depositing,
            id: &id,
            seqs: Vec::new(),
        };
        for (at, (name, seq, outgoing)) in unstored.iter().enumerate() {
            if outgoing.kind == BlobKind::Hello {
                if self.hello_contest_quiet(&id, self.now_ms()) {
                    // Contested and tried a moment ago: everything waits behind it.
                    outcome.pending += u32::try_from(unstored.len() - at - 1).unwrap_or(0);
                    break;
                }
                if outgoing.checked_ms == 0 {
                    delivery.hello_first_try = self.mark_hello_tried(&key, &id, *seq).await?;
                }
            }
            // Marked before the record is read again: a poll that learns of a rollback
            // meanwhile pulls unsent blobs back (their messages go again behind an earlier
            // one) but leaves a marked one alone, and one it pulled before is not deposited.
            marks.mark(*seq);
            if self.read::<Outgoing>(&key, name).await?.is_none() {
                // Confirmed meanwhile, or pulled back: nothing to deposit.
                continue;
            }
            match deposit(net, &mailbox, outgoing).await {
                Ok(put @ (Put::Stored | Put::Read)) => {
                    outcome.delivered += 1;
                    delivery.results.push((*seq, put));
                }
                Ok(Put::Foreign) => {
                    // Later blobs are encrypted again behind this one (or wait): stop here.
                    outcome.conflicts += 1;
                    delivery.results.push((*seq, Put::Foreign));
                    outcome.pending += u32::try_from(unstored.len() - at - 1).unwrap_or(0);
                    break;
                }
                Err(err) => {
                    // Unreachable or overloaded: still pending. Refused: shown as failed.
                    // Later blobs wait too, so that they reach the mailbox in order.
                    if !err.is_transient() {
                        delivery.refused = Some(*seq);
                    }
                    outcome.pending += u32::try_from(unstored.len() - at).unwrap_or(u32::MAX);
                    outcome.last_error = Some(err);
                    break;
                }
            }
        }
        if !delivery.results.is_empty() || delivery.refused.is_some() {
            outcome.acks_sent += self.record_delivery(&id, delivery).await?;
        }
        drop(marks);
        if let Err(err) = self.retransmit(&id, &mailbox, &items, &mut outcome).await {
            match err {
                ClientError::Network(err) => outcome.last_error = Some(err),
                other => return Err(other),
            }
        }
        Ok(outcome)
    }

    /// Records, before our hello `seq` of conversation `id` is first PUT, that it was tried
    /// (its `checked_ms`, unused while a blob is not stored, becomes the time of the first
    /// try; strict, so that a power loss cannot undo it while the PUT may have landed).
    /// Returns whether this is that first try: foreign bytes found now mean someone wrote
    /// there before our hello ever could (`crate::hello_contest`).
    async fn mark_hello_tried(
        &self,
        key: &VaultKey,
        id: &str,
        seq: u32,
    ) -> Result<bool, ClientError> {
        let _guard = self.lock_conversation(id).await?;
        let name = records::outgoing_key(id, seq);
        let Some(mut outgoing) = self.read::<Outgoing>(key, &name).await? else {
            return Ok(false);
        };
        if outgoing.stored || outgoing.checked_ms != 0 {
            return Ok(false);
        }
        outgoing.checked_ms = self.now_ms().max(1);
        let write = self.put(key, name, &outgoing);
        self.store().commit(vec![write], Durability::Strict).await?;
        Ok(true)
    }

    /// Commits what a flush learnt about one conversation's blobs, under its lock (no
    /// network inside): stored blobs are marked stored, squatted ones are abandoned and their messages queued to be encrypted
    /// again, statuses follow. Returns the acknowledgement-only blobs stored.
    async fn record_delivery(&self, id: &str, delivery: Delivery) -> Result<u32, ClientError> {
        let key = self.key()?;
        let _guard = self.lock_conversation(id).await?;
        let Some(mut conversation) = self
            .read::<Conversation>(&key, &records::conversation_key(id))
            .await?
        else {
            return Ok(0);
        };
        let mut outbox = self.outbox(&key, id).await?;
        let now = self.now_ms();
        let mut writes = Vec::new();
        let mut touched = BTreeSet::new();
        let mut given_up = BTreeSet::new();
        let mut conversation_changed = false;
        let mut acks = 0;
        // Our sequence numbers whose blobs never reached the mailbox and never will.
        let mut abandoned = Vec::new();
        for (seq, put) in delivery.results {
            // Gone: the peer acknowledged it meanwhile (or it was abandoned).
            let Some(at) = outbox.iter().position(|(_, s, _)| *s == seq) else {
                continue;
            };
            match put {
                Put::Stored | Put::Read => {
                    if conversation.recovery.abandoned_run != 0
                        || conversation.recovery.resends != 0
                    {
                        conversation.recovery.abandoned_run = 0;
                        conversation.recovery.resends = 0;
                        conversation_changed = true;
                    }
                    let Some((name, _, outgoing)) = outbox.get_mut(at) else {
                        continue;
                    };
                    // Every blob, acknowledgement-only ones too, stays until the peer
                    // confirms it (an acknowledgement may be the only news of what we read);
                    // our floor passes acknowledgement-only ones, so none holds later blobs.
                    if outgoing.kind == BlobKind::Ack {
                        acks += 1;
                    }
                    outgoing.stored = true;
                    outgoing.checked_ms = now;
                    writes.push(self.put(&key, name.clone(), &*outgoing));
                    if let BlobKind::Data { message } = outgoing.kind {
                        touched.insert(message);
                    }
                }
                Put::Foreign => {
                    let kind = outbox.get(at).map(|(_, _, o)| o.kind);
                    match kind {
                        Some(BlobKind::Hello)
                            if !delivery.hello_first_try
                                && !self.hello_contest_settled(id, now) =>
                        {
                            // Not final yet: the inviter may have read our hello before it
                            // expired (`crate::hello_contest`). It stays, and so does
                            // everything behind it, while polls watch for the answer.
                        }
                        Some(BlobKind::Hello) => {
                            // Found at our first attempt, or polls watched long enough without
                            // an answer: someone joined with this invite before us (the
                            // inviter is talking to them), or wrote junk there first.
                            conversation_changed = true;
                            self.end_hello_contest(id);
                            conversation.state = ConversationState::InviteTaken;
                            for (name, _, _) in outbox.drain(..) {
                                writes.push(Write::Delete(name));
                            }
                            writes.push(Write::Delete(records::kept_hello_key(id)));
                        }
                        Some(BlobKind::Ack) | None => {
                            conversation_changed = true;
                            if let Some((name, seq, _)) =
                                (at < outbox.len()).then(|| outbox.remove(at))
                            {
                                writes.push(Write::Delete(name));
                                abandoned.push(seq);
                            }
                            // The acknowledgement is owed again, at a later position: it may
                            // be the only news the peer gets of what we read (or of its own
                            // rollback, which our digest shows it), and we may have nothing
                            // more to send (the simulator's `all` seed 5985: a restored copy's
                            // acknowledgement met its lost copy's blob, and the peer never
                            // learnt it had gone back, its later messages held for ever).
                            let due_ms = now.saturating_add(self.ack_delay_ms(id));
                            writes.push(self.put(&key, records::ack_key(id), &AckDue { due_ms }));
                        }
                        Some(BlobKind::Data { message }) => {
                            conversation_changed = true;
                            touched.insert(message);
                            self.doubt_chain_before(
                                &key,
                                &mut conversation,
                                &mut outbox,
                                seq,
                                &mut writes,
                                &mut touched,
                            )?;
                            squatted(
                                &mut conversation,
                                &mut outbox,
                                message,
                                &mut writes,
                                &mut touched,
                                &mut given_up,
                                &mut abandoned,
                                now,
                            );
                        }
                    }
                }
            }
        }
        let refused_message = delivery.refused.and_then(|seq| {
            outbox.iter().find_map(|(_, s, o)| match o.kind {
                BlobKind::Data { message } if *s == seq => Some(message),
                _ => None,
            })
        });
        touched.extend(refused_message);
        for message_seq in touched {
            let blobs: Vec<&Outgoing> = outbox
                .iter()
                .filter(|(_, _, o)| {
                    o.kind
                        == (BlobKind::Data {
                            message: message_seq,
                        })
                })
                .map(|(_, _, o)| o)
                .collect();
            let status = if given_up.contains(&message_seq) {
                Status::Conflict
            } else if conversation.recovery.resend.contains(&message_seq) {
                Status::Sending
            } else if blobs.is_empty() {
                // Acknowledged meanwhile: the receive path made it delivered.
                continue;
            } else if blobs.iter().all(|o| o.stored) {
                if conversation.unreadable.is_some() {
                    // On the mailbox, but the other person cannot read it (the unreadable
                    // notice says why): not delivered.
                    Status::Failed
                } else {
                    Status::Sent
                }
            } else if refused_message == Some(message_seq) {
                Status::Failed
            } else {
                Status::Sending
            };
            let name = records::message_key(id, message_seq);
            if let Some(mut message) = self.read::<Message>(&key, &name).await?
                && message.status != status
                && !matches!(message.status, Status::Conflict | Status::Delivered)
            {
                message.status = status;
                writes.push(self.put(&key, name, &message));
            }
        }
        if !abandoned.is_empty() {
            // Tell the session before anything else is encrypted: the peer never gets these,
            // so its acknowledgements (whose digests cover exactly what it received) must not
            // be checked against them; otherwise a false rollback would be found.
            match Self::load_session(&key, &conversation) {
                Ok(mut live) => {
                    for seq in &abandoned {
                        live.abandon(*seq);
                    }
                    if let ConversationState::Active { session, .. } = &mut conversation.state {
                        *session = live.pickle(&Self::pickle_key(&key));
                    }
                    conversation_changed = true;
                }
                Err(ClientError::ConversationEnded { .. } | ClientError::NotJoined) => {}
                Err(err) => return Err(err),
            }
        }
        if conversation_changed {
            writes.push(self.put(&key, records::conversation_key(id), &conversation));
        }
        if !writes.is_empty() {
            // Strict when the session changed (it must not come back without the abandons).
            let durability = if abandoned.is_empty() {
                Durability::Relaxed
            } else {
                Durability::Strict
            };
            self.store().commit(writes, durability).await?;
        }
        Ok(acks)
    }

    /// A data blob of ours (`seq`) met foreign bytes at one of the first [`WINDOW`] positions
    /// of our current sending chain: a copy of this device lost to a restore (or an invite
    /// photographer, for the first two chains) opened that chain before us, answering the same
    /// chain of the peer's. A peer that read it left our older chains at that copy's `PN`, so
    /// our stored blobs there that it has not acknowledged may never be read
    /// (`docs/PROTOCOL.md` §8, "A chain a lost copy opened"). They leave the outbox (not
    /// abandoned: the peer may have read them, and shows each message once) and their
    /// messages are queued to go again, under their ids, before the squatted message, which
    /// [`squatted`] queues behind them.
    fn doubt_chain_before(
        &self,
        key: &VaultKey,
        conversation: &mut Conversation,
        outbox: &mut Vec<OutRecord>,
        seq: u32,
        writes: &mut Vec<Write>,
        touched: &mut BTreeSet<u64>,
    ) -> Result<(), ClientError> {
        let Some(at) = outbox.iter().position(|(_, s, _)| *s == seq) else {
            return Ok(());
        };
        let live = match Self::load_session(key, conversation) {
            Ok(live) => live,
            Err(ClientError::ConversationEnded { .. } | ClientError::NotJoined) => return Ok(()),
            Err(err) => return Err(err),
        };
        // Derived once: every record below is looked up in it.
        let chain = live.sending_addresses();
        drop(live);
        let position = |o: &Outgoing| {
            let address = WriteKey(o.write_key).address();
            chain.iter().position(|a| *a == address)
        };
        let squatted_at = outbox.get(at).and_then(|(_, _, o)| position(o));
        // Only the first blob of ours on that chain: after one of ours there, the chain is one
        // we opened (the lost copy only went on with it, `all` seed 12769), or the peer read
        // it and keeps the keys of our older chain's positions.
        let ours_before = outbox
            .iter()
            .any(|(_, s, o)| *s < seq && position(o).is_some());
        if ours_before || squatted_at.is_none_or(|n| n >= WINDOW as usize) {
            return Ok(());
        }
        let older = |(_, s, o): &OutRecord| {
            *s < seq && o.stored && matches!(o.kind, BlobKind::Data { .. }) && position(o).is_none()
        };
        let mut kept = Vec::with_capacity(outbox.len());
        for record in outbox.drain(..) {
            if !older(&record) {
                kept.push(record);
                continue;
            }
            let (name, _, outgoing) = record;
            writes.push(Write::Delete(name));
            if let BlobKind::Data { message } = outgoing.kind {
                touched.insert(message);
                let queue = &mut conversation.recovery.resend;
                if !queue.contains(&message) {
                    queue.push(message);
                }
            }
        }
        *outbox = kept;
        Ok(())
    }

    /// The retransmission check of one conversation: once a stored, unacknowledged blob was
    /// last seen on the mailbox at least [`RETRANSMIT_AFTER_MS`] ago, fetches the addresses of
    /// (at most [`MAX_RETRANSMIT_CHECK`], oldest first) every stored, unacknowledged blob,
    /// in one padded request of the usual shape
    /// ([`padded_batches`]), plus one more for the peer's restore-signal addresses
    /// (`docs/PROTOCOL.md` §6.9), and deposits again, in send order and byte for byte, each whose
    /// address reads empty (its copy expired or was lost). Whatever the mailbox answers, a
    /// key and nonce only ever see the bytes they first encrypted.
    async fn retransmit(
        &self,
        id: &str,
        mailbox: &str,
        items: &[OutRecord],
        outcome: &mut FlushOutcome,
    ) -> Result<(), ClientError> {
        let key = self.key()?;
        let now = self.now_ms();
        let retransmitted = &mut outcome.retransmitted;
        let before = *retransmitted;
        let stored = |o: &Outgoing| o.stored;
        let interval = self.check_interval(id, items.iter().map(|(_, seq, o)| (*seq, o)));
        if !items
            .iter()
            .any(|(_, _, o)| stored(o) && now >= o.checked_ms.saturating_add(interval))
        {
            return Ok(());
        }
        // Once one blob is due, every stored one is checked (the request is padded to the
        // same size anyway): blobs that expired together come back together, so a reader
        // holding a later blob for them (`crate::receive`, held blobs) gets them in one go
        // instead of one per check interval.
        let due: Vec<&OutRecord> = items
            .iter()
            .filter(|(_, _, o)| stored(o))
            .take(MAX_RETRANSMIT_CHECK)
            .collect();
        // Our kept hello rides along while the request has room ([`KeptHello`]): checked at
        // no extra cost, after the blobs of the outbox (whose addresses come first).
        let kept_hello = if due.len() < MAX_RETRANSMIT_CHECK
            && !items.iter().any(|(_, _, o)| o.kind == BlobKind::Hello)
        {
            self.read_lenient::<KeptHello>(&key, &records::kept_hello_key(id))
                .await?
                .filter(|hello| now < hello.until_ms)
        } else {
            None
        };
        let hello_address = kept_hello
            .as_ref()
            .map(|hello| WriteKey(hello.write_key).address());
        let addresses: Vec<Address> = due
            .iter()
            .map(|(_, _, o)| WriteKey(o.write_key).address())
            .chain(hello_address)
            .collect();
        // The peer's restore signals ride along (`docs/PROTOCOL.md` §6.9): a peer restored to
        // a copy too old to read us leaves our blobs unconfirmed for ever, and says so there.
        let live = Self::load_session(&key, &self.conversation(&key, id).await?).ok();
        let watched = live
            .as_ref()
            .map(Session::restore_signal_addresses)
            .unwrap_or_default();
        // Our "behind" signals (`docs/PROTOCOL.md` §6.9), deposited below where they read empty
        // once a blob of ours expired unconfirmed: ours to write, so they are looked at with
        // our own addresses.
        let behind = live
            .as_ref()
            .map(Session::behind_signals)
            .unwrap_or_default();
        // Blobs of a lost copy of ours that we keep ([`KeptLostBlobs`]): looked at with our
        // own addresses, and deposited again before the outbox's (they lie before them on
        // the chain).
        let kept_lost = self.kept_lost_blobs(&key, id, live.as_ref()).await?;
        let lost_addresses: Vec<Address> = kept_lost
            .iter()
            .flat_map(|kept| kept.blobs.iter())
            .map(|b| WriteKey(b.write_key).address())
            .collect();
        let own: Vec<Address> = lost_addresses
            .iter()
            .chain(&addresses)
            .copied()
            .chain(behind.iter().map(|b| b.address))
            .collect();
        let decoy_key = key.subkey(DECOY_KEY_LABEL);
        let net = self.platform().net();
        let mut found = Vec::new();
        // Two requests: one request holding both our own addresses and the watched ones (which
        // our polls fetch too) would link our deposits to our polls.
        for batch in padded_batches(&decoy_key, &own)
            .into_iter()
            .chain(padded_batches(&decoy_key, &watched))
        {
            found.extend(net.fetch(mailbox, &batch).await?);
        }
        if let Some(live) = &live
            && found
                .iter()
                .any(|(a, blob)| watched.contains(a) && live.is_restore_signal(a, blob))
        {
            let _guard = self.lock_conversation(id).await?;
            let mut conversation = self.conversation(&key, id).await?;
            if conversation.ended.is_none() {
                conversation.ended = Some(EndReason::Diverged);
                let writes = vec![self.put(&key, records::conversation_key(id), &conversation)];
                self.store().commit(writes, Durability::Strict).await?;
                outcome.ended += 1;
            }
            return Ok(());
        }
        // Read and deleted, yet unacknowledged: perhaps by a copy of the peer's device that
        // was lost (`crate::lost_reads`).
        // What the mailbox holds at each due blob's address, looked up once: `Some(true)`
        // spent (read and deleted), `Some(false)` still there, `None` empty.
        let held: Vec<Option<bool>> = addresses
            .iter()
            .take(due.len())
            .map(|address| {
                found
                    .iter()
                    .find(|(a, _)| a == address)
                    .map(|(_, blob)| blob.is_empty())
            })
            .collect();
        let spent: Vec<u32> = due
            .iter()
            .zip(&held)
            .filter(|(_, held)| **held == Some(true))
            .map(|((_, seq, _), _)| *seq)
            .collect();
        // Still on the mailbox, unread, while the peer read and deleted a later blob of ours:
        // the peer no longer reads where it lies (a restored copy of ours wrote it on a chain
        // the peer had left, `all --delete-after-read` seed 6220). Its message goes again like
        // one read and lost, at addresses the peer reads. Only a peer that deletes what it
        // reads says so: where it does not, a blob still there may well have been read, and
        // its acknowledgement may count numbers a lost copy of ours used (`all` seed 10075).
        let newest_read = spent.iter().copied().max();
        let passed_over: Vec<u32> = due
            .iter()
            .zip(&held)
            .filter(|((_, seq, o), held)| {
                matches!(o.kind, BlobKind::Data { .. })
                    && newest_read.is_some_and(|newest| newest > *seq)
                    && **held == Some(false)
            })
            .map(|((_, seq, _), _)| *seq)
            .collect();
        self.note_evidence_read(&key, id, &spent, now).await?;
        let lost: Vec<u32> = spent.iter().chain(&passed_over).copied().collect();
        let all: Vec<u32> = due.iter().map(|(_, seq, _)| *seq).collect();
        outcome
            .resent
            .extend(self.resend_lost_reads(&key, id, &all, &lost, now).await?);
        let mut failure = None;
        if let Some(kept) = kept_lost {
            self.keep_lost_on_mailbox(&key, id, mailbox, kept, &found, &mut failure)
                .await?;
        }
        let mut checked = Vec::new();
        // (After a failure there, the outbox's blobs wait for the next check, in order.)
        let outbox_due = if failure.is_some() { 0 } else { due.len() };
        for ((_, seq, outgoing), address) in due.iter().zip(&addresses).take(outbox_due) {
            if found.iter().any(|(a, _)| a == address) {
                // Still there (ours, or someone's bytes written after ours expired: nothing
                // we may do about those).
                checked.push(*seq);
                continue;
            }
            match deposit(net, mailbox, outgoing).await {
                // Read and deleted by the peer: its acknowledgement is on the way.
                Ok(Put::Read) => checked.push(*seq),
                Ok(_) => {
                    *retransmitted += 1;
                    checked.push(*seq);
                }
                Err(err) => {
                    // The rest waits for the next check, so that the blobs go back in order.
                    failure = Some(err);
                    break;
                }
            }
        }
        // A data blob of ours seen on the mailbox an interval ago and still there: unread,
        // as it stays for ever where the peer is a copy restored to before our root keys.
        // Only with delete after read on, as the two people's devices have it alike: where
        // the peer keeps what it read, a blob still there says nothing (and the signals
        // shifted the simulator's `all` seed 10075 into a message lost without a word).
        let unread = self.delete_after_read.get()
            && due.iter().zip(&held).any(|((_, _, o), held)| {
                matches!(o.kind, BlobKind::Data { .. })
                    && now >= o.checked_ms.saturating_add(RETRANSMIT_AFTER_MS)
                    && *held == Some(false)
            });
        if failure.is_none() && (*retransmitted > before || unread) {
            // A blob of ours expired unconfirmed, or stays unread: the peer may be a copy
            // restored to before chains of ours (confirmed by its lost copy, they left our
            // outbox), which can neither read what we write now nor write where we read. Tell
            // it where only such a copy looks (seeds 1694, 9112 of the simulator's `all` set).
            // Not only once a blob expired: a restored peer that is not told sees nothing, and
            // with delete after read its lost copy's reads are all the evidence the restored
            // side has, which now waits for the peer instead of ending the conversation after
            // 5 minutes (`crate::lost_reads`; `restore --delete-after-read` seed 8). Each
            // signal is deposited only where its address reads empty: once per mailbox TTL.
            for signal in behind.iter() {
                if found.iter().any(|(a, _)| *a == signal.address) {
                    continue;
                }
                if net
                    .put(mailbox, &signal.write_key, &signal.blob)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        self.count_quiet_check(
            id,
            &due,
            failure.is_none() && *retransmitted == before && checked.len() == due.len(),
        );
        if !checked.is_empty() {
            // Blobs expire by their deposit time: where some read empty, those still there
            // may be about to go too. Check again soon ([`RETRANSMIT_RECHECK_MS`]) rather than
            // a whole interval later, so that a reader holding a later blob is not kept
            // waiting an interval per straggler.
            let seen_ms = if *retransmitted > before {
                now.saturating_sub(RETRANSMIT_AFTER_MS - RETRANSMIT_RECHECK_MS)
            } else {
                now
            };
            let _guard = self.lock_conversation(id).await?;
            let mut writes = Vec::new();
            for (name, seq, mut outgoing) in self.outbox(&key, id).await? {
                if checked.contains(&seq) && outgoing.stored {
                    outgoing.checked_ms = seen_ms;
                    writes.push(self.put(&key, name, &outgoing));
                }
            }
            self.store().commit(writes, Durability::Relaxed).await?;
        }
        if let (None, Some(hello), Some(address)) = (&failure, kept_hello, hello_address) {
            let there = found.iter().any(|(a, _)| *a == address);
            let name = records::kept_hello_key(id);
            self.settle_kept_hello(&key, mailbox, name, hello, there, outcome)
                .await?;
        }
        match failure {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    }

    /// The blobs of a lost copy of ours that conversation `id` keeps on the mailbox
    /// ([`KeptLostBlobs`]), if they are still needed: once the peer confirmed a blob of ours
    /// sealed after them (it read past them), or the session cannot be loaded (ended), the
    /// record is dropped.
    async fn kept_lost_blobs(
        &self,
        key: &VaultKey,
        id: &str,
        live: Option<&Session>,
    ) -> Result<Option<KeptLostBlobs>, ClientError> {
        if !self.has_kept_lost(id).await? {
            return Ok(None);
        }
        let name = records::kept_lost_key(id);
        let Some(kept) = self.read_lenient::<KeptLostBlobs>(key, &name).await? else {
            self.mark_kept_lost(id, false).await?;
            return Ok(None);
        };
        if live.is_some_and(|live| live.peer_acknowledgement().next <= kept.until_seq)
            && !kept.blobs.is_empty()
        {
            return Ok(Some(kept));
        }
        let _guard = self.lock_conversation(id).await?;
        self.store()
            .commit(vec![Write::Delete(name)], Durability::Relaxed)
            .await?;
        self.mark_kept_lost(id, false).await?;
        Ok(None)
    }

    /// Deposits again, byte for byte, each kept blob of a lost copy of ours
    /// ([`KeptLostBlobs`]) whose address reads empty in `found` (the retransmission check's
    /// fetch), in position order; drops those read and deleted by the peer (a spent address,
    /// or `410`). Stops at the first failure (left in `failure`: the outbox's blobs wait
    /// behind them). Identical bytes only: no key or nonce sees new plaintext.
    async fn keep_lost_on_mailbox(
        &self,
        key: &VaultKey,
        id: &str,
        mailbox: &str,
        kept: KeptLostBlobs,
        found: &[(Address, Vec<u8>)],
        failure: &mut Option<NetError>,
    ) -> Result<(), ClientError> {
        let net = self.platform().net();
        let mut read = Vec::new();
        for blob in &kept.blobs {
            let write_key = WriteKey(blob.write_key);
            let address = write_key.address();
            match found.iter().find(|(a, _)| *a == address) {
                Some((_, there)) if there.is_empty() => read.push(address),
                Some(_) => {}
                None => match net.put(mailbox, &write_key, &blob.blob).await {
                    Ok(Deposit::Spent) => read.push(address),
                    Ok(Deposit::Stored | Deposit::AlreadyStored) => {}
                    Err(err) => {
                        *failure = Some(err);
                        break;
                    }
                },
            }
        }
        if read.is_empty() {
            return Ok(());
        }
        let _guard = self.lock_conversation(id).await?;
        let name = records::kept_lost_key(id);
        let write = match self.read_lenient::<KeptLostBlobs>(key, &name).await? {
            Some(mut now) => {
                now.blobs
                    .retain(|b| !read.contains(&WriteKey(b.write_key).address()));
                if now.blobs.is_empty() {
                    self.mark_kept_lost(id, false).await?;
                    Write::Delete(name)
                } else {
                    self.put(key, name, &now)
                }
            }
            None => return Ok(()),
        };
        self.store()
            .commit(vec![write], Durability::Relaxed)
            .await?;
        Ok(())
    }

    /// The hellos we keep on the mailbox as joiner ([`KeptHello`]) that are ours to look
    /// after now, each with its record name and its conversation's mailbox: those whose
    /// conversation is live and whose hello has left the outbox (the inviter confirmed it;
    /// until then the outbox's own check deposits it again). Also the writes that drop the ones no longer needed: past
    /// their time (no inviter accepts the hello any more), or of a conversation deleted or
    /// whose invite someone else took.
    pub(crate) async fn kept_hellos(
        &self,
        key: &VaultKey,
    ) -> Result<(Vec<(String, KeptHello, String)>, Vec<Write>), ClientError> {
        let now = self.now_ms();
        let mut kept = Vec::new();
        let mut drops = Vec::new();
        for (name, hello) in self
            .read_prefix_lenient::<KeptHello>(key, KEPT_HELLO_PREFIX)
            .await?
        {
            let Some(id) = name.strip_prefix(KEPT_HELLO_PREFIX).map(str::to_owned) else {
                continue;
            };
            let conversation = self
                .read_lenient::<Conversation>(key, &records::conversation_key(&id))
                .await?;
            let conversation = match conversation {
                Some(c)
                    if matches!(c.state, ConversationState::Active { .. })
                        && now < hello.until_ms =>
                {
                    c
                }
                _ => {
                    drops.push(Write::Delete(name));
                    continue;
                }
            };
            if conversation.ended.is_some() {
                continue;
            }
            let in_outbox = self
                .store()
                .get(&records::outgoing_key(&id, records::HELLO_SEQ as u32))
                .await?
                .is_some();
            if !in_outbox {
                kept.push((name, hello, conversation.mailbox.clone()));
            }
        }
        Ok((kept, drops))
    }

    /// Keeps our hellos as joiner on the mailbox ([`KeptHello`]): each whose check is due
    /// ([`kept_hello_interval`]) is looked for with one padded fetch of the usual shape, and
    /// deposited again, byte for byte, where its address reads empty (expired). The inviter
    /// confirmed it, so its device read it; but a copy of that device restored to before it
    /// accepted knows nothing of us and polls the hello address alone: without the hello, it
    /// would wait for ever, and our messages would stay *sent* (`docs/PROTOCOL.md` §8). The
    /// identical bytes tell an invite photographer, who can fetch that address, nothing new;
    /// with the default mailbox lifetime (7 days) the hello never expires before the invite
    /// can no longer be accepted, so nothing is ever deposited again. Foreign bytes at the
    /// address (written after ours expired) end the keeping: nothing more can be done there.
    async fn keep_hellos(
        &self,
        key: &VaultKey,
        outcome: &mut FlushOutcome,
    ) -> Result<(), ClientError> {
        let (kept, drops) = self.kept_hellos(key).await?;
        if !drops.is_empty() {
            self.store().commit(drops, Durability::Relaxed).await?;
        }
        let now = self.now_ms();
        let net = self.platform().net();
        let decoy_key = key.subkey(DECOY_KEY_LABEL);
        for (name, hello, mailbox) in kept {
            if now
                < hello
                    .checked_ms
                    .saturating_add(kept_hello_interval(hello.quiet))
            {
                continue;
            }
            let address = WriteKey(hello.write_key).address();
            let mut found = false;
            for batch in padded_batches(&decoy_key, &[address]) {
                found |= net
                    .fetch(&mailbox, &batch)
                    .await?
                    .iter()
                    .any(|(a, _)| *a == address);
            }
            self.settle_kept_hello(key, &mailbox, name, hello, found, outcome)
                .await?;
        }
        Ok(())
    }

    /// What a check of kept hello `hello` (record `name`) found: `found` if its address holds
    /// a blob (ours, or spent: its reader deleted it, and nobody can store it again before it
    /// would have expired); otherwise the very bytes are deposited again. Foreign bytes there,
    /// written after ours expired (only an invite photographer can), end the keeping: a
    /// restored inviter would read those, not ours, and nothing more can be done there.
    async fn settle_kept_hello(
        &self,
        key: &VaultKey,
        mailbox: &str,
        name: String,
        mut hello: KeptHello,
        found: bool,
        outcome: &mut FlushOutcome,
    ) -> Result<(), ClientError> {
        let now = self.now_ms();
        let write = if found {
            hello.quiet = hello.quiet.saturating_add(1);
            hello.checked_ms = now;
            self.put(key, name, &hello)
        } else {
            let outgoing = Outgoing {
                write_key: hello.write_key,
                blob: hello.blob.clone(),
                kind: BlobKind::Hello,
                stored: true,
                checked_ms: now,
            };
            match deposit(self.platform().net(), mailbox, &outgoing).await? {
                put @ (Put::Stored | Put::Read) => {
                    // Spent (`Read`): these very bytes were deleted by someone holding the
                    // hello's write key (the invite gives it); they go again once the spent
                    // address expires.
                    if matches!(put, Put::Stored) {
                        outcome.hellos_kept += 1;
                    }
                    hello.quiet = 0;
                    hello.checked_ms = now;
                    self.put(key, name, &hello)
                }
                Put::Foreign => Write::Delete(name),
            }
        };
        self.store()
            .commit(vec![write], Durability::Relaxed)
            .await?;
        Ok(())
    }

    /// The interval between retransmission checks of conversation `id`, whose outbox is
    /// `items` (sequence number, record): [`RETRANSMIT_AFTER_MS`] while any stored blob
    /// carries more than acknowledgements; when all are acknowledgement-only, that doubled
    /// for each check in a row that found them all still on the mailbox, up to
    /// [`RETRANSMIT_ACK_MAX_MS`] (ms). Data blobs are never checked less often, so the
    /// healing bound of `docs/PROTOCOL.md` §8 holds for every message.
    pub(crate) fn check_interval<'a>(
        &self,
        id: &str,
        items: impl Iterator<Item = (u32, &'a Outgoing)>,
    ) -> u64 {
        let Some(newest) = Self::acks_only(items) else {
            return RETRANSMIT_AFTER_MS;
        };
        let quiet = self
            .quiet_checks
            .borrow()
            .iter()
            .find(|(c, seq, _)| c == id && *seq == newest)
            .map_or(0, |(_, _, n)| *n);
        RETRANSMIT_AFTER_MS
            .saturating_mul(1 << quiet.min(16))
            .min(RETRANSMIT_ACK_MAX_MS)
    }

    /// The newest sequence number of the stored blobs in `items` if there are some and all
    /// are acknowledgement-only; `None` otherwise.
    fn acks_only<'a>(items: impl Iterator<Item = (u32, &'a Outgoing)>) -> Option<u32> {
        let mut newest = None;
        for (seq, outgoing) in items.filter(|(_, o)| o.stored) {
            if outgoing.kind != BlobKind::Ack {
                return None;
            }
            newest = newest.max(Some(seq));
        }
        newest
    }

    /// Records a retransmission check of conversation `id` over `due`: one more quiet check
    /// if it found every blob still there (`quiet`) and all are acknowledgement-only; the
    /// count starts again otherwise ([`Client::check_interval`]).
    fn count_quiet_check(&self, id: &str, due: &[&OutRecord], quiet: bool) {
        let mut counts = self.quiet_checks.borrow_mut();
        let previous = counts.iter().position(|(c, _, _)| c == id);
        let newest = Self::acks_only(due.iter().map(|(_, seq, o)| (*seq, o)));
        let entry = previous.map(|at| counts.swap_remove(at));
        if let (true, Some(newest)) = (quiet, newest) {
            let n = entry
                .filter(|(_, seq, _)| *seq == newest)
                .map_or(0, |(_, _, n)| n);
            counts.push((id.to_owned(), newest, n.saturating_add(1)));
        }
    }

    /// Conversation `id`'s outbox records that decode, in send order.
    pub(crate) async fn outbox(
        &self,
        key: &VaultKey,
        id: &str,
    ) -> Result<Vec<OutRecord>, ClientError> {
        Ok(self
            .outbox_sealed(key, id)
            .await?
            .into_iter()
            .map(|(record, _)| record)
            .collect())
    }

    /// Conversation `id`'s outbox records that decode, in send order, each with its bytes as
    /// sealed in the store (to be kept without sealing them again: `crate::put_back`).
    pub(crate) async fn outbox_sealed(
        &self,
        key: &VaultKey,
        id: &str,
    ) -> Result<Vec<(OutRecord, Vec<u8>)>, ClientError> {
        let mut out = Vec::new();
        for (name, sealed) in self.store().list(&records::outgoing_prefix(id)).await? {
            let Some((_, seq)) = records::parse_outgoing_key(&name) else {
                continue;
            };
            let plain = key.open(&name, &sealed)?;
            if let Some(outgoing) = records::decode::<Outgoing>(&plain) {
                out.push(((name, seq, outgoing), sealed));
            }
        }
        Ok(out)
    }

    /// How many of our next sending positions already hold a blob on the mailbox (written by
    /// a copy of this device lost to a restore, or by whoever took them), found with one
    /// padded fetch of [`PROBE_POSITIONS`] addresses and no lock held: the upcoming ones and,
    /// while no send step is pending, the first [`NEXT_CHAIN_PROBE`] of the chain the next
    /// step starts. Returns the first upcoming address (to check, under the lock, that the
    /// session has not moved meanwhile), the count of leading taken positions and whether the
    /// next chain's start is taken; `None` when nothing is taken or the mailbox cannot be
    /// asked now.
    pub(crate) async fn taken_positions(&self, key: &VaultKey, id: &str) -> Option<Taken> {
        let conversation = self.conversation(key, id).await.ok()?;
        let live = Self::load_session(key, &conversation).ok()?;
        let (upcoming, next_chain) = if live.upcoming_chain_lead().is_none() {
            (
                live.upcoming_addresses(PROBE_POSITIONS - NEXT_CHAIN_PROBE),
                live.next_chain_addresses(NEXT_CHAIN_PROBE),
            )
        } else {
            (live.upcoming_addresses(PROBE_POSITIONS), Vec::new())
        };
        let first = *upcoming.first()?;
        let mailbox = conversation.mailbox.clone();
        drop(conversation);
        let decoy_key = key.subkey(DECOY_KEY_LABEL);
        let probed: Vec<Address> = upcoming.iter().chain(&next_chain).copied().collect();
        let mut found: Vec<(Address, Vec<u8>)> = Vec::new();
        for batch in padded_batches(&decoy_key, &probed) {
            let got = self.platform().net().fetch(&mailbox, &batch).await.ok()?;
            found.extend(got.into_iter().filter(|(a, _)| probed.contains(a)));
        }
        let taken = upcoming
            .iter()
            .take_while(|address| found.iter().any(|(a, _)| a == *address))
            .count();
        let next_chain = next_chain
            .iter()
            .any(|address| found.iter().any(|(a, _)| a == address));
        (taken > 0 || next_chain).then(|| Taken {
            first,
            count: u32::try_from(taken).unwrap_or(PROBE_POSITIONS),
            found,
        })
    }

    /// When the two devices can no longer read each other, deposits this session's restore
    /// signals (`docs/PROTOCOL.md` §6.9): the only blobs the other person is sure to look for
    /// when no chain of ours is one they still read, so that they are told the conversation
    /// cannot go on instead of waiting for ever. That is when the other person's answers
    /// cannot be read here (this device was restored from a copy older than what they
    /// answered) and when this side ended the conversation because their device went back
    /// (`EndReason::PeerRestored`: what they send next cannot be read here, and they may not
    /// know). At once, then again every [`RETRANSMIT_AFTER_MS`] while it stands (a signal
    /// expires like any blob). The signal is deterministic: depositing it again stores
    /// nothing new.
    /// Returns when the signals will be called for, if an unreadable notice stands that is
    /// not old enough yet ([`restore_signal_due`]).
    pub(crate) async fn deposit_restore_signals(
        &self,
        id: &str,
    ) -> Result<Option<u64>, ClientError> {
        let key = self.key()?;
        let conversation = self.conversation(&key, id).await?;
        let now = self.now_ms();
        let at = self.signal_at(id, &conversation);
        let due = restore_signal_due(&conversation, now, at);
        let stands = restore_signal_stands(&conversation, now, at);
        let last = self
            .signalled
            .borrow()
            .iter()
            .find(|(c, _)| c == id)
            .map(|(_, at)| *at);
        if !stands || last.is_some_and(|at| now < at.saturating_add(RETRANSMIT_AFTER_MS)) {
            return Ok(due);
        }
        let session = Self::load_session(&key, &conversation)?;
        let signals = if conversation.ended.is_some() {
            session.restore_signals_after_end()
        } else {
            session.restore_signals()
        };
        drop(session);
        let mailbox = conversation.mailbox.clone();
        drop(conversation);
        let net = self.platform().net();
        // Only where the address reads empty (first time, or expired): a signal deposited
        // again and again would stand out. One padded request of the usual shape.
        let addresses: Vec<Address> = signals.iter().map(|s| s.address).collect();
        let mut present = Vec::new();
        for batch in padded_batches(&key.subkey(DECOY_KEY_LABEL), &addresses) {
            present.extend(
                net.fetch(&mailbox, &batch)
                    .await?
                    .into_iter()
                    .map(|(a, _)| a),
            );
        }
        for signal in signals.iter().filter(|s| !present.contains(&s.address)) {
            // A 409 is our own earlier deposit (the bytes are deterministic) or junk someone
            // put there first; either way nothing more can be done at that address.
            net.put(&mailbox, &signal.write_key, &signal.blob).await?;
        }
        let mut signalled = self.signalled.borrow_mut();
        signalled.retain(|(c, _)| c != id);
        signalled.push((id.to_owned(), now));
        Ok(None)
    }

    /// Applies [`Client::taken_positions`] under the lock, if the session still starts there:
    /// what it moved past ([`Skipped`]).
    pub(crate) fn skip_taken(live: &mut Session, taken: Option<Taken>) -> Skipped {
        if let Some(taken) = taken
            && live.upcoming_addresses(1).first() == Some(&taken.first)
        {
            let next_chain = live.upcoming_chain_lead().is_some();
            // Fewer than a window: the peer sees our next blob past them anyway (and reading
            // the lost copy's blobs after it would show those messages out of order).
            let lost = if taken.count >= WINDOW {
                live.own_upcoming_blobs(&taken.found)
            } else {
                Vec::new()
            };
            let spent = taken.found.iter().any(|(_, blob)| blob.is_empty());
            live.skip_positions(taken.count);
            return Skipped {
                next_chain,
                lost,
                spent,
            };
        }
        Skipped::default()
    }

    /// Adds the blobs of a lost copy of ours that [`Client::skip_taken`] moved past to those
    /// the conversation keeps on the mailbox ([`KeptLostBlobs`], `docs/PROTOCOL.md` §8,
    /// "Positions a lost copy used"), as a write for the caller's commit (with the session
    /// that skipped them). `live` is that session: the peer's confirmation of its next
    /// sequence number ends the keeping.
    pub(crate) async fn keep_lost_blobs(
        &self,
        key: &VaultKey,
        id: &str,
        live: &Session,
        lost: Vec<(WriteKey, Vec<u8>)>,
        writes: &mut Vec<Write>,
    ) -> Result<(), ClientError> {
        if lost.is_empty() {
            return Ok(());
        }
        let name = records::kept_lost_key(id);
        let mut kept = self
            .read_lenient::<KeptLostBlobs>(key, &name)
            .await?
            .unwrap_or(KeptLostBlobs {
                blobs: Vec::new(),
                until_seq: 0,
            });
        // Compared by address (public), never by write key (a secret).
        let mut addresses: Vec<Address> = kept
            .blobs
            .iter()
            .map(|b| WriteKey(b.write_key).address())
            .collect();
        for (write_key, blob) in lost {
            if kept.blobs.len() >= PROBE_POSITIONS as usize {
                break;
            }
            let address = write_key.address();
            if !addresses.contains(&address) {
                addresses.push(address);
                kept.blobs.push(KeptLostBlob {
                    write_key: write_key.0,
                    blob,
                });
            }
        }
        kept.until_seq = kept.until_seq.max(live.next_seq());
        writes.push(self.put(key, name, &kept));
        self.mark_kept_lost(id, true).await?;
        Ok(())
    }

    /// Whether conversation `id` keeps blobs of a lost copy ([`KeptLostBlobs`]), as far as
    /// this app run knows: the records are listed once after unlock.
    pub(crate) async fn has_kept_lost(&self, id: &str) -> Result<bool, ClientError> {
        self.listed_has(&self.kept_lost, records::KEPT_LOST_PREFIX, id)
            .await
    }

    /// Notes that conversation `id` now keeps (`true`) or no longer keeps blobs of a lost
    /// copy ([`Client::has_kept_lost`]).
    pub(crate) async fn mark_kept_lost(&self, id: &str, keeps: bool) -> Result<(), ClientError> {
        self.listed_mark(&self.kept_lost, records::KEPT_LOST_PREFIX, id, keeps)
            .await
    }

    /// After positions at the start of the chain our pending ratchet step opens were found
    /// taken ([`Client::skip_taken`]): a copy of this device lost to a restore (or someone
    /// holding that chain's header key) wrote there, answering the peer's chain as we are
    /// about to. A peer that read those blobs has left our current chain at that copy's `PN`,
    /// so our blobs that it has not acknowledged may sit where it no longer looks
    /// (`docs/PROTOCOL.md` §8, "A chain a lost copy opened"), and that copy may have used
    /// their numbers. Their messages are queued to go again, under their ids, before anything
    /// not yet sealed, as after a rollback ([`Client::resend_unverified`] from the first of
    /// them): waiting for the peer's acknowledgements to show the rollback would let the
    /// messages queued behind them, sealed on the new chain, arrive first (`all` seed 9490).
    /// A peer that can still read them shows each message once.
    pub(crate) async fn doubt_left_chain(
        &self,
        key: &VaultKey,
        id: &str,
        conversation: &mut Conversation,
        live: &mut Session,
        writes: &mut Vec<Write>,
    ) -> Result<(), ClientError> {
        let from = self
            .outbox(key, id)
            .await?
            .iter()
            .filter(|(_, _, o)| matches!(o.kind, BlobKind::Data { .. }))
            .map(|(_, seq, _)| *seq)
            .min();
        let Some(from) = from else {
            return Ok(());
        };
        let to = live.next_seq();
        self.resend_unverified(key, id, conversation, live, &[(from, to)], writes)
            .await
    }

    /// Encrypts again, at later addresses, the messages whose addresses were squatted
    /// (queued by a flush), after a poll had the chance to learn the peer's
    /// acknowledgements (so a rollback is detected before new addresses are picked). Returns
    /// whether anything was encrypted (flush now).
    pub(crate) async fn resend_squatted(&self, id: &str) -> Result<bool, ClientError> {
        let key = self.key()?;
        // Nothing queued (the usual case): no probe. The poll that calls this has committed
        // what it received, and must report it without waiting on one more request.
        let queued = self.conversation(&key, id).await?;
        if queued.recovery.resend.is_empty() || queued.ended.is_some() {
            return Ok(false);
        }
        drop(queued);
        // Positions a lost copy of this device (or someone else) took: skip them all at once
        // rather than meeting them one 409 at a time.
        let taken = self.taken_positions(&key, id).await;
        let _guard = self.lock_conversation(id).await?;
        let mut conversation = self.conversation(&key, id).await?;
        if conversation.recovery.resend.is_empty() || conversation.ended.is_some() {
            return Ok(false);
        }
        let mut live = Self::load_session(&key, &conversation)?;
        let mut writes = Vec::new();
        let skipped = Self::skip_taken(&mut live, taken);
        skipped.note_evidence(&mut conversation, &live, self.now_ms());
        let mut kept = Vec::new();
        self.keep_lost_blobs(&key, id, &live, skipped.lost, &mut kept)
            .await?;
        if skipped.next_chain {
            self.doubt_left_chain(&key, id, &mut conversation, &mut live, &mut writes)
                .await?;
        }
        let queued = conversation.recovery.resend.clone();
        let (mut sealed, _, _) = self
            .encrypt_queued(&key, id, &mut conversation, &mut live)
            .await?;
        writes.append(&mut sealed);
        if writes.is_empty() && conversation.recovery.resend == queued {
            // Still held back behind blobs not yet on the mailbox. Blobs of a lost copy
            // found meanwhile are kept, with the session that moved past them.
            if !kept.is_empty() {
                if let ConversationState::Active { session, .. } = &mut conversation.state {
                    *session = live.pickle(&Self::pickle_key(&key));
                }
                kept.push(self.put(&key, records::conversation_key(id), &conversation));
                self.store().commit(kept, Durability::Strict).await?;
            }
            return Ok(false);
        }
        writes.append(&mut kept);
        if let ConversationState::Active { session, .. } = &mut conversation.state {
            *session = live.pickle(&Self::pickle_key(&key));
        }
        writes.push(self.put(&key, records::conversation_key(id), &conversation));
        writes.push(Write::Delete(records::ack_key(id)));
        self.store().commit(writes, Durability::Strict).await?;
        Ok(true)
    }

    /// Encrypts the messages queued in [`Recovery::resend`](records::Recovery::resend), in
    /// order, into outbox writes, as long as fewer than [`MAX_SEALED_AHEAD`] of our data
    /// blobs wait for the mailbox (the rest stays queued, for a later call); returns them with
    /// the lowest new sequence number and how many data blobs then wait for the mailbox. The
    /// caller commits them with the session and the conversation.
    async fn encrypt_queued(
        &self,
        key: &VaultKey,
        id: &str,
        conversation: &mut Conversation,
        live: &mut Session,
    ) -> Result<(Vec<Write>, Option<u32>, u32), ClientError> {
        let mut writes = Vec::new();
        let mut pending_floor = None;
        let mut ahead = self.unstored_data_blobs(key, id).await?;
        let queue = core::mem::take(&mut conversation.recovery.resend);
        let mut rest = queue.into_iter();
        for message_seq in rest.by_ref() {
            if ahead >= MAX_SEALED_AHEAD {
                conversation.recovery.resend.push(message_seq);
                break;
            }
            let name = records::message_key(id, message_seq);
            let Some(message) = self.read::<Message>(key, &name).await? else {
                continue;
            };
            // (A queued message is never marked delivered meanwhile: the receive path leaves
            // queued messages alone.)
            if !message.outgoing || message.status == Status::Conflict {
                continue;
            }
            let (first, mut blobs, message_id) = self
                .encrypt_entry(
                    key,
                    id,
                    live,
                    message_seq,
                    message.text.as_bytes(),
                    Some(message.message_id),
                    pending_floor,
                    &mut conversation.recovery,
                )
                .await?;
            pending_floor = Some(pending_floor.map_or(first, |f: u32| f.min(first)));
            ahead = ahead.saturating_add(u32::try_from(blobs.len()).unwrap_or(u32::MAX));
            writes.append(&mut blobs);
            if message.message_id != message_id || message.status != Status::Sending {
                // A record from before message ids gets a new one; a message sent again is on
                // its way again.
                let mut message = message;
                message.message_id = message_id;
                message.status = Status::Sending;
                writes.push(self.put(key, name, &message));
            }
        }
        conversation.recovery.resend.extend(rest);
        Ok((writes, pending_floor, ahead))
    }

    /// How many of conversation `id`'s data blobs are sealed and not yet on the mailbox.
    async fn unstored_data_blobs(&self, key: &VaultKey, id: &str) -> Result<u32, ClientError> {
        let outbox = self.outbox(key, id).await?;
        let n = outbox
            .iter()
            .filter(|(_, _, o)| matches!(o.kind, BlobKind::Data { .. }) && !o.stored)
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The randomised delay of an owed acknowledgement in conversation `id` (uniform in
    /// [`ACK_DELAY_MIN_MS`, `ACK_DELAY_MAX_MS`), or in [`ACK_DELAY_READING_MIN_MS`,
    /// `ACK_DELAY_READING_MAX_MS`) while it is the conversation open in front).
    pub(crate) fn ack_delay_ms(&self, id: &str) -> u64 {
        let (min, max) = if self.reading.borrow().as_deref() == Some(id) {
            (ACK_DELAY_READING_MIN_MS, ACK_DELAY_READING_MAX_MS)
        } else {
            (ACK_DELAY_MIN_MS, ACK_DELAY_MAX_MS)
        };
        min + u64::from(self.rng().next_u32()) % (max - min)
    }
}

/// Whether `conversation` calls for our restore signals (`Client::deposit_restore_signals`):
/// ended because the two devices can no longer read each other, or with an unreadable notice
/// whose wait is over (`at`, [`Client::signal_at`]). (Unreadable answers are corroborated
/// first: a later blob that decrypts lifts the notice, so one altered blob does not end the
/// conversation.)
pub(crate) fn restore_signal_stands(
    conversation: &Conversation,
    now: u64,
    at: Option<u64>,
) -> bool {
    match conversation.ended {
        None => at.is_some_and(|at| now >= at),
        Some(EndReason::PeerRestored | EndReason::Diverged) => true,
        Some(EndReason::ProtocolV1) => false,
    }
}

/// When `conversation` will call for our restore signals (ms since the epoch), if it does not
/// yet (`at`, [`Client::signal_at`]).
pub(crate) fn restore_signal_due(
    conversation: &Conversation,
    now: u64,
    at: Option<u64>,
) -> Option<u64> {
    at.filter(|_| conversation.ended.is_none())
        .filter(|&at| now < at)
}

/// The blobs of one conversation a flush is depositing, marked in
/// [`Client::depositing`](crate::Client) until it has recorded what the mailbox answered.
struct Depositing<'a> {
    set: &'a core::cell::RefCell<Vec<(String, u32)>>,
    id: &'a str,
    seqs: Vec<u32>,
}

impl Depositing<'_> {
    fn mark(&mut self, seq: u32) {
        self.set.borrow_mut().push((self.id.to_owned(), seq));
        self.seqs.push(seq);
    }
}

impl Drop for Depositing<'_> {
    fn drop(&mut self) {
        let mut set = self.set.borrow_mut();
        for seq in &self.seqs {
            if let Some(at) = set.iter().position(|(c, s)| c == self.id && s == seq) {
                set.swap_remove(at);
            }
        }
    }
}

/// PUTs one blob; a 409 counts as ours only if the stored bytes are; a 410 (the address is
/// spent: these very bytes were written, read and deleted) means there is nothing more to
/// deposit there.
async fn deposit<T: Transport>(
    net: &T,
    mailbox: &str,
    outgoing: &Outgoing,
) -> Result<Put, NetError> {
    let write_key = WriteKey(outgoing.write_key);
    match net.put(mailbox, &write_key, &outgoing.blob).await? {
        Deposit::Stored => Ok(Put::Stored),
        // 409: our own earlier attempt, or someone else's blob (live, or read and deleted:
        // a spent address answers 409 to bytes other than those that were read). Only
        // identical bytes are ours (an address that has expired since reads empty: the
        // retransmission check deposits it again later).
        Deposit::AlreadyStored => match net.get(mailbox, &write_key.address()).await? {
            None => Ok(Put::Stored),
            Some(stored) if stored == outgoing.blob => Ok(Put::Stored),
            // Spent: read and deleted since the 409, or before it (then the bytes were
            // someone else's). The mailbox tells them apart by the deleted blob's digest:
            // our bytes again answer 410, other bytes 409.
            Some(stored) if stored.is_empty() => {
                match net.put(mailbox, &write_key, &outgoing.blob).await? {
                    Deposit::Spent => Ok(Put::Read),
                    Deposit::Stored => Ok(Put::Stored),
                    Deposit::AlreadyStored => Ok(Put::Foreign),
                }
            }
            Some(_) => Ok(Put::Foreign),
        },
        // 410: these very bytes stood here and their reader deleted them (the mailbox keeps
        // the deleted blob's digest: other bytes, such as a blob of a copy of this device
        // lost to a restore, answer 409 and are foreign). Ours: a PUT whose 201 was lost (or
        // not yet committed when the app stopped), read since. A mailbox from before digests
        // answers 410 to any bytes; then the peer's acknowledgement digests tell (the
        // rollback recovery of `docs/PROTOCOL.md` §6.5).
        Deposit::Spent => Ok(Put::Read),
    }
}

/// The interval between checks of a kept hello ([`KeptHello`]) that `quiet` checks in a row
/// found still on the mailbox (ms): [`RETRANSMIT_AFTER_MS`], doubled for each, up to
/// [`RETRANSMIT_ACK_MAX_MS`], as for acknowledgement-only blobs. Only a copy of the inviter
/// restored to before it accepted needs the hello, so it is not worth a check every 5 minutes
/// for days; after it was deposited again (a short mailbox lifetime) the pace is back to
/// 5 minutes, so it is back within about one interval of expiring.
pub(crate) fn kept_hello_interval(quiet: u32) -> u64 {
    RETRANSMIT_AFTER_MS
        .saturating_mul(1 << quiet.min(16))
        .min(RETRANSMIT_ACK_MAX_MS)
}

/// A data blob of history entry `message` found foreign bytes at its address. Its blobs
/// leave the outbox (so our floor passes them), and so does every later blob not yet on the
/// mailbox; those messages are queued to be encrypted again (same message id: the peer shows
/// each once), in order, at later addresses — unless that would be the [`MAX_RESENDS`]+1-th
/// time in a row or leave more than [`MAX_ABANDONED_RUN`] abandoned addresses in a row (the
/// peer's window would no longer reach the next one). Then the message is given up on
/// ([`Status::Conflict`]), the later blobs keep their addresses, and the conversation says
/// someone interferes. The sequence numbers of the blobs that never reached the mailbox are
/// added to `abandoned` (for `Session::abandon`).
#[allow(clippy::too_many_arguments)]
fn squatted(
    conversation: &mut Conversation,
    outbox: &mut Vec<OutRecord>,
    message: u64,
    writes: &mut Vec<Write>,
    touched: &mut BTreeSet<u64>,
    given_up: &mut BTreeSet<u64>,
    abandoned: &mut Vec<u32>,
    now: u64,
) {
    let of_message = |o: &Outgoing| o.kind == BlobKind::Data { message };
    let first = outbox
        .iter()
        .position(|(_, _, o)| of_message(o))
        .unwrap_or(outbox.len());
    let abandon: Vec<usize> = (first..outbox.len())
        .filter(|&i| {
            outbox
                .get(i)
                .is_some_and(|(_, _, o)| of_message(o) || !o.stored)
        })
        .collect();
    let unreadable = |indexes: &[usize], outbox: &[OutRecord]| -> u32 {
        let n = indexes
            .iter()
            .filter(|&&i| outbox.get(i).is_some_and(|(_, _, o)| !o.stored))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    let recovery = &mut conversation.recovery;
    let run = recovery
        .abandoned_run
        .saturating_add(unreadable(&abandon, outbox));
    let (abandon, requeue) = if recovery.resends < MAX_RESENDS && run <= MAX_ABANDONED_RUN {
        recovery.resends += 1;
        recovery.abandoned_run = run;
        (abandon, true)
    } else {
        let own: Vec<usize> = abandon
            .into_iter()
            .filter(|&i| outbox.get(i).is_some_and(|(_, _, o)| of_message(o)))
            .collect();
        recovery.abandoned_run = recovery
            .abandoned_run
            .saturating_add(unreadable(&own, outbox));
        given_up.insert(message);
        let notice = conversation.interference.get_or_insert(Interference {
            since_ms: now,
            undelivered: 0,
            rejected: 0,
        });
        notice.undelivered = notice.undelivered.saturating_add(1);
        (own, false)
    };
    for &i in abandon.iter().rev() {
        if i >= outbox.len() {
            continue;
        }
        let (name, seq, outgoing) = outbox.remove(i);
        writes.push(Write::Delete(name));
        if !outgoing.stored {
            // Never on the mailbox: the peer cannot have it. (A part already stored leaves
            // the outbox too, so that our floor passes the abandoned ones, but stays counted:
            // it is on the mailbox at an address the peer reads before the later ones.)
            abandoned.push(seq);
        }
        if let BlobKind::Data { message: m } = outgoing.kind {
            touched.insert(m);
            let queue = &mut conversation.recovery.resend;
            if requeue && !queue.contains(&m) {
                queue.push(m);
            }
        }
    }
    conversation.recovery.resend.sort_unstable();
}
