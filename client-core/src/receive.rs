//! Receiving: fetch the poll set, then drain it in the peer's send order
//! (`docs/PROTOCOL.md` §6.2) and commit before reporting.
//!
//! Network and ratchet alternate and never overlap: a fetch runs with no lock held; each
//! drain step takes the conversation's lock, re-reads the last committed session, decrypts
//! what it can, commits the session with the new history entries in one transaction, and
//! releases the lock. When the drained chain's window has slid over addresses not fetched
//! yet, the lock is released, those are fetched, and draining resumes — so a fetch that never
//! answers delays only this poll, never another tab's send.

use std::rc::Rc;

use protocol::{Address, PendingInvite, Session};
use zeroize::Zeroizing;

use crate::client::{Client, DECOY_KEY_LABEL, HistoryEntry, PollPlan};
use crate::decoys::padded_batches;
use crate::error::ClientError;
use crate::platform::{Durability, Platform, RecordStore, Transport};
use crate::records::{self, ConversationState, Message, Status};

/// Extra fetches one poll may make while draining a burst in send order (each covers the
/// addresses a slid receive window newly holds).
pub const MAX_REFETCHES: u32 = 8;

/// What a poll found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollOutcome {
    /// New messages, committed before being reported.
    pub messages: Vec<HistoryEntry>,
    /// The other person joined (our invite completed) during this poll.
    pub joined: bool,
    /// Blobs found that did not decrypt (foreign, tampered or already read): ignored.
    pub rejected: u32,
}

/// A blob found on the mailbox: its address, its bytes, and the round (the poll's request
/// counter) of the fetch that returned it.
type Found = (Address, Vec<u8>, u32);

/// Where a poll's drain stands between its lock-holding steps.
#[derive(Debug, Default)]
struct DrainProgress {
    /// Addresses fetched so far in this poll, each with the round of its latest fetch.
    queried: Vec<(Address, u32)>,
    /// Fetch requests made so far in this poll.
    rounds: u32,
    /// Whether a message was read since the last fetch (only then can a refetch help).
    read_since_fetch: bool,
    /// Refetches made so far.
    refetches: u32,
}

/// What one drain step over a session produced.
#[derive(Default)]
struct Drained {
    /// Complete messages, in the peer's send order.
    plaintexts: Vec<Zeroizing<Vec<u8>>>,
    /// Blobs that failed to decrypt.
    rejected: u32,
    /// Addresses to fetch before draining on (the current chain's window slid past them).
    refetch: Vec<Address>,
}

impl<P: Platform> Client<P> {
    /// Polls one conversation: fetches its poll set (padded with decoys to
    /// [`crate::FETCH_BATCH`]), then drains what arrived in the peer's send order on the latest
    /// committed session, committing session and history together before reporting anything.
    pub async fn poll(&self, id: &str) -> Result<PollOutcome, ClientError> {
        let key = self.key()?;
        let conversation = self.conversation(&key, id).await?;
        let decoy_key = key.subkey(DECOY_KEY_LABEL);
        let state = match &conversation.state {
            ConversationState::Waiting { pending, .. } => pending,
            ConversationState::Active { session, .. } => session,
            ConversationState::InviteTaken => return Ok(PollOutcome::default()),
        };
        let plan = match self.poll_memo(id, state) {
            Some(plan) => plan,
            None => {
                let pickle_key = Self::pickle_key(&key);
                let addresses = match &conversation.state {
                    ConversationState::Active { .. } => {
                        Session::from_pickle(&pickle_key, state)?.poll_addresses()
                    }
                    _ => PendingInvite::from_pickle(&pickle_key, state)?.poll_addresses(),
                };
                let batches = padded_batches(&decoy_key, &addresses);
                let plan = Rc::new(PollPlan { batches });
                self.remember_poll(id, state, plan.clone());
                plan
            }
        };
        let mailbox = conversation.mailbox.clone();
        drop(conversation);
        let mut found = Vec::new();
        let mut progress = DrainProgress::default();
        for batch in &plan.batches {
            let round = progress.next_round();
            let got = self.platform().net().fetch(&mailbox, batch).await?;
            found.extend(got.into_iter().map(|(a, b)| (a, b, round)));
            progress.mark_queried(batch, round);
        }
        let mut outcome = PollOutcome::default();
        if found.is_empty() {
            return Ok(outcome);
        }
        loop {
            let refetch = match self
                .receive_step(id, &mut found, &mut progress, &mut outcome)
                .await
            {
                Ok(refetch) => refetch,
                // Earlier steps committed messages: report them (they are stored, so the
                // screen must show them); what failed waits for the next poll.
                Err(_) if !outcome.messages.is_empty() || outcome.joined => break,
                Err(err) => return Err(err),
            };
            if refetch.is_empty() {
                break;
            }
            progress.refetches += 1;
            progress.read_since_fetch = false;
            // A network error here only delays those messages to the next poll.
            if self
                .fetch_padded(&mailbox, &decoy_key, &refetch, &mut progress, &mut found)
                .await
                .is_err()
            {
                break;
            }
        }
        // Whatever is left is no longer in the poll set: read already (by another tab or an
        // earlier poll) or never ours.
        outcome.rejected += u32::try_from(found.len()).unwrap_or(u32::MAX);
        Ok(outcome)
    }

    /// One drain step under the conversation's lock: accept a hello if the invite waits,
    /// decrypt what the committed session can read now, commit. Returns the addresses to
    /// fetch before the next step (empty when the poll is done).
    async fn receive_step(
        &self,
        id: &str,
        found: &mut Vec<Found>,
        progress: &mut DrainProgress,
        outcome: &mut PollOutcome,
    ) -> Result<Vec<Address>, ClientError> {
        let key = self.key()?;
        let pickle_key = Self::pickle_key(&key);
        let _guard = self.lock_conversation(id).await?;
        let mut conversation = self.conversation(&key, id).await?;
        let mut changed = false;
        // A waiting invite first needs the joiner's hello.
        if let ConversationState::Waiting { pending, .. } = &conversation.state {
            let pending = PendingInvite::from_pickle(&pickle_key, pending)?;
            let mut session = None;
            while let Some((address, blob, _)) = found.pop() {
                match pending.accept(self.now_s(), &address, &blob) {
                    Ok(accepted) => {
                        session = Some(accepted);
                        break;
                    }
                    Err(_) => outcome.rejected += 1,
                }
            }
            let Some(session) = session else {
                return Ok(Vec::new());
            };
            conversation.state = ConversationState::Active {
                session: session.pickle(&pickle_key),
                safety_code: session.safety_code().grouped(),
            };
            conversation.last_activity_ms = self.now_ms();
            outcome.joined = true;
            changed = true;
        }
        let ConversationState::Active { session, .. } = &conversation.state else {
            return Ok(Vec::new());
        };
        let mut live = Session::from_pickle(&pickle_key, session)?;
        let may_refetch = progress.refetches < MAX_REFETCHES;
        let drained = drain(&mut live, found, progress, may_refetch);
        outcome.rejected += drained.rejected;
        let mut writes = Vec::new();
        for plaintext in &drained.plaintexts {
            let message = Message {
                seq: conversation.next_seq,
                outgoing: false,
                text: String::from_utf8_lossy(plaintext).into_owned(),
                time_ms: self.now_ms(),
                status: Status::Received,
            };
            conversation.next_seq += 1;
            conversation.unread = conversation.unread.saturating_add(1);
            conversation.last_activity_ms = message.time_ms;
            writes.push(self.put(&key, records::message_key(id, message.seq), &message));
            outcome.messages.push(HistoryEntry::from(&message));
            changed = true;
        }
        if changed {
            if let ConversationState::Active { session, .. } = &mut conversation.state {
                *session = live.pickle(&pickle_key);
            }
            writes.push(self.put(&key, records::conversation_key(id), &conversation));
            if let Err(err) = self.store().commit(writes, Durability::Strict).await {
                // Nothing was committed, so nothing may be reported: the blobs stay on the
                // mailbox and the next poll reads them again.
                let reported = drained.plaintexts.len();
                outcome
                    .messages
                    .truncate(outcome.messages.len().saturating_sub(reported));
                return Err(err.into());
            }
        }
        Ok(drained.refetch)
    }

    /// Fetches `addresses` in padded batches of [`crate::FETCH_BATCH`], one round each;
    /// adds what was found to `found`.
    async fn fetch_padded(
        &self,
        mailbox: &str,
        decoy_key: &[u8; 32],
        addresses: &[Address],
        progress: &mut DrainProgress,
        found: &mut Vec<Found>,
    ) -> Result<(), ClientError> {
        for batch in padded_batches(decoy_key, addresses) {
            let round = progress.next_round();
            let got = self.platform().net().fetch(mailbox, &batch).await?;
            // A blob fetched again replaces its older copy (same bytes, newer round).
            for (address, blob) in got {
                found.retain(|(a, _, _)| *a != address);
                found.push((address, blob, round));
            }
            progress.mark_queried(&batch, round);
        }
        Ok(())
    }
}

impl DrainProgress {
    /// Starts a fetch request; returns its round.
    fn next_round(&mut self) -> u32 {
        self.rounds += 1;
        self.rounds
    }

    /// Records that `addresses` were fetched in `round`.
    fn mark_queried(&mut self, addresses: &[Address], round: u32) {
        for address in addresses {
            match self.queried.iter_mut().find(|(a, _)| a == address) {
                Some((_, r)) => *r = round,
                None => self.queried.push((*address, round)),
            }
        }
    }

    /// The round in which `address` was last fetched (0: never).
    fn round_of(&self, address: &Address) -> u32 {
        self.queried
            .iter()
            .find(|(a, _)| a == address)
            .map_or(0, |(_, r)| *r)
    }
}

/// Decrypts from `found` in the peer's send order (`docs/PROTOCOL.md` §6.2): skipped
/// messages and the current chain first, earliest address first; when those run dry after
/// something was read, asks for the addresses the slid window newly covers (or, without
/// `may_refetch`, stops there); only then steps to the peer's next chain.
///
/// **No overtaking.** A blob is consumed only if every address before it in that order was
/// fetched no earlier than the blob itself. The sender deposits in order, so an earlier
/// address that read empty *after* a later blob was seen is a true gap; one that read empty
/// *before* (an earlier request of the same poll) may have been filled since, and is fetched
/// again first, so a message never overtakes an earlier one of the same sender.
///
/// Consumed blobs leave `found`; a blob that fails to decrypt leaves the session unchanged
/// and is counted as rejected.
fn drain(
    live: &mut Session,
    found: &mut Vec<Found>,
    progress: &mut DrainProgress,
    may_refetch: bool,
) -> Drained {
    let mut out = Drained::default();
    loop {
        let set = live.poll_set();
        let order = set.all();
        let position = |a: &Address| found.iter().position(|(f, _, _)| f == a);
        let in_order = set.skipped.len() + set.current.len();
        let mut pick = order
            .iter()
            .take(in_order)
            .enumerate()
            .find_map(|(at, a)| position(a).map(|f| (at, f)));
        if pick.is_none() && progress.read_since_fetch {
            let fresh: Vec<Address> = order
                .iter()
                .filter(|a| progress.round_of(a) == 0)
                .copied()
                .collect();
            if !fresh.is_empty() {
                // Never step to the peer's next chain past messages of this one that were
                // not fetched yet: they would arrive later, out of order. Without refetches
                // left, the next poll goes on from here.
                if may_refetch {
                    out.refetch = fresh;
                }
                return out;
            }
        }
        if pick.is_none() {
            pick = order
                .iter()
                .enumerate()
                .skip(in_order)
                .find_map(|(at, a)| position(a).map(|f| (at, f)));
        }
        let Some((at, index)) = pick else {
            return out;
        };
        let round = found.get(index).map_or(0, |(_, _, r)| *r);
        let stale: Vec<Address> = order
            .iter()
            .take(at)
            .filter(|a| progress.round_of(a) < round)
            .copied()
            .collect();
        if !stale.is_empty() {
            if may_refetch {
                out.refetch = stale;
            }
            return out;
        }
        let (address, blob, _) = found.swap_remove(index);
        match live.decrypt(&address, &blob) {
            Ok(received) => {
                progress.read_since_fetch = true;
                if let Some(plaintext) = received.plaintext {
                    out.plaintexts.push(plaintext);
                }
            }
            // Foreign or tampered: a failed decrypt leaves the session unchanged.
            Err(_) => out.rejected += 1,
        }
    }
}
