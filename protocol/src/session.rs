//! A live conversation: the ratchet plus multi-blob reassembly and the safety code.

use crate::acknowledgement::Acknowledgement;
use crate::address::{Address, WriteKey};
use crate::double_ratchet::{OutgoingBlob, PollSet, Ratchet};
use crate::error::{DecryptError, EncryptError};
use crate::header_key::Role;
use crate::hedge::HEDGE_LEN;
use crate::message::{
    Fragment, KIND_ACKNOWLEDGEMENT, KIND_DATA, MAX_MESSAGE_LEN, PAYLOAD_LEN, PayloadKind,
    Reassembly, StreamFields, Unsealed, split,
};
use crate::read_addresses::{ReadAddresses, Rewrite};
use crate::receiving_chain::WINDOW;
use crate::safety_code::SafetyCode;
use crate::skipped_keys::SKIPPED_KEY_RETENTION;
use crate::stream::{MESSAGE_ID_LEN, Place, Rollback, Stream};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// One party's end of a conversation. Not `Serialize`: persist it with [`Session::pickle`].
pub struct Session {
    pub(crate) ratchet: Ratchet,
    pub(crate) reassembly: Reassembly,
    pub(crate) safety_code: SafetyCode,
    pub(crate) stream: Stream,
    /// The peer's blobs read most recently, by address (`docs/PROTOCOL.md` §8, "Rewritten
    /// addresses").
    pub(crate) read_addresses: ReadAddresses,
}

/// How far into the peer's window [`Session::encrypt_fork_signal`] reaches: its blobs sit at
/// positions `0, 16, 32, 48` of the new chain, so a peer that read fewer than 64 messages of
/// the lost chain finds one of them.
pub const FORK_SIGNAL_REACH: u32 = 4 * WINDOW;

/// Refuses a plaintext longer than [`MAX_MESSAGE_LEN`] bytes
/// ([`EncryptError::MessageTooLong`]): what every encryption checks first, for a caller that
/// must refuse before it encrypts (a message held back to be sealed later).
pub fn check_length(plaintext: &[u8]) -> Result<(), EncryptError> {
    if plaintext.len() > MAX_MESSAGE_LEN {
        return Err(EncryptError::MessageTooLong {
            len: plaintext.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    Ok(())
}

/// Label of the message id derivation (`docs/PROTOCOL.md` §6.1).
pub const MESSAGE_ID_LABEL: &[u8] = b"hush/v2/message-id";

/// Most sending-chain positions skipped at once after a rollback (`docs/PROTOCOL.md` §6.5):
/// bounds the work an acknowledgement can cause (2¹⁶ chain-key steps, well under a second).
pub const MAX_ROLLBACK_SKIP: u32 = 1 << 16;

/// What one successful [`Session::decrypt`] yields.
#[derive(Clone, PartialEq, Eq)]
pub struct Received {
    /// The whole plaintext when this blob completed a message (immediately for a one-blob
    /// message; at the last missing fragment for a multi-blob one); otherwise `None`.
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    /// Addresses that left the poll set because of this receive (the one just read, window
    /// slots of messages that were never sent, skipped keys deleted by the bounds). The caller
    /// may stop polling them and delete any stored blob.
    pub retired: Vec<Address>,
    /// What the blob was: the hello, a message fragment, or an acknowledgement only.
    pub kind: PayloadKind,
    /// The blob's sequence number in the peer's stream.
    pub seq: u32,
    /// The blob's `floor` (`docs/PROTOCOL.md` §3.6, §6.4): every sequence number of the
    /// peer's below it is confirmed or abandoned, and its sender will never deposit it again.
    pub floor: u32,
    /// The peer's ratchet public key (32 bytes) of the chain the blob was read on: blobs of
    /// one chain were sealed in order by one state of the peer's device (`docs/PROTOCOL.md`
    /// §3.5, §6.6).
    pub chain: [u8; 32],
    /// The id of the message this blob completed (with `plaintext`, or `duplicate`), 8 bytes
    /// (§6.4, "Message ids"); zero for a hello, an acknowledgement, a fragment that completes
    /// nothing and a refused blob.
    pub message_id: [u8; 8],
    /// Everything the peer has acknowledged of our stream so far (merged over all blobs
    /// received): a blob whose [`OutgoingBlob::seq`] it contains is on the peer's device.
    pub acknowledged: Acknowledgement,
    /// Set when the peer acknowledged blobs this session never sent, or other blobs than ours
    /// under our sequence numbers (see [`Rollback`]).
    pub rollback: Option<Rollback>,
    /// This blob completed a message already received (same message id): a re-send after a
    /// rollback or a squatted slot. `plaintext` is `None`; nothing new to show.
    pub duplicate: bool,
    /// The peer's newest blob so far, or one written under a number where we received
    /// another blob already, acknowledges less of our stream than it had confirmed
    /// before: the peer's device went back to an older copy (a restored reader), which lacks
    /// blobs of ours its lost copy confirmed. It learns our floor (past them) and what we
    /// received of it only from a blob of ours sealed now: the caller owes it an
    /// acknowledgement.
    pub peer_behind: bool,
    /// The blob was refused: its predecessor (`prev`) is not the counted blob we received
    /// under that number, or is a blob we refused, or (a fragment of a multi-blob message) a
    /// number of its message's earlier fragments holds another blob (`docs/PROTOCOL.md` §6.4,
    /// "Predecessors").
    /// The peer's device went back to an older copy and writes again under numbers its lost
    /// copy used, so this blob follows blobs of its own that we never received (they sit where
    /// the lost copy wrote, which we read past), and showing it would put it before them. It
    /// is neither shown nor counted as received (`plaintext` is `None`): the peer sends its
    /// message again, after the ones it overtook, once our acknowledgement (whose digest
    /// carries the lost copy's blob) shows it the rollback (§6.5). The caller owes that
    /// acknowledgement.
    pub peer_rolled_back: bool,
    /// `Some(id)` (the 8-byte message id, §6.4) when this blob is a fragment of a multi-blob
    /// message that the session stored for reassembly and that completes nothing yet: what
    /// it carries is not a message on this device until the blob that completes message
    /// `id` arrives (its [`Received::message_id`] is `id`). A reader that deletes what it
    /// read keeps this blob on the mailbox until then, so that a copy of its device restored
    /// in between can still read it. `None` for every other blob.
    pub awaiting_rest: Option<[u8; 8]>,
    /// The write key of the address the blob was read from: the reader derives the sender's
    /// write keys to compute the addresses it polls (`docs/PROTOCOL.md` §7), and deletes the
    /// blob with it (`DELETE /v1/m/{address}`) once what it carries is committed, so the
    /// mailbox keeps it only until it is read. Zeroized on drop; never logged.
    pub write_key: WriteKey,
}

impl core::fmt::Debug for Received {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Received")
            .field("plaintext_len", &self.plaintext.as_ref().map(|p| p.len()))
            .field("retired", &self.retired)
            .field("kind", &self.kind)
            .field("seq", &self.seq)
            .field("floor", &self.floor)
            .field("acknowledged", &self.acknowledged)
            .field("rollback", &self.rollback)
            .field("duplicate", &self.duplicate)
            .field("awaiting_rest", &self.awaiting_rest.is_some())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Encrypts `plaintext` (at most [`MAX_MESSAGE_LEN`] bytes) into one or more blobs, in
    /// order, with consecutive sequence numbers. Each must be deposited at its address with
    /// its write key. `floor` is the lowest of our sequence numbers the caller may still
    /// deposit again (its oldest unacknowledged blob), or [`Session::next_seq`] if none: the
    /// peer counts everything below it as settled.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
        floor: u32,
    ) -> Result<Vec<OutgoingBlob>, EncryptError> {
        check_length(plaintext)?;
        // Hedged like the blobs: a generator replayed with the state (a VM snapshot) must not
        // give a different message the id of one the lost state sent, or the peer would drop
        // it as already shown.
        let mut z = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut z[..]);
        let digest = crate::crypto::sha256(&[MESSAGE_ID_LABEL, &z[..], plaintext]);
        let id = match digest.first_chunk::<MESSAGE_ID_LEN>() {
            Some(id) if *id != [0u8; MESSAGE_ID_LEN] => *id,
            _ => [1, 0, 0, 0, 0, 0, 0, 0],
        };
        self.seal(rng, &split(plaintext), floor, id, true)
    }

    /// Encrypts `plaintext` again as a new message with the given `message_id` (that of its
    /// first sending, [`OutgoingBlob::message_id`]): for a message that may not have arrived
    /// (after a [`Rollback`], or when its address was taken). The peer shows it once whether or
    /// not the first sending arrived too. New keys, new addresses, new sequence numbers.
    pub fn encrypt_resend<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
        floor: u32,
        message_id: [u8; MESSAGE_ID_LEN],
    ) -> Result<Vec<OutgoingBlob>, EncryptError> {
        check_length(plaintext)?;
        self.seal(rng, &split(plaintext), floor, message_id, true)
    }

    /// Our blob `seq` never reached the mailbox and never will (a different blob sat at its
    /// address, so the caller sends its message again): the peer cannot have received it, so
    /// it leaves what the peer's acknowledgements are checked against. Without this, the
    /// next acknowledgement past it would look like a rollback.
    pub fn abandon(&mut self, seq: u32) {
        self.stream.abandon(seq);
    }

    /// Encrypts one acknowledgement-only blob (kind `0x03`): what we have received of the
    /// peer, in a blob of the normal size, for a reader with nothing to say. It takes a
    /// sequence number like any blob; the peer never acknowledges it for its own sake, and
    /// the caller need not deposit it again if it is lost.
    pub fn encrypt_acknowledgement<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        floor: u32,
    ) -> Result<OutgoingBlob, EncryptError> {
        self.seal_acknowledgement(rng, floor, false)
    }

    /// Acknowledgement-only blobs that run a pending send step (a fresh ratchet key, like a
    /// message), for a session whose peer answered a key it lost to a restore
    /// ([`DecryptError::UnreadableAnswer`](crate::DecryptError::UnreadableAnswer)): with plain
    /// acknowledgements it could not tell the peer. The new chain has the header key of the
    /// lost one, whose first positions the peer has read already, and this state does not know
    /// how many: one blob is sealed at each of positions `0, W, 2W, … ` below
    /// [`FORK_SIGNAL_REACH`], so one of them lands in the peer's window if it read fewer than
    /// that. The peer sees a fork it cannot follow and learns that the conversation cannot go on
    /// ([`DecryptError::PeerRestored`](crate::DecryptError::PeerRestored)) instead of waiting.
    pub fn encrypt_fork_signal<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        floor: u32,
    ) -> Result<Vec<OutgoingBlob>, EncryptError> {
        let mut blobs = Vec::new();
        for i in 0..FORK_SIGNAL_REACH / WINDOW {
            if i > 0 {
                self.ratchet.advance_sending(WINDOW - 1);
            }
            blobs.push(self.seal_acknowledgement(rng, floor, true)?);
        }
        Ok(blobs)
    }

    fn seal_acknowledgement<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        floor: u32,
        step: bool,
    ) -> Result<OutgoingBlob, EncryptError> {
        let ack = Unsealed {
            kind: KIND_ACKNOWLEDGEMENT,
            index: 0,
            count: 1,
            data: &[],
        };
        self.seal(
            rng,
            core::slice::from_ref(&ack),
            floor,
            [0u8; MESSAGE_ID_LEN],
            step,
        )?
        .pop()
        .ok_or(EncryptError::ChainExhausted)
    }

    /// Numbers the fragments, stamps the stream fields and encrypts them in order.
    fn seal<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        fragments: &[Unsealed<'_>],
        floor: u32,
        message_id: [u8; MESSAGE_ID_LEN],
        step: bool,
    ) -> Result<Vec<OutgoingBlob>, EncryptError> {
        let first = self.stream.next_seq;
        let count = u32::try_from(fragments.len()).map_err(|_| EncryptError::ChainExhausted)?;
        let end = first
            .checked_add(count)
            .ok_or(EncryptError::ChainExhausted)?;
        let floor = floor.min(first);
        let prev = self.stream.prev();
        let payloads: Vec<(u32, zeroize::Zeroizing<[u8; PAYLOAD_LEN]>)> = fragments
            .iter()
            .zip(first..)
            .map(|(fragment, seq)| {
                let stream = StreamFields {
                    seq,
                    floor,
                    ack: self.stream.received,
                    ack_digest: self.stream.received_digest,
                    message_id,
                    prev,
                };
                (seq, fragment.encode(stream))
            })
            .collect();
        let counted = fragments.iter().all(|f| f.kind != KIND_ACKNOWLEDGEMENT);
        let mut blobs = self.ratchet.encrypt(rng, &payloads, step)?;
        for blob in &mut blobs {
            blob.message_id = message_id;
            if let Some(r) = blob.blob.first_chunk::<HEDGE_LEN>() {
                self.stream.sent(blob.seq, r, counted, floor);
            }
        }
        self.stream.next_seq = end;
        Ok(blobs)
    }

    /// The addresses our next `count` blobs would be deposited at, in order (no state
    /// change). For a client that suspects its slots were used already (a rollback, a 409 over
    /// foreign bytes): it fetches them and skips those that hold a blob
    /// ([`Session::skip_positions`]), so that its next blob lands where the peer reads.
    pub fn upcoming_addresses(&self, count: u32) -> Vec<Address> {
        self.ratchet.upcoming_addresses(count)
    }

    /// The addresses the first `count` blobs of the sending chain our next send step starts
    /// would be deposited at (`NHKs` from `next_chain_skip`, `docs/PROTOCOL.md` §6.1 step 3),
    /// in order; no state change. While no step is pending they are not
    /// [`Session::upcoming_addresses`] yet, but a copy of this device lost to a restore may
    /// have written there already (it read a chain of the peer's that this state has not):
    /// a client that finds them taken probes them again once they are upcoming.
    pub fn next_chain_addresses(&self, count: u32) -> Vec<Address> {
        self.ratchet.next_chain_addresses(count)
    }

    /// Moves the position of our next blob `count` further on its chain (at most
    /// [`MAX_ROLLBACK_SKIP`]), so that the positions in between are never used: for positions
    /// found taken by [`Session::upcoming_addresses`]. The peer stores skipped keys for them
    /// (within its window) or ignores them.
    pub fn skip_positions(&mut self, count: u32) {
        self.ratchet.skip_upcoming(count);
    }

    /// When our next message (not an acknowledgement-only blob) starts a new sending chain:
    /// the positions at that chain's start it leaves empty (`0 ≤ lead < W`, skipped after a
    /// rollback or over positions found taken, `docs/PROTOCOL.md` §6.5); `None` when it goes
    /// on the current chain. No state change. The peer looks for a new chain only at its
    /// first [`WINDOW`] positions, so a caller that later leaves more of the chain's
    /// addresses empty (abandoned blobs) counts these with them.
    pub fn upcoming_chain_lead(&self) -> Option<u32> {
        self.ratchet.upcoming_chain_lead()
    }

    /// The addresses of our current sending chain's first `min(Ns, 2·W)` positions, in order
    /// (index = `N`): where an address of ours lies on that chain, if it does. No state
    /// change; at most `2·W` address derivations.
    pub fn sending_addresses(&self) -> Vec<Address> {
        self.ratchet.sending_addresses(2 * WINDOW)
    }

    /// Of the blobs `found` at our next sending positions on the current chain, the leading
    /// run a copy of this session sealed (its header opens under `HKs` and names that position
    /// and our ratchet key: a copy lost to a restore wrote them), in position order, each with
    /// the write key of its address: `(write key (32 bytes), blob (`BLOB_LEN` bytes))`. A
    /// client keeps them on the mailbox byte for byte while the peer may still need them to
    /// read past (`docs/PROTOCOL.md` §8, "Positions a lost copy used"). Empty when the next
    /// send starts a new chain. No state change; at most `found.len()` header decryptions.
    pub fn own_upcoming_blobs(&self, found: &[(Address, Vec<u8>)]) -> Vec<(WriteKey, Vec<u8>)> {
        let count = u32::try_from(found.len()).unwrap_or(u32::MAX);
        self.ratchet.own_upcoming_blobs(found, count)
    }

    /// The sequence number our next blob gets.
    pub fn next_seq(&self) -> u32 {
        self.stream.next_seq
    }

    /// What we have received of the peer's stream: the acknowledgement our next blob carries.
    pub fn acknowledgement(&self) -> Acknowledgement {
        self.stream.received
    }

    /// Whether a number in `[from, to)` of the peer's stream holds a blob we refused because
    /// it followed a blob of its sender's we never received (`docs/PROTOCOL.md` §6.4,
    /// "Predecessors"; remembered for the last [`crate::MAX_RECEIVED_HEDGES`] numbers): its
    /// sender is a copy of the peer's device that went back, and once our next
    /// acknowledgement shows it the rollback, it sends its unconfirmed messages again under a
    /// floor above the number.
    pub fn refused_between(&self, from: u32, to: u32) -> bool {
        self.stream.refused_between(from, to)
    }

    /// Whether `chain` (a ratchet key, [`Received::chain`]) is a fork of the peer's whose
    /// writer also deposited on the chain before it at positions this state can no longer
    /// read, and a number of the peer's stream below the first blob we read on the fork is
    /// still missing (`docs/PROTOCOL.md` §6.6, "A fork past our reach"): it may lie there, and
    /// that copy sends it again under a later floor once our acknowledgement shows it never
    /// arrived.
    pub fn fork_past_reach(&self, chain: &[u8; 32]) -> bool {
        self.ratchet
            .fork_past_reach
            .is_some_and(|f| &f.ratchet_key == chain && self.stream.received.next < f.from_seq)
    }

    /// What the peer has confirmed of our stream so far: every sequence number below
    /// `next` reached the peer's device, checked by digest (`docs/PROTOCOL.md` §6.4).
    pub fn peer_acknowledgement(&self) -> Acknowledgement {
        self.stream.confirmed()
    }

    /// The addresses to fetch now, in the order the peer sent them: the addresses of skipped
    /// messages still awaited, [`WINDOW`](crate::WINDOW) upcoming addresses of the peer's
    /// current chain, and `WINDOW` of its next chain (once our latest ratchet key has been
    /// sent).
    pub fn poll_addresses(&self) -> Vec<Address> {
        self.ratchet.poll_set().all()
    }

    /// Addresses of the peer's restore signal (`docs/PROTOCOL.md` §6.9), to fetch alongside
    /// [`Session::poll_addresses`]: one per root key we hold or held in the last
    /// [`RESTORE_MEMORY`](crate::RESTORE_MEMORY) DH ratchet steps, at most 17, newest first.
    /// A blob found at one is passed to [`Session::is_restore_signal`], not to `decrypt`.
    pub fn restore_signal_addresses(&self) -> Vec<Address> {
        self.ratchet.restore_signal_addresses()
    }

    /// The addresses of the peer's blobs this session read most recently, newest first (at
    /// most [`READ_ADDRESS_MEMORY`](crate::READ_ADDRESS_MEMORY); never the hello's), each
    /// with the first [`RECEIVED_HEDGE_LEN`](crate::RECEIVED_HEDGE_LEN) bytes of the blob
    /// read there: a client fetches them again in the padding of its poll requests and passes
    /// a blob found there with other first bytes to [`Session::take_rewrite`], never to
    /// [`Session::decrypt`] (`docs/PROTOCOL.md` §8, "Rewritten addresses").
    pub fn read_addresses(&self) -> Vec<(Address, [u8; crate::RECEIVED_HEDGE_LEN])> {
        self.read_addresses
            .entries
            .iter()
            .rev()
            .map(|e| (e.address, e.prefix))
            .collect()
    }

    /// Whether `blob`, found at one of [`Session::read_addresses`], is another blob than the
    /// one this session read there (its first 8 bytes differ from those of the blob read; the
    /// same bytes deposited again, by anyone, are not): the peer wrote again at a position it
    /// had used, so a copy of its device went back to an older state. The caller owes the
    /// peer an acknowledgement, which shows it the rollback (§6.5). Reported once per blob:
    /// the session remembers the one reported last (pickle it). No body is decrypted.
    ///
    /// When the blob's header opens under the header key and position of the blob read there
    /// (only a copy of the peer's device can seal that; once per address), the rewrite also
    /// marks our
    /// acknowledgement digest, as a refusal does (§6.4): the copy that wrote it may know of
    /// its rollback already, and its blob lies where we no longer read; the marked digest
    /// shows it a rollback again (§6.5), after which it sends every message with a blob on
    /// the mailbox again, where we read (`docs/PROTOCOL.md` §8, "Rewritten addresses"). A
    /// blob whose header does not open (bytes the mailbox's operator put there) marks nothing.
    pub fn take_rewrite(&mut self, address: &Address, blob: &[u8]) -> bool {
        match self
            .read_addresses
            .take_rewrite(address, blob, self.ratchet.ad.as_bytes())
        {
            Rewrite::None => false,
            Rewrite::Unverified => true,
            Rewrite::Peer(r) => {
                self.stream.mark_digest(&r);
                true
            }
        }
    }

    /// Addresses of the peer's "behind" signal (`docs/PROTOCOL.md` §6.9): under our current
    /// root key and, while that root key comes from a send step of ours, under the one
    /// before it. The peer deposits it when a copy of ours holding such a root key is
    /// behind it (a restored copy that can read nothing the peer writes now). One or two
    /// addresses of 32 bytes.
    pub fn behind_signal_addresses(&self) -> Vec<Address> {
        self.ratchet.behind_signal_addresses()
    }

    /// Whether `blob` at `address` is the peer's "behind" signal at one of
    /// [`Session::behind_signal_addresses`]: exactly the expected 1,024 bytes, compared in
    /// constant time. Never pass it to [`Session::decrypt`].
    pub fn is_behind_signal(&self, address: &Address, blob: &[u8]) -> bool {
        self.ratchet.is_behind_signal(address, blob)
    }

    /// Our "behind" signals (`docs/PROTOCOL.md` §6.9, at most
    /// [`BEHIND_SIGNALS`](crate::BEHIND_SIGNALS)), to deposit where they read
    /// empty when blobs of ours expire unconfirmed.
    pub fn behind_signals(&self) -> Vec<crate::RestoreSignal> {
        self.ratchet.behind_signals()
    }

    /// Whether `blob`, found at one of [`Session::restore_signal_addresses`], is the peer's
    /// restore signal (constant-time comparison with the expected 1,024 bytes): the peer went
    /// back to a copy of its device older than our last ratchet steps and cannot read us any
    /// more, so the conversation cannot continue. Anything else at that address is junk.
    pub fn is_restore_signal(&self, address: &Address, blob: &[u8]) -> bool {
        self.ratchet.is_restore_signal(address, blob)
    }

    /// Our restore signals (`docs/PROTOCOL.md` §6.9), to deposit after `decrypt` reported
    /// [`DecryptError::UnreadableAnswer`]: this device was restored from a copy older than
    /// what the peer answered, and no chain it derives is one the peer still reads. One blob
    /// per root key we hold or just held (`RK`, `previous_root` while kept, and the two root
    /// keys before `RK`; at most 4, distinct addresses), deterministic: depositing one again,
    /// or from another restored copy of the same state, stores the same bytes.
    pub fn restore_signals(&self) -> Vec<crate::RestoreSignal> {
        self.ratchet.restore_signals()
    }

    /// Our restore signals once we ended the conversation because the peer's device went back
    /// to an older copy (`PeerRestored`) or said it cannot read us (`Diverged`)
    /// (`docs/PROTOCOL.md` §6.9): one blob under `RK`, `previous_root` while kept, and every
    /// root key of `restore_keys` (at most 18, distinct addresses), because the restored copy
    /// may share only a root key several of our steps back. Deterministic, like
    /// [`Session::restore_signals`].
    pub fn restore_signals_after_end(&self) -> Vec<crate::RestoreSignal> {
        self.ratchet.restore_signals_after_end()
    }

    /// The same addresses by segment, for a caller that wants to read everything of the
    /// current chain before stepping to the next (so messages keep their send order).
    pub fn poll_set(&self) -> PollSet {
        self.ratchet.poll_set()
    }

    /// Decrypts the blob fetched from `address`. On any error the session is unchanged.
    ///
    /// Besides the plaintext, reports what the peer has acknowledged of our stream, and
    /// detects a rollback of this device (the peer acknowledges a sequence number we never
    /// sent): then the session moves its next sequence number past the highest acknowledged
    /// one and its sending chain as many positions ahead (at most [`MAX_ROLLBACK_SKIP`]), so
    /// that no key or address the lost state used is used again for other bytes.
    pub fn decrypt(&mut self, address: &Address, blob: &[u8]) -> Result<Received, DecryptError> {
        let remote_before = self.ratchet.remote_ratchet_key;
        let decrypted = self.ratchet.decrypt(address, blob)?;
        let event = self.ratchet.receive_events;
        let kind = decrypted.fragment.payload_kind();
        let fields = decrypted.fragment.stream;
        let counted = decrypted.fragment.kind != KIND_ACKNOWLEDGEMENT;
        let confirmed_before = self.stream.confirmed().next;
        let newest = self.stream.is_newest(fields.seq);
        let rewritten = self.stream.holds_other_blob(fields.seq, &decrypted.r);
        let place = Place {
            index: decrypted.fragment.index,
            count: decrypted.fragment.count,
        };
        let peer_rolled_back = self.stream.take(
            &fields,
            place,
            decrypted.fragment.kind == KIND_DATA,
            &decrypted.r,
            counted,
        );
        self.read_addresses
            .note(address, &decrypted.r, decrypted.header_key, decrypted.n);
        let peer_behind = (newest || rewritten) && fields.ack.next < confirmed_before;
        let outcome = self
            .stream
            .acknowledged(&fields.ack, &fields.ack_digest, newest);
        if self.ratchet.remote_ratchet_key != remote_before {
            // A new chain of the peer's (our send step is pending): blobs of a lost copy of
            // ours on the chain that step starts answer this one, so they are numbered from
            // what its first blob acknowledged; if a later blob of it is read first, from
            // what the peer had confirmed before (its acknowledgements never go back).
            self.ratchet.next_chain_from = Some(if decrypted.n == 0 {
                fields.ack.next
            } else {
                confirmed_before
            });
        }
        if outcome.skip > 0 {
            self.ratchet
                .skip_sending(outcome.skip.min(MAX_ROLLBACK_SKIP), self.stream.next_seq);
        }
        if outcome.rollback.is_some() {
            // A hidden rollback too (`lost_blobs` = 0: nothing to skip on the old chain) may
            // have a lost copy's blobs, which the peer read, on the chain our send step starts.
            let seen_end = fields.ack.highest().map_or(0, |h| h.saturating_add(1));
            self.ratchet.cover_next_chain(seen_end);
        }
        let data = decrypted.fragment.kind == KIND_DATA;
        let multi_blob = decrypted.fragment.count > 1;
        let mut plaintext = if data && !peer_rolled_back {
            self.reassembly
                .add(&decrypted.chain, decrypted.n, decrypted.fragment, event)
        } else {
            None
        };
        let completed = plaintext.is_some();
        let awaiting_rest =
            (data && !peer_rolled_back && !completed && multi_blob).then_some(fields.message_id);
        let duplicate = completed && !self.stream.first_time(&fields.message_id);
        if duplicate {
            plaintext = None;
        }
        self.reassembly.expire(event, SKIPPED_KEY_RETENTION);
        Ok(Received {
            plaintext,
            retired: decrypted.retired,
            kind,
            seq: fields.seq,
            floor: fields.floor,
            chain: decrypted.chain,
            message_id: if completed { fields.message_id } else { [0; 8] },
            acknowledged: self.stream.confirmed(),
            rollback: outcome.rollback,
            duplicate,
            peer_behind,
            peer_rolled_back,
            awaiting_rest,
            write_key: decrypted.write_key,
        })
    }

    /// Applies the hello on the inviter's new session: the joiner's blob 0, counted.
    pub(crate) fn record_hello(&mut self, fragment: &Fragment, r: &[u8; HEDGE_LEN]) {
        self.stream = Stream::default();
        self.stream.take(
            &fragment.stream,
            Place { index: 0, count: 1 },
            false,
            r,
            true,
        );
    }

    /// The code both people compare in person.
    pub fn safety_code(&self) -> &SafetyCode {
        &self.safety_code
    }

    /// Whether this side created the invite or joined it.
    pub fn role(&self) -> Role {
        self.ratchet.role
    }
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.ratchet.role)
            .field("ratchet_public_key", &self.ratchet.ratchet_key)
            .field("skipped_keys", &self.ratchet.skipped.entries.len())
            .finish_non_exhaustive()
    }
}
