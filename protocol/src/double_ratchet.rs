//! The Double Ratchet with header encryption (Signal revision 1, §3 and §4) and Hush's
//! per-message addresses. One step of state per function; every receive path works on local
//! copies and changes `self` only after both AEAD checks and the payload check pass.

use crate::address::{Address, WriteKey};
use crate::chain_key::MessageKey;
use crate::crypto::{TAG_LEN, open, seal};
use crate::error::{DecryptError, EncryptError};
use crate::header_key::{ENCRYPTED_HEADER_LEN, Header, HeaderKey, Role};
use crate::hedge::{self, HEDGE_LEN, HEDGE_RANDOM_LEN};
use crate::message::{BLOB_LEN, Fragment, PAYLOAD_LEN};
use crate::ratchet_key::{RatchetKeyPair, RemoteRatchetKey};
use crate::receiving_chain::{ReceivingChain, WINDOW};
use crate::restore_signal::{RESTORE_MEMORY, RestoreKey, RestoreSignal};
use crate::root_key::RootKey;
use crate::secret::secret_key;
use crate::sending_chain::SendingChain;
use crate::skipped_keys::{SkippedKey, SkippedKeys};
use rand_core::CryptoRng;
use std::collections::VecDeque;
use zeroize::Zeroizing;

/// Most message keys of the peer's *previous* chain derived and stored at one DH ratchet
/// step. Messages further than this past the last one received on that chain are lost.
pub const MAX_SKIP: u32 = 64;

/// How many recently decrypted addresses are remembered so that a redelivery is reported as
/// [`DecryptError::Duplicate`] rather than [`DecryptError::UnknownAddress`].
pub const DUPLICATE_MEMORY: usize = 256;

/// Most positions a chain we start after a rollback skips for blobs a lost copy of this
/// device may have put on it (`docs/PROTOCOL.md` §6.5): `W/2 − 1 = 7`. The peer looks for
/// our next chain only at its first [`WINDOW`] positions, so the skip leaves room for blobs
/// of ours sealed there and abandoned later (a client keeps at most 8 sealed and not yet on
/// the mailbox): skipping up to `W − 1` left none, and a second rollback that abandoned
/// them moved every later message past the peer's window (the simulator's `restore` seed
/// 1341). A lost copy that wrote more there is met by `409`s, which move the sender on.
pub const NEXT_CHAIN_SKIP_MAX: u32 = WINDOW / 2 - 1;

secret_key! {
    /// The session's associated data `AD`, derived from the invite; bound into every AEAD call.
    pub(crate) struct AssociatedData;
}

/// The addresses a party should fetch now, by segment. Within each segment, and from one
/// segment to the next in the order of the fields, addresses follow the order in which the
/// peer sent their messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollSet {
    /// Addresses of skipped messages still awaited (older than anything in `current`), oldest
    /// first.
    pub skipped: Vec<Address>,
    /// The next [`WINDOW`] addresses of the peer's current chain, from the first unread one.
    pub current: Vec<Address>,
    /// The first [`WINDOW`] addresses of the peer's next chain. Reading one of these makes a DH
    /// ratchet step, after which unread messages of the current chain can only arrive as
    /// skipped messages. While our answering step is unsent, a blob found here means the peer
    /// answered a key this state lost to a restore (`DecryptError::UnreadableAnswer`).
    pub next: Vec<Address>,
}

impl PollSet {
    /// Every address, in the peer's send order: skipped, current, next.
    pub fn all(&self) -> Vec<Address> {
        let mut out = Vec::with_capacity(self.skipped.len() + self.current.len() + self.next.len());
        out.extend_from_slice(&self.skipped);
        out.extend_from_slice(&self.current);
        out.extend_from_slice(&self.next);
        out
    }
}

/// One blob to deposit: PUT `blob` at `address`, authorised by `write_key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingBlob {
    /// The write capability the mailbox checks: `address == write_key.address()`.
    pub write_key: WriteKey,
    /// Where to store the blob.
    pub address: Address,
    /// Exactly [`BLOB_LEN`] random-looking bytes.
    pub blob: Vec<u8>,
    /// The blob's sequence number in this party's stream (`docs/PROTOCOL.md` §6.4): the
    /// peer's acknowledgements name it.
    pub seq: u32,
    /// The message the blob belongs to: 8 random bytes shared by its fragments (zero for the
    /// hello and acknowledgement-only blobs). Pass it to `Session::encrypt_resend` to send the
    /// message again without the peer showing it twice.
    pub message_id: [u8; 8],
}

/// The result of one successful receive, before reassembly.
pub(crate) struct Decrypted {
    pub(crate) fragment: Fragment,
    /// The blob's hedge (its first bytes), which the stream digest covers.
    pub(crate) r: [u8; HEDGE_LEN],
    pub(crate) chain: [u8; 32],
    pub(crate) n: u32,
    pub(crate) retired: Vec<Address>,
    /// The write key of the address the blob was read from (the receiver derives the
    /// sender's write keys to compute its poll set): what `DELETE /v1/m/{address}` needs.
    pub(crate) write_key: WriteKey,
    /// The header key the blob's header opened under (at position `n`): kept with the read
    /// address, so that another blob found there later is known to be the peer's only if its
    /// header opens too (`docs/PROTOCOL.md` §8, "Rewritten addresses").
    pub(crate) header_key: HeaderKey,
}

/// Where an address sits in the poll set.
enum Slot {
    Current(u32),
    Next(u32),
    Skipped(usize),
}

/// The whole ratchet state of one party.
#[derive(Clone, Debug)]
pub(crate) struct Ratchet {
    pub(crate) role: Role,
    pub(crate) ad: AssociatedData,
    pub(crate) root_key: RootKey,
    /// `DHs`.
    pub(crate) ratchet_key: RatchetKeyPair,
    /// `DHr`; `None` only for an inviter that has not received the join.
    pub(crate) remote_ratchet_key: Option<RemoteRatchetKey>,
    /// `CKs, HKs, Ns`; `None` until the first sending chain exists.
    pub(crate) sending: Option<SendingChain>,
    /// Set when a new `DHr` arrived and our matching new `DHs` has not been generated yet
    /// (the sending half of the DH ratchet step runs in the next `encrypt`).
    pub(crate) send_step_pending: bool,
    /// `PN`.
    pub(crate) previous_sending_len: u32,
    /// `NHKs`.
    pub(crate) next_sending_header_key: HeaderKey,
    /// `CKr, HKr, Nr` and the window.
    pub(crate) receiving: Option<ReceivingChain>,
    /// `NHKr`.
    pub(crate) next_receiving_header_key: HeaderKey,
    /// Addresses of the first messages of the peer's next chain.
    pub(crate) next_window: Vec<Address>,
    /// `MKSKIPPED`.
    pub(crate) skipped: SkippedKeys,
    /// Recently decrypted addresses, oldest first.
    pub(crate) recently_received: VecDeque<Address>,
    /// Number of successful decryptions so far.
    pub(crate) receive_events: u64,
    /// `RK` before our last receiving DH step, kept only while `send_step_pending` and while
    /// at most [`FORK_WINDOW`] messages of the current receiving chain were read: lets us
    /// follow a peer restored to before that step (a fork, `docs/PROTOCOL.md` §6.6). Its cost:
    /// with `DHs` it derives the current receiving chain from message 0, so a copy of the
    /// state taken meanwhile exposes the keys of those (at most 16) messages already read.
    pub(crate) previous_root: Option<RootKey>,
    /// Ratchet keys of peer chains given up for a fork (at most [`MAX_ABANDONED_KEYS`]): a
    /// late blob of the lost state is refused rather than followed back.
    pub(crate) abandoned_keys: Vec<[u8; 32]>,
    /// Positions the next sending chain skips when it starts: set when a rollback is found
    /// while a send step is pending (the lost state may have started that chain already).
    pub(crate) next_chain_skip: u32,
    /// `RS` of the last [`RESTORE_MEMORY`] root keys before `RK`, oldest first: the peer
    /// restored to a state holding one of them can still tell us (`docs/PROTOCOL.md` §6.9).
    pub(crate) restore_keys: VecDeque<RestoreKey>,
    /// Positions of the current sending chain skipped because they were found taken
    /// (`skip_upcoming`) and not yet matched by a rollback's skip (`skip_sending`): both see
    /// the same blobs of a lost state, which must be skipped once, not twice. While a send
    /// step is pending: the positions of the chain that step starts found taken
    /// (`next_chain_skip` counts them too), credited to that chain when it starts.
    pub(crate) skipped_ahead: u32,
    /// The current sending chain started past positions skipped for a lost state
    /// (`next_chain_skip`): that state diverged from us before this chain's DH step, so it
    /// never held this chain's keys, and only its own chain under the same header key (at
    /// most the first `W` positions the peer looks at) can share our addresses. A rollback
    /// found later moves this chain at most to position `W − 1`, as `next_chain_skip` would.
    pub(crate) chain_after_rollback: bool,
    /// While a send step is pending: the lowest sequence number a blob of a lost copy of
    /// this device on the chain that step starts can have (the acknowledgement the peer's
    /// chain carried at its first blob: the lost copy could answer that chain only after
    /// the peer wrote it). `None`: not known.
    pub(crate) next_chain_from: Option<u32>,
    /// Positions of the peer's chain before `DHr`'s for which this state set keys aside at
    /// the last receiving DH step (`0 .. reach`, §6.3 step 5): the `PN` accepted then (capped
    /// at `Nr + MAX_SKIP`), or `Nr + W` for a `PN` below `Nr`; 0 before the first step;
    /// [`REACH_UNKNOWN`] for a state loaded from a pickle written before the field existed. An
    /// upper bound: skipped keys may have expired or been read since.
    pub(crate) previous_chain_reach: u32,
    /// Set when the fork we follow (§6.6) has a `PN` past `previous_chain_reach`: the copy of
    /// the peer that wrote it deposited on the chain before at positions this state cannot
    /// read, so numbers of its stream below the fork's first blob read here may lie there
    /// (`docs/PROTOCOL.md` §6.6, "A fork past our reach"). `None` at the next receiving DH
    /// step, or when a fork within reach replaces it.
    pub(crate) fork_past_reach: Option<ForkPastReach>,
}

/// [`Ratchet::previous_chain_reach`] when it is not known (a pickle from before the field):
/// no fork's `PN` passes it.
pub(crate) const REACH_UNKNOWN: u32 = u32::MAX;

/// A fork followed past our reach ([`Ratchet::fork_past_reach`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ForkPastReach {
    /// The fork's ratchet key (`DHr` since it was followed).
    pub(crate) ratchet_key: [u8; 32],
    /// The peer's sequence number of the first blob read on the fork: the numbers below it
    /// that never arrived may lie out of reach.
    pub(crate) from_seq: u32,
}

/// Most messages of the current receiving chain read while `previous_root` is kept: past it
/// the key is deleted (restoring forward secrecy for what was read) and a later fork is
/// refused as [`DecryptError::PeerRestored`].
pub const FORK_WINDOW: u32 = WINDOW;

/// Most behind signals we deposit (`docs/PROTOCOL.md` §6.9): one under every root key we
/// remember but the newest, so a copy of the peer behind by two to
/// [`RESTORE_MEMORY`](crate::RESTORE_MEMORY) of our root keys is told (with 3, a copy
/// restored to the start of a conversation five root keys on was not: the simulator's `all`
/// seed 13301, both directions dead and nobody told). Each is deposited only where its
/// address reads empty, in a retransmission check that deposits an expired blob of ours
/// again: at most this many PUTs more per such check (and [`BEHIND_ANSWERED_SIGNALS`]),
/// once per mailbox lifetime.
pub const BEHIND_SIGNALS: usize = crate::restore_signal::RESTORE_MEMORY - 1;

/// Most "behind, answered" signals we deposit (`docs/PROTOCOL.md` §6.9): one under every
/// root key we remember but the three newest, for a copy of the peer that took a send step
/// of its own after its restore and is behind by four to
/// [`RESTORE_MEMORY`](crate::RESTORE_MEMORY) of our root keys.
pub const BEHIND_ANSWERED_SIGNALS: usize = crate::restore_signal::RESTORE_MEMORY - 3;

/// Most abandoned peer ratchet keys remembered.
pub const MAX_ABANDONED_KEYS: usize = 4;

/// A blob split into its parts: hedge `r`, encrypted header, encrypted payload and tag.
pub(crate) struct BlobParts<'a> {
    pub(crate) r: &'a [u8; HEDGE_LEN],
    pub(crate) header: &'a [u8; ENCRYPTED_HEADER_LEN],
    body: &'a [u8; PAYLOAD_LEN],
    tag: &'a [u8; TAG_LEN],
}

pub(crate) fn split_blob(blob: &[u8]) -> Result<BlobParts<'_>, DecryptError> {
    let wrong = DecryptError::WrongLength {
        expected: BLOB_LEN,
        got: blob.len(),
    };
    let blob: &[u8; BLOB_LEN] = blob.try_into().map_err(|_| wrong)?;
    let (r, rest) = blob.split_first_chunk::<HEDGE_LEN>().ok_or(wrong)?;
    let (header, rest) = rest
        .split_first_chunk::<ENCRYPTED_HEADER_LEN>()
        .ok_or(wrong)?;
    let (body, tag) = rest.split_last_chunk::<TAG_LEN>().ok_or(wrong)?;
    let body: &[u8; PAYLOAD_LEN] = body.try_into().map_err(|_| wrong)?;
    Ok(BlobParts {
        r,
        header,
        body,
        tag,
    })
}

/// Length of the body's associated data.
const BODY_AD_LEN: usize = 64 + HEDGE_LEN + ENCRYPTED_HEADER_LEN;

/// The body's associated data: `AD ‖ address ‖ r ‖ encrypted_header` (136 bytes).
fn body_ad(
    ad: &AssociatedData,
    address: &Address,
    r: &[u8; HEDGE_LEN],
    header: &[u8; ENCRYPTED_HEADER_LEN],
) -> [u8; BODY_AD_LEN] {
    let mut out = [0u8; BODY_AD_LEN];
    let (a, rest) = out.split_at_mut(32);
    a.copy_from_slice(ad.as_bytes());
    let (b, rest) = rest.split_at_mut(32);
    b.copy_from_slice(&address.0);
    let (c, d) = rest.split_at_mut(HEDGE_LEN);
    c.copy_from_slice(r);
    d.copy_from_slice(header);
    out
}

/// Decrypts and validates the body under `MKr = HMAC(MK, "hush/v2/body-key" ‖ r)` with the
/// all-zero nonce: `MKr` is derived for this one blob.
fn open_body(
    mk: &MessageKey,
    ad: &AssociatedData,
    address: &Address,
    parts: &BlobParts<'_>,
) -> Result<Fragment, DecryptError> {
    let mut payload = Zeroizing::new(*parts.body);
    let key = hedge::body_key(mk.as_bytes(), parts.r);
    if !open(
        &key,
        [0u8; 12],
        &body_ad(ad, address, parts.r, parts.header),
        &mut payload[..],
        parts.tag,
    ) {
        return Err(DecryptError::BodyAuthentication);
    }
    Fragment::parse(&payload).ok_or(DecryptError::MalformedPayload)
}

/// Seals one blob (`docs/PROTOCOL.md` §3.6-3.7): draws `z`, derives the hedge `r` from the
/// message key, the randomness, the header and the payload, then encrypts header and body
/// under keys derived from `r`. Two calls from one replayed state with different plaintexts
/// never share a key.
#[allow(clippy::too_many_arguments)]
fn seal_blob<R: CryptoRng + ?Sized>(
    rng: &mut R,
    header_key: &HeaderKey,
    message_key: &MessageKey,
    header: &Header,
    payload: &[u8; PAYLOAD_LEN],
    ad: &AssociatedData,
    address: &Address,
) -> Vec<u8> {
    let mut z = Zeroizing::new([0u8; HEDGE_RANDOM_LEN]);
    rng.fill_bytes(&mut z[..]);
    let r = hedge::hedge(message_key.as_bytes(), &z, &header.to_bytes(), payload);
    let encrypted_header = header_key.encrypt_header(header, &r, ad.as_bytes(), address);
    let mut blob = Vec::with_capacity(BLOB_LEN);
    blob.extend_from_slice(&r);
    blob.extend_from_slice(&encrypted_header);
    blob.extend_from_slice(payload);
    let key = hedge::body_key(message_key.as_bytes(), &r);
    let body_ad = body_ad(ad, address, &r, &encrypted_header);
    let start = HEDGE_LEN + ENCRYPTED_HEADER_LEN;
    let tag = blob
        .get_mut(start..)
        .map_or([0u8; TAG_LEN], |body| seal(&key, [0u8; 12], &body_ad, body));
    blob.extend_from_slice(&tag);
    blob
}

impl Ratchet {
    /// Replaces `RK`, keeping the old one's restore-signal key (at most [`RESTORE_MEMORY`]).
    /// Returns the old root key.
    fn advance_root(&mut self, root_key: RootKey) -> RootKey {
        let old = core::mem::replace(&mut self.root_key, root_key);
        if self.restore_keys.len() >= RESTORE_MEMORY {
            self.restore_keys.pop_front();
        }
        self.restore_keys.push_back(old.restore_key());
        old
    }

    /// Restore-signal keys the peer may hold: our current root key's, then earlier ones,
    /// newest first.
    fn known_restore_keys(&self) -> impl Iterator<Item = RestoreKey> + '_ {
        core::iter::once(self.root_key.restore_key()).chain(self.restore_keys.iter().rev().cloned())
    }

    /// Addresses of the peer's restore signal under our current and last
    /// [`RESTORE_MEMORY`] root keys (at most 17, newest first).
    pub(crate) fn restore_signal_addresses(&self) -> Vec<Address> {
        let peer = self.role.peer();
        self.known_restore_keys().map(|k| k.address(peer)).collect()
    }

    /// Whether `blob` at `address` is the peer's restore signal under one of our root keys.
    pub(crate) fn is_restore_signal(&self, address: &Address, blob: &[u8]) -> bool {
        let peer = self.role.peer();
        self.known_restore_keys()
            .find(|k| k.address(peer) == *address)
            .is_some_and(|k| k.is_signal(peer, blob))
    }

    /// Keys of the peer's "behind" signals we look for (`docs/PROTOCOL.md` §6.9): the behind
    /// key of our current `RK` and, while `RK` comes from a send step of ours
    /// (`send_step_pending` false: the peer may never have derived it), the "behind,
    /// answered" key of the root key before it, the newest of `restore_keys`. A copy restored
    /// to a state the peer moved past may take one send step of its own (its answer) before
    /// it finds it can read nothing; looking only under that new root key, which the peer
    /// never saw, it would never be told (the simulator's `all` seed 23815: both sides waited
    /// for ever, messages *sent*).
    fn behind_keys(&self) -> Vec<RestoreKey> {
        let mut keys = vec![self.root_key.restore_key().behind_key()];
        if !self.send_step_pending
            && let Some(before) = self.restore_keys.back()
        {
            keys.push(before.behind_answered_key());
        }
        keys
    }

    /// Addresses of the peer's "behind" signal (one or two, [`Self::behind_keys`]): found
    /// there, it says the peer saw us at a later root key than the one we hold (we are a
    /// restored copy that cannot follow its chains).
    pub(crate) fn behind_signal_addresses(&self) -> Vec<Address> {
        let peer = self.role.peer();
        self.behind_keys().iter().map(|k| k.address(peer)).collect()
    }

    /// Whether `blob` at `address` is the peer's "behind" signal under one of
    /// [`Self::behind_keys`].
    pub(crate) fn is_behind_signal(&self, address: &Address, blob: &[u8]) -> bool {
        let peer = self.role.peer();
        self.behind_keys()
            .iter()
            .find(|k| k.address(peer) == *address)
            .is_some_and(|k| k.is_signal(peer, blob))
    }

    /// Our "behind" signals (`docs/PROTOCOL.md` §6.9): behind signals under the root keys of
    /// `restore_keys` older than the newest one (which the peer provably reached: it is the
    /// root key of the peer chain we read last, or `previous_root`, kept to follow a fork),
    /// newest first, at most [`BEHIND_SIGNALS`] of them; then "behind, answered" signals
    /// under those older than the three newest, at most [`BEHIND_ANSWERED_SIGNALS`].
    pub(crate) fn behind_signals(&self) -> Vec<RestoreSignal> {
        let behind = self
            .restore_keys
            .iter()
            .rev()
            .skip(1)
            .take(BEHIND_SIGNALS)
            .map(|k| k.behind_key().signal(self.role));
        // "Behind, answered": further back. A peer that is not behind and took a send step
        // we have not read yet holds, before it, the root key of our chain it answered: at
        // most our second newest, or our third newest when we followed its fork (§6.6: the
        // root key the fork replaced is kept among ours too).
        let answered = self
            .restore_keys
            .iter()
            .rev()
            .skip(3)
            .take(BEHIND_ANSWERED_SIGNALS)
            .map(|k| k.behind_answered_key().signal(self.role));
        behind.chain(answered).collect()
    }

    /// Our restore signals: under `RK`, under `previous_root` if held, and under the two
    /// root keys before `RK`. After a restore the last root key we share with the peer is one
    /// of these: the restored state makes at most one send step of its own (its answer)
    /// before it finds it cannot read the peer, since every later step needs a chain of the
    /// peer's that it could read.
    pub(crate) fn restore_signals(&self) -> Vec<RestoreSignal> {
        self.restore_signals_back(2)
    }

    /// Our restore signals after we ended the conversation (`PeerRestored`, `Diverged`): under
    /// `RK`, `previous_root` if held, and every root key in `restore_keys`. The peer's
    /// restored copy may share only a root key several of our steps back: we went on
    /// stepping with the copy it lost (seed 232 of the simulator: three steps).
    pub(crate) fn restore_signals_after_end(&self) -> Vec<RestoreSignal> {
        self.restore_signals_back(RESTORE_MEMORY)
    }

    /// Signals under `RK`, `previous_root` and the `back` newest root keys of
    /// `restore_keys`, distinct addresses only, newest first.
    fn restore_signals_back(&self, back: usize) -> Vec<RestoreSignal> {
        let mut keys: Vec<RestoreKey> = vec![self.root_key.restore_key()];
        keys.extend(self.previous_root.as_ref().map(RootKey::restore_key));
        keys.extend(self.restore_keys.iter().rev().take(back).cloned());
        let mut signals: Vec<RestoreSignal> = Vec::with_capacity(keys.len());
        for key in keys {
            let signal = key.signal(self.role);
            if !signals.iter().any(|s| s.address == signal.address) {
                signals.push(signal);
            }
        }
        signals
    }

    /// The addresses to poll now, by segment (see [`PollSet`]).
    pub(crate) fn poll_set(&self) -> PollSet {
        PollSet {
            skipped: self.skipped.addresses(),
            current: self
                .receiving
                .as_ref()
                .map(|rc| rc.window.iter().copied().collect())
                .unwrap_or_default(),
            // Polled even while our answer is pending: the peer cannot have started this chain
            // then, unless it answered a ratchet key of ours that this state lost to a restore
            // (`docs/PROTOCOL.md` §6.6); finding a blob here is how we learn it.
            next: self.next_window.clone(),
        }
    }

    fn locate(&self, address: &Address) -> Result<Slot, DecryptError> {
        if let Some(n) = self.receiving.as_ref().and_then(|rc| rc.find(address)) {
            return Ok(Slot::Current(n));
        }
        if let Some(i) = self.next_window.iter().position(|a| a == address) {
            return u32::try_from(i)
                .map(Slot::Next)
                .map_err(|_| DecryptError::UnknownAddress);
        }
        if let Some(i) = self.skipped.position(address) {
            return Ok(Slot::Skipped(i));
        }
        if self.recently_received.contains(address) {
            return Err(DecryptError::Duplicate);
        }
        Err(DecryptError::UnknownAddress)
    }

    /// The sending half of the DH ratchet step (`DHRatchetHE` lines 2, 6-8), run lazily at the
    /// first `encrypt` after a new `DHr` arrived.
    fn send_step<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<(), EncryptError> {
        let remote = self
            .remote_ratchet_key
            .ok_or(EncryptError::InvalidRatchetKey)?;
        let new_key = RatchetKeyPair::generate(rng);
        let dh = new_key
            .diffie_hellman(&remote)
            .ok_or(EncryptError::InvalidRatchetKey)?;
        let (root_key, chain_key, next_header_key) = self.root_key.advance(&dh);
        let header_key = core::mem::replace(&mut self.next_sending_header_key, next_header_key);
        self.previous_sending_len = self.sending.as_ref().map_or(0, |s| s.next);
        let mut chain = SendingChain::new(chain_key, header_key, 0, self.role);
        let chain_skip = core::mem::take(&mut self.next_chain_skip);
        for _ in 0..chain_skip {
            drop(chain.chain_key.step());
            chain.next += 1;
        }
        self.sending = Some(chain);
        self.advance_root(root_key);
        self.ratchet_key = new_key;
        self.send_step_pending = false;
        self.previous_root = None;
        // The positions skipped at the start because they were found taken are this chain's
        // credit: a rollback found later counts the same blobs of a lost state (seed 1550 of
        // the simulator's `restore` mix: counted twice, they moved the chain past the peer's
        // window). Those skipped for a rollback already are not.
        self.skipped_ahead = self.skipped_ahead.min(chain_skip);
        self.chain_after_rollback = chain_skip > 0;
        self.next_chain_from = None;
        Ok(())
    }

    /// Encrypts each payload as one blob on the sending chain (`RatchetEncryptHE`); `seqs` are
    /// the blobs' sequence numbers (already encoded in the payloads), one per payload.
    /// `step` false (acknowledgement-only blobs): stay on the current sending chain even when
    /// a send step is pending, so that a reader who only acknowledges keeps the state that
    /// lets it follow a restored peer (`previous_root`).
    pub(crate) fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        payloads: &[(u32, Zeroizing<[u8; PAYLOAD_LEN]>)],
        step: bool,
    ) -> Result<Vec<OutgoingBlob>, EncryptError> {
        if self.sending.is_none() || (step && self.send_step_pending) {
            self.send_step(rng)?;
        }
        let count = u32::try_from(payloads.len()).map_err(|_| EncryptError::ChainExhausted)?;
        let public = self.ratchet_key.public_bytes();
        let pn = self.previous_sending_len;
        let Some(chain) = self.sending.as_mut() else {
            return Err(EncryptError::InvalidRatchetKey);
        };
        if chain.next.checked_add(count).is_none() {
            return Err(EncryptError::ChainExhausted);
        }
        // Each blob we send now takes one of the positions `skipped_ahead` stands for (its seq
        // is one a lost copy may have used): that credit is spent, so that a later rollback
        // never skips fewer positions than a lost state used.
        self.skipped_ahead = self.skipped_ahead.saturating_sub(count);
        let mut out = Vec::with_capacity(payloads.len());
        for (seq, payload) in payloads {
            let n = chain.next;
            let message_key = chain.chain_key.step();
            let write_key = chain.addresses.write_key(n);
            let address = write_key.address();
            let header = Header {
                ratchet_key: public,
                pn,
                n,
            };
            let blob = seal_blob(
                rng,
                &chain.header_key,
                &message_key,
                &header,
                payload,
                &self.ad,
                &address,
            );
            out.push(OutgoingBlob {
                write_key,
                address,
                blob,
                seq: *seq,
                message_id: [0u8; 8],
            });
            chain.next = n.saturating_add(1);
        }
        Ok(out)
    }

    /// Addresses of the next `count` blobs we would send: on the current sending chain from
    /// `Ns`, or, when the next send starts a new chain, on that chain (header key `NHKs`) from
    /// `next_chain_skip`.
    pub(crate) fn upcoming_addresses(&self, count: u32) -> Vec<Address> {
        match self.sending.as_ref() {
            Some(chain) if !self.send_step_pending => chain.addresses.addresses(chain.next, count),
            _ => self.next_chain_addresses(count),
        }
    }

    /// The addresses of the first `count` positions the sending chain our next send step
    /// starts will use, from `next_chain_skip` (`NHKs`, our role): known before the step,
    /// since `NHKs` is fixed until it.
    pub(crate) fn next_chain_addresses(&self, count: u32) -> Vec<Address> {
        self.next_sending_header_key
            .addresses(self.role, self.next_chain_skip, count)
    }

    /// `Some(next_chain_skip)` when the next `encrypt` with `step` starts a chain, else `None`.
    pub(crate) fn upcoming_chain_lead(&self) -> Option<u32> {
        (self.sending.is_none() || self.send_step_pending).then_some(self.next_chain_skip)
    }

    /// The addresses of the current sending chain's first `min(Ns, limit)` positions, in
    /// order (empty without a sending chain).
    pub(crate) fn sending_addresses(&self, limit: u32) -> Vec<Address> {
        self.sending.as_ref().map_or_else(Vec::new, |chain| {
            chain.addresses.addresses(0, chain.next.min(limit))
        })
    }

    /// Of the blobs found at the current sending chain's next `count` positions (from `Ns`),
    /// the leading run a copy of this state sealed, in position order, each with its write
    /// key: its header opens under `HKs` (`HDECRYPT`, which authenticates it) and names that
    /// position and our ratchet key. Empty when the next send starts a new chain. No state
    /// change; at most `count` header decryptions.
    pub(crate) fn own_upcoming_blobs(
        &self,
        found: &[(Address, Vec<u8>)],
        count: u32,
    ) -> Vec<(WriteKey, Vec<u8>)> {
        let Some(chain) = self.sending.as_ref().filter(|_| !self.send_step_pending) else {
            return Vec::new();
        };
        let public = self.ratchet_key.public_bytes();
        let mut out = Vec::new();
        for n in chain.next..chain.next.saturating_add(count) {
            let write_key = chain.addresses.write_key(n);
            let address = write_key.address();
            let Some((_, blob)) = found.iter().find(|(a, _)| *a == address) else {
                break;
            };
            let Ok(parts) = split_blob(blob) else {
                break;
            };
            match chain.header_key.decrypt_header(
                parts.header,
                parts.r,
                n,
                self.ad.as_bytes(),
                &address,
            ) {
                Some(header) if header.ratchet_key == public => out.push((write_key, blob.clone())),
                _ => break,
            }
        }
        out
    }

    /// Moves the position of our next blob `count` further: on the current sending chain, or
    /// on the chain the next send starts. The positions count as `skipped_ahead`: found
    /// taken, they are what a rollback found later would skip again.
    pub(crate) fn skip_upcoming(&mut self, count: u32) {
        let count = count.min(crate::MAX_ROLLBACK_SKIP);
        self.skipped_ahead = self.skipped_ahead.saturating_add(count);
        if self.sending.is_some() && !self.send_step_pending {
            self.advance_sending(count);
        } else {
            self.next_chain_skip = self.next_chain_skip.saturating_add(count);
        }
    }

    /// Steps the current sending chain `count` positions without sending.
    pub(crate) fn advance_sending(&mut self, count: u32) {
        if let Some(chain) = self.sending.as_mut() {
            let target = chain.next.saturating_add(count);
            while chain.next < target {
                drop(chain.chain_key.step());
                chain.next += 1;
            }
        }
    }

    /// Moves the sending chain `count` messages ahead without sending them: after a rollback
    /// those message numbers (their keys and addresses) may have been used by the lost state.
    /// Positions already skipped because they were found taken (`skipped_ahead`, the same
    /// lost blobs seen on the mailbox) count against `count`.
    /// When the next send starts a new chain anyway, this still moves the old chain's length,
    /// which the new chain's headers report as `PN` (the peer checks `PN ≥ Nr`).
    /// While a send step is pending, the chain it starts skips positions too (at most
    /// `W − 1`): the lost state may have started it already, under the same header key. It
    /// could only after reading the peer's chain that step answers, so its blobs there are
    /// numbered from [`Ratchet::next_chain_from`] up to `next_seq` (our stream's next number,
    /// past every one the peer acknowledged): `next_seq − next_chain_from` positions, or
    /// `count` when that is not known (`docs/PROTOCOL.md` §6.5). A copy restored again later
    /// counts from the same number up to a later one, so it never starts inside the positions
    /// an earlier copy's skip left (which the peer keeps skipped keys for under that copy's
    /// ratchet key). The peer looks for a new chain only at its first [`WINDOW`] positions, so
    /// a chain starting past them would never be read. A lost state that did write `W` or
    /// more blobs there is met by `409`s (the client moves on); the hedge
    /// (`docs/PROTOCOL.md` §3.7) keeps keys apart anyway.
    pub(crate) fn skip_sending(&mut self, count: u32, next_seq: u32) {
        let covered = count.min(self.skipped_ahead);
        self.skipped_ahead -= covered;
        if self.send_step_pending {
            // Found-taken positions of the next chain (`next_chain_skip`) already stand for
            // `covered` of these blobs: the maximum, not the sum.
            let lost = self
                .next_chain_from
                .map_or(count, |from| next_seq.saturating_sub(from));
            self.next_chain_skip = self.next_chain_skip.max(lost.min(NEXT_CHAIN_SKIP_MAX));
            self.advance_sending(count);
            return;
        }
        if self.chain_after_rollback {
            // The lost state's blobs `count` stands for were on an older chain or on its own
            // chain under our header key: skipping more would leave the peer's window (seed
            // 6949 of the simulator's `all` mix: 16 blobs of the old chain moved a chain the
            // peer read to position 4 to position 22, and its messages stayed *sent*).
            let target = count.min(WINDOW - 1);
            let next = self.sending.as_ref().map_or(0, |c| c.next);
            self.advance_sending(target.saturating_sub(next));
            return;
        }
        self.advance_sending(count - covered);
    }

    /// After a rollback, while a send step is pending: the chain that step starts skips the
    /// positions a lost copy's blobs the peer has seen may hold there, numbered from
    /// [`Ratchet::next_chain_from`] up to `seen_end` (one past the highest of our numbers the
    /// peer acknowledged), at most [`NEXT_CHAIN_SKIP_MAX`] (`docs/PROTOCOL.md` §6.5). A
    /// rollback with lost blobs skips at least as many already ([`Ratchet::skip_sending`]);
    /// this covers the hidden one (`lost_blobs` = 0: the restored state had sent as many
    /// numbers on older chains), which skipped nothing: its next chain started at position
    /// 0, where the peer had read the lost copy's blobs, and stayed unread (the simulator's
    /// `all` seed 14748).
    pub(crate) fn cover_next_chain(&mut self, seen_end: u32) {
        if !self.send_step_pending {
            return;
        }
        if let Some(from) = self.next_chain_from {
            let lost = seen_end.saturating_sub(from).min(NEXT_CHAIN_SKIP_MAX);
            self.next_chain_skip = self.next_chain_skip.max(lost);
        }
    }

    /// `RatchetDecryptHE` for a blob found at `address`. On error `self` is unchanged.
    pub(crate) fn decrypt(
        &mut self,
        address: &Address,
        blob: &[u8],
    ) -> Result<Decrypted, DecryptError> {
        let parts = split_blob(blob)?;
        match self.locate(address)? {
            Slot::Skipped(i) => self.decrypt_skipped(i, address, &parts),
            Slot::Current(n) => self.decrypt_current(n, address, &parts),
            Slot::Next(n) => self.decrypt_next(n, address, &parts),
        }
    }

    /// `TrySkippedMessageKeysHE`.
    fn decrypt_skipped(
        &mut self,
        index: usize,
        address: &Address,
        parts: &BlobParts<'_>,
    ) -> Result<Decrypted, DecryptError> {
        let entry = self
            .skipped
            .entries
            .get(index)
            .ok_or(DecryptError::UnknownAddress)?;
        let h = entry
            .header_key
            .decrypt_header(parts.header, parts.r, entry.n, self.ad.as_bytes(), address)
            .ok_or(DecryptError::HeaderAuthentication)?;
        // An address may hold the keys of two chains under one header key: a lost chain's
        // and the fork that replaced it (`docs/PROTOCOL.md` §6.6); the header names which.
        let Some(index) = self.skipped.position_of(address, &h.ratchet_key) else {
            // A fork of the current chain, read first at a position that chain skipped: the
            // peer's device went back before its step and started the chain again from a
            // lower position than the copy we follow (§6.6, "A fork read first where the lost
            // chain skipped"). Followed here as at any other position, so that its blobs read
            // in the order they were written. The address may also hold the key of a chain an
            // earlier fork replaced: the current chain's key there is the one that counts.
            // A body that does not open under the fork's key is still the peer's (its header
            // authenticated): a copy that stepped from a state of ours this one lacks.
            let n = entry.n;
            let skipped_here = self.receiving.as_ref().is_some_and(|rc| {
                self.skipped
                    .entries
                    .iter()
                    .any(|e| &e.address == address && e.ratchet_key == rc.ratchet_key && e.n == n)
            });
            if skipped_here && self.forkable(&h.ratchet_key) {
                return self
                    .decrypt_fork(n, address, parts, h.ratchet_key, h.pn)
                    .map_err(|err| match err {
                        DecryptError::BodyAuthentication => DecryptError::InconsistentHeader,
                        other => other,
                    });
            }
            return Err(DecryptError::InconsistentHeader);
        };
        let entry = self
            .skipped
            .entries
            .get(index)
            .ok_or(DecryptError::UnknownAddress)?;
        let fragment = open_body(&entry.message_key, &self.ad, address, parts)?;
        // Commit.
        let entry = self.skipped.entries.remove(index);
        let write_key = entry.header_key.write_key(self.role.peer(), entry.n);
        // The other chain's key at this address, if any, goes too: the mailbox keeps one blob
        // per address, and this was it.
        self.skipped.entries.retain(|e| &e.address != address);
        let mut retired = vec![*address];
        self.finish_receive(address, &mut retired);
        Ok(Decrypted {
            fragment,
            r: *parts.r,
            chain: entry.ratchet_key.0,
            n: entry.n,
            retired,
            write_key,
            header_key: entry.header_key,
        })
    }

    /// A message on the current receiving chain, `n ≥ Nr`: skip `Nr .. n`, then decrypt.
    fn decrypt_current(
        &mut self,
        n: u32,
        address: &Address,
        parts: &BlobParts<'_>,
    ) -> Result<Decrypted, DecryptError> {
        let stored_at = self.receive_events.saturating_add(1);
        let rc = self
            .receiving
            .as_ref()
            .ok_or(DecryptError::UnknownAddress)?;
        let h = rc
            .header_key
            .decrypt_header(parts.header, parts.r, n, self.ad.as_bytes(), address)
            .ok_or(DecryptError::HeaderAuthentication)?;
        if h.ratchet_key != rc.ratchet_key.0 {
            return self.decrypt_fork(n, address, parts, h.ratchet_key, h.pn);
        }
        let mut chain_key = rc.chain_key.clone();
        let mut new_skipped = Vec::new();
        for (i, address) in (rc.next..n).zip(rc.window.iter()) {
            new_skipped.push(SkippedKey {
                address: *address,
                header_key: rc.header_key.clone(),
                message_key: chain_key.step(),
                ratchet_key: rc.ratchet_key,
                n: i,
                stored_at,
            });
        }
        let message_key = chain_key.step();
        let fragment = open_body(&message_key, &self.ad, address, parts)?;
        let write_key = rc.addresses.write_key(n);
        let header_key = rc.header_key.clone();
        // Commit.
        let mut retired = vec![*address];
        if let Some(rc) = self.receiving.as_mut() {
            rc.chain_key = chain_key;
            rc.slide_to(n.saturating_add(1));
            if rc.next > FORK_WINDOW {
                self.previous_root = None;
            }
        }
        self.skipped.extend(new_skipped, &mut retired);
        self.finish_receive(address, &mut retired);
        Ok(Decrypted {
            fragment,
            r: *parts.r,
            chain: h.ratchet_key,
            n,
            retired,
            write_key,
            header_key,
        })
    }

    /// A message on the peer's next chain: skip the rest of the current chain up to `PN`,
    /// run the receiving half of the DH ratchet step (`DHRatchetHE` lines 1, 3-5), skip
    /// `0 .. n` of the new chain, then decrypt.
    fn decrypt_next(
        &mut self,
        n: u32,
        address: &Address,
        parts: &BlobParts<'_>,
    ) -> Result<Decrypted, DecryptError> {
        let stored_at = self.receive_events.saturating_add(1);
        let h = self
            .next_receiving_header_key
            .decrypt_header(parts.header, parts.r, n, self.ad.as_bytes(), address)
            .ok_or(DecryptError::HeaderAuthentication)?;
        // Our answer to `DHr` is not sent yet, so the peer cannot have started this chain from
        // anything this state holds: it answered a key of ours lost to a restore (§6.6).
        if self.send_step_pending && self.receiving.is_some() {
            return Err(DecryptError::UnreadableAnswer);
        }
        let remote = RemoteRatchetKey(h.ratchet_key);
        if self.remote_ratchet_key == Some(remote) {
            return Err(DecryptError::InconsistentHeader);
        }
        let mut new_skipped = Vec::new();
        let mut retired = vec![*address];
        let mut reach = 0;
        if let Some(rc) = &self.receiving {
            // A `PN` below `Nr` comes from a copy of the sender older than the one whose blobs
            // we read on this chain: it was restored and started a new chain before learning
            // how far its lost state had gone (`docs/PROTOCOL.md` §6.5). `PN` then says
            // nothing about the old chain: a newer copy (restored from a later backup, or the
            // lost state's own blobs still in flight) may deposit further on it. Its window
            // stays readable as skipped keys, the reach it had a moment ago (§6.3, "A `PN`
            // below `Nr`"), rather than giving those blobs up unread.
            let end = if h.pn < rc.next {
                rc.next.saturating_add(WINDOW)
            } else {
                h.pn.min(rc.next.saturating_add(MAX_SKIP))
            };
            let mut chain_key = rc.chain_key.clone();
            for i in rc.next..end {
                let offset = (i - rc.next) as usize;
                let address = match rc.window.get(offset) {
                    Some(a) => *a,
                    None => rc.addresses.write_key(i).address(),
                };
                new_skipped.push(SkippedKey {
                    address,
                    header_key: rc.header_key.clone(),
                    message_key: chain_key.step(),
                    ratchet_key: rc.ratchet_key,
                    n: i,
                    stored_at,
                });
            }
            let kept = (end - rc.next) as usize;
            retired.extend(rc.window.iter().skip(kept).copied());
            reach = end;
        }
        let dh = self
            .ratchet_key
            .diffie_hellman(&remote)
            .ok_or(DecryptError::InvalidRatchetKey)?;
        let (root_key, mut chain_key, next_header_key) = self.root_key.advance(&dh);
        let header_key = self.next_receiving_header_key.clone();
        for (i, address) in (0..n).zip(self.next_window.iter()) {
            new_skipped.push(SkippedKey {
                address: *address,
                header_key: header_key.clone(),
                message_key: chain_key.step(),
                ratchet_key: remote,
                n: i,
                stored_at,
            });
        }
        let message_key = chain_key.step();
        // The header authenticated under NHKr, a key only the two people hold, yet the body
        // does not open under the chain our DH gives: the peer stepped from a ratchet key this
        // state never had, i.e. this device was restored from an older copy after the peer
        // answered it (or the body was tampered with).
        // (A pending invite has no chain yet: a bad hello body is just that.)
        let answered = self.receiving.is_some();
        let fragment =
            open_body(&message_key, &self.ad, address, parts).map_err(|err| match err {
                DecryptError::BodyAuthentication if answered => DecryptError::UnreadableAnswer,
                other => other,
            })?;
        // Commit.
        let peer = self.role.peer();
        let write_key = header_key.write_key(peer, n);
        let window: VecDeque<Address> = self
            .next_window
            .iter()
            .skip(n as usize + 1)
            .copied()
            .collect();
        let rc = ReceivingChain::new(
            chain_key,
            header_key.clone(),
            remote,
            n.saturating_add(1),
            window,
            peer,
        );
        self.next_window = next_header_key.addresses(peer, 0, WINDOW);
        self.receiving = Some(rc);
        self.next_receiving_header_key = next_header_key;
        self.previous_root = Some(self.advance_root(root_key));
        self.remote_ratchet_key = Some(remote);
        self.previous_chain_reach = reach;
        self.fork_past_reach = None;
        if !self.send_step_pending {
            // The credit of the chain we leave: no rollback skips on it any more (only its
            // length moves, for `PN`). From now on it counts the next chain's positions.
            self.skipped_ahead = 0;
        }
        self.send_step_pending = true;
        self.skipped.extend(new_skipped, &mut retired);
        self.finish_receive(address, &mut retired);
        Ok(Decrypted {
            fragment,
            r: *parts.r,
            chain: h.ratchet_key,
            n,
            retired,
            write_key,
            header_key,
        })
    }

    /// Whether a blob of the current receiving chain's header key under `ratchet_key` is a
    /// fork [`Self::decrypt_fork`] follows: `ratchet_key` is neither `DHr` nor one a fork
    /// replaced, and the fork is still possible (we hold `previous_root` and have not answered
    /// `DHr`).
    fn forkable(&self, ratchet_key: &[u8; 32]) -> bool {
        self.receiving
            .as_ref()
            .is_some_and(|rc| rc.ratchet_key.0 != *ratchet_key)
            && self.previous_root.is_some()
            && self.send_step_pending
            && !self.abandoned_keys.contains(ratchet_key)
    }

    /// A blob on the current chain's header key from another ratchet key than `DHr`: the peer
    /// was restored to before the step that produced `DHr` and stepped again with a fresh key
    /// (`docs/PROTOCOL.md` §6.6). Followed when we have not answered `DHr` yet (we still hold
    /// `previous_root` and `DHs`): the receiving chain becomes the new key's, derived exactly as
    /// the peer derived it. Otherwise `PeerRestored`: nothing we hold can read the peer now.
    fn decrypt_fork(
        &mut self,
        n: u32,
        address: &Address,
        parts: &BlobParts<'_>,
        ratchet_key: [u8; 32],
        pn: u32,
    ) -> Result<Decrypted, DecryptError> {
        let stored_at = self.receive_events.saturating_add(1);
        if self.abandoned_keys.contains(&ratchet_key) {
            return Err(DecryptError::InconsistentHeader);
        }
        let (Some(previous_root), Some(rc)) =
            (self.previous_root.as_ref(), self.receiving.as_ref())
        else {
            return Err(DecryptError::PeerRestored);
        };
        // A late blob of the chain a fork replaced: its state is gone, nothing to end.
        if self.abandoned_keys.contains(&ratchet_key) {
            return Err(DecryptError::InconsistentHeader);
        }
        if !self.send_step_pending {
            return Err(DecryptError::PeerRestored);
        }
        let remote = RemoteRatchetKey(ratchet_key);
        let dh = self
            .ratchet_key
            .diffie_hellman(&remote)
            .ok_or(DecryptError::InvalidRatchetKey)?;
        let (root_key, mut chain_key, next_header_key) = previous_root.advance(&dh);
        // Positions before the window were read on the lost chain (their addresses are
        // spent), unless the lost chain never used them: those it holds as skipped keys get
        // the fork's key too (a second restored copy of the peer that started this chain
        // from position 0, where the first had skipped positions: the simulator's `all`
        // seed 4655). Those inside the window, before `n`, are kept as skipped keys.
        // Read at a position the replaced chain skipped (`n < Nr`), the fork's keys are derived
        // up to `Nr`, where the window stays.
        let end = n.saturating_add(1).max(rc.next);
        let mut new_skipped = Vec::new();
        let mut this_key = None;
        for i in 0..end {
            let message_key = chain_key.step();
            if i == n {
                this_key = Some(message_key);
                continue;
            }
            let before_window = (i < rc.next)
                .then(|| self.skipped.address_of(&rc.ratchet_key, i))
                .flatten();
            if let Some(address) = before_window {
                new_skipped.push(SkippedKey {
                    address,
                    header_key: rc.header_key.clone(),
                    message_key,
                    ratchet_key: remote,
                    n: i,
                    stored_at,
                });
            } else if let Some(offset) = i.checked_sub(rc.next)
                && let Some(address) = rc.window.get(offset as usize)
            {
                new_skipped.push(SkippedKey {
                    address: *address,
                    header_key: rc.header_key.clone(),
                    message_key,
                    ratchet_key: remote,
                    n: i,
                    stored_at,
                });
            }
        }
        let Some(message_key) = this_key else {
            return Err(DecryptError::UnknownAddress);
        };
        let fragment = open_body(&message_key, &self.ad, address, parts)?;
        // Commit.
        let peer = self.role.peer();
        let write_key = rc.header_key.write_key(peer, n);
        let header_key = rc.header_key.clone();
        let mut retired = vec![*address];
        let old_next = core::mem::take(&mut self.next_window);
        let window: VecDeque<Address> = rc.window.iter().copied().collect();
        let mut receiving = ReceivingChain::new(
            chain_key,
            rc.header_key.clone(),
            remote,
            rc.next,
            window,
            peer,
        );
        receiving.slide_to(end);
        self.next_window = next_header_key.addresses(peer, 0, WINDOW);
        retired.extend(
            old_next
                .into_iter()
                .filter(|a| !self.next_window.contains(a)),
        );
        if let Some(old) = self.remote_ratchet_key {
            if self.abandoned_keys.len() >= MAX_ABANDONED_KEYS {
                self.abandoned_keys.remove(0);
            }
            self.abandoned_keys.push(old.0);
        }
        self.receiving = Some(receiving);
        self.next_receiving_header_key = next_header_key;
        self.advance_root(root_key);
        self.remote_ratchet_key = Some(remote);
        self.fork_past_reach = (pn > self.previous_chain_reach).then_some(ForkPastReach {
            ratchet_key,
            from_seq: fragment.stream.seq,
        });
        // Read where the replaced chain skipped: its key there goes too (one blob an address).
        self.skipped.entries.retain(|e| &e.address != address);
        self.skipped.extend(new_skipped, &mut retired);
        self.finish_receive(address, &mut retired);
        Ok(Decrypted {
            fragment,
            r: *parts.r,
            chain: ratchet_key,
            n,
            retired,
            write_key,
            header_key,
        })
    }

    /// Bookkeeping common to every successful receive.
    fn finish_receive(&mut self, address: &Address, retired: &mut Vec<Address>) {
        self.receive_events = self.receive_events.saturating_add(1);
        self.skipped.expire(self.receive_events, retired);
        if self.recently_received.len() >= DUPLICATE_MEMORY {
            self.recently_received.pop_front();
        }
        self.recently_received.push_back(*address);
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use crate::error::EncryptError;
    use crate::fuzzing::session_pair;
    use crate::testing::SeededRng;

    #[test]
    fn sending_chain_refuses_to_wrap_its_counter() {
        let (mut joiner, _inviter) = session_pair();
        let mut rng = SeededRng::new(1);
        if let Some(chain) = joiner.ratchet.sending.as_mut() {
            chain.next = u32::MAX - 1;
        }
        let two_blobs = vec![0u8; crate::FRAGMENT_CAPACITY + 1];
        assert_eq!(
            joiner.encrypt(&mut rng, &two_blobs, 0).unwrap_err(),
            EncryptError::ChainExhausted
        );
        assert_eq!(
            joiner.ratchet.sending.as_ref().map(|c| c.next),
            Some(u32::MAX - 1)
        );
        assert_eq!(joiner.encrypt(&mut rng, b"last", 0).unwrap().len(), 1);
        assert_eq!(
            joiner.encrypt(&mut rng, b"one more", 0).unwrap_err(),
            EncryptError::ChainExhausted
        );
    }
}
