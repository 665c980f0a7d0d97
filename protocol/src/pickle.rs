//! Versioned, encrypted persistence of a [`Session`] or a [`PendingInvite`].
//!
//! ```text
//! pickle = format_version (1) ‖ nonce (24) ‖ XChaCha20-Poly1305(k_enc, nonce, plaintext,
//!                                                               ad = "hush/v2/pickle" ‖ format_version)
//! k_enc  = HMAC-SHA256(pickle_key, "hush/v2/pickle/encryption-key")
//! nonce  = HMAC-SHA256(HMAC-SHA256(pickle_key, "hush/v2/pickle/nonce-key"), plaintext)[0..24]
//! plaintext = postcard(PickleV2)
//! ```
//! The nonce is synthetic (SIV-style): it depends on the whole plaintext, so no randomness is
//! needed and a nonce repeats only for an identical plaintext, which reveals only that the same
//! state was pickled twice; a restored older pickle re-sealed later is a different plaintext,
//! hence a different nonce. Pickles are private to this implementation, not an interchange
//! format. A version-1 pickle is refused with [`PickleError::ProtocolV1`]: protocol version 2
//! changed the wire format and the first chains' keys, so a v1 conversation cannot continue.

use crate::acknowledgement::Acknowledgement;
use crate::address::Address;
use crate::chain_key::{ChainKey, MessageKey};
use crate::crypto::{TAG_LEN, hmac_sha256};
use crate::double_ratchet::{
    AssociatedData, DUPLICATE_MEMORY, ForkPastReach, MAX_ABANDONED_KEYS, REACH_UNKNOWN, Ratchet,
};
use crate::error::PickleError;
use crate::header_key::{HeaderKey, Role};
use crate::hedge::HEDGE_LEN;
use crate::invite::{InviteSecret, PendingInvite};
use crate::message::{MAX_FRAGMENTS, MAX_PENDING_MESSAGES, PartialMessage, Reassembly};
use crate::ratchet_key::{RatchetKeyPair, RemoteRatchetKey};
use crate::read_addresses::{READ_ADDRESS_MEMORY, ReadAddress, ReadAddresses};
use crate::receiving_chain::{ReceivingChain, WINDOW};
use crate::restore_signal::{RESTORE_MEMORY, RestoreKey};
use crate::root_key::RootKey;
use crate::safety_code::SafetyCode;
use crate::sending_chain::SendingChain;
use crate::session::Session;
use crate::skipped_keys::{MAX_SKIPPED_KEYS, SkippedKey, SkippedKeys};
use crate::stream::{
    HedgeState, MAX_AHEAD, MAX_RECEIVED_HEDGES, MAX_RECENT_CONFIRMED, MAX_UNCONFIRMED,
    MESSAGE_ID_LEN, MESSAGE_ID_MEMORY, Place, RECEIVED_HEDGE_LEN, ReceivedBlob, ReceivedHedge,
    STREAM_DIGEST_LEN, SentBlob, Stream,
};
use chacha20poly1305::{AeadInOut, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The pickle format this crate writes.
pub const PICKLE_VERSION: u8 = 0x02;

/// The format version of protocol version 1, refused with [`PickleError::ProtocolV1`].
const PICKLE_VERSION_1: u8 = 0x01;

const NONCE_LEN: usize = 24;

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SendingPickle {
    chain_key: [u8; 32],
    header_key: [u8; 32],
    next: u32,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct ReceivingPickle {
    chain_key: [u8; 32],
    header_key: [u8; 32],
    ratchet_key: [u8; 32],
    next: u32,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SkippedPickle {
    header_key: [u8; 32],
    message_key: [u8; 32],
    ratchet_key: [u8; 32],
    n: u32,
    stored_at: u64,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct PartialPickle {
    chain: [u8; 32],
    start: u32,
    started_at: u64,
    parts: Vec<Option<Vec<u8>>>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct RatchetPickle {
    role: u8,
    ad: [u8; 32],
    root_key: [u8; 32],
    ratchet_secret: [u8; 32],
    remote_ratchet_key: Option<[u8; 32]>,
    sending: Option<SendingPickle>,
    send_step_pending: bool,
    previous_sending_len: u32,
    next_sending_header_key: [u8; 32],
    receiving: Option<ReceivingPickle>,
    next_receiving_header_key: [u8; 32],
    skipped: Vec<SkippedPickle>,
    recently_received: Vec<[u8; 32]>,
    receive_events: u64,
    previous_root: Option<[u8; 32]>,
    abandoned_keys: Vec<[u8; 32]>,
    next_chain_skip: u32,
}

/// Sequence numbers, acknowledgements and message ids (`Stream`).
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct StreamPickle {
    next_seq: u32,
    confirmed: u32,
    confirmed_digest: [u8; STREAM_DIGEST_LEN],
    /// `(seq, r, counted, floor)` of our unconfirmed blobs.
    sent: Vec<(u32, [u8; HEDGE_LEN], bool, u32)>,
    received_next: u32,
    received_digest: [u8; STREAM_DIGEST_LEN],
    /// `(seq, r, counted)` of peer blobs past the prefix.
    ahead: Vec<(u32, [u8; HEDGE_LEN], bool)>,
    message_ids: Vec<[u8; MESSAGE_ID_LEN]>,
}

fn stream_to_pickle(s: &Stream) -> StreamPickle {
    StreamPickle {
        next_seq: s.next_seq,
        confirmed: s.confirmed,
        confirmed_digest: s.confirmed_digest,
        sent: s
            .sent
            .iter()
            .map(|b| (b.seq, b.r, b.counted, b.floor))
            .collect(),
        received_next: s.received.next,
        received_digest: s.received_digest,
        ahead: s.ahead.iter().map(|b| (b.seq, b.r, b.counted)).collect(),
        message_ids: s.message_ids.iter().copied().collect(),
    }
}

/// Rebuilds the stream; the acknowledgement bits are recomputed from the blobs kept ahead.
/// Whether the sequence numbers `seq(item)` of `items` strictly increase (pickled lists kept in
/// seq order, one entry per number).
fn increasing<T>(items: &[T], seq: impl Fn(&T) -> u32) -> bool {
    items.windows(2).all(|w| match w {
        [a, b] => seq(a) < seq(b),
        _ => true,
    })
}

fn stream_from_pickle(p: &StreamPickle) -> Result<Stream, PickleError> {
    if p.sent.len() > MAX_UNCONFIRMED
        || p.ahead.len() > MAX_AHEAD
        || p.message_ids.len() > MESSAGE_ID_MEMORY
        || !increasing(&p.sent, |b| b.0)
        || !increasing(&p.ahead, |b| b.0)
        || p.ahead.first().is_some_and(|b| b.0 <= p.received_next)
        || p.confirmed > p.next_seq
    {
        return Err(PickleError::Malformed);
    }
    let mut stream = Stream {
        next_seq: p.next_seq,
        confirmed: p.confirmed,
        confirmed_digest: p.confirmed_digest,
        sent: p
            .sent
            .iter()
            .map(|&(seq, r, counted, floor)| SentBlob {
                seq,
                r,
                counted,
                floor,
            })
            .collect(),
        recent: VecDeque::new(),
        received: Acknowledgement {
            next: p.received_next,
            bits: 0,
        },
        received_digest: p.received_digest,
        ahead: p
            .ahead
            .iter()
            .map(|&(seq, r, counted)| ReceivedBlob { seq, r, counted })
            .collect(),
        message_ids: p.message_ids.iter().copied().collect(),
        received_hedges: VecDeque::new(),
    };
    stream.refresh_bits();
    Ok(stream)
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SessionPickleV2 {
    ratchet: RatchetPickle,
    partial_messages: Vec<PartialPickle>,
    safety_code: String,
    stream: StreamPickle,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct PendingInvitePickleV2 {
    ratchet: RatchetPickle,
    invite_secret: [u8; 32],
    expires_at: u64,
    mailbox_url: Option<String>,
}

/// A mutual-mode pending invite: a pending invite plus the joiner key scanned in person.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct PendingMutualInvitePickleV2 {
    pending: PendingInvitePickleV2,
    expected_joiner: [u8; 32],
}

/// Variants are only ever appended, so older pickles keep decoding.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
enum PickleV2 {
    Session(SessionPickleV2),
    PendingInvite(PendingInvitePickleV2),
    PendingMutualInvite(PendingMutualInvitePickleV2),
    /// A session with the fields added since the first v2 pickles. A session pickled before
    /// them loads as [`PickleV2::Session`], with their defaults.
    SessionWithExtras(SessionPickleV2, SessionExtrasPickle),
    /// A session with the recently confirmed blobs of its stream too (`Stream::recent`). A
    /// session pickled before them loads with none remembered.
    SessionWithRecent(SessionPickleV2, SessionExtrasPickle, RecentPickle),
    /// A session with the hedges of the peer's blobs received most recently
    /// (`Stream::received_hedges`) and `Ratchet::chain_after_rollback` too. A session pickled
    /// before them loads with none remembered and the flag unset.
    SessionWithReceivedHedges(
        SessionPickleV2,
        SessionExtrasPickle,
        RecentPickle,
        ReceivedHedgesPickle,
    ),
    /// A session with the addresses of the peer's blobs read most recently too
    /// (`Session::read_addresses`). A session pickled before them loads with none.
    SessionWithReadAddresses(
        SessionPickleV2,
        SessionExtrasPickle,
        RecentPickle,
        ReceivedHedgesPickle,
        ReadAddressesPickle,
    ),
    /// A session with where its remembered data blobs stand in their messages too
    /// (`ReceivedHedge::place`). A session pickled before it loads with no places, so no
    /// fragment is refused for the numbers it remembers then (PROTOCOL.md §6.4).
    SessionWithPlaces(
        SessionPickleV2,
        SessionExtrasPickle,
        RecentPickle,
        ReceivedHedgesPickle,
        ReadAddressesPickle,
        PlacesPickle,
    ),
    /// A session with the header key and position of each read address too
    /// (`ReadAddress::opener`). A session pickled before them loads with none kept: a rewrite
    /// found at those addresses is then never taken for the peer's (PROTOCOL.md §8).
    SessionWithReadKeys(
        SessionPickleV2,
        SessionExtrasPickle,
        RecentPickle,
        ReceivedHedgesPickle,
        ReadAddressesPickle,
        PlacesPickle,
        ReadKeysPickle,
    ),
    /// A session with `Ratchet::previous_chain_reach` and `Ratchet::fork_past_reach` too. A
    /// session pickled before them loads with the reach unknown (`REACH_UNKNOWN`: no fork's
    /// `PN` passes it) and no fork past it, until the peer's next chain (PROTOCOL.md §6.6).
    SessionWithForkReach(
        SessionPickleV2,
        SessionExtrasPickle,
        RecentPickle,
        ReceivedHedgesPickle,
        ReadAddressesPickle,
        PlacesPickle,
        ReadKeysPickle,
        ForkReachPickle,
    ),
}

/// `Ratchet::previous_chain_reach`, and `Ratchet::fork_past_reach` as (ratchet key,
/// `from_seq`).
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct ForkReachPickle {
    previous_chain_reach: u32,
    fork_past_reach: Option<([u8; 32], u32)>,
}

impl Default for ForkReachPickle {
    /// What a session pickled before these fields loads with.
    fn default() -> Self {
        ForkReachPickle {
            previous_chain_reach: REACH_UNKNOWN,
            fork_past_reach: None,
        }
    }
}

/// For each of `ReadAddressesPickle::read`, in the same order: `ReadAddress::opener` (the
/// header key the blob read there opened under and its position) and `ReadAddress::reported`.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
struct ReadKeysPickle {
    keys: Vec<ReadKeyPickle>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct ReadKeyPickle {
    opener: Option<([u8; 32], u32)>,
    reported: Option<[u8; RECEIVED_HEDGE_LEN]>,
}

/// `ReceivedHedge::place` of the counted data blobs among `Stream::received_hedges`:
/// `(seq, index, count)`, in seq order.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
struct PlacesPickle {
    places: Vec<(u32, u16, u16)>,
}

/// `Session::read_addresses`: `(address, r[0..8))` of the peer's blobs read most recently,
/// oldest first, at most [`READ_ADDRESS_MEMORY`].
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
struct ReadAddressesPickle {
    read: Vec<([u8; 32], [u8; RECEIVED_HEDGE_LEN])>,
}

/// `Stream::received_hedges`: `(seq, r[0..8), state)` of the peer's blobs with the highest
/// numbers, in seq order (`HedgeState::byte`); and `Ratchet::chain_after_rollback`.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
struct ReceivedHedgesPickle {
    received_hedges: Vec<(u32, [u8; RECEIVED_HEDGE_LEN], u8)>,
    chain_after_rollback: bool,
    next_chain_from: Option<u32>,
}

/// `Stream::recent`: `(seq, r, counted, floor)` of our most recently confirmed blobs, in seq
/// order, all below the stream's `confirmed`.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
struct RecentPickle {
    recent: Vec<(u32, [u8; HEDGE_LEN], bool, u32)>,
}

/// Session fields added after the first version-2 pickles.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
struct SessionExtrasPickle {
    /// `Ratchet::restore_keys`, oldest first.
    restore_keys: Vec<[u8; 32]>,
    /// `Ratchet::skipped_ahead`.
    skipped_ahead: u32,
}

fn role_byte(role: Role) -> u8 {
    role.byte()
}

fn role_from(byte: u8) -> Result<Role, PickleError> {
    match byte {
        0 => Ok(Role::Joiner),
        1 => Ok(Role::Inviter),
        _ => Err(PickleError::Malformed),
    }
}

fn ratchet_to_pickle(r: &Ratchet) -> RatchetPickle {
    RatchetPickle {
        role: role_byte(r.role),
        ad: *r.ad.as_bytes(),
        root_key: *r.root_key.as_bytes(),
        ratchet_secret: *r.ratchet_key.secret_bytes(),
        remote_ratchet_key: r.remote_ratchet_key.map(|k| k.0),
        sending: r.sending.as_ref().map(|s| SendingPickle {
            chain_key: *s.chain_key.as_bytes(),
            header_key: *s.header_key.as_bytes(),
            next: s.next,
        }),
        send_step_pending: r.send_step_pending,
        previous_sending_len: r.previous_sending_len,
        next_sending_header_key: *r.next_sending_header_key.as_bytes(),
        receiving: r.receiving.as_ref().map(|c| ReceivingPickle {
            chain_key: *c.chain_key.as_bytes(),
            header_key: *c.header_key.as_bytes(),
            ratchet_key: c.ratchet_key.0,
            next: c.next,
        }),
        next_receiving_header_key: *r.next_receiving_header_key.as_bytes(),
        skipped: r
            .skipped
            .entries
            .iter()
            .map(|e| SkippedPickle {
                header_key: *e.header_key.as_bytes(),
                message_key: *e.message_key.as_bytes(),
                ratchet_key: e.ratchet_key.0,
                n: e.n,
                stored_at: e.stored_at,
            })
            .collect(),
        recently_received: r.recently_received.iter().map(|a| a.0).collect(),
        receive_events: r.receive_events,
        previous_root: r.previous_root.as_ref().map(|k| *k.as_bytes()),
        abandoned_keys: r.abandoned_keys.clone(),
        next_chain_skip: r.next_chain_skip,
    }
}

/// Rebuilds a ratchet. `next_window_len` is [`WINDOW`] for a session and 1 for a pending
/// invite. Windows and skipped-key addresses are recomputed, not stored.
fn ratchet_from_pickle(p: &RatchetPickle, next_window_len: u32) -> Result<Ratchet, PickleError> {
    let role = role_from(p.role)?;
    let peer = role.peer();
    if p.skipped.len() > MAX_SKIPPED_KEYS
        || p.recently_received.len() > DUPLICATE_MEMORY
        || p.abandoned_keys.len() > MAX_ABANDONED_KEYS
        || (p.previous_root.is_some() && !p.send_step_pending)
    {
        return Err(PickleError::Malformed);
    }
    let receiving = p.receiving.as_ref().map(|c| {
        ReceivingChain::new(
            ChainKey::from_bytes(&c.chain_key),
            HeaderKey::from_bytes(&c.header_key),
            RemoteRatchetKey(c.ratchet_key),
            c.next,
            VecDeque::new(),
            peer,
        )
    });

    let next_receiving_header_key = HeaderKey::from_bytes(&p.next_receiving_header_key);
    let next_window = next_receiving_header_key.addresses(peer, 0, next_window_len);
    let skipped = SkippedKeys {
        entries: p
            .skipped
            .iter()
            .map(|e| {
                let header_key = HeaderKey::from_bytes(&e.header_key);
                SkippedKey {
                    address: header_key.chain_addresses(peer).write_key(e.n).address(),
                    header_key,
                    message_key: MessageKey::from_bytes(&e.message_key),
                    ratchet_key: RemoteRatchetKey(e.ratchet_key),
                    n: e.n,
                    stored_at: e.stored_at,
                }
            })
            .collect(),
    };
    Ok(Ratchet {
        role,
        ad: AssociatedData::from_bytes(&p.ad),
        root_key: RootKey::from_bytes(&p.root_key),
        ratchet_key: RatchetKeyPair::from_secret_bytes(&p.ratchet_secret),
        remote_ratchet_key: p.remote_ratchet_key.map(RemoteRatchetKey),
        sending: p.sending.as_ref().map(|s| {
            SendingChain::new(
                ChainKey::from_bytes(&s.chain_key),
                HeaderKey::from_bytes(&s.header_key),
                s.next,
                role,
            )
        }),
        send_step_pending: p.send_step_pending,
        previous_sending_len: p.previous_sending_len,
        next_sending_header_key: HeaderKey::from_bytes(&p.next_sending_header_key),
        receiving,
        next_receiving_header_key,
        next_window,
        skipped,
        recently_received: p
            .recently_received
            .iter()
            .map(|a| Address(*a))
            .collect::<VecDeque<_>>(),
        receive_events: p.receive_events,
        previous_root: p.previous_root.as_ref().map(RootKey::from_bytes),
        abandoned_keys: p.abandoned_keys.clone(),
        next_chain_skip: p.next_chain_skip.min(crate::MAX_ROLLBACK_SKIP),
        restore_keys: VecDeque::new(),
        skipped_ahead: 0,
        chain_after_rollback: false,
        next_chain_from: None,
        previous_chain_reach: 0,
        fork_past_reach: None,
    })
}

fn derive_keys(pickle_key: &[u8; 32]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    (
        hmac_sha256(pickle_key, &[b"hush/v2/pickle/encryption-key"]),
        hmac_sha256(pickle_key, &[b"hush/v2/pickle/nonce-key"]),
    )
}

const PICKLE_AD_LABEL: &[u8] = b"hush/v2/pickle";

fn seal_pickle(pickle_key: &[u8; 32], value: &PickleV2) -> Vec<u8> {
    use postcard::ser_flavors::{ExtendFlavor, Size};
    // Size first, then serialise into an exact-capacity buffer: no reallocation leaves
    // unwiped copies of secrets behind.
    let size = postcard::serialize_with_flavor(value, Size::default()).unwrap_or(0);
    let plaintext = Zeroizing::new(
        postcard::serialize_with_flavor(value, ExtendFlavor::new(Vec::with_capacity(size)))
            .unwrap_or_default(),
    );
    let (enc_key, nonce_key) = derive_keys(pickle_key);
    let synthetic = hmac_sha256(&nonce_key[..], &[&plaintext[..]]);
    let nonce: [u8; NONCE_LEN] = synthetic
        .first_chunk::<NONCE_LEN>()
        .copied()
        .unwrap_or_default();
    let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.push(PICKLE_VERSION);
    out.extend_from_slice(&nonce);
    let body_start = out.len();
    out.extend_from_slice(&plaintext);
    let cipher = XChaCha20Poly1305::new(&(*enc_key).into());
    let ad = [PICKLE_AD_LABEL, &[PICKLE_VERSION]].concat();
    let tag: [u8; TAG_LEN] = match out.get_mut(body_start..) {
        Some(body) => match cipher.encrypt_inout_detached(&XNonce::from(nonce), &ad, body.into()) {
            Ok(tag) => tag.into(),
            Err(_) => [0u8; TAG_LEN],
        },
        None => [0u8; TAG_LEN],
    };
    out.extend_from_slice(&tag);
    out
}

fn open_pickle(pickle_key: &[u8; 32], bytes: &[u8]) -> Result<PickleV2, PickleError> {
    let (&version, rest) = bytes.split_first().ok_or(PickleError::Truncated)?;
    if version == PICKLE_VERSION_1 {
        return Err(PickleError::ProtocolV1);
    }
    if version != PICKLE_VERSION {
        return Err(PickleError::UnsupportedVersion(version));
    }
    let (nonce, rest) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(PickleError::Truncated)?;
    let (body, tag) = rest
        .split_last_chunk::<TAG_LEN>()
        .ok_or(PickleError::Truncated)?;
    let (enc_key, _) = derive_keys(pickle_key);
    let cipher = XChaCha20Poly1305::new(&(*enc_key).into());
    let ad = [PICKLE_AD_LABEL, &[version]].concat();
    let mut plaintext = Zeroizing::new(body.to_vec());
    cipher
        .decrypt_inout_detached(
            &XNonce::from(*nonce),
            &ad,
            plaintext.as_mut_slice().into(),
            &Tag::from(*tag),
        )
        .map_err(|_| PickleError::Authentication)?;
    decode_v2(&plaintext)
}

fn decode_v2(plaintext: &[u8]) -> Result<PickleV2, PickleError> {
    match postcard::take_from_bytes::<PickleV2>(plaintext) {
        Ok((value, [])) => Ok(value),
        _ => decode_first_received_hedges(plaintext),
    }
}

/// [`PickleV2`] as first released with the received hedges: its last variant's
/// [`ReceivedHedgesPickle`] had no `next_chain_from` yet. Variants keep their indices, so
/// only that one differs.
#[derive(Deserialize)]
#[allow(dead_code, clippy::large_enum_variant)]
enum PickleV2FirstReceivedHedges {
    Session(SessionPickleV2),
    PendingInvite(PendingInvitePickleV2),
    PendingMutualInvite(PendingMutualInvitePickleV2),
    SessionWithExtras(SessionPickleV2, SessionExtrasPickle),
    SessionWithRecent(SessionPickleV2, SessionExtrasPickle, RecentPickle),
    SessionWithReceivedHedges(
        SessionPickleV2,
        SessionExtrasPickle,
        RecentPickle,
        FirstReceivedHedgesPickle,
    ),
}

/// [`ReceivedHedgesPickle`] before `next_chain_from` (which loads as `None`: a device that
/// wrote it predates the rule, PROTOCOL.md §6.5).
#[derive(Deserialize)]
struct FirstReceivedHedgesPickle {
    received_hedges: Vec<(u32, [u8; RECEIVED_HEDGE_LEN], u8)>,
    chain_after_rollback: bool,
}

/// Decodes a pickle of the first received-hedges layout into today's [`PickleV2`], or
/// [`PickleError::Malformed`].
fn decode_first_received_hedges(plaintext: &[u8]) -> Result<PickleV2, PickleError> {
    let (value, rest) = postcard::take_from_bytes::<PickleV2FirstReceivedHedges>(plaintext)
        .map_err(|_| PickleError::Malformed)?;
    if !rest.is_empty() {
        return Err(PickleError::Malformed);
    }
    match value {
        PickleV2FirstReceivedHedges::SessionWithReceivedHedges(p, extras, recent, mut first) => {
            Ok(PickleV2::SessionWithReceivedHedges(
                p,
                extras,
                recent,
                ReceivedHedgesPickle {
                    received_hedges: core::mem::take(&mut first.received_hedges),
                    chain_after_rollback: first.chain_after_rollback,
                    next_chain_from: None,
                },
            ))
        }
        // Every other variant decodes as today's: it did not decode above.
        _ => Err(PickleError::Malformed),
    }
}

/// One argument per pickled part: each [`PickleV2`] session variant passes what it has and
/// the defaults of the parts added after it.
#[allow(clippy::too_many_arguments)]
fn session_from_v2(
    p: &SessionPickleV2,
    extras: &SessionExtrasPickle,
    recent: &RecentPickle,
    hedges: &ReceivedHedgesPickle,
    read: &ReadAddressesPickle,
    places: &PlacesPickle,
    keys: Option<&ReadKeysPickle>,
    reach: &ForkReachPickle,
) -> Result<Session, PickleError> {
    if read.read.len() > READ_ADDRESS_MEMORY
        || keys.is_some_and(|k| k.keys.len() != read.read.len())
    {
        return Err(PickleError::Malformed);
    }
    let mut ratchet = ratchet_from_pickle(&p.ratchet, WINDOW)?;
    if extras.restore_keys.len() > RESTORE_MEMORY {
        return Err(PickleError::Malformed);
    }
    ratchet.restore_keys = extras
        .restore_keys
        .iter()
        .map(RestoreKey::from_bytes)
        .collect();
    ratchet.skipped_ahead = extras.skipped_ahead.min(crate::MAX_ROLLBACK_SKIP);
    ratchet.previous_chain_reach = reach.previous_chain_reach;
    ratchet.fork_past_reach = reach
        .fork_past_reach
        .map(|(ratchet_key, from_seq)| ForkPastReach {
            ratchet_key,
            from_seq,
        });
    if ratchet.remote_ratchet_key.is_none() || p.partial_messages.len() > MAX_PENDING_MESSAGES {
        return Err(PickleError::Malformed);
    }
    let mut pending = Vec::with_capacity(p.partial_messages.len());
    for m in &p.partial_messages {
        if m.parts.len() < 2 || m.parts.len() > MAX_FRAGMENTS {
            return Err(PickleError::Malformed);
        }
        pending.push(PartialMessage {
            chain: m.chain,
            start: m.start,
            started_at: m.started_at,
            parts: m
                .parts
                .iter()
                .map(|part| part.as_ref().map(|b| Zeroizing::new(b.clone())))
                .collect(),
        });
    }
    let safety_code = SafetyCode::from_digits(&p.safety_code).ok_or(PickleError::Malformed)?;
    let mut stream = stream_from_pickle(&p.stream)?;
    if recent.recent.len() > MAX_RECENT_CONFIRMED
        || !increasing(&recent.recent, |b| b.0)
        || recent
            .recent
            .last()
            .is_some_and(|b| b.0 >= stream.confirmed)
    {
        return Err(PickleError::Malformed);
    }
    if hedges.received_hedges.len() > MAX_RECEIVED_HEDGES
        || !increasing(&hedges.received_hedges, |h| h.0)
        || (hedges.next_chain_from.is_some() && !ratchet.send_step_pending)
    {
        return Err(PickleError::Malformed);
    }
    ratchet.chain_after_rollback = hedges.chain_after_rollback;
    ratchet.next_chain_from = hedges.next_chain_from;
    let hedges = &hedges.received_hedges;
    stream.received_hedges = hedges
        .iter()
        .map(|&(seq, r, state)| {
            HedgeState::from_byte(state)
                .map(|state| ReceivedHedge {
                    seq,
                    r,
                    state,
                    place: None,
                })
                .ok_or(PickleError::Malformed)
        })
        .collect::<Result<_, _>>()?;
    if places.places.len() > MAX_RECEIVED_HEDGES || !increasing(&places.places, |p| p.0) {
        return Err(PickleError::Malformed);
    }
    for &(seq, index, count) in &places.places {
        let hedge = stream
            .received_hedges
            .iter_mut()
            .find(|h| h.seq == seq && h.state == HedgeState::Counted)
            .ok_or(PickleError::Malformed)?;
        if index >= count || usize::from(count) > MAX_FRAGMENTS {
            return Err(PickleError::Malformed);
        }
        hedge.place = Some(Place { index, count });
    }
    stream.recent = recent
        .recent
        .iter()
        .map(|&(seq, r, counted, floor)| SentBlob {
            seq,
            r,
            counted,
            floor,
        })
        .collect();
    Ok(Session {
        ratchet,
        reassembly: Reassembly { pending },
        safety_code,
        stream,
        read_addresses: ReadAddresses {
            entries: read
                .read
                .iter()
                .enumerate()
                .map(|(i, (a, r))| {
                    let extra = keys.and_then(|k| k.keys.get(i));
                    ReadAddress {
                        address: Address(*a),
                        prefix: *r,
                        reported: extra.and_then(|k| k.reported),
                        opener: extra
                            .and_then(|k| k.opener.as_ref())
                            .map(|(key, n)| (HeaderKey::from_bytes(key), *n)),
                    }
                })
                .collect(),
        },
    })
}

impl Session {
    /// Serialises the whole session and encrypts it under `pickle_key` (32 bytes from the
    /// caller, e.g. derived from a passphrase or held in the platform keystore).
    pub fn pickle(&self, pickle_key: &[u8; 32]) -> Vec<u8> {
        let extras = SessionExtrasPickle {
            restore_keys: self
                .ratchet
                .restore_keys
                .iter()
                .map(|k| *k.as_bytes())
                .collect(),
            skipped_ahead: self.ratchet.skipped_ahead,
        };
        let recent = RecentPickle {
            recent: self
                .stream
                .recent
                .iter()
                .map(|b| (b.seq, b.r, b.counted, b.floor))
                .collect(),
        };
        let received_hedges = ReceivedHedgesPickle {
            received_hedges: self
                .stream
                .received_hedges
                .iter()
                .map(|h| (h.seq, h.r, h.state.byte()))
                .collect(),
            chain_after_rollback: self.ratchet.chain_after_rollback,
            next_chain_from: self.ratchet.next_chain_from,
        };
        let places = PlacesPickle {
            places: self
                .stream
                .received_hedges
                .iter()
                .filter(|h| h.state == HedgeState::Counted)
                .filter_map(|h| h.place.map(|p| (h.seq, p.index, p.count)))
                .collect(),
        };
        let read = ReadAddressesPickle {
            read: self
                .read_addresses
                .entries
                .iter()
                .map(|e| (e.address.0, e.prefix))
                .collect(),
        };
        let keys = ReadKeysPickle {
            keys: self
                .read_addresses
                .entries
                .iter()
                .map(|e| ReadKeyPickle {
                    opener: e.opener.as_ref().map(|(key, n)| (*key.as_bytes(), *n)),
                    reported: e.reported,
                })
                .collect(),
        };
        let reach = ForkReachPickle {
            previous_chain_reach: self.ratchet.previous_chain_reach,
            fork_past_reach: self
                .ratchet
                .fork_past_reach
                .map(|f| (f.ratchet_key, f.from_seq)),
        };
        let value = PickleV2::SessionWithForkReach(
            SessionPickleV2 {
                ratchet: ratchet_to_pickle(&self.ratchet),
                partial_messages: self
                    .reassembly
                    .pending
                    .iter()
                    .map(|m| PartialPickle {
                        chain: m.chain,
                        start: m.start,
                        started_at: m.started_at,
                        parts: m
                            .parts
                            .iter()
                            .map(|p| p.as_ref().map(|b| b.to_vec()))
                            .collect(),
                    })
                    .collect(),
                safety_code: self.safety_code.digits().to_owned(),
                stream: stream_to_pickle(&self.stream),
            },
            extras,
            recent,
            received_hedges,
            read,
            places,
            keys,
            reach,
        );
        seal_pickle(pickle_key, &value)
    }

    /// Loads a pickle written by [`Session::pickle`] of this or any earlier format version.
    pub fn from_pickle(pickle_key: &[u8; 32], bytes: &[u8]) -> Result<Session, PickleError> {
        match &open_pickle(pickle_key, bytes)? {
            PickleV2::Session(p) => session_from_v2(
                p,
                &SessionExtrasPickle::default(),
                &RecentPickle::default(),
                &ReceivedHedgesPickle::default(),
                &ReadAddressesPickle::default(),
                &PlacesPickle::default(),
                None,
                &ForkReachPickle::default(),
            ),
            PickleV2::SessionWithExtras(p, extras) => session_from_v2(
                p,
                extras,
                &RecentPickle::default(),
                &ReceivedHedgesPickle::default(),
                &ReadAddressesPickle::default(),
                &PlacesPickle::default(),
                None,
                &ForkReachPickle::default(),
            ),
            PickleV2::SessionWithRecent(p, extras, recent) => session_from_v2(
                p,
                extras,
                recent,
                &ReceivedHedgesPickle::default(),
                &ReadAddressesPickle::default(),
                &PlacesPickle::default(),
                None,
                &ForkReachPickle::default(),
            ),
            PickleV2::SessionWithReceivedHedges(p, extras, recent, hedges) => session_from_v2(
                p,
                extras,
                recent,
                hedges,
                &ReadAddressesPickle::default(),
                &PlacesPickle::default(),
                None,
                &ForkReachPickle::default(),
            ),
            PickleV2::SessionWithReadAddresses(p, extras, recent, hedges, read) => session_from_v2(
                p,
                extras,
                recent,
                hedges,
                read,
                &PlacesPickle::default(),
                None,
                &ForkReachPickle::default(),
            ),
            PickleV2::SessionWithPlaces(p, extras, recent, hedges, read, places) => {
                session_from_v2(
                    p,
                    extras,
                    recent,
                    hedges,
                    read,
                    places,
                    None,
                    &ForkReachPickle::default(),
                )
            }
            PickleV2::SessionWithReadKeys(p, extras, recent, hedges, read, places, keys) => {
                session_from_v2(
                    p,
                    extras,
                    recent,
                    hedges,
                    read,
                    places,
                    Some(keys),
                    &ForkReachPickle::default(),
                )
            }
            PickleV2::SessionWithForkReach(
                p,
                extras,
                recent,
                hedges,
                read,
                places,
                keys,
                reach,
            ) => session_from_v2(p, extras, recent, hedges, read, places, Some(keys), reach),
            PickleV2::PendingInvite(_) | PickleV2::PendingMutualInvite(_) => {
                Err(PickleError::WrongKind)
            }
        }
    }
}

impl PendingInvite {
    /// Serialises and encrypts the pending invite (the inviter may close the app before the
    /// joiner's first message arrives).
    pub fn pickle(&self, pickle_key: &[u8; 32]) -> Vec<u8> {
        let pending = PendingInvitePickleV2 {
            ratchet: ratchet_to_pickle(&self.ratchet),
            invite_secret: *self.secret.as_bytes(),
            expires_at: self.expires_at,
            mailbox_url: self.mailbox_url.clone(),
        };
        let value = match self.expected_joiner {
            None => PickleV2::PendingInvite(pending),
            Some(expected_joiner) => PickleV2::PendingMutualInvite(PendingMutualInvitePickleV2 {
                pending,
                expected_joiner,
            }),
        };
        seal_pickle(pickle_key, &value)
    }

    /// Loads a pickle written by [`PendingInvite::pickle`].
    pub fn from_pickle(pickle_key: &[u8; 32], bytes: &[u8]) -> Result<PendingInvite, PickleError> {
        match &open_pickle(pickle_key, bytes)? {
            PickleV2::PendingInvite(p) => pending_from_v2(p, None),
            PickleV2::PendingMutualInvite(m) => {
                pending_from_v2(&m.pending, Some(m.expected_joiner))
            }
            PickleV2::Session(_)
            | PickleV2::SessionWithExtras(..)
            | PickleV2::SessionWithRecent(..)
            | PickleV2::SessionWithReceivedHedges(..)
            | PickleV2::SessionWithReadAddresses(..)
            | PickleV2::SessionWithPlaces(..)
            | PickleV2::SessionWithReadKeys(..)
            | PickleV2::SessionWithForkReach(..) => Err(PickleError::WrongKind),
        }
    }
}

fn pending_from_v2(
    p: &PendingInvitePickleV2,
    expected_joiner: Option<[u8; 32]>,
) -> Result<PendingInvite, PickleError> {
    let ratchet = ratchet_from_pickle(&p.ratchet, 1)?;
    if ratchet.role != Role::Inviter || ratchet.receiving.is_some() || ratchet.sending.is_some() {
        return Err(PickleError::Malformed);
    }
    if p.mailbox_url
        .as_ref()
        .is_some_and(|u| u.is_empty() || u.len() > crate::MAX_MAILBOX_URL_LEN)
    {
        return Err(PickleError::Malformed);
    }
    Ok(PendingInvite {
        ratchet,
        secret: InviteSecret::from_bytes(&p.invite_secret),
        expires_at: p.expires_at,
        mailbox_url: p.mailbox_url.clone(),
        expected_joiner,
    })
}

/// Test and fuzzing helper: encrypts arbitrary bytes as if they were a pickle plaintext of the current version, so
/// the decoder behind the AEAD can be exercised.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn seal_raw(pickle_key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let (enc_key, nonce_key) = derive_keys(pickle_key);
    let synthetic = hmac_sha256(&nonce_key[..], &[plaintext]);
    let nonce: [u8; NONCE_LEN] = synthetic
        .first_chunk::<NONCE_LEN>()
        .copied()
        .unwrap_or_default();
    let mut body = plaintext.to_vec();
    let cipher = XChaCha20Poly1305::new(&(*enc_key).into());
    let ad = [PICKLE_AD_LABEL, &[PICKLE_VERSION]].concat();
    let tag: [u8; TAG_LEN] = cipher
        .encrypt_inout_detached(&XNonce::from(nonce), &ad, body.as_mut_slice().into())
        .map(Into::into)
        .unwrap_or_default();
    [&[PICKLE_VERSION][..], &nonce, &body, &tag].concat()
}
