//! Receiving: fetch the poll set, then drain it in the peer's send order
//! (`docs/PROTOCOL.md` §6.2) and commit before reporting.
//!
//! Network and ratchet alternate and never overlap: a fetch runs with no lock held; each
//! drain step takes the conversation's lock, re-reads the last committed session, decrypts
//! what it can, commits the session with the new history entries in one transaction, and
//! releases the lock. When the drained chain's window has slid over addresses not fetched
//! yet, the lock is released, those are fetched, and draining resumes — so a fetch that never
//! answers delays only this poll, never another tab's send.
//!
//! Every decrypted blob also tells what the peer has acknowledged of ours: in the same
//! commit, acknowledged blobs leave the outbox and messages all of whose blobs are
//! acknowledged become [`Status::Delivered`]; a detected rollback and junk found at the peer's
//! addresses become conversation notices; and a poll that read a message (or a join) owes the
//! peer an acknowledgement, due after a randomised delay ([`crate::outbox::ACK_DELAY_MIN_MS`]).

use std::rc::Rc;

use std::collections::BTreeSet;

use protocol::{
    Acknowledgement, Address, DecryptError, PayloadKind, PendingInvite, Session, WriteKey,
};
use zeroize::Zeroizing;

use crate::client::{Client, DECOY_KEY_LABEL, HistoryEntry, PollPlan};
use crate::decoys::padded_batches;
use crate::error::ClientError;
use crate::platform::{Durability, Platform, RecordStore, Transport, Write};
use crate::records::{
    self, AckDue, BlobKind, Conversation, ConversationState, EndReason, Held, Interference,
    MAX_JUNK_REMEMBERED, Message, RollbackNotice, SetAside, SetAsideMessage, Status,
    UnreadableNotice,
};
use crate::vault::VaultKey;

/// Distinct blobs at the peer's addresses that fail to authenticate before the conversation
/// says someone is interfering (one can be a glitch; three are not).
pub const INTERFERENCE_THRESHOLD: u32 = 3;

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
    /// History entries of ours that became [`Status::Delivered`] in this poll.
    pub delivered: Vec<u64>,
    /// A notice (interference, rollback) was raised or grew: read the summary again.
    pub notice: bool,
    /// When to flush (ms since the epoch): an acknowledgement is owed then, or a squatted
    /// message was encrypted again (now).
    pub flush_at_ms: Option<u64>,
    /// With delete after read on, after [`Client::poll_pushed`]: the delete messages for what
    /// it read ([`crate::subscription::delete_messages`]), for the app to send on the
    /// conversation's subscription socket, in place of one `DELETE` request per blob. Best
    /// effort, as those are: a message that never reaches the mailbox leaves the blobs to
    /// expire. Empty after [`Client::poll`] (it deletes over HTTP itself).
    pub delete_messages: Vec<Zeroizing<Vec<u8>>>,
    /// With delete after read on, after [`Client::poll`]: how many blobs it read and
    /// committed wait to be deleted. The app calls [`Client::delete_read`] once it has shown
    /// what the poll reported; the conversation's next poll deletes whatever is still left.
    pub deletes_owed: u32,
    /// When to poll this conversation again at the latest (ms since the epoch), even if
    /// nothing is pushed: a message read behind a gap waits set aside for its copy sent
    /// again, and is shown then if that copy has not come ([`SET_ASIDE_MS`]); or the
    /// conversation's unreadable notice calls for our restore signals then
    /// ([`UnreadableNotice::signal_at_ms`](crate::records::UnreadableNotice::signal_at_ms)),
    /// which that poll deposits. `None`: nothing waits.
    pub poll_at_ms: Option<u64>,
}

/// What a conversation record says of our restore signals (`Client::deposit_restore_signals`).
#[derive(Clone, Copy, Debug, Default)]
struct Signal {
    /// They are called for now.
    stands: bool,
    /// They will be, at this time (ms since the epoch), if the unreadable notice still stands.
    due_ms: Option<u64>,
}

impl PollOutcome {
    /// Whether a step committed something the app must be told of (messages, a join,
    /// deliveries, a notice, a flush or deletes owed): then a later error of the same poll is
    /// not returned. When to poll next alone is no such thing.
    fn reports_something(&self) -> bool {
        !self.messages.is_empty()
            || self.joined
            || self.rejected > 0
            || !self.delivered.is_empty()
            || self.notice
            || self.flush_at_ms.is_some()
            || !self.delete_messages.is_empty()
            || self.deletes_owed > 0
    }
}

/// Most poll batches in one watch set ([`Client::watch_set`]): 5 × 48 = 240 addresses, under
/// the 256 a watch set may hold. A poll set that needs more (16 or more skipped keys) is
/// watched in part; the safety poll reads the rest.
pub const MAX_WATCH_BATCHES: usize = 5;

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
    /// Write keys of the blobs read and committed by this poll's steps: deleted from the
    /// mailbox once the poll is done (`DELETE /v1/m/{address}`, outside the lock).
    read: Vec<WriteKey>,
    /// Addresses whose blob failed to decrypt in this poll (taken: nothing fills them).
    failed: Vec<Address>,
    /// Addresses found *spent* (read and deleted) in this poll.
    spent: Vec<Address>,
    /// The drain started from pushed blobs ([`Client::poll_pushed`]), a partial view: what
    /// reading moves the window to comes with the next watch set's snapshot, not a refetch,
    /// and no blob is held on it.
    partial: bool,
    /// A partial drain stopped where holding a blob was in question: read the poll set.
    full_poll: bool,
}

/// A complete message a drain read, with what places it among the others.
struct Shown {
    plaintext: Zeroizing<Vec<u8>>,
    /// The sequence number of the blob that completed it.
    seq: u32,
    /// The peer's ratchet key of the chain that blob was read on.
    chain: [u8; 32],
    /// Its message id.
    id: [u8; 8],
    /// Read while a number below its own was missing from the peer's stream.
    behind_gap: bool,
    /// When it was read (ms since the epoch): one set aside is shown after
    /// [`SET_ASIDE_MS`] if its copy sent again has not completed by then.
    read_ms: u64,
    /// Set aside by a floor placed in this drain ([`Drained::place`]): where it stood.
    moved: Option<Moved>,
}

/// Where a message stood among those a drain shows when a later floor set it aside: if its
/// copy sent again completes with no new message of the peer's placed in between, every
/// re-sent blob before it repeated what was here already, so it goes back there.
#[derive(Clone, Copy)]
struct Moved {
    /// [`Drained::news`] when it was set aside.
    news: u32,
    /// The id of the message that followed it (`None`: it was the last).
    before: Option<[u8; 8]>,
}

impl Shown {
    /// A message set aside by an earlier poll; `now_ms` bounds when it was read (a clock set
    /// back since must not make it wait the difference too).
    fn from_record(kept: &SetAsideMessage, now_ms: u64) -> Self {
        Shown {
            plaintext: Zeroizing::new(kept.text.clone()),
            seq: kept.seq,
            chain: kept.chain,
            id: kept.message_id,
            behind_gap: true,
            read_ms: kept.read_ms.min(now_ms),
            moved: None,
        }
    }

    fn to_record(&self) -> SetAsideMessage {
        SetAsideMessage {
            message_id: self.id,
            seq: self.seq,
            chain: self.chain,
            text: self.plaintext.to_vec(),
            read_ms: self.read_ms,
        }
    }
}

/// What one drain step over a session produced.
#[derive(Default)]
struct Drained {
    /// Complete messages, in the peer's send order.
    plaintexts: Vec<Shown>,
    /// Complete messages read behind a gap whose own sequence number a later blob's floor
    /// passes ([`Drained::place`]), with those set aside by earlier polls (the conversation's
    /// [`SetAside`] record): each is shown where its copy sent again completes, or after
    /// [`SET_ASIDE_MS`] ([`Drained::settle`]); the rest are stored set aside again.
    deferred: Vec<Shown>,
    /// When this drain runs (ms since the epoch).
    now_ms: u64,
    /// New messages placed so far (shown or set aside; not the copies that release one).
    news: u32,
    /// Blobs that failed to decrypt.
    rejected: u32,
    /// Addresses to fetch before draining on (the current chain's window slid past them).
    refetch: Vec<Address>,
    /// Blobs decrypted (messages, fragments, acknowledgements).
    decrypted: u32,
    /// Whether a data blob was among them (only those are acknowledged for their own sake).
    data: bool,
    /// Our acknowledgement passed numbers of the peer's that we refused for their
    /// predecessor (`protocol::Session::refused_between`): the copy of the peer's device that
    /// sent again under a later floor waits for our confirmation of it (a restored copy's
    /// notice stands on it, [`records::LostEvidence`]), so it is owed one, also where nothing
    /// else we read asks for it.
    passed_refused: bool,
    /// Blobs the lost copy of this device sent, by the rollbacks detected.
    rollback_lost: u32,
    /// Rollbacks detected (also those that lost no sequence number: the restored copy sent
    /// at least as much as the lost one, under the same numbers).
    rollbacks: u32,
    /// Our sequence numbers the peer acknowledged but whose blobs may be the lost copy's
    /// (`[unconfirmed_from, acknowledged)` of each rollback): their messages are sent again.
    unverified: Vec<(u32, u32)>,
    /// The last verdict on the peer: `Some(true)` if the last blob that spoke for the peer
    /// was refused as `PeerRestored`, `Some(false)` if it decrypted.
    peer_restored: Option<bool>,
    /// Addresses of the poll set whose blob did not authenticate.
    junk: Vec<Address>,
    /// The last verdict on the peer's answers: `Some(true)` if the last blob that spoke for
    /// them was `UnreadableAnswer`, `Some(false)` if one decrypted.
    unreadable: Option<bool>,
    /// A blob left on the mailbox for now (a gap below it that its sender still fills).
    held: Option<Address>,
    /// How many found blobs were left behind the held one when it was held.
    held_behind: usize,
    /// The peer's newest blob acknowledged less of ours than it had confirmed: its device
    /// went back to an older copy, which learns our floor only from a blob of ours.
    peer_behind: bool,
    /// A spent address is still polled after the drain: read and deleted by a lost copy of
    /// this device ([`records::LostEvidence`]).
    spent_polled: bool,
    /// A held blob was read although its gap is still open ([`Holds::released`]).
    released: bool,
    /// The highest sequence number read past a hold in this step: the numbers below it still
    /// missing are abandoned ([`Holds::abandoned_below`]).
    released_seq: u32,
    /// Addresses consumed in this step (a held record for them is done).
    consumed: Vec<Address>,
    /// Write keys of the consumed blobs, for deleting them once committed.
    read: Vec<WriteKey>,
    /// Fragments read that complete no message yet, by message id, with their write keys:
    /// deleted only with the blob that completes their message.
    fragments: Vec<([u8; 8], WriteKey)>,
    /// Ids of the messages that blobs of this step completed (new or duplicates).
    completed: Vec<[u8; 8]>,
}

/// What places a blob just read among the messages of a drain ([`Drained::place`]).
struct ReadBlob {
    seq: u32,
    floor: u32,
    chain: [u8; 32],
    id: [u8; 8],
    duplicate: bool,
    /// A number below `seq` is still missing from the peer's stream after reading it.
    behind_gap: bool,
    /// A floor among the blobs found after it passes `seq` itself ([`Cover::passed`]).
    passed: bool,
}

impl Drained {
    /// Places the message a blob just read completes (`plaintext`), or the message it
    /// repeats (`duplicate`), among those this drain shows, in the peer's send order.
    ///
    /// **Order kept across a sender's rollback.** A message read behind a gap whose own
    /// number a floor passes was given up by its sender (another copy of its device wrote
    /// under those numbers, or a restore lost them), which sends it again past the floor,
    /// after the messages it overtook. It is set aside ([`Drained::deferred`]): when a floor
    /// found later in the same poll passes it (`blob.passed`, known as it is read), or when a
    /// later blob of its chain placed in this drain does (the messages placed so far, behind
    /// a gap on that chain, below its floor; a copy of the peer's device that went back before
    /// the chain's step writes on another, and a blob refused for its predecessor, `floor` 0
    /// here, is another copy's). A message set aside is shown where its copy sent again
    /// completes, in this poll or a later one (as a duplicate: the first copy completed first;
    /// or, if the session no longer knew its id, as a new message with the same id, shown
    /// once); else after [`SET_ASIDE_MS`] ([`Drained::settle`]): a lost copy of this device
    /// may have confirmed it, and nothing sends it again. Display order only: nothing is
    /// dropped or shown twice, and a message set aside is committed with the read.
    /// (`docs/CLIENT.md`, "Messages a later floor passes"; the simulator's `all` seeds 5536,
    /// 4083, 11156, 24198.)
    fn place(&mut self, plaintext: Option<Zeroizing<Vec<u8>>>, blob: &ReadBlob) {
        let passed =
            |shown: &Shown| shown.behind_gap && shown.chain == blob.chain && shown.seq < blob.floor;
        if self.plaintexts.iter().any(passed) {
            let mut kept = Vec::new();
            let mut waiting: Vec<Shown> = Vec::new();
            for shown in core::mem::take(&mut self.plaintexts) {
                if passed(&shown) {
                    waiting.push(shown);
                    continue;
                }
                for mut moved in waiting.drain(..) {
                    moved.moved = Some(Moved {
                        news: self.news,
                        before: Some(shown.id),
                    });
                    self.deferred.push(moved);
                }
                kept.push(shown);
            }
            for mut moved in waiting {
                moved.moved = Some(Moved {
                    news: self.news,
                    before: None,
                });
                self.deferred.push(moved);
            }
            self.plaintexts = kept;
        }
        let set_aside = (blob.id != [0; 8])
            .then(|| self.deferred.iter().position(|shown| shown.id == blob.id))
            .flatten();
        if let Some(at) = set_aside
            && (plaintext.is_some() || (blob.duplicate && !blob.behind_gap))
        {
            // Its copy sent again completed: the message shows here, once; back where it
            // stood if nothing new came before this copy. (A copy read behind the gap too is
            // no more in order than the message: it came before the sender's floor passed
            // them both, `all` seed 17646; the message waits for the copy above the floor.)
            let mut shown = self.deferred.remove(at);
            shown.behind_gap = false;
            let back = shown
                .moved
                .take()
                .filter(|moved| moved.news == self.news)
                .and_then(|moved| moved.before)
                .and_then(|before| self.plaintexts.iter().position(|s| s.id == before));
            match back {
                Some(at) => self.plaintexts.insert(at, shown),
                None => self.plaintexts.push(shown),
            }
        } else if let Some(plaintext) = plaintext {
            self.news += 1;
            let shown = Shown {
                plaintext,
                seq: blob.seq,
                chain: blob.chain,
                id: blob.id,
                behind_gap: blob.behind_gap,
                read_ms: self.now_ms,
                moved: None,
            };
            if blob.passed && blob.behind_gap {
                self.deferred.push(shown);
            } else {
                // A message read past a gap earlier in this drain, under a higher number,
                // comes after this one, which is read in order (it fills that gap): a fork's
                // blob read before the blobs its header reached back to on the chain before
                // (`restore` seed 33 with `--delete-after-read`).
                let at = self
                    .plaintexts
                    .iter()
                    .position(|s| !blob.behind_gap && s.behind_gap && s.seq > blob.seq)
                    .unwrap_or(self.plaintexts.len());
                self.plaintexts.insert(at, shown);
            }
        }
    }

    /// Ends the drain's placing: the messages set aside for [`SET_ASIDE_MS`] or more, and the
    /// oldest beyond [`MAX_SET_ASIDE`], come after the rest; the others stay set aside.
    fn settle(&mut self) {
        let now = self.now_ms;
        let (due, mut kept): (Vec<Shown>, Vec<Shown>) = core::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|shown| now.saturating_sub(shown.read_ms) >= SET_ASIDE_MS);
        self.plaintexts.extend(due);
        let over = kept.len().saturating_sub(MAX_SET_ASIDE);
        self.plaintexts.extend(kept.drain(..over));
        self.deferred = kept;
    }
}

/// How long a message set aside for its copy sent again waits for it at most (ms since it
/// was read): two retransmission intervals, 10 minutes. Its sender deposits that copy with
/// the floor that passed it, and deposits it again within a retransmission interval if it
/// expired; past this, nothing sends it again (a lost copy of this device confirmed it).
pub const SET_ASIDE_MS: u64 = 2 * crate::RETRANSMIT_AFTER_MS;

/// Most messages a conversation keeps set aside; past it the oldest are shown.
pub const MAX_SET_ASIDE: usize = 256;

/// Most fragments whose DELETE waits for the rest of their message
/// ([`Client::held_fragments`]); past it the oldest are forgotten and their blobs expire.
/// A message has at most 64 fragments (`protocol::MAX_MESSAGE_LEN`), and the reassembly keeps
/// few partial messages, so this is reached only by fragments whose message never completes.
pub const MAX_HELD_FRAGMENTS: usize = 256;

/// How long a blob of the peer's is held at most (ms since it was first held): 24 hours.
/// Past it the blob is read anyway, so that nothing waits for ever on a blob that never
/// comes back (its sender's device was lost, say); anything that arrives later still shows,
/// after it.
pub const MAX_HOLD_MS: u64 = 24 * 60 * 60 * 1_000;

/// How long a blob is held at most while its sender keeps depositing blobs behind it (ms):
/// two retransmission intervals, 10 minutes.
pub const ACTIVE_HOLD_MS: u64 = 2 * crate::RETRANSMIT_AFTER_MS;

/// The poll set, then as many of the peer's signal addresses as fit in the padding of its
/// last fetch (`docs/PROTOCOL.md` §6.9): its behind signals (one or two addresses), then its
/// restore signals (newest first), then the addresses of its blobs we read most recently
/// (newest first; §8, "Rewritten addresses"). Free, since the request has
/// [`crate::FETCH_BATCH`] addresses anyway. The rest of the signals are fetched by the
/// retransmission check, which runs while our blobs go unconfirmed.
fn with_peer_signals(live: &Session) -> Vec<Address> {
    let mut addresses = live.poll_addresses();
    let room = (crate::FETCH_BATCH - addresses.len() % crate::FETCH_BATCH) % crate::FETCH_BATCH;
    let polled = addresses.clone();
    addresses.extend(
        live.behind_signal_addresses()
            .into_iter()
            .chain(live.restore_signal_addresses())
            .chain(
                live.read_addresses()
                    .into_iter()
                    .map(|(a, _)| a)
                    .filter(|a| !polled.contains(a)),
            )
            .take(room),
    );
    addresses
}

/// The committed session a drain step started from, and the blobs it consumed since: enough
/// to rebuild the session as it was before any one of them (a `Session` has no `Clone`).
struct Replay<'a> {
    pickle_key: &'a [u8; 32],
    start: &'a [u8],
    consumed: Vec<(Address, Vec<u8>)>,
}

impl Replay<'_> {
    /// The session after the consumed blobs, plus `extra` if given. `None` if the start state
    /// does not load (it just did: cannot happen).
    fn rebuild(&self, extra: Option<(&Address, &[u8])>) -> Option<Session> {
        let mut session = Session::from_pickle(self.pickle_key, self.start).ok()?;
        let extra = extra.map(|(a, b)| (*a, b.to_vec()));
        for (address, blob) in self.consumed.iter().chain(extra.as_ref()) {
            // Deterministic: the same blobs on the same state give the same state.
            let _ = session.decrypt(address, blob);
        }
        Some(session)
    }
}

impl<P: Platform> Client<P> {
    /// Polls one conversation: fetches its poll set (padded with decoys to
    /// [`crate::FETCH_BATCH`]), then drains what arrived in the peer's send order on the latest
    /// committed session, committing session and history together before reporting anything.
    ///
    /// Then, if a flush found some of our messages' addresses taken by foreign bytes, encrypts
    /// them again at later addresses (with what this poll learnt, a rollback included) and
    /// asks for a flush now ([`PollOutcome::flush_at_ms`]).
    pub async fn poll(&self, id: &str) -> Result<PollOutcome, ClientError> {
        self.poll_from(id, None).await
    }

    /// Reads what a subscription pushed for conversation `id` (`GET /v1/subscribe`, Mailbox
    /// API revision 1.1: a snapshot or a push, each record `(address, blob)`, a spent
    /// address's blob empty) as a poll reads what its fetch found, without fetching the poll
    /// set first: a message pushed at the next address of the peer's chain is read, committed
    /// and reported with no request at all. Same outcome and errors as [`Client::poll`].
    ///
    /// A push says what is at *its* addresses only, so the drain's order rules run on that
    /// partial view (`docs/PROTOCOL.md` §6.2): before consuming a pushed blob it fetches the
    /// earlier addresses of the peer's order that it has not seen ("no overtaking", as a
    /// poll's refetch does), and when reading one would raise the question of holding a blob
    /// behind a gap, or blobs are already held, it reads the whole poll set as [`Client::poll`]
    /// does, since holds are decided on everything found. What the session moved to after
    /// reading is *not* fetched: the app sends the new watch set ([`Client::watch_set`]) and
    /// its snapshot brings it (only when the whole poll set fits in a watch set; otherwise it
    /// is fetched). Records at addresses outside the poll set (read before, foreign) count as
    /// rejected, as in a poll.
    pub async fn poll_pushed(
        &self,
        id: &str,
        blobs: Vec<(Address, Vec<u8>)>,
    ) -> Result<PollOutcome, ClientError> {
        self.poll_from(id, Some(blobs)).await
    }

    /// [`Client::poll`] from a fetch of the poll set (`pushed` `None`) or from pushed blobs.
    async fn poll_from(
        &self,
        id: &str,
        pushed: Option<Vec<(Address, Vec<u8>)>>,
    ) -> Result<PollOutcome, ClientError> {
        // What the last poll of this conversation read and reported, if the app did not
        // delete it yet (delete after read).
        self.delete_read(id).await;
        self.probe_once(id).await?;
        let mut signal = Signal::default();
        let mut outcome = self.poll_mailbox(id, &mut signal, pushed).await?;
        self.note_contest_poll(id, self.now_ms());
        // Not fatal to the poll: kept for the next one.
        let _ = self.reprobe_next_chain(id).await;
        // Only when the record read by this poll (or what it raised) calls for it: no extra
        // read per poll. Not fatal to the poll: the signal is deposited again at the next one.
        if (signal.stands || outcome.notice)
            && let Ok(due) = self.deposit_restore_signals(id).await
        {
            // What the record says after the poll (a notice raised or lifted by it).
            signal.due_ms = due;
        }
        // An unreadable notice's signal goes out when it is due, not at whatever poll comes
        // next (with a live subscription, minutes later): poll then (a fresh outside trial
        // waited about 6 minutes for the other side to be told).
        outcome.poll_at_ms = outcome.poll_at_ms.into_iter().chain(signal.due_ms).min();
        match self.resend_squatted(id).await {
            Ok(true) => outcome.flush_at_ms = Some(self.now_ms()),
            Ok(false) | Err(ClientError::ConversationEnded { .. } | ClientError::NotJoined) => {}
            // The messages are committed: report them; the resend waits for the next poll.
            Err(_) if !outcome.messages.is_empty() || outcome.joined => {}
            Err(err) => return Err(err),
        }
        Ok(outcome)
    }

    /// Once per conversation after unlock: finds whether our next sending positions already
    /// hold blobs (a copy of this device, lost to a restore, wrote there) and moves past them
    /// before anything is sent, so that a restored device never presents a second blob for an
    /// address it used (one padded fetch, no lock held; the skip is committed under the lock).
    /// When anything was found taken, the start of the chain our next send step opens is
    /// probed again once that step is pending ([`Client::reprobe_next_chain`]).
    async fn probe_once(&self, id: &str) -> Result<(), ClientError> {
        if self.probed.borrow().iter().any(|p| p == id) {
            return Ok(());
        }
        let key = self.key()?;
        let conversation = self.conversation(&key, id).await?;
        if conversation.ended.is_some()
            || !matches!(conversation.state, ConversationState::Active { .. })
        {
            return Ok(());
        }
        drop(conversation);
        if let Some(taken) = self.taken_positions(&key, id).await {
            if !self.reprobe.borrow().iter().any(|p| p == id) {
                self.reprobe.borrow_mut().push(id.to_owned());
            }
            self.apply_taken(&key, id, taken).await?;
        }
        self.probed.borrow_mut().push(id.to_owned());
        Ok(())
    }

    /// After a probe found positions taken: once our next message starts a new sending chain
    /// (a send step is pending), probes that chain's first positions and moves past those a
    /// lost copy of this device used. Its next-chain header key is fixed before the step, so
    /// a copy that read the peer's chain before this state did (and answered it) wrote at
    /// exactly those addresses (a fresh outside trial in Chromium: the restored device's first
    /// blob met its lost copy's answer there, a `409` over foreign bytes). Once per
    /// conversation and unlock; nothing while the step is not pending.
    async fn reprobe_next_chain(&self, id: &str) -> Result<(), ClientError> {
        if !self.reprobe.borrow().iter().any(|p| p == id) {
            return Ok(());
        }
        let key = self.key()?;
        let conversation = self.conversation(&key, id).await?;
        if conversation.ended.is_some()
            || !matches!(conversation.state, ConversationState::Active { .. })
        {
            // Nothing will be sent here again: no probe is due.
            self.reprobe.borrow_mut().retain(|p| p != id);
            return Ok(());
        }
        let pending = Self::load_session(&key, &conversation)?
            .upcoming_chain_lead()
            .is_some();
        drop(conversation);
        if !pending {
            return Ok(());
        }
        if let Some(taken) = self.taken_positions(&key, id).await {
            self.apply_taken(&key, id, taken).await?;
        }
        self.reprobe.borrow_mut().retain(|p| p != id);
        Ok(())
    }

    /// Commits [`Client::skip_taken`] of `taken` for conversation `id` under its lock, if the
    /// session still starts where it was probed.
    async fn apply_taken(
        &self,
        key: &VaultKey,
        id: &str,
        taken: crate::outbox::Taken,
    ) -> Result<(), ClientError> {
        let _guard = self.lock_conversation(id).await?;
        let mut conversation = self.conversation(key, id).await?;
        let mut live = Self::load_session(key, &conversation)?;
        let before = live.upcoming_addresses(1);
        let mut writes = Vec::new();
        let skipped = Self::skip_taken(&mut live, Some(taken));
        skipped.note_evidence(&mut conversation, &live, self.now_ms());
        self.keep_lost_blobs(key, id, &live, skipped.lost, &mut writes)
            .await?;
        if skipped.next_chain {
            self.doubt_left_chain(key, id, &mut conversation, &mut live, &mut writes)
                .await?;
        }
        if live.upcoming_addresses(1) != before {
            if let ConversationState::Active { session, .. } = &mut conversation.state {
                *session = live.pickle(&Self::pickle_key(key));
            }
            writes.push(self.put(key, records::conversation_key(id), &conversation));
            self.store().commit(writes, Durability::Strict).await?;
        }
        Ok(())
    }

    /// The padded requests a poll of conversation `id` makes now (remembered while its
    /// sealed state is unchanged); `None` when there is nothing to poll (the invite was
    /// taken, the conversation ended for good).
    fn poll_plan(
        &self,
        key: &VaultKey,
        id: &str,
        conversation: &Conversation,
    ) -> Result<Option<Rc<PollPlan>>, ClientError> {
        if conversation.ended == Some(EndReason::ProtocolV1) {
            return Ok(None);
        }
        let state = match &conversation.state {
            ConversationState::Waiting { pending, .. } => pending,
            ConversationState::Active { session, .. } => session,
            ConversationState::InviteTaken => return Ok(None),
        };
        if let Some(plan) = self.poll_memo(id, state) {
            return Ok(Some(plan));
        }
        let pickle_key = Self::pickle_key(key);
        let (addresses, mut read) = match &conversation.state {
            ConversationState::Active { .. } => match Self::load_session(key, conversation) {
                Ok(live) => (with_peer_signals(&live), live.read_addresses()),
                Err(ClientError::ConversationEnded { .. }) => return Ok(None),
                Err(err) => return Err(err),
            },
            _ => (
                PendingInvite::from_pickle(&pickle_key, state)?.poll_addresses(),
                Vec::new(),
            ),
        };
        read.retain(|(a, _)| addresses.contains(a));
        let batches = padded_batches(&key.subkey(DECOY_KEY_LABEL), &addresses);
        let plan = Rc::new(PollPlan { batches, read });
        self.remember_poll(id, state, plan.clone());
        Ok(Some(plan))
    }

    /// The watch set of conversation `id` for a subscription (`GET /v1/subscribe`, Mailbox
    /// API revision 1.1): exactly the addresses its next poll fetches, in the same padded
    /// batches of [`crate::FETCH_BATCH`] (decoys included), concatenated, at most
    /// [`MAX_WATCH_BATCHES`] batches (240 addresses; the API allows 256). `None` when there is
    /// nothing to watch. A subscription tells the app *when* to poll; the poll still reads,
    /// decrypts and commits, so the watch set links no more than the poll requests do, as
    /// long as each conversation has its own subscription (`docs/THREAT-MODEL.md`).
    /// Send it again whenever it changes (after a poll that read something).
    pub async fn watch_set(&self, id: &str) -> Result<Option<Vec<u8>>, ClientError> {
        let key = self.key()?;
        let conversation = self.conversation(&key, id).await?;
        let Some(plan) = self.poll_plan(&key, id, &conversation)? else {
            return Ok(None);
        };
        let mut watch = Vec::new();
        for batch in plan.batches.iter().take(MAX_WATCH_BATCHES) {
            for address in batch {
                watch.extend_from_slice(&address.0);
            }
        }
        Ok(Some(watch))
    }

    /// Fetches (or takes what was pushed) and drains (see [`Client::poll`],
    /// [`Client::poll_pushed`]). Sets `signal` from the conversation record it reads: whether
    /// it calls for our restore signals now, or when it will.
    async fn poll_mailbox(
        &self,
        id: &str,
        signal: &mut Signal,
        pushed: Option<Vec<(Address, Vec<u8>)>>,
    ) -> Result<PollOutcome, ClientError> {
        let key = self.key()?;
        let conversation = self.conversation(&key, id).await?;
        let now = self.now_ms();
        let at = self.signal_at(id, &conversation);
        *signal = Signal {
            stands: crate::outbox::restore_signal_stands(&conversation, now, at),
            due_ms: crate::outbox::restore_signal_due(&conversation, now, at),
        };
        // (A conversation ended because the peer was restored is still polled: a later blob
        // of theirs that decrypts lifts it.)
        let Some(plan) = self.poll_plan(&key, id, &conversation)? else {
            return Ok(PollOutcome::default());
        };
        let mailbox = conversation.mailbox.clone();
        // Held blobs are decided on everything found: then a push is read as a poll.
        let pushed = pushed.filter(|_| conversation.held.is_empty());
        drop(conversation);
        let mut outcome = PollOutcome::default();
        let partial = pushed.is_some();
        if let Some(blobs) = pushed {
            let mut found = Vec::new();
            let mut progress = DrainProgress {
                partial: true,
                ..DrainProgress::default()
            };
            let round = progress.next_round();
            let addresses: Vec<Address> = blobs.iter().map(|(a, _)| *a).collect();
            for (address, blob) in blobs {
                if !plan.read_before(&address, &blob) {
                    progress.found(&mut found, address, blob, round);
                }
            }
            progress.mark_queried(&addresses, round);
            self.drain_found(id, &mailbox, &key, found, &mut progress, &mut outcome)
                .await?;
            if !progress.full_poll {
                return Ok(outcome);
            }
        }
        let mut found = Vec::new();
        let mut progress = DrainProgress::default();
        // After a push that called for a full read: the poll set as it is now.
        let plan = if partial {
            let conversation = self.conversation(&key, id).await?;
            match self.poll_plan(&key, id, &conversation)? {
                Some(plan) => plan,
                None => return Ok(outcome),
            }
        } else {
            plan
        };
        for batch in &plan.batches {
            let round = progress.next_round();
            let got = match self.platform().net().fetch(&mailbox, batch).await {
                Ok(got) => got,
                // What a push read is committed: report it.
                Err(_) if outcome.reports_something() => return Ok(outcome),
                Err(err) => return Err(err.into()),
            };
            for (address, blob) in got {
                if !plan.read_before(&address, &blob) {
                    progress.found(&mut found, address, blob, round);
                }
            }
            progress.mark_queried(batch, round);
        }
        // A held blob whose address read empty expired: if it comes back, its sender
        // deposited it again (`HoldWatch::gone`).
        for w in self.hold_watch.borrow_mut().iter_mut() {
            if progress.round_of(&w.address) != 0 && !found.iter().any(|(a, _, _)| *a == w.address)
            {
                w.gone = true;
            }
        }
        self.drain_found(id, &mailbox, &key, found, &mut progress, &mut outcome)
            .await?;
        Ok(outcome)
    }

    /// Drains `found` step by step, fetching what the steps ask for, into `outcome`; then
    /// deletes what was read if [`Client::set_delete_after_read`] is on. An error after a step
    /// committed messages is not returned: they are stored, so they must be reported.
    async fn drain_found(
        &self,
        id: &str,
        mailbox: &str,
        key: &VaultKey,
        mut found: Vec<Found>,
        progress: &mut DrainProgress,
        outcome: &mut PollOutcome,
    ) -> Result<(), ClientError> {
        // Spent addresses alone are looked at too: they may show that this copy lost state.
        // With nothing found, a step still runs where messages wait set aside: one whose
        // wait is over is shown now, not when the quiet peer next writes.
        if found.is_empty()
            && progress.spent.is_empty()
            && !self
                .listed_has(&self.set_aside, records::SET_ASIDE_PREFIX, id)
                .await?
        {
            return Ok(());
        }
        let decoy_key = key.subkey(DECOY_KEY_LABEL);
        loop {
            let refetch = match self.receive_step(id, &mut found, progress, outcome).await {
                Ok(refetch) => refetch,
                // Earlier steps committed messages: report them (they are stored, so the
                // screen must show them); what failed waits for the next poll.
                Err(_) if !outcome.messages.is_empty() || outcome.joined => break,
                Err(err) => return Err(err),
            };
            if refetch.is_empty() || progress.full_poll {
                break;
            }
            progress.refetches += 1;
            progress.read_since_fetch = false;
            // A network error here only delays those messages to the next poll.
            if self
                .fetch_padded(mailbox, &decoy_key, &refetch, progress, &mut found)
                .await
                .is_err()
            {
                break;
            }
        }
        // Whatever is left is no longer in the poll set: read already (by another tab or an
        // earlier poll) or never ours. (After a partial read that calls for a full one, the
        // full read counts them.)
        if !progress.full_poll {
            outcome.rejected += u32::try_from(found.len()).unwrap_or(u32::MAX);
        }
        if self.delete_after_read.get() {
            if progress.partial {
                // Read from the subscription: deleted over it too.
                outcome
                    .delete_messages
                    .extend(crate::subscription::delete_messages(&progress.read));
            } else {
                // Deleted once the app has shown what this poll reports
                // ([`Client::delete_read`]), or at the start of the next poll.
                outcome.deletes_owed = outcome
                    .deletes_owed
                    .saturating_add(u32::try_from(progress.read.len()).unwrap_or(u32::MAX));
                // Moved, not copied: each write key stays in one place until it is used.
                self.pending_deletes.borrow_mut().extend(
                    core::mem::take(&mut progress.read)
                        .into_iter()
                        .map(|k| (id.to_owned(), mailbox.to_owned(), k)),
                );
            }
        }
        Ok(())
    }

    /// Deletes what conversation `id`'s polls read and committed and left to delete
    /// ([`PollOutcome::deletes_owed`]; `DELETE /v1/m/{address}`, Mailbox API revision 1.1),
    /// so the mailbox keeps a message only until it is read; the TTL remains the bound for
    /// what is never read. Call it once what the poll reported is shown: a poll does not
    /// delete before it returns, so a device restored or crashed in between has shown what it
    /// read, rather than lose messages nobody saw that the mailbox no longer holds (the
    /// simulator's `restore --delete-after-read` seed 181, a false delivery). The
    /// conversation's next poll deletes whatever is still left. Best effort: a delete that
    /// fails (offline, a mailbox without revision 1.1) leaves the blob to expire, and nothing
    /// is retried; so does a lock before it runs. One request per blob, next to the
    /// conversation's own poll: the mailbox learns nothing it did not see in the fetch that
    /// found it (`docs/THREAT-MODEL.md`).
    pub async fn delete_read(&self, id: &str) {
        let owed: Vec<(String, WriteKey)> = {
            let mut pending = self.pending_deletes.borrow_mut();
            let (mine, rest): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(c, _, _)| c == id);
            *pending = rest;
            mine.into_iter().map(|(_, m, k)| (m, k)).collect()
        };
        let net = self.platform().net();
        for (mailbox, write_key) in &owed {
            if net.delete(mailbox, write_key).await.is_err() {
                // Unreachable now: the rest would fail too.
                break;
            }
        }
    }

    /// Keeps the write keys of `fragments` (conversation `id`'s fragments read in a committed
    /// step that complete no message yet) and returns, to be deleted now, those of every held
    /// fragment whose message a blob of that step completed (`completed`, message ids).
    ///
    /// **A fragment stays on the mailbox until its message is on this device.** Deleting it
    /// at read would leave a copy of this device restored in between (a profile restored from
    /// a backup, a power loss under relaxed commits) unable to complete the message, whose
    /// other fragments it reads later, while the sender took the fragment for read: the
    /// message would come only once resent, after later ones (the simulator's
    /// `all --delete-after-read` seed 3893). In memory only, like the deletes owed: a lock or
    /// a restart before the message completes leaves those blobs to expire (at most
    /// [`MAX_HELD_FRAGMENTS`], the oldest forgotten first).
    fn hold_fragments(
        &self,
        id: &str,
        fragments: Vec<([u8; 8], WriteKey)>,
        completed: &[[u8; 8]],
    ) -> Vec<WriteKey> {
        let mut held = self.held_fragments.borrow_mut();
        held.extend(
            fragments
                .into_iter()
                .map(|(message, key)| (id.to_owned(), message, key)),
        );
        let (done, kept): (Vec<_>, Vec<_>) = core::mem::take(&mut *held)
            .into_iter()
            .partition(|(c, message, _)| c == id && completed.contains(message));
        *held = kept;
        let over = held.len().saturating_sub(MAX_HELD_FRAGMENTS);
        held.drain(..over);
        done.into_iter().map(|(_, _, key)| key).collect()
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
        let joined_now = changed;
        if !matches!(conversation.state, ConversationState::Active { .. }) {
            return Ok(Vec::new());
        }
        let delivered_before = outcome.delivered.len();
        let mut live = Self::load_session(&key, &conversation)?;
        let may_refetch = progress.refetches < MAX_REFETCHES;
        let now = self.now_ms();
        let start = match &conversation.state {
            ConversationState::Active { session, .. } => session.clone(),
            _ => Vec::new(),
        };
        let mut replay = Replay {
            pickle_key: &pickle_key,
            start: &start,
            consumed: Vec::new(),
        };
        let watched = self.hold_watch.borrow().clone();
        let abandoned_below = self
            .abandoned_below
            .borrow()
            .iter()
            .find(|(c, _)| c == id)
            .map_or(0, |(_, seq)| *seq);
        let holds = Holds {
            held: &conversation.held,
            watched: &watched,
            now,
            abandoned_below,
        };
        // Another blob at an address of the peer's we read (the poll fetched it again in its
        // padding): the peer wrote again at a position it had used, so a copy of its device
        // went back. Never decrypted; the acknowledgement we then owe shows it the rollback
        // (`docs/PROTOCOL.md` §8, "Rewritten addresses").
        let read_at = live.read_addresses();
        // The poll set is derived only when a read address answered (rare: a hash per address).
        let mut polled: Option<Vec<Address>> = None;
        let mut rewritten = false;
        found.retain(|(address, blob, _)| {
            if !read_at.iter().any(|(a, _)| a == address)
                || polled
                    .get_or_insert_with(|| live.poll_addresses())
                    .contains(address)
            {
                return true;
            }
            rewritten |= live.take_rewrite(address, blob);
            false
        });
        changed |= rewritten;
        // The peer's restore signal is checked apart: it is no blob of a chain.
        let signal_addresses = live.restore_signal_addresses();
        let behind_addresses = live.behind_signal_addresses();
        let mut restore_signal = false;
        let mut behind = false;
        found.retain(|(address, blob, _)| {
            if behind_addresses.contains(address) {
                behind |= live.is_behind_signal(address, blob);
                return false;
            }
            if !signal_addresses.contains(address) {
                return true;
            }
            restore_signal |= live.is_restore_signal(address, blob);
            false
        });
        let aside_name = records::set_aside_key(id);
        // Listed after unlock (and every few minutes): a poll reads the record only where
        // one exists.
        let record = if self
            .listed_has(&self.set_aside, records::SET_ASIDE_PREFIX, id)
            .await?
        {
            self.read_lenient::<SetAside>(&key, &aside_name).await?
        } else {
            None
        };
        let kept = record.as_ref().map_or(&[][..], |kept| &kept.messages[..]);
        // As stored: a read time the clock has since gone back past is stored again, bounded.
        let aside_before: Vec<([u8; 8], u32, u64)> = kept
            .iter()
            .map(|m| (m.message_id, m.seq, m.read_ms))
            .collect();
        let set_aside: Vec<Shown> = kept.iter().map(|m| Shown::from_record(m, now)).collect();
        let start = Drained {
            deferred: set_aside,
            now_ms: now,
            ..Drained::default()
        };
        let mut drained = drain(
            &mut live,
            found,
            progress,
            may_refetch,
            &mut replay,
            &holds,
            start,
        );
        drained.settle();
        // The peer's "behind" signal (under our current root key, or "behind, answered" under
        // the one before our own send step): the peer saw this device at a later root key, so
        // this is a restored copy that cannot follow the peer's chains.
        // Like an unreadable answer (lifted when a blob of theirs decrypts).
        if behind && drained.unreadable.is_none() {
            drained.unreadable = Some(true);
        }
        // A spent address this state still polls after the drain was read and deleted by a
        // copy of this device that is lost (a restore, a power loss): what stood there is
        // gone for this copy, and the peer's later blobs may answer a state it no longer has.
        // (Another tab's read is committed, so under the lock it has left the poll set.) Like
        // an unreadable answer, whatever else decrypted: it is lost evidence
        // ([`records::LostEvidence`]), on which the notice stands, saying one of the two
        // devices went back, and the restore signal follows if it stands (`docs/PROTOCOL.md`
        // §8, "Read and lost"). (`drained.unreadable` keeps the verdict on the answers alone.)
        if !progress.spent.is_empty() {
            let polled = live.poll_addresses();
            if progress.spent.iter().any(|a| polled.contains(a)) {
                drained.spent_polled = true;
            }
        }
        drop(replay);
        outcome.rejected += drained.rejected;
        let mut writes = Vec::new();
        let aside_after: Vec<([u8; 8], u32, u64)> = drained
            .deferred
            .iter()
            .map(|shown| (shown.id, shown.seq, shown.read_ms))
            .collect();
        if aside_after != aside_before {
            writes.push(if drained.deferred.is_empty() {
                Write::Delete(aside_name)
            } else {
                // Noted before the commit lands: at worst one read that finds nothing.
                self.listed_mark(&self.set_aside, records::SET_ASIDE_PREFIX, id, true)
                    .await?;
                let messages = drained.deferred.iter().map(Shown::to_record).collect();
                self.put(&key, aside_name, &SetAside { messages })
            });
        }
        changed |= update_held(&mut conversation, &live, &drained, now);
        if drained.released_seq > abandoned_below {
            let mut abandoned = self.abandoned_below.borrow_mut();
            abandoned.retain(|(c, _)| c != id);
            if abandoned.len() >= 64 {
                abandoned.remove(0);
            }
            abandoned.push((id.to_owned(), drained.released_seq));
        }
        if let Some(address) = drained.held {
            let mut watch = self.hold_watch.borrow_mut();
            if !watch.iter().any(|w| w.address == address) {
                if watch.len() >= 64 {
                    watch.remove(0);
                }
                // Held behind a gap just found abandoned (a blob before it was released): the
                // wait is over already, as soon as the sender writes on.
                let (since_ms, behind) = if drained.released {
                    (now.saturating_sub(ACTIVE_HOLD_MS), 0)
                } else {
                    (now, drained.held_behind)
                };
                watch.push(HoldWatch {
                    address,
                    since_ms,
                    behind,
                    gone: false,
                });
            }
        }
        if !drained.unverified.is_empty() {
            // Before the acknowledgement is applied (it would take these blobs for delivered).
            self.resend_unverified(
                &key,
                id,
                &mut conversation,
                &mut live,
                &drained.unverified,
                &mut writes,
            )
            .await?;
        }
        // The peer's device went back: what its lost copy read of ours is put back by the next
        // flush, where the peer deleted it (`records::PutBack`).
        let put_back_starts =
            drained.peer_behind && crate::put_back::starts(conversation.put_back.as_ref(), now);
        if put_back_starts {
            conversation.put_back = Some(records::PutBack {
                found_ms: now,
                resume_seq: 0,
                done_ms: None,
                tries: 0,
            });
            changed = true;
        }
        let mut floor_news = false;
        if drained.decrypted > 0 || joined_now {
            changed = true;
            floor_news = self
                .apply_acknowledgement(
                    &key,
                    id,
                    &live,
                    &conversation.recovery.resend,
                    &mut writes,
                    outcome,
                )
                .await?;
        }
        if drained.rollbacks > 0 {
            let notice = conversation.rollback.get_or_insert(RollbackNotice {
                detected_ms: now,
                lost_blobs: 0,
            });
            notice.lost_blobs = notice.lost_blobs.saturating_add(drained.rollback_lost);
            outcome.notice = true;
            changed = true;
        }
        match (drained.peer_restored, conversation.ended) {
            (Some(true), None) => {
                conversation.ended = Some(EndReason::PeerRestored);
                outcome.notice = true;
                changed = true;
            }
            // A later blob of theirs decrypted after all: not the end (unless they also
            // said they cannot read us).
            (Some(false), Some(EndReason::PeerRestored)) if !restore_signal => {
                conversation.ended = None;
                outcome.notice = true;
                changed = true;
            }
            _ => {}
        }
        // Their restore signal: the two devices can no longer read each other (the more
        // precise reason above stands if it was found too).
        if restore_signal && conversation.ended.is_none() {
            conversation.ended = Some(EndReason::Diverged);
            outcome.notice = true;
            changed = true;
        }
        // Evidence that a lost copy of this device read what the peer deleted stands until the
        // peer confirms a blob of ours sealed since, with nothing spent polled any more.
        // (Our numbers below a rollback found meanwhile are in doubt: the peer's confirmation
        // may be of the lost copy's blobs, so the evidence then waits past our next number.)
        let ours = live.next_seq().max(live.peer_acknowledgement().next);
        let mut evidence_found = false;
        match &mut conversation.lost_evidence {
            None if drained.spent_polled => {
                conversation.lost_evidence = Some(records::LostEvidence {
                    since_ms: now,
                    after_seq: ours,
                });
                evidence_found = true;
                changed = true;
            }
            Some(evidence) if drained.rollbacks > 0 && evidence.after_seq < ours => {
                evidence.after_seq = ours;
                changed = true;
            }
            Some(evidence)
                if !drained.spent_polled
                    && drained.rollbacks == 0
                    && live.peer_acknowledgement().next > evidence.after_seq =>
            {
                conversation.lost_evidence = None;
                self.forget_evidence_read(id);
                changed = true;
            }
            _ => {}
        }
        let unreadable = match conversation.lost_evidence {
            Some(_) => Some(true),
            None => drained.unreadable,
        };
        // What the notice stands on, for what it says ([`ConversationSummary::lost_reads`]).
        {
            let mut answers = self.unreadable_answers.borrow_mut();
            let known = answers.iter().any(|c| c == id);
            if drained.unreadable == Some(true) && !known {
                answers.push(id.to_owned());
            } else if unreadable == Some(false) && known {
                answers.retain(|c| c != id);
            }
        }
        let mut notice_raised = false;
        match (unreadable, conversation.unreadable) {
            (Some(true), _) => {
                // Our messages cannot be confirmed while their answers cannot be read: not
                // delivered, and the notice says why.
                let marked = self
                    .mark_unreadable(&key, id, true, &outcome.delivered, &mut writes)
                    .await?;
                let raised = conversation.unreadable.is_none();
                if raised {
                    conversation.unreadable = Some(UnreadableNotice { since_ms: now });
                    changed = true;
                    notice_raised = true;
                }
                outcome.notice |= marked || raised;
            }
            (Some(false), Some(_)) => {
                // A later blob of theirs decrypted after all.
                conversation.unreadable = None;
                self.mark_unreadable(&key, id, false, &outcome.delivered, &mut writes)
                    .await?;
                outcome.notice = true;
                changed = true;
            }
            _ => {}
        }
        let (added, raised) = note_junk(&mut conversation, &drained.junk, now);
        changed |= added;
        outcome.notice |= raised;
        // A newly unreadable peer is owed a (stepping) acknowledgement too: it tells the peer.
        let newly_unreadable =
            unreadable == Some(true) && conversation.unreadable.is_some() && changed;
        // Our floor passed numbers the peer never got, with our data waiting above them: the
        // peer may hold that data behind the gap until a blob of ours carries the new floor.
        if drained.data
            || joined_now
            || newly_unreadable
            || floor_news
            || drained.peer_behind
            || drained.passed_refused
            || rewritten
        {
            // Owe the peer an acknowledgement (kept at the earlier time if one is owed).
            let name = records::ack_key(id);
            // At once when a put-back round starts (the flush that carries the acknowledgement
            // puts the blobs back first, `crate::put_back`), and when this copy finds what a
            // lost copy of it read spent (that acknowledgement is what shows the peer to put
            // them back): the restored reader waits for both. Also where a flush found the
            // evidence first (its own next positions spent, `Skipped::note_evidence`) and this
            // poll raises the notice on it: a Chromium trial waited 20 s for the put-back
            // there, the acknowledgement delay of the open conversation. And wherever the
            // peer's device shows that it went back (`peer_behind`, also a blob refused for
            // its predecessor) or our acknowledgement passes numbers we refused: the restored
            // copy waits on it to send again what we refused (a fresh outside trial saw its
            // message reach us 23 s late) and to lift its notice (63 s after the put-back
            // had arrived, where the other device had been away).
            let evidence_raised = notice_raised && conversation.lost_evidence.is_some();
            let proposed = if put_back_starts
                || evidence_found
                || evidence_raised
                || drained.peer_behind
                || drained.passed_refused
            {
                now
            } else {
                now + self.ack_delay_ms(id)
            };
            let due_ms = match self.read_lenient::<AckDue>(&key, &name).await? {
                Some(owed) => owed.due_ms.min(proposed),
                None => proposed,
            };
            writes.push(self.put(&key, name, &AckDue { due_ms }));
            outcome.flush_at_ms = Some(outcome.flush_at_ms.map_or(due_ms, |f| f.min(due_ms)));
        }
        for shown in &drained.plaintexts {
            let message = Message {
                seq: conversation.next_seq,
                outgoing: false,
                text: String::from_utf8_lossy(&shown.plaintext).into_owned(),
                time_ms: self.now_ms(),
                status: Status::Received,
                message_id: [0; 8],
            };
            conversation.next_seq += 1;
            conversation.unread = conversation.unread.saturating_add(1);
            conversation.last_activity_ms = message.time_ms;
            writes.push(self.put(&key, records::message_key(id, message.seq), &message));
            outcome.messages.push(HistoryEntry::from(&message));
            changed = true;
        }
        if changed || !writes.is_empty() {
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
                outcome.delivered.truncate(delivered_before);
                return Err(err.into());
            }
        }
        // Committed: nothing set aside here now (also where the listing was out of date, a
        // commit that failed or another tab's poll left it saying there was).
        if drained.deferred.is_empty() {
            self.listed_mark(&self.set_aside, records::SET_ASIDE_PREFIX, id, false)
                .await?;
        }
        // Shown at the latest when its wait is over, whatever arrives meanwhile.
        outcome.poll_at_ms = drained
            .deferred
            .iter()
            .map(|shown| shown.read_ms.saturating_add(SET_ASIDE_MS))
            .min();
        // Committed (or nothing to commit: blobs read before, by another tab): gone from the
        // mailbox once the poll is done.
        if self.delete_after_read.get() {
            progress.read.extend(drained.read);
            progress
                .read
                .extend(self.hold_fragments(id, drained.fragments, &drained.completed));
        }
        Ok(drained.refetch)
    }

    /// While the peer's answers cannot be read (`unreadable`), our messages still waiting for
    /// confirmation (those with blobs in the outbox) are marked [`Status::Failed`]: not
    /// delivered, the conversation's unreadable notice says why. When the notice lifts, they
    /// go back to *sent* (or *sending* while a blob is not on the mailbox). Messages in
    /// `delivered` (made *delivered* by this receive step, in `writes` but not yet committed)
    /// are left as they are: a later write of the old status would undo it (a fresh outside
    /// trial in Chromium found a message *sent* for good that the peer had confirmed in the
    /// poll that lifted the notice). Returns whether a status changed.
    async fn mark_unreadable(
        &self,
        key: &VaultKey,
        id: &str,
        unreadable: bool,
        delivered: &[u64],
        writes: &mut Vec<Write>,
    ) -> Result<bool, ClientError> {
        let mut all_stored: Vec<(u64, bool)> = Vec::new();
        for (_, _, outgoing) in self.outbox(key, id).await? {
            if let BlobKind::Data { message } = outgoing.kind {
                match all_stored.iter_mut().find(|(m, _)| *m == message) {
                    Some((_, stored)) => *stored &= outgoing.stored,
                    None => all_stored.push((message, outgoing.stored)),
                }
            }
        }
        let mut changed = false;
        for (message_seq, stored) in all_stored {
            if delivered.contains(&message_seq) {
                continue;
            }
            let name = records::message_key(id, message_seq);
            let Some(mut message) = self.read::<Message>(key, &name).await? else {
                continue;
            };
            let status = match (unreadable, message.status) {
                (true, Status::Sending | Status::Sent) => Status::Failed,
                (false, Status::Failed) if stored => Status::Sent,
                (false, Status::Failed) => Status::Sending,
                _ => continue,
            };
            if message.outgoing {
                message.status = status;
                writes.push(self.put(key, name, &message));
                changed = true;
            }
        }
        Ok(changed)
    }

    /// A rollback made the peer's acknowledgement of our sequence numbers in `ranges`
    /// unverifiable (those blobs may be the lost copy's): every message of ours with a blob
    /// there is queued to be encrypted again ([`Client::resend_squatted`], same message id, so
    /// the peer shows it once) and is *sending* again, and so is every message with a blob on
    /// the mailbox from the first unverified number on. Every blob of those messages already
    /// on the mailbox leaves the outbox (not abandoned: the peer may have read it, and shows
    /// the message once either way), so that none pins our floor below the numbers abandoned
    /// here: the peer would hold every later blob behind them.
    ///
    /// **Order kept:** every later data blob not yet on the mailbox leaves the outbox too (its
    /// sequence number abandoned on `live`: the peer cannot have it) and its message is queued
    /// behind them, so that a re-sent message never reaches the peer after a later one; but
    /// only while the addresses left empty, with those abandoned before, stay fewer than the
    /// peer's window ([`crate::MAX_ABANDONED_RUN`]).
    pub(crate) async fn resend_unverified(
        &self,
        key: &VaultKey,
        id: &str,
        conversation: &mut Conversation,
        live: &mut Session,
        ranges: &[(u32, u32)],
        writes: &mut Vec<Write>,
    ) -> Result<(), ClientError> {
        let outbox = self.outbox(key, id).await?;
        let unverified = |seq: u32| ranges.iter().any(|(f, t)| (*f..*t).contains(&seq));
        // A blob a flush is depositing right now may be on the mailbox: never pulled back
        // (abandoned, the peer could still read it), it goes again like a stored one.
        let depositing: Vec<u32> = self
            .depositing
            .borrow()
            .iter()
            .filter(|(c, _)| c == id)
            .map(|(_, seq)| *seq)
            .collect();
        let on_mailbox =
            |seq: u32, o: &crate::records::Outgoing| o.stored || depositing.contains(&seq);
        let blobs: Vec<OutBlob> = outbox
            .iter()
            .map(|(_, seq, o)| OutBlob {
                seq: *seq,
                on_mailbox: on_mailbox(*seq, o),
                message: match o.kind {
                    BlobKind::Data { message } => Some(message),
                    _ => None,
                },
            })
            .collect();
        let plan = plan_resend(&blobs, ranges, conversation.recovery.abandoned_run);
        conversation.recovery.abandoned_run = plan.abandoned_run;
        for (name, seq, _) in &outbox {
            if plan.pulled.contains(seq) {
                writes.push(Write::Delete(name.clone()));
                live.abandon(*seq);
            }
        }
        let messages = plan.messages;
        for message_seq in messages {
            let name = records::message_key(id, message_seq);
            let Some(mut message) = self.read::<Message>(key, &name).await? else {
                continue;
            };
            if !message.outgoing || message.status == Status::Conflict {
                continue;
            }
            // Its blobs already on the mailbox leave the outbox (not abandoned: the peer may
            // have read them, and its digest counts them): the message goes again under its
            // id, so they are never needed, and kept they would pin our floor below the
            // numbers abandoned here, which the peer would then hold later blobs for. So do
            // its blobs not yet deposited under an unverified number: the peer received the
            // lost state's blob under that number, never this one, and kept (a fragment below
            // the confirmed prefix holds the floor while its message is unconfirmed) it would
            // pin the floor below the numbers its later fragments left (`all` seed 906).
            for (blob, seq, outgoing) in &outbox {
                if (on_mailbox(*seq, outgoing) || unverified(*seq))
                    && outgoing.kind
                        == (BlobKind::Data {
                            message: message_seq,
                        })
                {
                    writes.push(Write::Delete(blob.clone()));
                }
            }
            let queue = &mut conversation.recovery.resend;
            if !queue.contains(&message_seq) {
                queue.push(message_seq);
            }
            if message.status != Status::Sending {
                message.status = Status::Sending;
                writes.push(self.put(key, name, &message));
            }
        }
        conversation.recovery.resend.sort_unstable();
        Ok(())
    }

    /// Applies what the peer has acknowledged of our stream (under the conversation's lock,
    /// into the step's commit): covered blobs leave the outbox — a fragment only once its whole
    /// message is covered (`docs/PROTOCOL.md` §8, "Storing what was sent") — and a message none
    /// of whose blobs is left becomes [`Status::Delivered`], unless it waits in `queued` to be
    /// sent again. Returns whether our floor now passes sequence numbers the peer never
    /// received while data of ours waits above them ([`floor_news`]): the peer is then owed
    /// an acknowledgement-only blob, which carries the new floor.
    ///
    /// **No false delivery:** while any fragment of a message is unconfirmed, our floor stays at
    /// or below its first fragment, so the confirmed prefix can only pass the whole message
    /// once one copy of the reader's device received all of it (a copy lost to a restore that
    /// took half of it cannot make the other copy skip that half).
    async fn apply_acknowledgement(
        &self,
        key: &VaultKey,
        id: &str,
        live: &Session,
        queued: &[u64],
        writes: &mut Vec<Write>,
        outcome: &mut PollOutcome,
    ) -> Result<bool, ClientError> {
        let acknowledged = live.peer_acknowledgement();
        let (outbox, sealed): (Vec<_>, Vec<_>) =
            self.outbox_sealed(key, id).await?.into_iter().unzip();
        let mut confirmed = Vec::new();
        let mut covered_messages = BTreeSet::new();
        let mut left_messages = BTreeSet::new();
        for (_, seq, outgoing) in &outbox {
            if let BlobKind::Data { message } = outgoing.kind {
                if acknowledged.contains(*seq) {
                    covered_messages.insert(message);
                } else {
                    left_messages.insert(message);
                }
            }
        }
        for ((name, seq, outgoing), sealed) in outbox.iter().zip(sealed) {
            // A fragment of a message not covered whole stays: the copy of the peer's device
            // that acknowledged it may be lost to a restore, and a restored copy that gets
            // the later fragments can only complete the message with these (our floor stays
            // at them, and they are deposited again if they expire).
            let partial = matches!(outgoing.kind, BlobKind::Data { message } if left_messages.contains(&message));
            if acknowledged.contains(*seq) && !partial {
                writes.push(Write::Delete(name.clone()));
                confirmed.push(*seq);
                // Kept, as sealed, in case the peer deletes it and then goes back to a copy
                // that never read it (`crate::put_back`); the one kept `MAX_KEPT_SENT`
                // numbers back goes. (Confirmed, so it was on the mailbox, whether or not its
                // `201` reached us.)
                if outgoing.kind != BlobKind::Hello {
                    writes.push(Write::Put(records::kept_sent_key(id, *seq), sealed));
                    if let Some(old) = seq.checked_sub(records::MAX_KEPT_SENT) {
                        writes.push(Write::Delete(records::kept_sent_key(id, old)));
                    }
                }
            }
        }
        // The peer read a blob of ours sealed after the lost copy's blobs we keep: it has
        // read past them (`records::KeptLostBlobs`).
        if !confirmed.is_empty() && self.has_kept_lost(id).await? {
            let name = records::kept_lost_key(id);
            if self
                .read_lenient::<records::KeptLostBlobs>(key, &name)
                .await?
                .is_none_or(|kept| acknowledged.next > kept.until_seq)
            {
                writes.push(Write::Delete(name));
                self.mark_kept_lost(id, false).await?;
            }
        }
        let floor_items: Vec<(u32, bool)> = outbox
            .iter()
            .map(|(_, seq, o)| (*seq, o.kind.holds_floor()))
            .collect();
        let news = floor_news(&floor_items, &confirmed, &acknowledged);
        for message_seq in covered_messages.difference(&left_messages) {
            if queued.contains(message_seq) {
                continue;
            }
            let name = records::message_key(id, *message_seq);
            if let Some(mut message) = self.read::<Message>(key, &name).await?
                && message.outgoing
                && !matches!(message.status, Status::Delivered | Status::Conflict)
            {
                message.status = Status::Delivered;
                writes.push(self.put(key, name, &message));
                outcome.delivered.push(*message_seq);
            }
        }
        Ok(news)
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
                progress.found(found, address, blob, round);
            }
            progress.mark_queried(&batch, round);
        }
        Ok(())
    }
}

impl DrainProgress {
    /// Takes one record of a fetch answer. A record of length 0 is a spent address (Mailbox
    /// API revision 1.1): its blob was read and deleted, by another tab or by a copy of this
    /// device lost to a restore, so nothing will ever fill it; it counts as taken, like a blob
    /// that does not decrypt, and is never passed to `decrypt` (nor taken for junk).
    fn found(&mut self, found: &mut Vec<Found>, address: Address, blob: Vec<u8>, round: u32) {
        if blob.is_empty() {
            if !self.failed.contains(&address) {
                self.failed.push(address);
            }
            if !self.spent.contains(&address) {
                self.spent.push(address);
            }
        } else {
            found.push((address, blob, round));
        }
    }

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
///
/// **Held blobs** (protocol v2). A blob whose sequence number leaves a gap in the peer's
/// stream (after decrypting it, `acknowledgement().next <= seq`: some earlier blob neither
/// arrived nor was passed by the sender's `floor`) may be overtaking one that expired and that
/// its sender will deposit again. Then it is *held*: the session stays as before it, the blob
/// stays on the mailbox, and the drain stops there, to be read by a later poll once the gap
/// is filled. It is read at once instead if nothing could fill the gap: no earlier address
/// of the poll set reads empty (or there is none); an earlier one holds a blob that did not
/// authenticate (a squatted address: its sender moved past it and abandoned what it had
/// queued behind, whose empty addresses never fill, and which its floor cannot say while
/// older blobs wait for confirmation); or a later blob found in the same poll carries a floor
/// past it. And, whatever happens, once it was first held [`MAX_HOLD_MS`] ago. Before holding,
/// the drain asks (once per poll) for the addresses the window would cover had it read the
/// blob: the later blobs that decide the hold may lie only there. `out` is where the drain
/// starts: the messages earlier polls set aside, and the time.
fn drain(
    live: &mut Session,
    found: &mut Vec<Found>,
    progress: &mut DrainProgress,
    may_refetch: bool,
    replay: &mut Replay<'_>,
    holds: &Holds<'_>,
    mut out: Drained,
) -> Drained {
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
            let mut fresh: Vec<Address> = order
                .iter()
                .filter(|a| progress.round_of(a) == 0)
                .copied()
                .collect();
            // After pushed blobs, only addresses before the first found blob of the peer's
            // next chain can hold a message that it would overtake, and its `PN` says which.
            let next_found = order
                .iter()
                .enumerate()
                .skip(in_order)
                .find_map(|(at, a)| position(a).map(|f| (at, f)));
            if progress.partial
                && let Some((at, f)) = next_found
                && let Some((address, blob, _)) = found.get(f)
            {
                fresh.retain(|a| order.iter().take(at).any(|b| b == a));
                fresh = still_awaited(replay, address, blob, fresh);
            }
            if !fresh.is_empty() {
                // Never step to the peer's next chain past messages of this one that were
                // not fetched yet: they would arrive later, out of order. Without refetches
                // left, the next poll goes on from here. After pushed blobs, the next watch
                // set's snapshot reads these addresses, when it holds them all.
                let watched =
                    progress.partial && order.len() <= MAX_WATCH_BATCHES * crate::FETCH_BATCH;
                if may_refetch && !watched {
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
        let stale = match found.get(index) {
            Some((address, blob, _)) if progress.partial && !stale.is_empty() => {
                still_awaited(replay, address, blob, stale)
            }
            _ => stale,
        };
        if !stale.is_empty() {
            if may_refetch {
                out.refetch = stale;
            }
            return out;
        }
        let (address, blob, blob_round) = found.swap_remove(index);
        let next_before = live.acknowledgement().next;
        match live.decrypt(&address, &blob) {
            Ok(received) => {
                // The addresses before this one in the peer's order: all were fetched and
                // either read empty (an expired blob may come back there) or held a blob that
                // did not decrypt (taken: the sender moved past it, abandoning what it had
                // queued behind, which leaves empty addresses that never fill).
                let earlier = order.iter().take(at);
                let by_address = earlier.clone().any(|a| !progress.failed.contains(a))
                    && !earlier.clone().any(|a| progress.failed.contains(a));
                // Or a number below it holds a blob we refused for its predecessor: the copy
                // of the peer's device that wrote it sends everything it had not confirmed
                // again, under a floor past this number, once our acknowledgement shows it the
                // rollback; this blob, from another copy (it did not follow the refused one),
                // waits for that floor, wherever the addresses below it stand (`all` 17646),
                // but on that ground alone no longer than `ACTIVE_HOLD_MS` (the copy that
                // wrote the refused blobs may be lost too, or offline).
                let fillable = by_address
                    || live.refused_between(live.acknowledgement().next, received.seq)
                    || live.fork_past_reach(&received.chain);
                // An acknowledgement-only blob, a copy of a message shown already or a blob
                // refused for its predecessor (`peer_rolled_back`: read, so that its refusal is
                // acknowledged; `all` seed 19389) is never
                // held: it shows nothing, so it cannot overtake anything, and holding it would
                // keep the window from reaching the blobs behind it (a restored sender's
                // re-sends sit above numbers it abandoned, under a floor its older blobs pin).
                let gap_below = fillable
                    && received.kind == PayloadKind::Data
                    && !received.duplicate
                    && !received.peer_rolled_back
                    && live.acknowledgement().next <= received.seq
                    && !abandoned_gap(
                        &live.acknowledgement(),
                        received.seq,
                        holds.abandoned_below.max(out.released_seq),
                    );
                if gap_below && progress.partial {
                    // Whether to hold it is decided on everything found: read the poll set.
                    if let Some(before) = replay.rebuild(None) {
                        *live = before;
                        progress.full_poll = true;
                        return out;
                    }
                }
                let max_hold_ms = if by_address {
                    MAX_HOLD_MS
                } else {
                    ACTIVE_HOLD_MS
                };
                let released = gap_below && holds.released(&address, found.len(), max_hold_ms);
                let mut passed = false;
                out.released |= released;
                if released {
                    out.released_seq = out.released_seq.max(received.seq);
                }
                if gap_below
                    && !released
                    && let Some(before) = replay.rebuild(None)
                {
                    // The session as if this blob were read: rebuilt once, for both questions.
                    let after = replay.rebuild(Some((&address, &blob)));
                    // Look past the hold first: the addresses the window would cover had it
                    // read this blob. The sender deposits within the window of a peer that
                    // reads what it stored, so what decides the hold (a later floor, more
                    // blobs behind) may lie there, and only there once the window before it
                    // is full. Only what comes after it in the sender's order: the copy's
                    // skipped keys are earlier positions (a blob of the next chain leaves the
                    // rest of the current one there), whose blobs, seen only this way, would
                    // be read after it (`restore` seed 941 with `--delete-after-read`).
                    // Its header may also reach back on the chain before, past what this
                    // state awaits there (a fork, or a next chain whose `PN` passes our
                    // window): those skipped keys are new, and their blobs, found now, are
                    // read right after it in this step and shown before it
                    // ([`Drained::place`]; `restore` seed 33 with `--delete-after-read`).
                    let awaited = before.poll_addresses();
                    let beyond: Vec<Address> = after.as_ref().map_or_else(Vec::new, |copy| {
                        let set = copy.poll_set();
                        set.skipped
                            .into_iter()
                            .filter(|a| !awaited.contains(a))
                            .chain(set.current)
                            .chain(set.next)
                            .filter(|a| progress.round_of(a) == 0)
                            .collect()
                    });
                    let cover = after.map_or(Cover::ASSUMED, |mut copy| {
                        covered_later(&mut copy, found, received.seq, received.message_id)
                    });
                    passed = cover.passed;
                    if !cover.covered {
                        if may_refetch && !beyond.is_empty() {
                            *live = before;
                            found.push((address, blob, blob_round));
                            out.refetch = beyond;
                            return out;
                        }
                        *live = before;
                        out.held = Some(address);
                        out.held_behind = found.len();
                        // What is left is read (in order) by a later poll, not rejected.
                        found.clear();
                        return out;
                    }
                }
                // A message read past a gap whose header reached back on the chain before (a
                // fork, or a next chain whose `PN` passes what this state awaited there): it
                // left skipped keys this state did not await, whose blobs were never fetched.
                // Fetch them first and read it again with their blobs at hand: they are read
                // right after it, in this step, and shown before it ([`Drained::place`];
                // `restore` seed 33 with `--delete-after-read`). Only then: a message past a
                // gap that never fills costs no fetch.
                // The committed state and the skipped keys after this blob, once each (a
                // rebuild replays the step, a poll set derives addresses).
                let reached_back = (may_refetch
                    && received.plaintext.is_some()
                    && live.acknowledgement().next <= received.seq)
                    .then(|| replay.rebuild(None))
                    .flatten()
                    .and_then(|before| {
                        let awaited = before.poll_set().skipped;
                        let skipped = live.poll_set().skipped;
                        skipped
                            .iter()
                            .any(|a| !awaited.contains(a))
                            .then_some((before, skipped))
                    });
                if let Some((before, skipped)) = reached_back {
                    // Never fetched, or fetched before a blob found among them (which would
                    // otherwise wait for those to be fetched again, in a step of its own).
                    let newest = skipped
                        .iter()
                        .filter(|a| found.iter().any(|(f, _, _)| f == *a))
                        .map(|a| progress.round_of(a))
                        .max()
                        .unwrap_or(0);
                    let unfetched: Vec<Address> = skipped
                        .into_iter()
                        .filter(|a| {
                            let round = progress.round_of(a);
                            round == 0 || round < newest
                        })
                        .collect();
                    if !unfetched.is_empty() {
                        *live = before;
                        found.push((address, blob, blob_round));
                        out.refetch = unfetched;
                        return out;
                    }
                }
                replay.consumed.push((address, blob));
                out.consumed.push(address);
                if received.message_id != [0; 8] {
                    out.completed.push(received.message_id);
                }
                match received.awaiting_rest {
                    // Not a message on this device yet: kept on the mailbox until the blob
                    // that completes it is read ([`Client::held_fragments`]).
                    Some(message) => out.fragments.push((message, received.write_key)),
                    None => out.read.push(received.write_key),
                }
                progress.read_since_fetch = true;
                out.decrypted += 1;
                out.unreadable = Some(false);
                // A data blob is acknowledged for its own sake, also one of a message shown
                // already (`duplicate`: a re-send; no history entry).
                out.data |= received.kind == PayloadKind::Data;
                // An empty range (nothing passed) holds no refusal.
                out.passed_refused |=
                    live.refused_between(next_before, live.acknowledgement().next);
                out.peer_restored = Some(false);
                out.peer_behind |= received.peer_behind || received.peer_rolled_back;
                if let Some(rollback) = received.rollback {
                    out.rollbacks += 1;
                    out.rollback_lost = out.rollback_lost.saturating_add(rollback.lost_blobs);
                    let to = received.acknowledged.next;
                    // Empty with no lost blobs: the peer marked a refusal in the digest of a
                    // prefix we had confirmed (protocol §6.4): what we deposited from there on
                    // goes again, as after any rollback.
                    if rollback.unconfirmed_from < to || rollback.lost_blobs == 0 {
                        out.unverified.push((rollback.unconfirmed_from, to));
                    }
                }
                let behind_gap = live.acknowledgement().next <= received.seq;
                out.place(
                    received.plaintext,
                    &ReadBlob {
                        seq: received.seq,
                        floor: if received.peer_rolled_back {
                            0
                        } else {
                            received.floor
                        },
                        chain: received.chain,
                        id: received.message_id,
                        duplicate: received.duplicate,
                        behind_gap,
                        passed,
                    },
                );
            }
            // Authenticated (the header key is the two people's): the peer went on from an
            // older copy of its device after we answered. Not junk; the conversation ends.
            Err(DecryptError::PeerRestored) => {
                out.rejected += 1;
                out.peer_restored = Some(true);
                progress.failed.push(address);
            }
            // Authenticated header on the peer's next chain, body unreadable: they answered a
            // state this device no longer has (restored after they replied), or the body was
            // tampered with. Not junk; the conversation says so until a later blob decrypts.
            Err(DecryptError::UnreadableAnswer) => {
                out.rejected += 1;
                out.unreadable = Some(true);
                progress.failed.push(address);
            }
            // Authenticated under the peer's header key, but on a chain this state gave up (a
            // fork replaced it) or otherwise inconsistent with it: a copy of the peer's device
            // that went back again writes where this state cannot follow. Not junk (only the
            // two people hold header keys); like an unreadable answer, the conversation says
            // so until a later blob decrypts, and the restore signal goes out if it stands.
            Err(DecryptError::InconsistentHeader) => {
                out.rejected += 1;
                out.unreadable = Some(true);
                progress.failed.push(address);
            }
            // Foreign or tampered: a failed decrypt leaves the session unchanged. At an
            // address of the poll set, only the peer (or the mailbox) could have written:
            // a blob there that does not authenticate is junk someone put in the way.
            Err(err) => {
                out.rejected += 1;
                if !matches!(err, DecryptError::Duplicate | DecryptError::UnknownAddress) {
                    out.junk.push(address);
                }
                progress.failed.push(address);
            }
        }
    }
}

/// One blob of the outbox, as [`plan_resend`] sees it.
#[derive(Clone, Copy, Debug)]
struct OutBlob {
    /// Its sequence number.
    seq: u32,
    /// Stored, or being deposited now: the peer may read it.
    on_mailbox: bool,
    /// The history entry of a data blob; `None` for an acknowledgement-only blob or a hello.
    message: Option<u64>,
}

/// What [`Client::resend_unverified`] does with the outbox.
#[derive(Debug, PartialEq, Eq)]
struct ResendPlan {
    /// Sequence numbers of data blobs not yet on the mailbox that leave the outbox, abandoned
    /// (the peer cannot have them): their messages go again behind the unverified ones.
    pulled: Vec<u32>,
    /// The history entries to encrypt again, in order.
    messages: BTreeSet<u64>,
    /// Our numbers abandoned in a row from now (`Recovery::abandoned_run`).
    abandoned_run: u32,
}

/// Which messages a rollback sends again (`ranges`: our unverified sequence numbers, `[from,
/// to)` each; `abandoned_run`: numbers already abandoned in a row).
///
/// * Every message with a blob under an unverified number goes again; so does every message
///   with a blob on the mailbox from the first unverified number on (kept, that blob would
///   pin our floor below the numbers abandoned here, and the peer would hold every later blob
///   behind them).
/// * **Order kept:** every later data blob not yet on the mailbox is pulled (abandoned) and
///   its message goes again behind them, while the addresses left empty in a row stay at most
///   [`crate::MAX_ABANDONED_RUN`] (the peer's window must reach the blobs sent again). Past
///   that, those blobs stay at their addresses, and a blob on the mailbox that one of them
///   follows stays too: sent again, it would reach the peer after a message written after it
///   (`restore` seed 7404 of the simulator: a blob a flush was depositing went again behind
///   seven that were not pulled). Kept, it is read in its place, or refused and sent again.
fn plan_resend(blobs: &[OutBlob], ranges: &[(u32, u32)], abandoned_run: u32) -> ResendPlan {
    let from = ranges
        .iter()
        .map(|(from, _)| *from)
        .min()
        .unwrap_or(u32::MAX);
    let unverified = |seq: u32| ranges.iter().any(|(f, t)| (*f..*t).contains(&seq));
    // Later blobs are pulled only while the addresses they leave empty stay within the
    // peer's window: past that, the re-sent blobs would land where the peer never looks, and
    // order gives way to delivery.
    let pull: Vec<u32> = blobs
        .iter()
        .filter(|b| b.message.is_some() && b.seq >= from && !b.on_mailbox && !unverified(b.seq))
        .map(|b| b.seq)
        .collect();
    // Blobs under an unverified number not yet on the mailbox leave the outbox below whatever
    // is decided here, so their addresses stay empty too (`restore` seed 1275: uncounted, 2
    // of them with 7 pulled blobs and a chain started at position 7 moved the messages sent
    // again past the peer's window).
    let emptied = blobs
        .iter()
        .filter(|b| b.message.is_some() && unverified(b.seq) && !b.on_mailbox)
        .count();
    let left_empty = abandoned_run.saturating_add(u32::try_from(emptied).unwrap_or(u32::MAX));
    let run = left_empty.saturating_add(u32::try_from(pull.len()).unwrap_or(u32::MAX));
    let (pulled, staying, abandoned_run) = if run <= crate::MAX_ABANDONED_RUN {
        (pull, Vec::new(), run)
    } else {
        (Vec::new(), pull, left_empty)
    };
    let overtaken = |seq: u32| staying.iter().any(|s| *s > seq);
    let messages = blobs
        .iter()
        .filter(|b| {
            pulled.contains(&b.seq)
                || unverified(b.seq)
                || (b.on_mailbox && b.seq >= from && !overtaken(b.seq))
        })
        .filter_map(|b| b.message)
        .collect();
    ResendPlan {
        pulled,
        messages,
        abandoned_run,
    }
}

/// Of the `stale` addresses before a pushed blob in the peer's order (not fetched since the
/// push), those a message may still be at once the blob is read: the ones still in the poll
/// set of the session after it. A blob of the peer's next chain carries in its header how
/// many messages its sender sent on the chain before (`PN`, `docs/PROTOCOL.md` §3.5, §6.3): the
/// addresses of the current chain at or past that count are never written by that chain, and
/// they leave the poll set with the DH ratchet step, while those below it become skipped
/// keys and stay. So after a chain that was read to its end, a pushed blob starting the next
/// one needs no fetch first, and "no overtaking" still holds: every address an earlier
/// message can be at is fetched. A blob that does not decrypt keeps every stale address.
fn still_awaited(
    replay: &Replay<'_>,
    address: &Address,
    blob: &[u8],
    stale: Vec<Address>,
) -> Vec<Address> {
    let Some(mut after) = replay.rebuild(None) else {
        return stale;
    };
    if after.decrypt(address, blob).is_err() {
        return stale;
    }
    let awaited = after.poll_set().all();
    stale.into_iter().filter(|a| awaited.contains(a)).collect()
}

/// The held blobs of a conversation, what this app session saw of them, and the time now.
struct Holds<'a> {
    held: &'a [Held],
    watched: &'a [HoldWatch],
    now: u64,
    /// The sequence number of the last blob this app session read past a hold; the numbers
    /// below it missing then were abandoned by the sender (0: none).
    abandoned_below: u32,
}

/// Whether every sequence number missing below `seq` is one found abandoned already (below
/// `abandoned_below`, the last blob read past a hold): then the gap is no reason to hold
/// `seq` again. Without this, each later blob of a restored sender is held anew behind the
/// same gap, and the last one, with no blob behind it to show the sender wrote on, for
/// [`MAX_HOLD_MS`] (seed 347 of the simulator's `restore` set).
fn abandoned_gap(received: &Acknowledgement, seq: u32, abandoned_below: u32) -> bool {
    // Numbers missing at or above `abandoned_below` (other than `seq` itself) are a new gap.
    let from = received.next.max(abandoned_below);
    (from..seq).all(|q| received.contains(q))
}

/// Whether confirming `confirmed` moves our floor past sequence numbers the peer never
/// received while data of ours still waits above them. `outbox`: our blobs before, each
/// `(seq, holds_floor)` (acknowledgement-only blobs do not hold it); `acknowledged`: what
/// the peer says it received of ours.
///
/// The floor travels in every blob we seal, and the peer holds a blob of ours behind a gap
/// of numbers it never got until a floor passes them (`docs/PROTOCOL.md` §6.1, §8). Numbers
/// we abandoned (queued behind a squatted address, or a restored copy's, sent again higher)
/// leave such a gap; it settles for our side when the blobs below it are confirmed, but the
/// peer learns that only from our next blob. Without one (we have nothing else to say), the
/// peer would hold our data for [`MAX_HOLD_MS`] (`all` seed 7870).
fn floor_news(outbox: &[(u32, bool)], confirmed: &[u32], acknowledged: &Acknowledgement) -> bool {
    let left = |seq: &u32| !confirmed.contains(seq);
    // Our floor before the confirmation (`after` false) or after it.
    let floor = |after: bool| {
        outbox
            .iter()
            .filter(|(seq, holds)| *holds && (!after || left(seq)))
            .map(|(seq, _)| *seq)
            .min()
    };
    // A number the peer never got and that will not come: not in what is left of the outbox.
    let missing =
        |q: u32| !acknowledged.contains(q) && !outbox.iter().any(|(seq, _)| *seq == q && left(seq));
    match (floor(false), floor(true)) {
        (Some(before), Some(after)) if after > before => (acknowledged.next..after).any(missing),
        _ => false,
    }
}

/// A hold seen by this app session (not persisted: a restart starts the wait again).
#[derive(Clone, Copy, Debug)]
pub(crate) struct HoldWatch {
    pub(crate) address: Address,
    /// When this session first held it (ms since the epoch).
    pub(crate) since_ms: u64,
    /// How many found blobs lay behind it then.
    pub(crate) behind: usize,
    /// A poll of this app session found its address empty after the hold began (it expired):
    /// found again, its sender deposited it again, and a retransmission check deposits what
    /// it still keeps in send order, so the gap below it would have come back first.
    pub(crate) gone: bool,
}

impl Holds<'_> {
    /// How long `address` has been held (ms), if it is.
    fn held_for(&self, address: &Address) -> Option<u64> {
        self.held
            .iter()
            .find(|h| h.address == address.0)
            .map(|h| self.now.saturating_sub(h.since_ms))
    }

    /// Whether `address` should be read now although a gap lies below it: held at least
    /// `max_hold_ms` ([`MAX_HOLD_MS`]; [`ACTIVE_HOLD_MS`] for a hold only on a refused
    /// number, [`drain`]); or held by this app session for at least [`ACTIVE_HOLD_MS`] while the
    /// sender deposited new blobs behind it (`behind` found now, more than when the hold
    /// began). A sender's flush that deposits a new blob also runs its retransmission check,
    /// which re-deposits whatever expired: a gap that outlives that by minutes is one the
    /// sender abandoned (a restored sender's re-sends sit above numbers it gave up, under a
    /// floor its older unconfirmed blobs pin), and nothing will fill it.
    fn released(&self, address: &Address, behind: usize, max_hold_ms: u64) -> bool {
        if self.held_for(address).is_some_and(|ms| ms >= max_hold_ms) {
            return true;
        }
        self.watched.iter().any(|w| {
            w.address == *address
                && (behind > w.behind || w.gone)
                && self.now.saturating_sub(w.since_ms) >= ACTIVE_HOLD_MS
        })
    }
}

/// What the blobs found after a blob read behind a gap say of it ([`covered_later`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cover {
    /// The peer's stream passes the blob's number: a floor of a later blob says the gap
    /// below it is abandoned or settled, so nothing will fill it.
    covered: bool,
    /// A later blob's floor passes the blob's own number (its sender gave this blob up too
    /// and sends its message again from that blob on), and either the copy sent again is not
    /// found (what its sender sends before it may not be on the mailbox yet: `all` seed 4083)
    /// or a message new to this device is found from that blob on and before the copy: its
    /// sender wrote it earlier. Then the blob's message waits for its copy
    /// ([`Drained::place`]); else every re-sent blob found before the copy repeats what is
    /// here already, and it shows now.
    passed: bool,
}

impl Cover {
    /// Nothing could be decided (the session could not be rebuilt): read it, show it.
    const ASSUMED: Cover = Cover {
        covered: true,
        passed: false,
    };
}

/// Decrypts the blobs in `found` on `copy` (the session after the candidate blob `seq`,
/// which completed message `id`, or zero), in the peer's order, and says whether they raise
/// the peer's stream past `seq` and whether a floor among them passes `seq` itself with the
/// copy of `id` sent again not found, or a new message before it ([`Cover`]). A blob refused
/// for its predecessor (another copy's) speaks for no floor.
fn covered_later(copy: &mut Session, found: &[Found], seq: u32, id: [u8; 8]) -> Cover {
    let mut left: Vec<&Found> = found.iter().collect();
    // The lowest number of a blob whose floor passes `seq` (where what its sender sent again
    // starts); the number of the copy of `id`; the numbers of new messages.
    let mut floor_at: Option<u32> = None;
    let mut copies: Vec<u32> = Vec::new();
    let mut news: Vec<u32> = Vec::new();
    loop {
        // In the peer's order: each pass reads what the window reaches now.
        let before = left.len();
        left.retain(|(address, blob, _)| match copy.decrypt(address, blob) {
            Ok(received) => {
                if !received.peer_rolled_back && received.floor > seq {
                    floor_at = Some(floor_at.map_or(received.seq, |f| f.min(received.seq)));
                }
                if received.plaintext.is_some() {
                    news.push(received.seq);
                } else if received.duplicate && id != [0; 8] && received.message_id == id {
                    copies.push(received.seq);
                }
                false
            }
            Err(_) => true,
        });
        if left.len() == before {
            // The copy sent again from that blob on: one below it was given up with the rest
            // (`all` seed 17646: a restored sender's copy under its old floor, then the
            // message again after the ones it re-sent first).
            let passed = floor_at.is_some_and(|from| {
                match copies.iter().copied().filter(|&c| c >= from).min() {
                    Some(copy_at) => news.iter().any(|&n| n >= from && n < copy_at),
                    None => true,
                }
            });
            return Cover {
                covered: copy.acknowledgement().next > seq,
                passed,
            };
        }
    }
}

/// Keeps the conversation's record of held blobs: the one held now (with the time it was
/// first held), and earlier ones still in the poll set and not consumed (a blob may be missing
/// from one poll and back in the next). Returns whether it changed.
fn update_held(
    conversation: &mut Conversation,
    live: &Session,
    drained: &Drained,
    now: u64,
) -> bool {
    let polled = live.poll_addresses();
    let mut held: Vec<Held> = conversation
        .held
        .iter()
        .filter(|h| {
            polled.iter().any(|a| a.0 == h.address)
                && !drained.consumed.iter().any(|a| a.0 == h.address)
        })
        .copied()
        .collect();
    if let Some(address) = drained.held
        && !held.iter().any(|h| h.address == address.0)
    {
        if held.len() >= MAX_HELD_REMEMBERED {
            held.remove(0);
        }
        held.push(Held {
            address: address.0,
            since_ms: now,
        });
    }
    let changed = held != conversation.held;
    conversation.held = held;
    changed
}

/// Most held addresses remembered per conversation.
const MAX_HELD_REMEMBERED: usize = 64;

/// Remembers junk found at the peer's addresses; past [`INTERFERENCE_THRESHOLD`] distinct
/// ones the conversation says someone interferes. Returns whether anything new was
/// remembered, and whether the notice was raised or grew.
fn note_junk(conversation: &mut Conversation, junk: &[Address], now: u64) -> (bool, bool) {
    let remembered = &mut conversation.recovery.junk;
    let mut added = false;
    for address in junk {
        if !remembered.contains(&address.0) {
            if remembered.len() >= MAX_JUNK_REMEMBERED {
                remembered.remove(0);
            }
            remembered.push(address.0);
            added = true;
        }
    }
    let count = u32::try_from(remembered.len()).unwrap_or(u32::MAX);
    if !added || count < INTERFERENCE_THRESHOLD {
        return (added, false);
    }
    let notice = conversation.interference.get_or_insert(Interference {
        since_ms: now,
        undelivered: 0,
        rejected: 0,
    });
    notice.rejected = notice.rejected.max(count);
    (true, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outbox blobs `(seq, on the mailbox, history entry)`.
    fn outbox(blobs: &[(u32, bool, u64)]) -> Vec<OutBlob> {
        blobs
            .iter()
            .map(|&(seq, on_mailbox, message)| OutBlob {
                seq,
                on_mailbox,
                message: Some(message),
            })
            .collect()
    }

    #[test]
    fn a_rollback_pulls_later_blobs_and_sends_stored_ones_again_in_order() {
        // Number 3 unverified; 4 on the mailbox, 5 and 6 not yet: all go again, in order.
        let blobs = outbox(&[(3, true, 30), (4, true, 40), (5, false, 50), (6, false, 60)]);
        let plan = plan_resend(&blobs, &[(3, 4)], 0);
        assert_eq!(plan.pulled, [5, 6]);
        assert_eq!(
            plan.messages.into_iter().collect::<Vec<_>>(),
            [30, 40, 50, 60]
        );
        assert_eq!(plan.abandoned_run, 2);
    }

    #[test]
    fn a_stored_blob_that_blobs_left_in_place_follow_is_not_sent_again_behind_them() {
        // `restore` 7404: number 7 unverified; 12 being deposited; 13..=19 not yet on the
        // mailbox, too many to pull after 9 abandoned in a row. Sent again, 12 would go after
        // 13..=19, and the peer would show it after the messages written after it.
        let mut blobs = vec![(12, true, 1)];
        blobs.extend((13..=19).map(|seq| (seq, false, u64::from(seq) - 11)));
        let plan = plan_resend(&outbox(&blobs), &[(7, 8)], 9);
        assert!(plan.pulled.is_empty());
        assert!(plan.messages.is_empty(), "{:?}", plan.messages);
        assert_eq!(plan.abandoned_run, 9);
        // The unverified number's own blob still goes again (the peer refuses it), and a
        // stored blob above those left in place too (nothing it could overtake).
        let blobs = outbox(&[(7, true, 70), (12, true, 1), (13, false, 2), (14, true, 3)]);
        let plan = plan_resend(&blobs, &[(7, 8)], 15);
        assert!(plan.pulled.is_empty());
        assert_eq!(plan.messages.into_iter().collect::<Vec<_>>(), [3, 70]);
    }

    fn received(next: u32, also: &[u32]) -> Acknowledgement {
        let bits = also
            .iter()
            .fold(0u64, |bits, seq| bits | 1 << (seq - next - 1));
        Acknowledgement { next, bits }
    }

    #[test]
    fn a_gap_found_abandoned_is_not_held_for_again() {
        // 15 missing, 16 read past a hold: 17 waits for nothing.
        assert!(abandoned_gap(&received(15, &[16, 17]), 17, 16));
        // No hold was released: the same gap holds 17.
        assert!(!abandoned_gap(&received(15, &[16, 17]), 17, 0));
        // 18 missing above the abandoned 15: a new gap, 19 is held.
        assert!(!abandoned_gap(&received(15, &[16, 17, 19]), 19, 16));
        // Everything missing lies below the released blob's number.
        assert!(abandoned_gap(&received(12, &[14, 16, 17]), 17, 16));
    }

    #[test]
    fn the_floor_passing_numbers_the_peer_never_got_is_news_while_data_waits_above() {
        // `all` seed 7870: data 0 unconfirmed; 1 was a lost copy's (read by the peer), 2 and 3
        // abandoned; the message went again as 4, 5, 6. The peer confirms 0 and 1: our floor
        // moves from 0 to 4 over 2 and 3, which the peer holds 4 behind.
        let outbox = [(0, true), (4, true), (5, true), (6, true)];
        assert!(floor_news(&outbox, &[0], &received(2, &[])));
        // Nothing abandoned between: the peer has everything below the new floor.
        let outbox = [(0, true), (1, true), (2, true)];
        assert!(!floor_news(&outbox, &[0, 1], &received(2, &[])));
        // The floor did not move (only an acknowledgement-only blob left).
        let outbox = [(0, true), (3, false), (4, true)];
        assert!(!floor_news(&outbox, &[3], &received(2, &[3])));
        // Nothing of ours waits any more: no one holds anything of ours.
        let outbox = [(0, true), (3, false)];
        assert!(!floor_news(&outbox, &[0], &received(1, &[])));
        // What the peer lacks below the new floor is still in the outbox (an acknowledgement-
        // only blob, deposited again until confirmed): it will come, not news.
        let outbox = [(0, true), (1, true), (2, false), (3, true)];
        assert!(!floor_news(&outbox, &[0, 1], &received(2, &[])));
        // But a number missing beside it is.
        let outbox = [(0, true), (2, false), (3, true)];
        assert!(floor_news(&outbox, &[0], &received(1, &[])));
    }

    /// One blob read in a drain: `seq` on chain `chain` (a byte), completing message `id`.
    fn read(seq: u32, floor: u32, chain: u8, id: u8, behind_gap: bool) -> ReadBlob {
        ReadBlob {
            seq,
            floor,
            chain: [chain; 32],
            id: [id; 8],
            duplicate: false,
            behind_gap,
            passed: false,
        }
    }

    fn copy(seq: u32, floor: u32, chain: u8, id: u8) -> ReadBlob {
        ReadBlob {
            duplicate: true,
            ..read(seq, floor, chain, id, false)
        }
    }

    fn text(id: u8) -> Option<Zeroizing<Vec<u8>>> {
        Some(Zeroizing::new(vec![id]))
    }

    /// A drain at `now_ms` over what earlier drains set aside.
    fn drain_at(now_ms: u64, set_aside: &SetAside) -> Drained {
        Drained {
            deferred: set_aside
                .messages
                .iter()
                .map(|kept| Shown::from_record(kept, now_ms))
                .collect(),
            now_ms,
            ..Drained::default()
        }
    }

    /// Settles the drain: what it shows, and what it stores set aside (through the record).
    fn settled(mut drained: Drained) -> (Vec<u8>, SetAside) {
        drained.settle();
        let shown = drained
            .plaintexts
            .iter()
            .filter_map(|s| s.plaintext.first().copied())
            .collect();
        let messages = drained.deferred.iter().map(Shown::to_record).collect();
        let bytes = records::encode(&SetAside { messages });
        (shown, records::decode(&bytes).unwrap_or_default())
    }

    fn shown(drained: Drained) -> Vec<u8> {
        settled(drained).0
    }

    #[test]
    fn messages_a_later_floor_of_their_chain_passes_show_where_they_are_sent_again() {
        // `all` seed 5536: messages 5 and 6 (seqs 8, 9) were read behind a gap, then the
        // sender's copies of 2, 3, 4 sent again (floor 11: it gave 8 and 9 up), then 5 and 6
        // again (duplicates).
        let mut out = Drained::default();
        out.place(text(5), &read(8, 1, 7, 5, true));
        out.place(text(6), &read(9, 1, 7, 6, true));
        for id in [2, 3, 4] {
            out.place(text(id), &read(u32::from(id) + 9, 11, 7, id, false));
        }
        out.place(None, &copy(14, 11, 7, 5));
        out.place(None, &copy(15, 11, 7, 6));
        out.place(text(7), &read(16, 11, 7, 7, false));
        assert_eq!(shown(out), vec![2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn messages_whose_copies_repeat_only_what_is_here_go_back_where_they_stood() {
        // `restore` seed 100: 2 and 3 (seqs 10, 11) read behind a gap, then 4 and 5 (not
        // given up), then the sender's copies of 0, 2, 3 from seq 19 (floor 12), then 6 (new).
        let mut out = Drained::default();
        out.place(text(2), &read(10, 0, 7, 2, true));
        out.place(text(3), &read(11, 0, 7, 3, true));
        out.place(text(4), &read(13, 0, 7, 4, true));
        out.place(text(5), &read(18, 0, 7, 5, true));
        for (seq, id) in [(19, 0), (20, 2), (21, 3)] {
            out.place(None, &copy(seq, 12, 7, id));
        }
        out.place(text(6), &read(22, 12, 7, 6, false));
        assert_eq!(shown(out), vec![2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_message_set_aside_waits_across_polls_for_its_copy_and_shows_once() {
        // `all` seed 24198: message 6 read behind a gap, its sender's copies from the floor on
        // start with 5 (new here): 6 waits, stored with the read, for its copy.
        let mut first = drain_at(1_000, &SetAside::default());
        let mut six = read(15, 1, 7, 6, true);
        six.passed = true;
        first.place(text(6), &six);
        let (shown_first, stored) = settled(first);
        assert!(shown_first.is_empty(), "6 waits for its copy");
        assert_eq!(stored.messages.len(), 1);
        // A later poll reads 5, then the copy of 6, then 7.
        let mut second = drain_at(2_000, &stored);
        second.place(text(5), &read(29, 29, 7, 5, false));
        second.place(None, &copy(30, 29, 7, 6));
        second.place(text(7), &read(31, 29, 7, 7, false));
        let (shown_second, stored) = settled(second);
        assert_eq!(shown_second, vec![5, 6, 7]);
        assert!(stored.messages.is_empty());
        // A copy whose id the session forgot (not flagged a duplicate) shows it once too.
        let mut forgot = drain_at(2_000, &{
            let mut kept = drain_at(1_000, &SetAside::default());
            kept.place(text(6), &six);
            settled(kept).1
        });
        forgot.place(text(5), &read(29, 29, 7, 5, false));
        forgot.place(text(6), &read(30, 29, 7, 6, false));
        assert_eq!(shown(forgot), vec![5, 6]);
    }

    #[test]
    fn a_message_set_aside_and_not_sent_again_shows_after_the_wait() {
        // A lost copy of this device confirmed seq 8, and nothing sends it again.
        let mut first = drain_at(0, &SetAside::default());
        first.place(text(5), &read(8, 1, 7, 5, true));
        first.place(text(6), &read(10, 9, 7, 6, true));
        first.place(None, &read(11, 9, 7, 0, false));
        let (shown_first, stored) = settled(first);
        assert_eq!(shown_first, vec![6]);
        let (shown_early, stored) = settled(drain_at(SET_ASIDE_MS - 1, &stored));
        assert!(shown_early.is_empty());
        let (shown_late, stored) = settled(drain_at(SET_ASIDE_MS, &stored));
        assert_eq!(shown_late, vec![5]);
        assert!(stored.messages.is_empty());
    }

    #[test]
    fn a_copy_read_behind_the_gap_too_does_not_release_a_message_set_aside() {
        // `all` seed 17646: a restored sender's message 15 (seq 11) read behind a gap and set
        // aside (a later floor, 25, passes it), its copy at seq 18 under the old floor read
        // behind the gap as well, then what the sender sent again from its new floor: 10, 11,
        // 14 (new here), and 15 once more.
        let mut out = Drained::default();
        let mut fifteen = read(11, 5, 7, 15, true);
        fifteen.passed = true;
        out.place(text(15), &fifteen);
        out.place(
            None,
            &ReadBlob {
                behind_gap: true,
                ..copy(18, 5, 7, 15)
            },
        );
        for (seq, id) in [(27, 10), (28, 11), (29, 14)] {
            out.place(text(id), &read(seq, 25, 9, id, false));
        }
        out.place(None, &copy(30, 25, 9, 15));
        assert_eq!(shown(out), vec![10, 11, 14, 15]);
    }

    #[test]
    fn only_a_floor_of_the_same_chain_passes_messages_read_behind_a_gap() {
        let mut out = Drained::default();
        // Read behind a gap on chain 7; a floor of chain 8 (another copy) passes its number.
        out.place(text(5), &read(8, 1, 7, 5, true));
        out.place(text(6), &read(9, 20, 8, 6, false));
        // Read in order (no gap): a later floor of its chain sets nothing aside.
        out.place(text(7), &read(10, 1, 9, 7, false));
        out.place(text(8), &read(11, 12, 9, 8, false));
        assert_eq!(shown(out), vec![5, 6, 7, 8]);
    }
}
