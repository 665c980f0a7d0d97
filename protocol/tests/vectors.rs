//! Test vectors: `tests/vectors/conversation.json` and `tests/vectors/negative.json`.
//!
//! Both files are written by an independent *reference model* in this test: it derives every
//! value straight from `docs/PROTOCOL.md` (version 2) with the raw primitives (x25519, HKDF,
//! HMAC, SHA-256, ChaCha20-Poly1305) and shares no code with the crate's ratchet, hedge,
//! payload, stream or acknowledgement code. The model is a complete party state machine (both
//! halves of the DH ratchet, windows, skipped keys, forks, the blob stream with its digests,
//! message ids and reassembly), so snapshots and restores of a party are simply copies of its
//! model state. Tests:
//! * `reference_model_reproduces_the_vector_files`: the model's output equals the files, byte
//!   for byte (so the files are exactly what the spec says);
//! * `implementation_matches_the_vector_file`: the real `Invite` / `Session` API, driven by the
//!   same seeded randomness through the same script, produces every invite byte, write key,
//!   address, sequence number, message id and blob in the file, decrypts to the recorded
//!   plaintexts, and reports the recorded retired addresses, poll sets (in order), kinds,
//!   acknowledgements, confirmations, rollbacks and duplicates;
//! * `implementation_matches_the_url_variant`: an invite with a mailbox URL derives other keys;
//! * `implementation_refuses_the_negative_vectors`: each blob of `negative.json`, delivered in
//!   the state before its event, gives the recorded error and leaves the state unchanged (or,
//!   for the rollback vectors, the recorded `Rollback`).
//!
//! Regenerate (only on a deliberate protocol change):
//! `HUSH_WRITE_VECTORS=1 cargo test -p protocol --test vectors reference`, then run all four
//! without it (the crate tests may read the files while the model rewrites them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_arguments
)]

use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hmac::Mac;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/conversation.json"
);
const NEGATIVE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/negative.json");
const W: u32 = 16;
const MAX_SKIP: u32 = 64;
const PAYLOAD_LEN: usize = 936;
const FIELDS_LEN: usize = 51;
/// §3.6: kinds `0x01`-`0x03` carry no `prev` (the hello; data and acknowledgements sealed
/// before it existed).
const FIELDS_WITHOUT_PREV_LEN: usize = 43;
const KIND_WITH_PREV: u8 = 0x80;
const MAX_RECEIVED_HEDGES: usize = 128;
const CAPACITY: usize = PAYLOAD_LEN - FIELDS_LEN;
const MAX_FRAGMENTS: usize = 64;
const MAX_MESSAGE_LEN: usize = MAX_FRAGMENTS * CAPACITY;
const ACK_WINDOW: u32 = 64;
const MAX_ROLLBACK_SKIP: u32 = 1 << 16;
const MAX_SKIPPED_KEYS: usize = 128;
const RETENTION: u64 = 512;
const DUPLICATE_MEMORY: usize = 256;
const MAX_PENDING_MESSAGES: usize = 4;
const MAX_AHEAD: usize = 512;
const MAX_UNCONFIRMED: usize = 4096;
const MESSAGE_ID_MEMORY: usize = 256;
const MAX_ABANDONED_KEYS: usize = 4;
const FORK_WINDOW: u32 = 16;
const NEXT_CHAIN_SKIP_MAX: u32 = W / 2 - 1;
const NOW: u64 = 1_767_225_600;
const EXPIRES_AT: u64 = NOW + 600;
const INVITER_SEED: u64 = 1;
const JOINER_SEED: u64 = 2;
const NEXT_SEED: u64 = 99;
const SECOND_RESTORE_SEED: u64 = 98;
const REWOUND_SEED: u64 = 97;
const VARIANT_URL: &str = "https://mailbox.example.org/hush";
const PICKLE_KEY: [u8; 32] = [0x5a; 32];

const KIND_HELLO: u8 = 0x01;
const KIND_DATA: u8 = 0x02;
const KIND_ACK: u8 = 0x03;
const NO_ID: [u8; 8] = [0; 8];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------- reference primitives ----

/// The test RNG as specified: a byte stream, block i = SHA-256("hush/test-rng" ‖ u64be(seed)
/// ‖ u64be(i)), consumed in order (32 bytes per key, per `z`, and per message id's `z`).
#[derive(Clone)]
struct Rng {
    seed: u64,
    block: u64,
    buf: VecDeque<u8>,
}

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng {
            seed,
            block: 0,
            buf: VecDeque::new(),
        }
    }
    fn take<const N: usize>(&mut self) -> [u8; N] {
        while self.buf.len() < N {
            self.buf.extend(sha(&[
                b"hush/test-rng",
                &self.seed.to_be_bytes(),
                &self.block.to_be_bytes(),
            ]));
            self.block += 1;
        }
        let out: Vec<u8> = self.buf.drain(..N).collect();
        out.try_into().unwrap()
    }
    /// A message id (§6.1): `SHA-256("hush/v2/message-id" ‖ z ‖ plaintext)[0..8]` for 32 drawn
    /// bytes `z`; all zero is replaced by `01 00 … 00`.
    fn message_id(&mut self, plaintext: &[u8]) -> [u8; 8] {
        let z = self.take::<32>();
        let id: [u8; 8] = sha(&[b"hush/v2/message-id", &z, plaintext])[..8]
            .try_into()
            .unwrap();
        if id == NO_ID {
            [1, 0, 0, 0, 0, 0, 0, 0]
        } else {
            id
        }
    }
}

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    hkdf::Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut out)
        .unwrap();
    out
}

fn public(private: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*private, x25519_dalek::X25519_BASEPOINT_BYTES)
}

fn dh(private: &[u8; 32], remote: &[u8; 32]) -> [u8; 32] {
    let out = x25519_dalek::x25519(*private, *remote);
    assert_ne!(out, [0; 32], "the script never meets a small-order key");
    out
}

/// §3.1: `RK', CK, NHK`.
fn kdf_rk(rk: &[u8; 32], dh_out: &[u8; 32]) -> [[u8; 32]; 3] {
    let okm = split32(&hkdf(rk, dh_out, b"hush/v2/ratchet", 96));
    [okm[0], okm[1], okm[2]]
}

fn step(ck: &[u8; 32]) -> [u8; 32] {
    hmac(ck, &[&[2]])
}

fn message_key(ck: &[u8; 32]) -> [u8; 32] {
    hmac(ck, &[&[1]])
}

fn aead(key: &[u8; 32], nonce: [u8; 12], ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut buf = plaintext.to_vec();
    let tag = ChaCha20Poly1305::new(&(*key).into())
        .encrypt_inout_detached(&Nonce::from(nonce), ad, buf.as_mut_slice().into())
        .unwrap();
    buf.extend_from_slice(&tag);
    buf
}

fn aead_open(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let (ct, tag) = sealed.split_at(sealed.len() - 16);
    let tag: [u8; 16] = tag.try_into().unwrap();
    let mut buf = ct.to_vec();
    ChaCha20Poly1305::new(&(*key).into())
        .decrypt_inout_detached(
            &Nonce::from([0u8; 12]),
            ad,
            buf.as_mut_slice().into(),
            &Tag::from(tag),
        )
        .ok()?;
    Some(buf)
}

fn split32(bytes: &[u8]) -> Vec<[u8; 32]> {
    bytes.chunks(32).map(|c| c.try_into().unwrap()).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_HELLO => "Hello",
        KIND_DATA => "Data",
        _ => "Acknowledgement",
    }
}

/// §3.4.
fn write_key(hk: &[u8; 32], role: u8, n: u32) -> ([u8; 32], [u8; 32]) {
    let wk = hmac(hk, &[b"hush/v2/write-key", &[role], &n.to_be_bytes()]);
    (wk, sha(&[b"hush/v1/address", &wk]))
}

fn address_of(hk: &[u8; 32], role: u8, n: u32) -> [u8; 32] {
    write_key(hk, role, n).1
}

fn header(public: &[u8; 32], pn: u32, n: u32) -> Vec<u8> {
    [&public[..], &pn.to_be_bytes(), &n.to_be_bytes()].concat()
}

/// The stream fields of §3.6.
#[derive(Clone, Copy)]
struct Fields {
    seq: u32,
    floor: u32,
    ack: u32,
    bits: u64,
    digest: [u8; 8],
    id: [u8; 8],
    /// §6.4: the first 8 bytes of the hedge of the sender's blob `seq − index − 1`.
    prev: [u8; 8],
}

/// The padded payload of §3.6.
fn payload(kind: u8, index: u16, count: u16, data: &[u8], f: Fields) -> Vec<u8> {
    let mut p = vec![if kind == KIND_HELLO {
        kind
    } else {
        kind | KIND_WITH_PREV
    }];
    p.extend(index.to_be_bytes());
    p.extend(count.to_be_bytes());
    p.extend((data.len() as u16).to_be_bytes());
    p.extend(f.seq.to_be_bytes());
    p.extend(f.floor.to_be_bytes());
    p.extend(f.ack.to_be_bytes());
    p.extend(f.bits.to_be_bytes());
    p.extend(f.digest);
    p.extend(f.id);
    p.extend(f.prev);
    assert_eq!(p.len(), FIELDS_LEN);
    p.extend_from_slice(data);
    p.resize(PAYLOAD_LEN, 0);
    p
}

/// A parsed payload.
struct Fragment {
    kind: u8,
    index: u16,
    count: u16,
    data: Vec<u8>,
    f: Fields,
}

/// §3.6 validation: `None` is `MalformedPayload`.
fn parse(p: &[u8]) -> Option<Fragment> {
    let u16at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    let u32at = |i: usize| u32::from_be_bytes(p[i..i + 4].try_into().unwrap());
    let (kind, index, count, len) = (p[0], u16at(1), u16at(3), usize::from(u16at(5)));
    let with_prev = kind & KIND_WITH_PREV != 0;
    let kind = kind & !KIND_WITH_PREV;
    let start = if with_prev {
        FIELDS_LEN
    } else {
        FIELDS_WITHOUT_PREV_LEN
    };
    let f = Fields {
        seq: u32at(7),
        floor: u32at(11),
        ack: u32at(15),
        bits: u64::from_be_bytes(p[19..27].try_into().unwrap()),
        digest: p[27..35].try_into().unwrap(),
        id: p[35..43].try_into().unwrap(),
        prev: if with_prev {
            p[43..51].try_into().unwrap()
        } else {
            [0; 8]
        },
    };
    if len > PAYLOAD_LEN - start || p[start + len..].iter().any(|&b| b != 0) || f.floor > f.seq {
        return None;
    }
    let ok = match kind {
        KIND_HELLO => !with_prev && index == 0 && count == 1 && len == 0 && f.id == NO_ID,
        KIND_ACK => index == 0 && count == 1 && len == 0 && f.id == NO_ID,
        KIND_DATA => count >= 1 && usize::from(count) <= MAX_FRAGMENTS && index < count,
        _ => false,
    };
    ok.then(|| Fragment {
        kind,
        index,
        count,
        data: p[start..start + len].to_vec(),
        f,
    })
}

#[derive(Clone)]
struct Sealed {
    mk: [u8; 32],
    r: [u8; 16],
    hkr: [u8; 32],
    mkr: [u8; 32],
    encrypted_header: Vec<u8>,
    body_ad: Vec<u8>,
    blob: Vec<u8>,
}

/// §3.7 with the raw primitives; `ck` is the chain key before the message.
fn seal(
    hk: &[u8; 32],
    ck: &[u8; 32],
    ad: &[u8; 32],
    address: &[u8; 32],
    header: &[u8],
    payload: &[u8],
    z: &[u8; 32],
) -> Sealed {
    let mk = message_key(ck);
    let r: [u8; 16] = hmac(&mk, &[b"hush/v2/hedge", z, header, payload])[..16]
        .try_into()
        .unwrap();
    let hkr = hmac(hk, &[b"hush/v2/header-key", &r]);
    let mkr = hmac(&mk, &[b"hush/v2/body-key", &r]);
    let encrypted_header = aead(&hkr, [0; 12], &[&ad[..], address].concat(), header);
    let body_ad = [&ad[..], address, &r, &encrypted_header].concat();
    let body = aead(&mkr, [0; 12], &body_ad, payload);
    let blob = [&r[..], &encrypted_header, &body].concat();
    assert_eq!(blob.len(), 1024);
    Sealed {
        mk,
        r,
        hkr,
        mkr,
        encrypted_header,
        body_ad,
        blob,
    }
}

/// Opens the header of `blob` found at `address` as message `n` under header key `hk`:
/// `(ratchet key, PN)`, or `None` (`HeaderAuthentication`).
fn open_header(
    hk: &[u8; 32],
    ad: &[u8; 32],
    address: &[u8; 32],
    blob: &[u8],
    n: u32,
) -> Option<([u8; 32], u32)> {
    let hkr = hmac(hk, &[b"hush/v2/header-key", &blob[..16]]);
    let h = aead_open(&hkr, &[&ad[..], address].concat(), &blob[16..72])?;
    let number = u32::from_be_bytes(h[36..40].try_into().unwrap());
    (number == n).then(|| {
        (
            h[..32].try_into().unwrap(),
            u32::from_be_bytes(h[32..36].try_into().unwrap()),
        )
    })
}

/// Opens and parses the body under message key `mk`.
fn open_body(
    mk: &[u8; 32],
    ad: &[u8; 32],
    address: &[u8; 32],
    blob: &[u8],
) -> Result<Fragment, &'static str> {
    let mkr = hmac(mk, &[b"hush/v2/body-key", &blob[..16]]);
    let body_ad = [&ad[..], address, &blob[..72]].concat();
    let p = aead_open(&mkr, &body_ad, &blob[72..]).ok_or("BodyAuthentication")?;
    parse(&p).ok_or("MalformedPayload")
}

// ------------------------------------------------------------------- the blob stream ----

/// `D' = SHA-256("hush/v2/stream-digest" ‖ D ‖ u32be(seq) ‖ r)[0..8)` (§6.4).
fn extend_digest(d: &[u8; 8], seq: u32, r: &[u8; 16]) -> [u8; 8] {
    sha(&[b"hush/v2/stream-digest", d, &seq.to_be_bytes(), r])[..8]
        .try_into()
        .unwrap()
}

/// §6.4: what a remembered peer blob is to the stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hedge {
    /// Counted, and it took its number (the digest covers it once below the prefix).
    Counted,
    /// Read, another blob holding its number.
    Read,
    Refused,
    /// Acknowledgement-only, and it took its number (outside the digest).
    AckOnly,
}

/// One party's stream state (§4, §6.4, §6.5), with plain maps.
#[derive(Clone, Default)]
struct Stream {
    next_seq: u32,
    /// Own blobs below this are confirmed; `confirmed_digest` is the peer's digest of them.
    confirmed: u32,
    confirmed_digest: [u8; 8],
    /// Own blobs from `confirmed` on: seq → (r, counted, floor carried).
    sent: BTreeMap<u32, ([u8; 16], bool, u32)>,
    /// The peer's stream: everything below `prefix` received (or passed by its floor), folded
    /// into `received_digest`; `kept` = peer blobs received past the prefix.
    prefix: u32,
    received_digest: [u8; 8],
    kept: BTreeMap<u32, ([u8; 16], bool)>,
    ids: VecDeque<[u8; 8]>,
    /// §8: own blobs the caller's outbox let go of (model only: they leave its floor).
    settled: BTreeSet<u32>,
    /// §6.4: the blob this state sealed last, `(seq, r)`, which the next one names as `prev`.
    last_sealed: Option<(u32, [u8; 16])>,
    /// §6.4: the peer's blobs remembered by number (the highest 128): seq → (r[0..8), state).
    hedges: BTreeMap<u32, ([u8; 8], Hedge)>,
    /// §6.4: where each counted data blob among `hedges` stands in its message:
    /// seq → (index, count).
    places: BTreeMap<u32, (u16, u16)>,
}

impl Stream {
    fn bits(&self) -> u64 {
        self.kept
            .keys()
            .filter(|&&s| s > self.prefix && s - self.prefix <= ACK_WINDOW)
            .fold(0, |b, &s| b | 1 << (s - self.prefix - 1))
    }

    /// The receiver rules of §6.4.
    /// Returns whether the blob took its number.
    fn receive(&mut self, floor: u32, seq: u32, r: [u8; 16], counted: bool) -> bool {
        let took = seq >= self.prefix && !self.kept.contains_key(&seq);
        if took {
            self.kept.insert(seq, (r, counted));
            if self.kept.len() > MAX_AHEAD {
                self.kept.pop_last();
            }
        }
        if floor > self.prefix {
            // §6.4: a floor that passes numbers never received restarts the digest there.
            let kept_below = self.kept.range(self.prefix..floor).count() as u32;
            if kept_below < floor - self.prefix {
                self.received_digest = [0; 8];
                self.kept = self.kept.split_off(&floor);
                for (seq, (_, state)) in self.hedges.range_mut(..floor) {
                    if *state == Hedge::Counted {
                        *state = Hedge::Read;
                        self.places.remove(seq);
                    }
                }
            }
            self.prefix = floor;
        }
        while let Some((&s, &(r, counted))) = self.kept.first_key_value() {
            if s > self.prefix {
                break;
            }
            if counted {
                self.received_digest = extend_digest(&self.received_digest, s, &r);
            }
            self.prefix = self.prefix.max(s + 1);
            self.kept.pop_first();
        }
        took
    }

    /// §6.5: checks the peer's acknowledgement of our stream. Returns the rollback
    /// `(lost_blobs, unconfirmed_from)` and the positions the sending chain must skip.
    fn acknowledged(
        &mut self,
        ack: u32,
        bits: u64,
        digest: [u8; 8],
        newest: bool,
    ) -> (Option<(u32, u32)>, u32) {
        let highest = if bits != 0 {
            Some(ack + 1 + (63 - bits.leading_zeros()))
        } else {
            ack.checked_sub(1)
        };
        let lost = highest
            .map(|h| h + 1)
            .filter(|&end| end > self.next_seq)
            .map(|end| end - self.next_seq);
        // §6.5: the confirmed prefix with another digest (a mark in it) is checked, in the
        // peer's newest blob only.
        let remarked = newest && ack == self.confirmed && digest != self.confirmed_digest;
        if ack <= self.confirmed && lost.is_none() && !remarked {
            return (None, 0);
        }
        let from = self.confirmed;
        let verifiable = self.sent.is_empty() || self.sent.contains_key(&self.confirmed);
        let mut ours = self.confirmed_digest;
        for (&s, (r, counted, _)) in self.sent.range(..ack) {
            if *counted {
                ours = extend_digest(&ours, s, r);
            }
        }
        // §6.5: or a digest restarted at a floor we sent (covered by what we still hold).
        let first = self.sent.keys().next().copied();
        let restarted = self.sent.values().any(|&(_, _, f)| {
            f <= ack
                && first.is_some_and(|first| first <= f)
                && self
                    .sent
                    .range(f..ack)
                    .filter(|(_, (_, counted, _))| *counted)
                    .fold([0u8; 8], |d, (&s, (r, _, _))| extend_digest(&d, s, r))
                    == digest
        });
        let diverged = ack >= self.confirmed && verifiable && ours != digest && !restarted;
        if remarked {
            self.confirmed_digest = digest;
        }
        if ack > self.confirmed {
            self.confirmed = ack;
            self.confirmed_digest = digest;
            self.sent = self.sent.split_off(&ack);
        }
        if let Some(lost) = lost {
            self.next_seq += lost;
        }
        let rollback = (diverged || lost.is_some()).then(|| (lost.unwrap_or(0), from));
        (rollback, lost.unwrap_or(0))
    }

    /// §6.4: the number of the blob that shows this one to follow a blob of its sender's we
    /// never received: its predecessor (or one we refused), or, for fragment `index ≥ 1` of
    /// a data message, a number of its message's earlier fragments that holds another blob.
    fn follows_other_blob(&self, f: &Fields, kind: u8, index: u16, count: u16) -> Option<u32> {
        let first = f.seq.checked_sub(u32::from(index))?;
        if f.prev != [0; 8] && first > f.floor {
            let before = first - 1;
            let refused = match self.hedges.get(&before) {
                Some(&(r, Hedge::Refused)) => r == f.prev,
                Some(&(r, Hedge::Counted | Hedge::AckOnly)) => before < self.prefix && r != f.prev,
                Some((_, Hedge::Read)) | None => false,
            };
            if refused {
                return Some(before);
            }
        }
        if kind != KIND_DATA {
            return None;
        }
        (first.max(f.floor)..f.seq).find(|&p| {
            let expected = (index - (f.seq - p) as u16, count);
            p < self.prefix
                && match self.hedges.get(&p) {
                    Some((_, Hedge::Counted)) => {
                        self.places.get(&p).is_some_and(|&at| at != expected)
                    }
                    Some((_, Hedge::AckOnly)) => true,
                    _ => false,
                }
        })
    }

    /// §6.4: remembers a counted blob read (replacing what was there, with where it stands in
    /// its message if it is data) or a refused one (only under a number not remembered yet),
    /// keeping the 128 highest numbers.
    fn remember(&mut self, seq: u32, r: &[u8; 16], state: Hedge, place: Option<(u16, u16)>) {
        if state == Hedge::Refused && self.hedges.contains_key(&seq) {
            return;
        }
        if !self.hedges.contains_key(&seq)
            && self.hedges.len() == MAX_RECEIVED_HEDGES
            && self
                .hedges
                .keys()
                .next()
                .is_some_and(|&lowest| seq < lowest)
        {
            return;
        }
        self.hedges.insert(seq, (r[..8].try_into().unwrap(), state));
        match place.filter(|_| state == Hedge::Counted) {
            Some(place) => self.places.insert(seq, place),
            None => self.places.remove(&seq),
        };
        if self.hedges.len() > MAX_RECEIVED_HEDGES
            && let Some((lowest, _)) = self.hedges.pop_first()
        {
            self.places.remove(&lowest);
        }
    }

    /// Message ids (§6.4): false for an id seen among the last 256.
    fn first_time(&mut self, id: [u8; 8]) -> bool {
        if id == NO_ID {
            return true;
        }
        if self.ids.contains(&id) {
            return false;
        }
        if self.ids.len() == MESSAGE_ID_MEMORY {
            self.ids.pop_front();
        }
        self.ids.push_back(id);
        true
    }

    /// What the client passes as `floor` (§8): its lowest counted seq not yet confirmed, or
    /// `next_seq`.
    fn outbox_floor(&self) -> u32 {
        self.sent
            .iter()
            .find(|(s, (_, counted, _))| *counted && !self.settled.contains(s))
            .map_or(self.next_seq, |(&s, _)| s)
    }

    fn json(&self) -> Value {
        json!({
            "next_seq": self.next_seq,
            "received": {"next": self.prefix, "bits": format!("{:016x}", self.bits())},
            "received_digest": hex(&self.received_digest),
            "acknowledged": {"next": self.confirmed, "bits": format!("{:016x}", 0)},
        })
    }
}

// ------------------------------------------------------------------- reference model ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Party {
    Joiner,
    Inviter,
}

impl Party {
    fn name(self) -> &'static str {
        match self {
            Party::Joiner => "joiner",
            Party::Inviter => "inviter",
        }
    }
    fn role_byte(self) -> u8 {
        match self {
            Party::Joiner => 0,
            Party::Inviter => 1,
        }
    }
    fn peer(self) -> Party {
        match self {
            Party::Joiner => Party::Inviter,
            Party::Inviter => Party::Joiner,
        }
    }
}

#[derive(Clone)]
struct SendChain {
    id: usize,
    ck: [u8; 32],
    hk: [u8; 32],
    n: u32,
    pn: u32,
}

#[derive(Clone)]
struct RecvChain {
    ratchet: [u8; 32],
    ck: [u8; 32],
    hk: [u8; 32],
    nr: u32,
}

#[derive(Clone)]
struct SkippedKey {
    address: [u8; 32],
    hk: [u8; 32],
    mk: [u8; 32],
    ratchet: [u8; 32],
    n: u32,
    stored_at: u64,
}

#[derive(Clone)]
struct Partial {
    ratchet: [u8; 32],
    start: u32,
    started_at: u64,
    parts: Vec<Option<Vec<u8>>>,
}

/// The whole state of one party (§4).
#[derive(Clone)]
struct State {
    party: Party,
    ad: [u8; 32],
    rk: [u8; 32],
    dhs: [u8; 32],
    dhr: Option<[u8; 32]>,
    sending: Option<SendChain>,
    pending: bool,
    nhks: [u8; 32],
    receiving: Option<RecvChain>,
    nhkr: [u8; 32],
    skipped: Vec<SkippedKey>,
    recent: VecDeque<[u8; 32]>,
    events: u64,
    previous_root: Option<[u8; 32]>,
    abandoned: Vec<[u8; 32]>,
    next_chain_skip: u32,
    /// §6.5: the sending chain started past positions skipped for a lost state.
    chain_after_rollback: bool,
    /// §6.5: while a send step is pending, the lowest number a lost copy's blob on the next
    /// chain can have.
    next_chain_from: Option<u32>,
    stream: Stream,
    partial: Vec<Partial>,
}

/// One sealed blob with every intermediate value.
#[derive(Clone)]
struct Blob {
    chain: usize,
    n: u32,
    pn: u32,
    kind: u8,
    f: Fields,
    ck: [u8; 32],
    hk: [u8; 32],
    wk: [u8; 32],
    address: [u8; 32],
    header: Vec<u8>,
    payload: Vec<u8>,
    z: [u8; 32],
    sealed: Sealed,
}

/// What one successful decrypt yields.
struct Outcome {
    kind: u8,
    seq: u32,
    plaintext: Option<Vec<u8>>,
    duplicate: bool,
    rollback: Option<(u32, u32)>,
    rolled_back: bool,
    retired: Vec<[u8; 32]>,
}

enum Slot {
    Current(u32),
    Next(u32),
    Skipped(usize),
}

impl State {
    /// The poll addresses in order (§6.2).
    fn poll_list(&self) -> Vec<[u8; 32]> {
        let peer = self.party.peer().role_byte();
        // §6.6: an address may hold the skipped keys of two chains; it is polled once.
        let mut list: Vec<[u8; 32]> = Vec::new();
        for k in &self.skipped {
            if !list.contains(&k.address) {
                list.push(k.address);
            }
        }
        if let Some(rc) = &self.receiving {
            list.extend((rc.nr..rc.nr + W).map(|n| address_of(&rc.hk, peer, n)));
        }
        // §6.2: the next window is polled even while our answer is pending (§6.6).
        list.extend((0..W).map(|n| address_of(&self.nhkr, peer, n)));
        list
    }

    /// §6.1. `hello_key`: the hello's header key (message 0 of chain 1 only). Returns the
    /// blobs and the record of the chain a sending-half DH step created (numbered `chain_id`).
    fn encrypt(
        &mut self,
        rng: &mut Rng,
        kind: u8,
        text: &[u8],
        floor: u32,
        id: [u8; 8],
        chain_id: usize,
        hello_key: Option<[u8; 32]>,
    ) -> (Vec<Blob>, Option<Value>) {
        let counted = kind != KIND_ACK;
        let mut record = None;
        if self.sending.is_none() || (counted && self.pending) {
            let private = rng.take::<32>();
            let remote = self.dhr.unwrap();
            let dh_out = dh(&private, &remote);
            let [rk, ck0, nhk] = kdf_rk(&self.rk, &dh_out);
            let pn = self.sending.as_ref().map_or(0, |s| s.n);
            let skip = std::mem::take(&mut self.next_chain_skip);
            self.chain_after_rollback = skip > 0;
            self.next_chain_from = None;
            let mut chain = SendChain {
                id: chain_id,
                ck: ck0,
                hk: self.nhks,
                n: 0,
                pn,
            };
            for _ in 0..skip {
                chain.ck = step(&chain.ck);
                chain.n += 1;
            }
            record = Some(json!({
                "chain": chain_id, "sender": self.party.name(),
                "ratchet_private": hex(&private), "ratchet_public": hex(&public(&private)),
                "remote_public": hex(&remote), "dh_output": hex(&dh_out),
                "root_key_in": hex(&self.rk), "root_key_out": hex(&rk),
                "chain_key": hex(&ck0), "next_header_key": hex(&nhk),
                "header_key": hex(&self.nhks), "previous_chain_length": pn,
                "skipped_positions": skip,
            }));
            self.rk = rk;
            self.nhks = nhk;
            self.dhs = private;
            self.pending = false;
            self.previous_root = None;
            self.sending = Some(chain);
        }
        let pieces: Vec<&[u8]> = if text.is_empty() {
            vec![&[][..]]
        } else {
            text.chunks(CAPACITY).collect()
        };
        let count = pieces.len() as u16;
        let first = self.stream.next_seq;
        let floor = floor.min(first);
        let (ack, bits, digest) = (
            self.stream.prefix,
            self.stream.bits(),
            self.stream.received_digest,
        );
        let prev = match self.stream.last_sealed {
            Some((s, r)) if s + 1 == first => r[..8].try_into().unwrap(),
            _ => [0; 8],
        };
        let me = self.party.role_byte();
        let public_key = public(&self.dhs);
        let mut out = Vec::new();
        for (index, piece) in pieces.iter().enumerate() {
            let seq = first + index as u32;
            let chain = self.sending.as_mut().unwrap();
            let n = chain.n;
            let hk = match hello_key {
                Some(k) if n == 0 => k,
                _ => chain.hk,
            };
            let (wk, address) = write_key(&hk, me, n);
            let header = header(&public_key, chain.pn, n);
            let f = Fields {
                seq,
                floor,
                ack,
                bits,
                digest,
                id,
                prev,
            };
            let payload = payload(kind, index as u16, count, piece, f);
            let z = rng.take::<32>();
            let sealed = seal(&hk, &chain.ck, &self.ad, &address, &header, &payload, &z);
            out.push(Blob {
                chain: chain.id,
                n,
                pn: chain.pn,
                kind,
                f,
                ck: chain.ck,
                hk,
                wk,
                address,
                header,
                payload,
                z,
                sealed: sealed.clone(),
            });
            chain.ck = step(&chain.ck);
            chain.n += 1;
            self.stream.sent.insert(seq, (sealed.r, counted, f.floor));
            self.stream.last_sealed = Some((seq, sealed.r));
            assert!(self.stream.sent.len() <= MAX_UNCONFIRMED);
        }
        self.stream.next_seq = first + u32::from(count);
        (out, record)
    }

    /// §6.5: moves the sending chain (and, while a send step is pending, the next one, by at
    /// most `NEXT_CHAIN_SKIP_MAX = W/2 − 1`).
    fn skip_sending(&mut self, count: u32) {
        if self.pending {
            // Every number from `next_chain_from` up to past the acknowledged ones may be a
            // lost blob on the next chain; unknown: this rollback's count.
            let lost = self
                .next_chain_from
                .map_or(count, |from| self.stream.next_seq.saturating_sub(from));
            self.next_chain_skip = self.next_chain_skip.max(lost.min(NEXT_CHAIN_SKIP_MAX));
        }
        // §6.5: a chain started past a rollback's skip moves at most to position W − 1.
        let count = match (&self.sending, self.pending, self.chain_after_rollback) {
            (Some(chain), false, true) => count.min(W - 1).saturating_sub(chain.n),
            _ => count,
        };
        if let Some(chain) = self.sending.as_mut() {
            for _ in 0..count {
                chain.ck = step(&chain.ck);
                chain.n += 1;
            }
        }
    }

    fn locate(&self, address: &[u8; 32]) -> Result<Slot, &'static str> {
        let peer = self.party.peer().role_byte();
        if let Some(rc) = &self.receiving
            && let Some(n) = (rc.nr..rc.nr + W).find(|&n| address_of(&rc.hk, peer, n) == *address)
        {
            return Ok(Slot::Current(n));
        }
        if let Some(n) = (0..W).find(|&n| address_of(&self.nhkr, peer, n) == *address) {
            return Ok(Slot::Next(n));
        }
        if let Some(i) = self.skipped.iter().position(|k| k.address == *address) {
            return Ok(Slot::Skipped(i));
        }
        if self.recent.contains(address) {
            return Err("Duplicate");
        }
        Err("UnknownAddress")
    }

    /// §6.3: on success the state moves on; on error it is unchanged.
    fn decrypt(&mut self, address: &[u8; 32], blob: &[u8]) -> Result<Outcome, &'static str> {
        if blob.len() != 1024 {
            return Err("WrongLength");
        }
        let before = self.poll_list();
        let mut s = self.clone();
        let remote_before = s.dhr;
        let confirmed_before = s.stream.confirmed;
        let peer = s.party.peer().role_byte();
        let stored_at = s.events + 1;
        let mut new_skipped = Vec::new();
        let (fragment, ratchet, n) = match s.locate(address)? {
            Slot::Skipped(i) => {
                let k = s.skipped[i].clone();
                let (ratchet, _) =
                    open_header(&k.hk, &s.ad, address, blob, k.n).ok_or("HeaderAuthentication")?;
                // §6.6: the key of the chain the header names (a lost chain's or its fork's).
                let named = s
                    .skipped
                    .iter()
                    .find(|k| k.address == *address && k.ratchet == ratchet)
                    .cloned();
                if let Some(k) = named {
                    let fragment = open_body(&k.mk, &s.ad, address, blob)?;
                    s.skipped.retain(|e| e.address != *address);
                    (fragment, k.ratchet, k.n)
                } else {
                    // §6.6: a fork read first where the current chain skipped.
                    let rc = s.receiving.clone().ok_or("InconsistentHeader")?;
                    // The current chain's key at this address (a chain an earlier fork
                    // replaced may hold one there too).
                    let skipped_here = s
                        .skipped
                        .iter()
                        .any(|e| e.address == *address && e.ratchet == rc.ratchet && e.n == k.n);
                    let previous = match s.previous_root {
                        Some(p) if s.pending && skipped_here && !s.abandoned.contains(&ratchet) => {
                            p
                        }
                        _ => return Err("InconsistentHeader"),
                    };
                    let [rk, ck0, nhk] = kdf_rk(&previous, &dh(&s.dhs, &ratchet));
                    let mut ck = ck0;
                    let mut mk = None;
                    for i in 0..(k.n + 1).max(rc.nr) {
                        let replaced_skipped = s
                            .skipped
                            .iter()
                            .find(|e| e.ratchet == rc.ratchet && e.n == i)
                            .map(|e| e.address);
                        if i == k.n {
                            mk = Some(message_key(&ck));
                        } else if let Some(address) = replaced_skipped {
                            new_skipped.push(SkippedKey {
                                address,
                                hk: rc.hk,
                                mk: message_key(&ck),
                                ratchet,
                                n: i,
                                stored_at,
                            });
                        }
                        ck = step(&ck);
                    }
                    let fragment = open_body(&mk.ok_or("UnknownAddress")?, &s.ad, address, blob)
                        .map_err(|err| match err {
                            "BodyAuthentication" => "InconsistentHeader",
                            other => other,
                        })?;
                    if s.abandoned.len() == MAX_ABANDONED_KEYS {
                        s.abandoned.remove(0);
                    }
                    s.abandoned.push(rc.ratchet);
                    s.rk = rk;
                    s.nhkr = nhk;
                    s.dhr = Some(ratchet);
                    s.skipped.retain(|e| e.address != *address);
                    s.receiving = Some(RecvChain {
                        ratchet,
                        ck,
                        hk: rc.hk,
                        nr: rc.nr,
                    });
                    (fragment, ratchet, k.n)
                }
            }
            Slot::Current(n) => {
                let rc = s.receiving.clone().unwrap();
                let (ratchet, _) =
                    open_header(&rc.hk, &s.ad, address, blob, n).ok_or("HeaderAuthentication")?;
                let (start_ck, start_n, keep_from) = if ratchet == rc.ratchet {
                    (rc.ck, rc.nr, rc.nr)
                } else {
                    // §6.6: a fork.
                    if s.abandoned.contains(&ratchet) {
                        return Err("InconsistentHeader");
                    }
                    let previous = match s.previous_root {
                        Some(p) if s.pending => p,
                        _ => return Err("PeerRestored"),
                    };
                    let [rk, ck0, nhk] = kdf_rk(&previous, &dh(&s.dhs, &ratchet));
                    let old = s.dhr.unwrap();
                    if s.abandoned.len() == MAX_ABANDONED_KEYS {
                        s.abandoned.remove(0);
                    }
                    s.abandoned.push(old);
                    s.rk = rk;
                    s.nhkr = nhk;
                    s.dhr = Some(ratchet);
                    (ck0, 0, rc.nr)
                };
                let mut ck = start_ck;
                for i in start_n..n {
                    // §6.6: before the window, a fork's key is kept only where the chain it
                    // replaces holds a skipped key (a position that chain never used).
                    let replaced_skipped = (ratchet != rc.ratchet && i < keep_from)
                        .then(|| {
                            s.skipped
                                .iter()
                                .find(|k| k.ratchet == rc.ratchet && k.n == i)
                        })
                        .flatten()
                        .map(|k| k.address);
                    if let Some(address) = replaced_skipped {
                        new_skipped.push(SkippedKey {
                            address,
                            hk: rc.hk,
                            mk: message_key(&ck),
                            ratchet,
                            n: i,
                            stored_at,
                        });
                    } else if i >= keep_from {
                        new_skipped.push(SkippedKey {
                            address: address_of(&rc.hk, peer, i),
                            hk: rc.hk,
                            mk: message_key(&ck),
                            ratchet,
                            n: i,
                            stored_at,
                        });
                    }
                    ck = step(&ck);
                }
                let fragment = open_body(&message_key(&ck), &s.ad, address, blob)?;
                s.receiving = Some(RecvChain {
                    ratchet,
                    ck: step(&ck),
                    hk: rc.hk,
                    nr: n + 1,
                });
                // §6.6: past FORK_WINDOW messages read on the chain, previous_root is deleted.
                if ratchet == rc.ratchet && n + 1 > FORK_WINDOW {
                    s.previous_root = None;
                }
                (fragment, ratchet, n)
            }
            Slot::Next(n) => {
                let (ratchet, pn) =
                    open_header(&s.nhkr, &s.ad, address, blob, n).ok_or("HeaderAuthentication")?;
                // §6.6: the peer answered a key of ours this state does not hold.
                if s.pending && s.receiving.is_some() {
                    return Err("UnreadableAnswer");
                }
                if s.dhr == Some(ratchet) {
                    return Err("InconsistentHeader");
                }
                if let Some(rc) = &s.receiving {
                    let mut ck = rc.ck;
                    // §6.3 step 5: a `PN` below `Nr` keeps the old window instead.
                    let end = if pn < rc.nr {
                        rc.nr + W
                    } else {
                        pn.min(rc.nr + MAX_SKIP)
                    };
                    for i in rc.nr..end {
                        new_skipped.push(SkippedKey {
                            address: address_of(&rc.hk, peer, i),
                            hk: rc.hk,
                            mk: message_key(&ck),
                            ratchet: rc.ratchet,
                            n: i,
                            stored_at,
                        });
                        ck = step(&ck);
                    }
                }
                let [rk, ck0, nhk] = kdf_rk(&s.rk, &dh(&s.dhs, &ratchet));
                let mut ck = ck0;
                for i in 0..n {
                    new_skipped.push(SkippedKey {
                        address: address_of(&s.nhkr, peer, i),
                        hk: s.nhkr,
                        mk: message_key(&ck),
                        ratchet,
                        n: i,
                        stored_at,
                    });
                    ck = step(&ck);
                }
                let answered = s.receiving.is_some();
                let fragment = open_body(&message_key(&ck), &s.ad, address, blob).map_err(|e| {
                    if e == "BodyAuthentication" && answered {
                        "UnreadableAnswer"
                    } else {
                        e
                    }
                })?;
                s.receiving = Some(RecvChain {
                    ratchet,
                    ck: step(&ck),
                    hk: s.nhkr,
                    nr: n + 1,
                });
                s.nhkr = nhk;
                s.previous_root = Some(s.rk);
                s.rk = rk;
                s.dhr = Some(ratchet);
                s.pending = true;
                (fragment, ratchet, n)
            }
        };
        // Commit bookkeeping (§6.3 step 7).
        s.skipped.extend(new_skipped);
        while s.skipped.len() > MAX_SKIPPED_KEYS {
            s.skipped.remove(0);
        }
        s.events += 1;
        let now = s.events;
        s.skipped.retain(|k| k.stored_at + RETENTION > now);
        if s.recent.len() == DUPLICATE_MEMORY {
            s.recent.pop_front();
        }
        s.recent.push_back(*address);
        // The stream (§6.4, §6.5).
        let r: [u8; 16] = blob[..16].try_into().unwrap();
        let f = fragment.f;
        let counted = fragment.kind != KIND_ACK;
        let evidence =
            s.stream
                .follows_other_blob(&f, fragment.kind, fragment.index, fragment.count);
        let rolled_back = evidence.is_some();
        // §6.5: past every peer blob received so far (checked before this one is taken).
        let newest = f.seq >= s.stream.prefix && s.stream.kept.keys().all(|&k| k < f.seq);
        if rolled_back {
            // §6.4: a refusal at or past the prefix marks the digest.
            if f.seq >= s.stream.prefix {
                s.stream.received_digest = extend_digest(&s.stream.received_digest, u32::MAX, &r);
            }
            s.stream.remember(f.seq, &r, Hedge::Refused, None);
        } else {
            let took = s.stream.receive(f.floor, f.seq, r, counted);
            let state = match (counted, took) {
                (true, true) => Some(Hedge::Counted),
                (true, false) => Some(Hedge::Read),
                (false, true) => Some(Hedge::AckOnly),
                (false, false) => None,
            };
            if let Some(state) = state {
                let place =
                    (fragment.kind == KIND_DATA).then_some((fragment.index, fragment.count));
                s.stream.remember(f.seq, &r, state, place);
            }
        }
        let (rollback, skip) = s.stream.acknowledged(f.ack, f.bits, f.digest, newest);
        // §6.5: a new chain of the peer's (our send step pending): a lost copy's blobs on the
        // chain that answers it come after what its first blob acknowledged (read first:
        // after what the peer had confirmed before this blob).
        if s.dhr != remote_before {
            s.next_chain_from = Some(if n == 0 { f.ack } else { confirmed_before });
        }
        if skip > 0 {
            s.skip_sending(skip.min(MAX_ROLLBACK_SKIP));
        }
        // §6.5: after any rollback (a hidden one too), the next chain skips what the peer saw
        // of a lost copy's blobs on it.
        if rollback.is_some()
            && s.pending
            && let Some(from) = s.next_chain_from
        {
            let bits_top = (f.bits != 0).then(|| f.ack + 1 + (63 - f.bits.leading_zeros()));
            let seen_end = bits_top.map_or(f.ack, |top| top + 1);
            let lost = seen_end.saturating_sub(from).min(NEXT_CHAIN_SKIP_MAX);
            s.next_chain_skip = s.next_chain_skip.max(lost);
        }
        // Reassembly (§6.7) and duplicate suppression.
        let mut plaintext = None;
        if fragment.kind == KIND_DATA && !rolled_back {
            plaintext = s.reassemble(ratchet, n, &fragment, now);
        }
        let duplicate = plaintext.is_some() && !s.stream.first_time(f.id);
        if duplicate {
            plaintext = None;
        }
        s.partial.retain(|p| p.started_at + RETENTION > now);
        let after = s.poll_list();
        let retired = before
            .iter()
            .filter(|a| !after.contains(a))
            .copied()
            .collect();
        *self = s;
        Ok(Outcome {
            kind: fragment.kind,
            seq: f.seq,
            plaintext,
            duplicate,
            rollback,
            rolled_back,
            retired,
        })
    }

    fn reassemble(&mut self, ratchet: [u8; 32], n: u32, f: &Fragment, now: u64) -> Option<Vec<u8>> {
        if f.count == 1 {
            return Some(f.data.clone());
        }
        let start = n.checked_sub(u32::from(f.index))?;
        let count = usize::from(f.count);
        let found = self
            .partial
            .iter()
            .position(|p| p.ratchet == ratchet && p.start == start);
        let at = match found {
            Some(i) if self.partial[i].parts.len() == count => i,
            other => {
                if let Some(i) = other {
                    self.partial.remove(i);
                }
                if self.partial.len() == MAX_PENDING_MESSAGES {
                    self.partial.remove(0);
                }
                self.partial.push(Partial {
                    ratchet,
                    start,
                    started_at: now,
                    parts: vec![None; count],
                });
                self.partial.len() - 1
            }
        };
        self.partial[at].parts[usize::from(f.index)] = Some(f.data.clone());
        if self.partial[at].parts.iter().all(Option::is_some) {
            let done = self.partial.remove(at);
            return Some(done.parts.into_iter().flatten().flatten().collect());
        }
        None
    }
}

// ------------------------------------------------------------------------ the script ----

enum Step {
    /// A new message (fresh message id).
    Send(Party, &'static str, Vec<u8>),
    /// `encrypt_resend` of an earlier message: same text, same message id.
    Resend(Party, &'static str, &'static str),
    SendAck(Party, &'static str),
    /// `abandon` every seq of a message (it never reached the mailbox).
    Abandon(Party, &'static str),
    /// §8: the caller's outbox lets go of these messages' blobs (stored; their messages go
    /// again), so they no longer hold its floor.
    Settle(Party, &'static [&'static str]),
    Deliver(Party, &'static str, usize),
    DeliverAll(Party, &'static str),
    Snapshot(Party),
    Restore(Party),
}

fn pattern(len: usize, salt: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i * 31 + 7 + salt) as u8).collect()
}

/// Invite, join, accept happen first; then these steps.
fn script() -> Vec<Step> {
    use Party::*;
    use Step::*;
    let t = |s: &str| s.as_bytes().to_vec();
    vec![
        Send(Joiner, "j1", t("hello inviter")),
        Send(Joiner, "j2", t("second message")),
        Deliver(Inviter, "j2", 0), // out of order
        Deliver(Inviter, "j1", 0),
        Send(Inviter, "i1", t("hi joiner (DH step)")),
        Send(Inviter, "i2", t("this one is lost")),
        Send(Inviter, "i3", t("third from inviter")),
        Deliver(Joiner, "i1", 0),
        Deliver(Joiner, "i3", 0), // i2 is never delivered
        Send(Joiner, "j3", t("reply (DH step)")),
        Send(Joiner, "long", pattern(2000, 0)), // three blobs
        Deliver(Inviter, "long", 2),
        Deliver(Inviter, "j3", 0), // confirms i1 (i3 only by bit: not confirmed)
        Deliver(Inviter, "long", 0),
        Deliver(Inviter, "long", 1),
        // The inviter gives i2 up: it leaves the digest, and the floor passes it.
        Abandon(Inviter, "i2"),
        Send(Inviter, "i4", t("done (i2 abandoned)")),
        Deliver(Joiner, "i4", 0),
        // An acknowledgement-only blob: it stays on the joiner's chain 3 although a send step
        // is pending.
        SendAck(Joiner, "ack1"),
        Deliver(Inviter, "ack1", 0), // confirms i1, i3, i4
        Send(Joiner, "empty", Vec::new()),
        Send(Joiner, "full", pattern(CAPACITY, 1)), // exactly one fragment
        Send(Joiner, "full+1", pattern(CAPACITY + 1, 2)), // two
        Deliver(Inviter, "empty", 0),
        Deliver(Inviter, "full", 0),
        DeliverAll(Inviter, "full+1"),
        Send(Inviter, "max", pattern(MAX_MESSAGE_LEN, 3)), // 64 fragments
        DeliverAll(Joiner, "max"),
        // Rollback past what the restored state sent: the inviter's state is saved, it sends
        // three blobs that the joiner reads, then it is restored and seals another text in the
        // first one's slot (same message key and address, different z hence different r), and
        // learns from the joiner's acknowledgement that it lost blobs.
        Snapshot(Inviter),
        Send(Inviter, "lost1", t("sent by the state that is lost, 1")),
        Send(Inviter, "lost2", t("sent by the state that is lost, 2")),
        Send(Inviter, "lost3", t("sent by the state that is lost, 3")),
        Send(Joiner, "k0", t("joiner, before reading them")),
        Deliver(Joiner, "lost1", 0),
        Deliver(Joiner, "lost2", 0),
        Deliver(Joiner, "lost3", 0),
        Send(Joiner, "k1", t("joiner, after reading them")),
        Restore(Inviter),
        Send(
            Inviter,
            "lost1-again",
            t("another text from the restored state"),
        ),
        Deliver(Inviter, "k0", 0),
        // Rollback { lost_blobs: 2 }; a send step is pending. k0, the first blob of the chain
        // the next one answers, acknowledged up to lost1: every number from lost1's on
        // (lost1-again, lost2, lost3) may be a lost blob there (§6.5).
        Deliver(Inviter, "k1", 0),
        Send(Inviter, "after", t("after the rollback")), // its chain starts at n = 3
        Deliver(Joiner, "after", 0),
        // Hidden rollback: the restored joiner sends more than it lost, at addresses the
        // inviter already read; only the digest shows it.
        Send(Joiner, "p", t("joiner, before its backup")),
        Deliver(Inviter, "p", 0),
        SendAck(Inviter, "ack-p"), // on the inviter's current chain while its step is pending
        Deliver(Joiner, "ack-p", 0), // confirms p
        Snapshot(Joiner),
        Send(Joiner, "m1", t("lost with the joiner's state, 1")),
        Send(Joiner, "m2", t("lost with the joiner's state, 2")),
        Deliver(Inviter, "m1", 0),
        Deliver(Inviter, "m2", 0),
        Restore(Joiner),
        Send(Joiner, "h1", t("restored joiner, 1 (never read)")),
        Send(Joiner, "h2", t("restored joiner, 2 (never read)")),
        Send(Joiner, "h3", t("restored joiner, 3")),
        Deliver(Inviter, "h3", 0), // refused: it follows h2, which the inviter never received
        Send(Inviter, "ok", t("inviter, after m1, m2 and h3")),
        Deliver(Joiner, "ok", 0), // Rollback { lost_blobs: 0, unconfirmed_from: seq of m1 }
        Settle(Joiner, &["h1", "h2", "h3"]),
        Resend(Joiner, "h1-again", "h1"),
        Resend(Joiner, "h2-again", "h2"),
        Resend(Joiner, "h3-again", "h3"),
        Deliver(Inviter, "h1-again", 0),
        Deliver(Inviter, "h2-again", 0),
        Deliver(Inviter, "h3-again", 0), // shown now, after h1 and h2
        Resend(Joiner, "h3-twice", "h3"),
        Deliver(Inviter, "h3-twice", 0), // duplicate: h3-again was shown already
        // Fork: the inviter is restored to before its own DH step, which the joiner has read
        // and only acknowledged; the restored inviter steps again with a fresh key.
        Snapshot(Inviter),
        Send(Inviter, "L0", t("lost chain, 0")),
        Send(Inviter, "L1", t("lost chain, 1")),
        Send(Inviter, "L2", t("lost chain, 2")),
        Deliver(Joiner, "L0", 0),
        SendAck(Joiner, "ack-L0"), // stays on the joiner's chain: previous_root is kept
        Restore(Inviter),
        Deliver(Inviter, "ack-L0", 0), // Rollback { lost_blobs: 1 }; next chain skips 1
        Send(Inviter, "F", t("restored inviter, new ratchet key")),
        Deliver(Joiner, "F", 0), // a fork, followed
        Send(Joiner, "R", t("joiner answers the fork")),
        Deliver(Inviter, "R", 0),
    ]
}

// ------------------------------------------------------------------- the conversation ----

struct Model {
    rngs: BTreeMap<&'static str, Rng>,
    states: BTreeMap<&'static str, State>,
    snapshots: BTreeMap<&'static str, State>,
    chains: Vec<Value>,
    messages: Vec<Value>,
    blobs: BTreeMap<String, Vec<Blob>>,
    texts: BTreeMap<String, Vec<u8>>,
    ids: BTreeMap<String, [u8; 8]>,
}

impl Model {
    fn record(&mut self, name: &str, sender: Party, blobs: &[Blob]) {
        for (index, b) in blobs.iter().enumerate() {
            let s = &b.sealed;
            self.messages.push(json!({
                "message": name, "fragment_index": index, "fragment_count": blobs.len(),
                "sender": sender.name(), "chain": b.chain, "n": b.n, "pn": b.pn,
                "kind": b.kind, "seq": b.f.seq, "floor": b.f.floor, "ack": b.f.ack,
                "ack_bits": format!("{:016x}", b.f.bits), "ack_digest": hex(&b.f.digest),
                "message_id": hex(&b.f.id),
                "chain_key": hex(&b.ck), "message_key": hex(&s.mk), "next_chain_key": hex(&step(&b.ck)),
                "header_key": hex(&b.hk), "write_key": hex(&b.wk), "address": hex(&b.address),
                "header": hex(&b.header), "padded_payload": hex(&b.payload),
                "z": hex(&b.z), "r": hex(&s.r), "header_key_hedged": hex(&s.hkr), "message_key_hedged": hex(&s.mkr),
                "encrypted_header": hex(&s.encrypted_header),
                "body_associated_data": hex(&s.body_ad), "blob": hex(&s.blob),
            }));
        }
        self.blobs.insert(name.to_owned(), blobs.to_vec());
    }

    /// Encrypts for `party` with the client's floor; returns the floor.
    fn send(&mut self, party: Party, name: &str, kind: u8, text: &[u8], id: [u8; 8]) -> u32 {
        let chain_id = self.chains.len() + 1;
        let rng = self.rngs.get_mut(party.name()).unwrap();
        let state = self.states.get_mut(party.name()).unwrap();
        let floor = state.stream.outbox_floor();
        let (blobs, chain) = state.encrypt(rng, kind, text, floor, id, chain_id, None);
        self.chains.extend(chain);
        self.record(name, party, &blobs);
        floor
    }
}

fn rollback_json(r: Option<(u32, u32)>) -> Value {
    r.map_or(
        Value::Null,
        |(lost, from)| json!({"lost_blobs": lost, "unconfirmed_from": from}),
    )
}

/// The invite keys (§5.1).
fn invite_keys(secret: &[u8; 32], b0: &[u8; 32], url: &str) -> (Vec<u8>, Vec<[u8; 32]>) {
    let info = [
        &b"hush/v2/invite"[..],
        b0,
        &EXPIRES_AT.to_be_bytes(),
        url.as_bytes(),
    ]
    .concat();
    let okm = split32(&hkdf(b"", secret, &info, 96));
    (info, okm)
}

fn invite_bytes(secret: &[u8; 32], b0: &[u8; 32], url: &str) -> Vec<u8> {
    [
        &[2u8][..],
        secret,
        b0,
        &EXPIRES_AT.to_be_bytes(),
        url.as_bytes(),
    ]
    .concat()
}

fn safety_code(secret: &[u8; 32], b0: &[u8; 32], a1: &[u8; 32]) -> String {
    let d = sha(&[b"hush/v2/safety-code", secret, b0, a1]);
    let code = u128::from_be_bytes(d[..16].try_into().unwrap()) % 100_000_000_000_000_000_000;
    format!("{code:020}")
}

const ZERO_FIELDS: Fields = Fields {
    seq: 0,
    floor: 0,
    ack: 0,
    bits: 0,
    digest: [0; 8],
    id: NO_ID,
    prev: [0; 8],
};

/// The same invite (secret, key, expiry) with a mailbox URL, joined by the same joiner seed:
/// every key and the hello's address differ.
/// §3.8: the inviter's last snapshot (the state the script restores) sealing a message with
/// its generator rewound too (a VM snapshot, seed `REWOUND_SEED` each time): a different
/// text gives the same `z` but another hedge `r` (so other keys), the same text gives the
/// byte-identical blob.
fn rewound_generator(snapshot: &State) -> Value {
    let seal = |text: &[u8]| {
        let mut state = snapshot.clone();
        let mut rng = Rng::new(REWOUND_SEED);
        let id = rng.message_id(text);
        let floor = state.stream.outbox_floor();
        let (blobs, _) = state.encrypt(&mut rng, KIND_DATA, text, floor, id, 0, None);
        blobs.into_iter().next().unwrap()
    };
    let (first, other, again) = (
        seal(b"first text"),
        seal(b"other text"),
        seal(b"first text"),
    );
    assert_eq!(first.address, other.address, "one state, one slot");
    assert_eq!(first.z, other.z, "the rewound generator repeats z");
    assert_ne!(
        first.sealed.r, other.sealed.r,
        "the plaintext changes the hedge"
    );
    assert_ne!(first.sealed.mkr, other.sealed.mkr);
    assert_ne!(first.sealed.hkr, other.sealed.hkr);
    assert_eq!(
        first.sealed.blob, again.sealed.blob,
        "the same text: the same bytes"
    );
    let blob = |b: &Blob| json!({"z": hex(&b.z), "r": hex(&b.sealed.r), "hkr": hex(&b.sealed.hkr), "mkr": hex(&b.sealed.mkr), "address": hex(&b.address), "blob": hex(&b.sealed.blob)});
    json!({
        "description": "the inviter's last snapshot (restored by the script) seals with the generator rewound to seed rng_seed each time: 'first text', 'other text', then 'first text' again",
        "rng_seed": REWOUND_SEED,
        "first": blob(&first), "other": blob(&other), "first_again": blob(&again),
    })
}

fn url_variant(secret: &[u8; 32], inviter_key: &[u8; 32]) -> Value {
    let b0 = public(inviter_key);
    let (info, okm) = invite_keys(secret, &b0, VARIANT_URL);
    let (sk, hello_key, ad) = (okm[0], okm[1], okm[2]);
    let mut joiner = Rng::new(JOINER_SEED);
    let a1 = joiner.take::<32>();
    let dh0 = dh(&a1, &b0);
    let first = split32(&hkdf(&sk, &dh0, b"hush/v2/first-header-keys", 64));
    let [_, ck, _] = kdf_rk(&sk, &dh0);
    let (wk, address) = write_key(&hello_key, 0, 0);
    let header = header(&public(&a1), 0, 0);
    let payload = payload(KIND_HELLO, 0, 1, &[], ZERO_FIELDS);
    let z = joiner.take::<32>();
    let s = seal(&hello_key, &ck, &ad, &address, &header, &payload, &z);
    let bytes = invite_bytes(secret, &b0, VARIANT_URL);
    json!({
        "mailbox_url": VARIANT_URL, "kdf_info": hex(&info), "sk": hex(&sk), "hello_key": hex(&hello_key),
        "associated_data": hex(&ad), "hk1": hex(&first[0]), "hk2": hex(&first[1]),
        "bytes": hex(&bytes), "link_fragment": protocol::base64url::encode(&bytes),
        "hello_write_key": hex(&wk), "hello_address": hex(&address), "hello_z": hex(&z), "hello_r": hex(&s.r),
        "hello_blob": hex(&s.blob), "safety_code": safety_code(secret, &b0, &public(&a1)),
    })
}

fn empty_state(party: Party, ad: [u8; 32]) -> State {
    State {
        party,
        ad,
        rk: [0; 32],
        dhs: [0; 32],
        dhr: None,
        sending: None,
        pending: false,
        nhks: [0; 32],
        receiving: None,
        nhkr: [0; 32],
        skipped: Vec::new(),
        recent: VecDeque::new(),
        events: 0,
        previous_root: None,
        abandoned: Vec::new(),
        next_chain_skip: 0,
        chain_after_rollback: false,
        next_chain_from: None,
        stream: Stream::default(),
        partial: Vec::new(),
    }
}

/// Everything the negative vectors need from the conversation.
struct Run {
    model: Model,
    /// `history[i]`: both parties' states right before event `i`.
    history: Vec<BTreeMap<&'static str, State>>,
    /// "action:party:message" → index of its (first) event.
    at: BTreeMap<String, usize>,
}

/// The restore signal (§6.9) of each party's root keys at the end of the script: `RS`, its
/// write key, address and 1,024-byte blob, for `RK` and, while held, `previous_root`.
fn restore_signal_vectors(model: &Model) -> Value {
    let signal = |rk: &[u8; 32], role: u8| {
        let rs = hmac(rk, &[b"hush/v2/restore-signal-key"]);
        let wk = hmac(&rs, &[b"hush/v2/restore-signal-write-key", &[role]]);
        let address = sha(&[b"hush/v1/address", &wk]);
        let blob = hkdf(&rs, &[role], b"hush/v2/restore-signal-blob", 1024);
        json!({"rk": hex(rk), "rs": hex(&rs), "role": role, "write_key": hex(&wk),
               "address": hex(&address), "blob": hex(&blob)})
    };
    let parties: Vec<Value> = ["joiner", "inviter"]
        .iter()
        .map(|name| {
            let state = &model.states[name];
            let role = if *name == "joiner" { 0u8 } else { 1u8 };
            let mut signals = vec![signal(&state.rk, role)];
            signals.extend(state.previous_root.as_ref().map(|rk| signal(rk, role)));
            json!({"party": name, "signals": signals})
        })
        .collect();
    json!({
        "description": "each party's restore signals at the end of the script: under RK, then under previous_root while held (the implementation lists up to two earlier root keys after these). RS = HMAC(RK, \"hush/v2/restore-signal-key\"); write_key = HMAC(RS, \"hush/v2/restore-signal-write-key\" || role); address = SHA-256(\"hush/v1/address\" || write_key); blob = HKDF-SHA256(salt = RS, ikm = role, info = \"hush/v2/restore-signal-blob\", L = 1024). The peer recognises each blob at its address (its first watched address is that of RK).",
        "parties": parties,
    })
}

fn reference() -> (Value, Value) {
    let mut inviter_rng = Rng::new(INVITER_SEED);
    let secret = inviter_rng.take::<32>();
    let inviter_key = inviter_rng.take::<32>();
    let b0 = public(&inviter_key);
    let (info, okm) = invite_keys(&secret, &b0, "");
    let (sk, hello_key, ad) = (okm[0], okm[1], okm[2]);
    let invite_bytes = invite_bytes(&secret, &b0, "");
    // Join (§5.2): chain 1 and the hello (kind 0x01, seq 0, under hello_key).
    let mut joiner_rng = Rng::new(JOINER_SEED);
    let a1 = joiner_rng.take::<32>();
    let dh0 = dh(&a1, &b0);
    let first = split32(&hkdf(&sk, &dh0, b"hush/v2/first-header-keys", 64));
    let (hk1, hk2) = (first[0], first[1]);
    let [rk, cks, nhks] = kdf_rk(&sk, &dh0);
    let chain1 = json!({
        "chain": 1, "sender": "joiner",
        "ratchet_private": hex(&a1), "ratchet_public": hex(&public(&a1)),
        "remote_public": hex(&b0), "dh_output": hex(&dh0),
        "root_key_in": hex(&sk), "root_key_out": hex(&rk),
        "chain_key": hex(&cks), "next_header_key": hex(&nhks),
        "header_key": hex(&hk1), "previous_chain_length": 0, "skipped_positions": 0,
    });
    let mut joiner = State {
        rk,
        dhs: a1,
        dhr: Some(b0),
        sending: Some(SendChain {
            id: 1,
            ck: cks,
            hk: hk1,
            n: 0,
            pn: 0,
        }),
        nhks,
        nhkr: hk2,
        ..empty_state(Party::Joiner, ad)
    };
    let (hello, _) = joiner.encrypt(
        &mut joiner_rng,
        KIND_HELLO,
        &[],
        0,
        NO_ID,
        1,
        Some(hello_key),
    );
    let mut model = Model {
        rngs: BTreeMap::from([("inviter", inviter_rng), ("joiner", joiner_rng)]),
        states: BTreeMap::from([("joiner", joiner)]),
        snapshots: BTreeMap::new(),
        chains: vec![chain1],
        messages: Vec::new(),
        blobs: BTreeMap::new(),
        texts: BTreeMap::new(),
        ids: BTreeMap::new(),
    };
    model.record("hello", Party::Joiner, &hello);
    let code = safety_code(&secret, &b0, &public(&a1));
    // Accept (§5.3).
    let mut history = vec![model.states.clone()];
    let hello = &model.blobs["hello"][0];
    let (joiner_key, _) =
        open_header(&hello_key, &ad, &hello.address, &hello.sealed.blob, 0).unwrap();
    let accept_dh = dh(&inviter_key, &joiner_key);
    let [rk, ck0, nhkr] = kdf_rk(&sk, &accept_dh);
    let hello_fragment =
        open_body(&message_key(&ck0), &ad, &hello.address, &hello.sealed.blob).unwrap();
    assert_eq!(hello_fragment.kind, KIND_HELLO);
    let mut inviter = State {
        rk,
        dhs: inviter_key,
        dhr: Some(joiner_key),
        pending: true,
        nhks: hk2,
        receiving: Some(RecvChain {
            ratchet: joiner_key,
            ck: step(&ck0),
            hk: hk1,
            nr: 1,
        }),
        nhkr,
        recent: VecDeque::from([hello.address]),
        events: 1,
        ..empty_state(Party::Inviter, ad)
    };
    inviter.stream.receive(
        hello_fragment.f.floor,
        hello_fragment.f.seq,
        hello.sealed.r,
        true,
    );
    inviter
        .stream
        .remember(hello_fragment.f.seq, &hello.sealed.r, Hedge::Counted, None);
    let mut events = vec![json!({
        "action": "accept", "to": "inviter", "message": "hello", "fragment": 0,
        "stream_after": inviter.stream.json(),
        "poll_addresses_after": inviter.poll_list().iter().map(|a| hex(a)).collect::<Vec<_>>(),
    })];
    model.states.insert("inviter", inviter);
    let mut at = BTreeMap::new();
    for step in script() {
        history.push(model.states.clone());
        let index = events.len();
        let event = match step {
            Step::Send(party, name, text) => {
                let id = model.rngs.get_mut(party.name()).unwrap().message_id(&text);
                let floor = model.send(party, name, KIND_DATA, &text, id);
                model.texts.insert(name.to_owned(), text.clone());
                model.ids.insert(name.to_owned(), id);
                at.insert(format!("send:{}:{name}", party.name()), index);
                json!({"action": "send", "from": party.name(), "message": name, "plaintext": hex(&text), "floor": floor, "message_id": hex(&id)})
            }
            Step::Resend(party, name, of) => {
                let (text, id) = (model.texts[of].clone(), model.ids[of]);
                let floor = model.send(party, name, KIND_DATA, &text, id);
                model.texts.insert(name.to_owned(), text.clone());
                json!({"action": "resend", "from": party.name(), "message": name, "resend_of": of, "plaintext": hex(&text), "floor": floor, "message_id": hex(&id)})
            }
            Step::SendAck(party, name) => {
                let floor = model.send(party, name, KIND_ACK, &[], NO_ID);
                json!({"action": "send_acknowledgement", "from": party.name(), "message": name, "floor": floor})
            }
            Step::Abandon(party, name) => {
                let seqs: Vec<u32> = model.blobs[name].iter().map(|b| b.f.seq).collect();
                let stream = &mut model.states.get_mut(party.name()).unwrap().stream;
                for seq in &seqs {
                    // §6.4: it leaves the digest; the blob after it still names it.
                    if let Some(entry) = stream.sent.get_mut(seq) {
                        entry.1 = false;
                    }
                }
                json!({"action": "abandon", "party": party.name(), "message": name, "seqs": seqs})
            }
            Step::Settle(party, names) => {
                let seqs: Vec<u32> = names
                    .iter()
                    .flat_map(|name| model.blobs[*name].iter().map(|b| b.f.seq))
                    .collect();
                let stream = &mut model.states.get_mut(party.name()).unwrap().stream;
                stream.settled.extend(seqs.iter().copied());
                json!({"action": "settle", "party": party.name(), "messages": names, "seqs": seqs})
            }
            Step::Snapshot(party) => {
                let s = model.states[party.name()].clone();
                model.snapshots.insert(party.name(), s);
                json!({"action": "snapshot", "party": party.name()})
            }
            Step::Restore(party) => {
                let s = model.snapshots[party.name()].clone();
                model.states.insert(party.name(), s);
                json!({"action": "restore", "party": party.name()})
            }
            Step::Deliver(party, name, _) | Step::DeliverAll(party, name) => {
                let fragments: Vec<usize> = match step {
                    Step::Deliver(_, _, f) => vec![f],
                    _ => (0..model.blobs[name].len()).collect(),
                };
                at.entry(format!("deliver:{}:{name}", party.name()))
                    .or_insert(index);
                let mut retired = Vec::new();
                let mut rollback = None;
                let mut last = None;
                for &f in &fragments {
                    let blob = model.blobs[name][f].clone();
                    let state = model.states.get_mut(party.name()).unwrap();
                    let outcome = state
                        .decrypt(&blob.address, &blob.sealed.blob)
                        .unwrap_or_else(|e| panic!("model: {name} to {}: {e}", party.name()));
                    retired.extend(outcome.retired.iter().copied());
                    rollback = rollback.or(outcome.rollback);
                    last = Some(outcome);
                }
                let last = last.unwrap();
                let state = &model.states[party.name()];
                json!({
                    "action": if fragments.len() == 1 { "deliver" } else { "deliver_all" },
                    "to": party.name(), "message": name,
                    "fragment": if fragments.len() == 1 { json!(fragments[0]) } else { Value::Null },
                    "plaintext": last.plaintext.as_ref().map_or(Value::Null, |p| Value::String(hex(p))),
                    "duplicate": last.duplicate,
                    "peer_rolled_back": last.rolled_back,
                    "kind": kind_name(last.kind), "seq": last.seq,
                    "rollback": rollback_json(rollback),
                    "stream_after": state.stream.json(),
                    "retired": retired.iter().map(|a| hex(a)).collect::<Vec<_>>(),
                    "poll_addresses_after": state.poll_list().iter().map(|a| hex(a)).collect::<Vec<_>>(),
                })
            }
        };
        events.push(event);
    }
    let run = Run { model, history, at };
    check_script_claims(&run, &events);
    let negative = negative_vectors(&run);
    let model = run.model;
    let conversation = json!({
        "description": "Hush v2 scripted conversation: invite and join; messages both ways; DH ratchet steps in each direction; out-of-order delivery (j2 before j1; long#2 first); a lost message (i2) that its sender abandons (abandon, then the floor passes it); a three-blob message (long); acknowledgement-only blobs that stay on the current sending chain while a send step is pending (ack1, ack-p, ack-L0); boundary sizes (empty, 885 = one full fragment, 886, 56640 = 64 fragments); confirmations (acknowledged = the confirmed prefix, checked by stream digest); a rollback past what the restored state sent (the inviter is snapshotted, lost1..3 are sent and read, the restored state seals lost1-again in lost1's slot with a different r, and detects the rollback when k1 acknowledges lost3 while a send step is pending, so its next chain starts at n = 3: every number from the one k0, the first blob of the chain it answers, acknowledged); a hidden rollback (the restored joiner sends h1..h3, more than the m1, m2 it lost, h1 and h2 at addresses the inviter already read; only the digest in ok's acknowledgement shows it: lost_blobs 0, unconfirmed_from = seq of m1), h3 refused on arrival (its prev names h2, not the m2 the inviter received under that number), re-sends of h1..h3 with their message ids, shown in order (h3-twice, one more re-send of h3, is a duplicate); and a fork (the inviter is restored to before its own DH step, which the joiner read and only acknowledged; the restored inviter learns of one lost blob, steps with a fresh key and starts at n = 1; the joiner follows the fork from previous_root, then answers). All byte strings hex; address lists in poll order; acknowledgement bits as 16 hex digits (u64).",
        "constants": {"blob_len": 1024, "hedge_len": 16, "payload_len": PAYLOAD_LEN, "fragment_header_len": FIELDS_LEN, "fragment_capacity": CAPACITY, "max_message_len": MAX_MESSAGE_LEN, "window": W, "max_skip": MAX_SKIP, "ack_window": ACK_WINDOW, "stream_digest_len": 8, "message_id_len": 8, "message_id_memory": MESSAGE_ID_MEMORY, "max_ahead": MAX_AHEAD, "max_unconfirmed": MAX_UNCONFIRMED, "max_rollback_skip": MAX_ROLLBACK_SKIP, "max_abandoned_keys": MAX_ABANDONED_KEYS, "next_chain_skip_max": NEXT_CHAIN_SKIP_MAX},
        "rng": {"construction": "a byte stream: block i = SHA-256(\"hush/test-rng\" || u64be(seed) || u64be(i)), blocks concatenated, bytes consumed in order: inviter: invite secret (32), b0 (32), then per encrypt: z of the message id (32, data messages only, not re-sends; id = SHA-256(\"hush/v2/message-id\" || z || plaintext)[0..8]), the new ratchet key (32) if a DH step runs, z (32) per blob; joiner: a1 (32), z of the hello (32), then the same", "inviter_seed": INVITER_SEED, "joiner_seed": JOINER_SEED},
        "invite": {
            "now": NOW, "expires_at": EXPIRES_AT, "mailbox_url": "", "secret": hex(&secret),
            "inviter_private": hex(&inviter_key), "inviter_public": hex(&b0),
            "kdf_info": hex(&info), "sk": hex(&sk), "hello_key": hex(&hello_key),
            "associated_data": hex(&ad),
            "bytes": hex(&invite_bytes), "link_fragment": protocol::base64url::encode(&invite_bytes),
            "joiner_private": hex(&a1), "joiner_public": hex(&public(&a1)), "dh0": hex(&dh0),
            "hk1": hex(&hk1), "hk2": hex(&hk2),
            "hello_address": hex(&model.blobs["hello"][0].address),
        },
        "invite_url_variant": url_variant(&secret, &inviter_key),
        "rewound_generator": rewound_generator(&model.snapshots["inviter"]),
        "restore_signal": restore_signal_vectors(&model),
        "safety_code": code,
        "chains": model.chains,
        "messages": model.messages,
        "events": events,
    });
    (conversation, negative)
}

/// The script does what its comments say.
fn check_script_claims(run: &Run, events: &[Value]) {
    let m = &run.model;
    let seq = |name: &str| m.blobs[name][0].f.seq;
    let event = |key: &str| &events[run.at[key]];
    let r1 = &m.blobs["lost1"][0];
    let r1_again = &m.blobs["lost1-again"][0];
    assert_eq!(r1.address, r1_again.address);
    assert_ne!(r1.sealed.r, r1_again.sealed.r, "the hedge must differ");
    assert_eq!(
        event("deliver:inviter:k1")["rollback"],
        json!({"lost_blobs": 2, "unconfirmed_from": seq("lost1")})
    );
    assert_eq!(
        m.blobs["after"][0].n, 3,
        "the next chain skips every number from what k0 acknowledged"
    );
    assert_eq!(m.blobs["ack-p"][0].chain, m.blobs["after"][0].chain);
    assert_eq!(m.blobs["ack1"][0].chain, m.blobs["j3"][0].chain);
    assert_eq!(m.blobs["h1"][0].address, m.blobs["m1"][0].address);
    assert_eq!(
        event("deliver:joiner:ok")["rollback"],
        json!({"lost_blobs": 0, "unconfirmed_from": seq("m1")})
    );
    assert_eq!(event("deliver:inviter:h3")["peer_rolled_back"], json!(true));
    assert_eq!(event("deliver:inviter:h3")["plaintext"], Value::Null);
    assert_eq!(event("deliver:inviter:h3-again")["duplicate"], json!(false));
    assert_ne!(event("deliver:inviter:h3-again")["plaintext"], Value::Null);
    assert_eq!(event("deliver:inviter:h3-twice")["duplicate"], json!(true));
    assert_eq!(event("deliver:inviter:h1-again")["duplicate"], json!(false));
    assert_eq!(
        event("deliver:inviter:ack-L0")["rollback"],
        json!({"lost_blobs": 1, "unconfirmed_from": seq("L0")})
    );
    let (l1, f) = (&m.blobs["L1"][0], &m.blobs["F"][0]);
    assert_eq!((f.n, f.address), (1, l1.address), "F at L1's slot");
    assert_ne!(
        f.chain, l1.chain,
        "F is on another chain with the same header key"
    );
    assert_eq!(f.hk, l1.hk);
    let joiner_after_f = &run.history[run.at["send:joiner:R"]]["joiner"];
    let lost_key: [u8; 32] = l1.header[..32].try_into().unwrap();
    assert_eq!(joiner_after_f.abandoned, vec![lost_key]);
    assert!(joiner_after_f.previous_root.is_some());
    assert!(event("deliver:joiner:F")["plaintext"].is_string());
    assert!(event("deliver:inviter:R")["plaintext"].is_string());
}

/// What the model says a blob delivered to `state` gives: the error, or for an accepted blob
/// its kind, seq, rollback, next_seq, confirmed prefix and the address of the party's next
/// blob (a data message "next", randomness seed 99, floor = next_seq).
fn expectation(state: &State, address: &[u8; 32], blob: &[u8]) -> Value {
    let mut s = state.clone();
    match s.decrypt(address, blob) {
        Err(e) => json!({"error": e}),
        Ok(o) => {
            let next_seq = s.stream.next_seq;
            let mut rng = Rng::new(NEXT_SEED);
            let id = rng.message_id(b"next");
            let (next, _) = s.encrypt(&mut rng, KIND_DATA, b"next", next_seq, id, 0, None);
            json!({
                "kind": kind_name(o.kind), "seq": o.seq, "rollback": rollback_json(o.rollback),
                "next_seq": next_seq,
                "acknowledged": {"next": s.stream.confirmed, "bits": format!("{:016x}", 0)},
                "next_blob_address": hex(&next[0].address),
                "peer_rolled_back": o.rolled_back,
            })
        }
    }
}

/// Blob `n` of `template`'s chain (sent by role `role`) with another payload, sealed with
/// `z = salt × 32`.
fn sealed_like(
    template: &Blob,
    role: u8,
    ad: &[u8; 32],
    n: u32,
    payload: &[u8],
    salt: u8,
) -> ([u8; 32], Vec<u8>) {
    let mut ck = template.ck;
    for _ in template.n..n {
        ck = step(&ck);
    }
    let address = address_of(&template.hk, role, n);
    let public_key: [u8; 32] = template.header[..32].try_into().unwrap();
    let s = seal(
        &template.hk,
        &ck,
        ad,
        &address,
        &header(&public_key, template.pn, n),
        payload,
        &[salt; 32],
    );
    (address, s.blob)
}

/// Blobs that must be refused (or, for the rollback vectors, accepted with a `Rollback`),
/// each delivered in the state before an event of the conversation.
fn negative_vectors(run: &Run) -> Value {
    let m = &run.model;
    let mut out = Vec::new();
    let mut push = |name: &str,
                    description: &str,
                    before: usize,
                    to: Party,
                    address: [u8; 32],
                    blob: &[u8],
                    expected: Value| {
        let got = expectation(&run.history[before][to.name()], &address, blob);
        assert_eq!(got, expected, "{name}: the model disagrees with the intent");
        out.push(json!({
            "name": name, "description": description, "before_event": before, "to": to.name(),
            "address": hex(&address), "blob": hex(blob), "expected": got,
        }));
    };
    let error = |e: &str| json!({"error": e});
    // Template: i1 (chain 2, message 0), which the joiner reads as the first of a new chain.
    let i1 = &m.blobs["i1"][0];
    let ad = m.states["joiner"].ad;
    let at = run.at["deliver:joiner:i1"];
    let flipped = |i: usize| {
        let mut b = i1.sealed.blob.clone();
        b[i] ^= 0x01;
        b
    };
    let j = Party::Joiner;
    let inviter_role = Party::Inviter.role_byte();
    for (name, what, byte, e) in [
        (
            "header_tag",
            "a bit of the header tag changed",
            71,
            "HeaderAuthentication",
        ),
        (
            "header_ciphertext",
            "a bit of the encrypted header changed",
            16,
            "HeaderAuthentication",
        ),
        (
            "hedge",
            "a bit of r changed: another header key",
            0,
            "HeaderAuthentication",
        ),
        (
            "body_tag",
            "a bit of the body tag changed",
            1023,
            "BodyAuthentication",
        ),
        (
            "body_ciphertext",
            "a bit of the body changed",
            500,
            "BodyAuthentication",
        ),
    ] {
        push(name, what, at, j, i1.address, &flipped(byte), error(e));
    }
    push(
        "moved",
        "the blob of message 0 found at the address of message 1 (both in the window)",
        at,
        j,
        address_of(&i1.hk, inviter_role, 1),
        &i1.sealed.blob,
        error("HeaderAuthentication"),
    );
    push(
        "replay",
        "the same blob again after it was read",
        at + 1,
        j,
        i1.address,
        &i1.sealed.blob,
        error("Duplicate"),
    );
    push(
        "wrong_length",
        "one byte short",
        at,
        j,
        i1.address,
        &i1.sealed.blob[..1023],
        error("WrongLength"),
    );
    let squat: Vec<u8> = (0u64..32)
        .flat_map(|i| sha(&[b"hush/test-squat", &i.to_be_bytes()]))
        .collect();
    push(
        "squatted",
        "random bytes at a window address (someone else wrote the slot)",
        at,
        j,
        i1.address,
        &squat,
        error("HeaderAuthentication"),
    );
    let (address, blob) = sealed_like(i1, inviter_role, &ad, W, &i1.payload, 1);
    push(
        "beyond_window",
        "a genuine blob of message 16 of the chain: outside the window [0..16)",
        at,
        j,
        address,
        &blob,
        error("UnknownAddress"),
    );
    let f = i1.f;
    let data = b"hi joiner (DH step)";
    let no_id = Fields { id: NO_ID, ..f };
    let malformed: Vec<(&str, &str, Vec<u8>)> = vec![
        ("malformed_kind", "kind 0x84", payload(0x04, 0, 1, data, f)),
        (
            "malformed_floor_above_seq",
            "floor = seq + 1",
            payload(
                KIND_DATA,
                0,
                1,
                data,
                Fields {
                    floor: f.seq + 1,
                    ..f
                },
            ),
        ),
        ("malformed_padding", "a non-zero padding byte", {
            let mut p = i1.payload.clone();
            p[PAYLOAD_LEN - 1] = 1;
            p
        }),
        (
            "malformed_count_zero",
            "count 0",
            payload(KIND_DATA, 0, 0, data, f),
        ),
        (
            "malformed_index_not_below_count",
            "index 1 of count 1",
            payload(KIND_DATA, 1, 1, data, f),
        ),
        (
            "malformed_acknowledgement_with_data",
            "kind 0x83 with len 1",
            payload(KIND_ACK, 0, 1, b"x", no_id),
        ),
        (
            "malformed_acknowledgement_with_message_id",
            "kind 0x83 carrying a message id (i1's)",
            payload(KIND_ACK, 0, 1, &[], f),
        ),
        ("malformed_length", "len 886 (more than fits)", {
            let mut p = payload(KIND_DATA, 0, 1, &[], f);
            p[5..7].copy_from_slice(&(CAPACITY as u16 + 1).to_be_bytes());
            p
        }),
        (
            "malformed_length_without_prev",
            "kind 0x02 (no prev) with len 894 (more than fits)",
            {
                let mut p = payload(KIND_DATA, 0, 1, &[], no_id);
                p[0] = KIND_DATA;
                p[5..7].copy_from_slice(
                    &((PAYLOAD_LEN - FIELDS_WITHOUT_PREV_LEN) as u16 + 1).to_be_bytes(),
                );
                p
            },
        ),
        (
            "malformed_hello_with_prev",
            "kind 0x81 (a hello never carries prev)",
            {
                let mut p = payload(KIND_HELLO, 0, 1, &[], no_id);
                p[0] |= KIND_WITH_PREV;
                p
            },
        ),
    ];
    for (name, what, p) in malformed {
        let (address, blob) = sealed_like(i1, inviter_role, &ad, 0, &p, 2);
        push(
            name,
            &format!("correctly sealed, payload malformed: {what}"),
            at,
            j,
            address,
            &blob,
            error("MalformedPayload"),
        );
    }
    // Rollback: before the joiner reads i1, the inviter has sent i1..i3 (seqs 0..2, chain 2,
    // not pending, nothing confirmed) and reads the joiner's chain 1 at n ≥ 3. An
    // acknowledgement-only blob at chain 1, message 3, claims inviter seqs it never sent.
    let j2 = &m.blobs["j2"][0];
    let inviter = Party::Inviter;
    let inviter_at = &run.history[at]["inviter"];
    let i_r = |name: &str| m.blobs[name][0].sealed.r;
    let true_digest = extend_digest(&extend_digest(&[0; 8], 0, &i_r("i1")), 1, &i_r("i2"));
    for (name, description, ack, digest, lost, next_seq) in [
        (
            "rollback_ack",
            "an acknowledgement of inviter seqs [0..7) with a digest of other blobs: this session sent only 0..2, so this device was rolled back (lost 4) and its blobs from 0 on are unconfirmed",
            (7u32, 0u64),
            [0u8; 8],
            4u32,
            7u32,
        ),
        (
            "rollback_ack_bits",
            "an acknowledgement of inviter seqs 0, 1 (with their true digest) and, by bit, 5: never sent (lost 3), digest consistent",
            (2, 0b100),
            true_digest,
            3,
            6,
        ),
    ] {
        let n = j2.n + 1;
        let fields = Fields {
            seq: j2.f.seq + 1,
            floor: j2.f.seq + 1,
            ack: ack.0,
            bits: ack.1,
            digest,
            id: NO_ID,
            prev: [0; 8],
        };
        let p = payload(KIND_ACK, 0, 1, &[], fields);
        let (address, blob) = sealed_like(j2, Party::Joiner.role_byte(), &ad, n, &p, 3);
        let sending = inviter_at.sending.as_ref().unwrap();
        let next_address = address_of(&sending.hk, inviter_role, sending.n + lost);
        push(
            name,
            description,
            at,
            inviter,
            address,
            &blob,
            json!({
                "kind": "Acknowledgement", "seq": fields.seq,
                "rollback": {"lost_blobs": lost, "unconfirmed_from": 0},
                "next_seq": next_seq,
                "acknowledged": {"next": ack.0, "bits": format!("{:016x}", 0)},
                "next_blob_address": hex(&next_address),
                "peer_rolled_back": false,
            }),
        );
    }
    // Forks (§6.6).
    let l2 = &m.blobs["L2"][0];
    push(
        "lost_chain_after_fork",
        "after following the fork, a blob of the lost chain (L2: the lost state's key, the same header key, inside the window): its key is abandoned, the blob refused without ending anything",
        run.at["send:joiner:R"],
        j,
        l2.address,
        &l2.sealed.blob,
        error("InconsistentHeader"),
    );
    // The inviter restored a second time from the same backup: a third ratchet key. Its first
    // two blobs land on addresses the joiner has read; the third (n = 2) inside the window.
    let mut again = m.snapshots["inviter"].clone();
    let mut rng = Rng::new(SECOND_RESTORE_SEED);
    let mut third = None;
    for text in [
        "second restore, 0",
        "second restore, 1",
        "second restore, 2",
    ] {
        let id = rng.message_id(text.as_bytes());
        let floor = again.stream.outbox_floor();
        let (blobs, _) = again.encrypt(&mut rng, KIND_DATA, text.as_bytes(), floor, id, 0, None);
        third = blobs.into_iter().next();
    }
    let third = third.unwrap();
    assert_eq!((third.n, third.hk), (2, l2.hk));
    push(
        "peer_restored_after_answer",
        "a fork (the inviter restored once more from the same backup, a fresh ratchet key, n = 2 on the current header key) after the joiner answered (R): previous_root is gone, the conversation cannot continue",
        run.at["deliver:inviter:R"],
        j,
        third.address,
        &third.sealed.blob,
        error("PeerRestored"),
    );
    // A fragment whose message's earlier numbers hold other blobs (§6.4, "Predecessors"): the
    // restored joiner (its snapshot before m1, m2) seals a three-blob message; fragments 0 and
    // 1 fall where m1 and m2 lie, which the inviter received, and fragment 2 (where h3 lies)
    // names p, as m1 does: only the places of m1 and m2 show it follows blobs never received.
    let mut restored = m.snapshots["joiner"].clone();
    let mut rng = Rng::new(SECOND_RESTORE_SEED);
    let text = vec![b'f'; 2 * CAPACITY + 1];
    let id = rng.message_id(&text);
    let floor = restored.stream.outbox_floor();
    let (blobs, _) = restored.encrypt(&mut rng, KIND_DATA, &text, floor, id, 0, None);
    let third = &blobs[2];
    assert_eq!(third.address, m.blobs["h3"][0].address);
    let before_h3 = run.at["deliver:inviter:h3"];
    let refused = expectation(
        &run.history[before_h3]["inviter"],
        &third.address,
        &third.sealed.blob,
    );
    assert_eq!(refused["peer_rolled_back"], json!(true));
    push(
        "fragment_after_other_blobs",
        "a restored sender's fragment 2 of 3 whose predecessor (p) is the blob received under that number, but whose message's fragments 0 and 1 fall where m1 and m2 (one blob each) were received: refused (peer_rolled_back), not counted, never completes its message",
        before_h3,
        Party::Inviter,
        third.address,
        &third.sealed.blob,
        refused,
    );
    json!({
        "description": "Hush v2 negative vectors: each blob is delivered to `to` in the state right before event `before_event` of conversation.json (events [0..before_event) applied). `expected.error` names the refusal (the state must be unchanged); the rollback vectors are accepted: expected kind, seq, rollback, next_seq afterwards, the confirmed prefix (acknowledged), the address of the next blob the party sends (a data message; its sending chain moved ahead by lost_blobs), and whether the blob was refused for the blobs it follows (peer_rolled_back: not received, not shown).",
        "vectors": out,
    })
}

fn load(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).unwrap()
}

#[test]
fn reference_model_reproduces_the_vector_files() {
    let (conversation, negative) = reference();
    if std::env::var_os("HUSH_WRITE_VECTORS").is_some() {
        for (path, value) in [(PATH, &conversation), (NEGATIVE_PATH, &negative)] {
            std::fs::write(path, serde_json::to_string_pretty(value).unwrap() + "\n").unwrap();
        }
    }
    assert!(
        conversation == load(PATH),
        "conversation.json differs from the model"
    );
    assert!(
        negative == load(NEGATIVE_PATH),
        "negative.json differs from the model"
    );
}

// --------------------------------------------------------------- the implementation ----

use protocol::testing::SeededRng;
use protocol::{Acknowledgement, Address, Invite, OutgoingBlob, PendingInvite, Rollback, Session};

fn s(x: &Value) -> String {
    x.as_str().unwrap().to_owned()
}

fn ack_json(a: &Acknowledgement) -> Value {
    json!({"next": a.next, "bits": format!("{:016x}", a.bits)})
}

fn rollback_value(r: Option<Rollback>) -> Value {
    r.map_or(
        Value::Null,
        |r| json!({"lost_blobs": r.lost_blobs, "unconfirmed_from": r.unconfirmed_from}),
    )
}

/// The public part of a session's stream state (the received digest is not exposed; the
/// blobs carry it).
fn stream_json(session: &Session) -> Value {
    json!({
        "next_seq": session.next_seq(),
        "received": ack_json(&session.acknowledgement()),
        "acknowledged": ack_json(&session.peer_acknowledgement()),
    })
}

fn public_stream(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("received_digest");
    v
}

fn poll_hex(session: &Session) -> Value {
    json!(
        session
            .poll_addresses()
            .iter()
            .map(|a| hex(&a.0))
            .collect::<Vec<_>>()
    )
}

/// The crate driven through the file's script, checking everything on the way.
struct World {
    joiner: Session,
    inviter: Option<Session>,
    pending: Option<PendingInvite>,
    joiner_rng: SeededRng,
    inviter_rng: SeededRng,
    sent: BTreeMap<String, Vec<OutgoingBlob>>,
    snapshots: BTreeMap<String, Vec<u8>>,
    cursor: usize,
}

impl World {
    fn session(&mut self, party: &str) -> &mut Session {
        if party == "joiner" {
            &mut self.joiner
        } else {
            self.inviter.as_mut().unwrap()
        }
    }

    /// Every blob the implementation produces, in order, must be the file's next message.
    fn check(&mut self, v: &Value, name: &str, blobs: Vec<OutgoingBlob>) {
        for b in &blobs {
            let m = &v["messages"][self.cursor];
            assert_eq!(s(&m["message"]), name);
            assert_eq!(hex(&b.write_key.0), s(&m["write_key"]), "{name} write key");
            assert_eq!(hex(&b.address.0), s(&m["address"]), "{name} address");
            assert_eq!(u64::from(b.seq), m["seq"].as_u64().unwrap(), "{name} seq");
            assert_eq!(hex(&b.message_id), s(&m["message_id"]), "{name} id");
            assert_eq!(hex(&b.blob), s(&m["blob"]), "{name} blob");
            self.cursor += 1;
        }
        self.sent.insert(name.to_owned(), blobs);
    }
}

/// Creates, joins and applies `events[0..stop)`.
fn replay(v: &Value, stop: usize) -> World {
    let mut inviter_rng = SeededRng::new(INVITER_SEED);
    let mut joiner_rng = SeededRng::new(JOINER_SEED);
    let (pending, invite) = Invite::create(&mut inviter_rng, NOW, EXPIRES_AT, None).unwrap();
    assert_eq!(hex(&invite.to_bytes()), s(&v["invite"]["bytes"]));
    assert_eq!(
        invite.to_link_fragment().as_str(),
        s(&v["invite"]["link_fragment"])
    );
    let invite = Invite::from_link_fragment(&s(&v["invite"]["link_fragment"])).unwrap();
    let (joiner, hello) = invite.join(&mut joiner_rng, NOW).unwrap();
    assert_eq!(
        pending
            .poll_addresses()
            .iter()
            .map(|a| hex(&a.0))
            .collect::<Vec<_>>(),
        vec![s(&v["invite"]["hello_address"])]
    );
    let mut w = World {
        joiner,
        inviter: None,
        pending: Some(pending),
        joiner_rng,
        inviter_rng,
        sent: BTreeMap::new(),
        snapshots: BTreeMap::new(),
        cursor: 0,
    };
    w.check(v, "hello", hello);
    for event in &v["events"].as_array().unwrap()[..stop] {
        let name = event["message"].as_str().unwrap_or("").to_owned();
        match event["action"].as_str().unwrap() {
            "accept" => {
                let hello = &w.sent["hello"][0];
                let session = w
                    .pending
                    .take()
                    .unwrap()
                    .accept(NOW, &hello.address, &hello.blob)
                    .unwrap();
                assert_eq!(session.safety_code().digits(), s(&v["safety_code"]));
                assert_eq!(w.joiner.safety_code().digits(), s(&v["safety_code"]));
                assert_eq!(
                    stream_json(&session),
                    public_stream(&event["stream_after"]),
                    "accept stream"
                );
                assert_eq!(
                    poll_hex(&session),
                    event["poll_addresses_after"],
                    "accept polls"
                );
                w.inviter = Some(session);
            }
            action @ ("send" | "resend" | "send_acknowledgement") => {
                let from = s(&event["from"]);
                let floor = event["floor"].as_u64().unwrap() as u32;
                let mut rng = if from == "joiner" {
                    w.joiner_rng.clone()
                } else {
                    w.inviter_rng.clone()
                };
                let session = w.session(&from);
                let blobs = match action {
                    "send" => {
                        let text = unhex(&s(&event["plaintext"]));
                        session.encrypt(&mut rng, &text, floor).unwrap()
                    }
                    "resend" => {
                        let text = unhex(&s(&event["plaintext"]));
                        let id = unhex(&s(&event["message_id"])).try_into().unwrap();
                        session.encrypt_resend(&mut rng, &text, floor, id).unwrap()
                    }
                    _ => vec![session.encrypt_acknowledgement(&mut rng, floor).unwrap()],
                };
                if from == "joiner" {
                    w.joiner_rng = rng;
                } else {
                    w.inviter_rng = rng;
                }
                w.check(v, &name, blobs);
            }
            // The caller's floor changes; the session is not told (the next floor says it).
            "settle" => {}
            "abandon" => {
                let party = s(&event["party"]);
                for seq in event["seqs"].as_array().unwrap() {
                    w.session(&party).abandon(seq.as_u64().unwrap() as u32);
                }
            }
            "snapshot" => {
                let party = s(&event["party"]);
                let pickle = w.session(&party).pickle(&PICKLE_KEY);
                w.snapshots.insert(party, pickle);
            }
            "restore" => {
                let party = s(&event["party"]);
                let pickle = w.snapshots[&party].clone();
                *w.session(&party) = Session::from_pickle(&PICKLE_KEY, &pickle).unwrap();
            }
            action @ ("deliver" | "deliver_all") => {
                let to = s(&event["to"]);
                let blobs: Vec<OutgoingBlob> = if action == "deliver" {
                    vec![w.sent[&name][event["fragment"].as_u64().unwrap() as usize].clone()]
                } else {
                    w.sent[&name].clone()
                };
                let session = w.session(&to);
                let mut retired = Vec::new();
                let mut last = None;
                let mut rollback = None;
                for blob in &blobs {
                    let received = session
                        .decrypt(&Address(blob.address.0), &blob.blob)
                        .unwrap_or_else(|e| panic!("{name} to {to}: {e:?}"));
                    retired.extend(received.retired.iter().map(|a| hex(&a.0)));
                    rollback = rollback.or(received.rollback);
                    assert_eq!(received.acknowledged, session.peer_acknowledgement());
                    last = Some(received);
                }
                let received = last.unwrap();
                let plaintext = received.plaintext.as_ref().map(|p| Value::String(hex(p)));
                assert_eq!(
                    plaintext.unwrap_or(Value::Null),
                    event["plaintext"],
                    "{name} plaintext"
                );
                assert_eq!(
                    json!(received.duplicate),
                    event["duplicate"],
                    "{name} duplicate"
                );
                assert_eq!(
                    json!(received.peer_rolled_back),
                    event["peer_rolled_back"],
                    "{name} peer_rolled_back"
                );
                assert_eq!(
                    format!("{:?}", received.kind),
                    s(&event["kind"]),
                    "{name} kind"
                );
                assert_eq!(
                    u64::from(received.seq),
                    event["seq"].as_u64().unwrap(),
                    "{name} seq"
                );
                assert_eq!(
                    rollback_value(rollback),
                    event["rollback"],
                    "{name} rollback"
                );
                assert_eq!(
                    stream_json(session),
                    public_stream(&event["stream_after"]),
                    "{name} stream"
                );
                let expected: BTreeSet<String> =
                    event["retired"].as_array().unwrap().iter().map(s).collect();
                let got: BTreeSet<String> = retired.into_iter().collect();
                assert_eq!(got, expected, "{name} retired");
                assert_eq!(
                    poll_hex(session),
                    event["poll_addresses_after"],
                    "{name} polls"
                );
            }
            other => panic!("unknown action {other}"),
        }
    }
    w
}

#[test]
fn implementation_matches_the_vector_file() {
    let v = load(PATH);
    let events = v["events"].as_array().unwrap().len();
    let w = replay(&v, events);
    assert_eq!(w.cursor, v["messages"].as_array().unwrap().len());
}

#[test]
fn implementation_matches_the_restore_signal_vectors() {
    let v = load(PATH);
    let events = v["events"].as_array().unwrap().len();
    let mut w = replay(&v, events);
    for party in v["restore_signal"]["parties"].as_array().unwrap() {
        let name = s(&party["party"]);
        let expected = party["signals"].as_array().unwrap();
        let got = w.session(&name).restore_signals();
        assert!(got.len() >= expected.len(), "{name}: every expected signal");
        for (signal, want) in got.iter().zip(expected) {
            assert_eq!(
                hex(&signal.write_key.0),
                s(&want["write_key"]),
                "{name} write key"
            );
            assert_eq!(
                hex(&signal.address.0),
                s(&want["address"]),
                "{name} address"
            );
            assert_eq!(hex(&signal.blob), s(&want["blob"]), "{name} blob");
        }
        // The peer, on the same root key, watches the address and recognises the blob.
        let peer = if name == "joiner" {
            "inviter"
        } else {
            "joiner"
        };
        let first = &got[0];
        let peer_session = w.session(peer);
        assert_eq!(
            peer_session.restore_signal_addresses()[0],
            first.address,
            "{peer} watches"
        );
        assert!(peer_session.is_restore_signal(&first.address, &first.blob));
    }
}

#[test]
fn implementation_matches_the_rewound_generator_vectors() {
    let v = load(PATH);
    let events = v["events"].as_array().unwrap().len();
    let w = replay(&v, events);
    let g = &v["rewound_generator"];
    let pickle = &w.snapshots["inviter"];
    let seal = |text: &[u8]| {
        let mut session = Session::from_pickle(&PICKLE_KEY, pickle).unwrap();
        let mut rng = SeededRng::new(g["rng_seed"].as_u64().unwrap());
        let floor = session.next_seq();
        session.encrypt(&mut rng, text, floor).unwrap().remove(0)
    };
    for (key, text) in [
        ("first", &b"first text"[..]),
        ("other", b"other text"),
        ("first_again", b"first text"),
    ] {
        let blob = seal(text);
        assert_eq!(hex(&blob.address.0), s(&g[key]["address"]), "{key}");
        assert_eq!(hex(&blob.blob), s(&g[key]["blob"]), "{key}");
    }
    assert_ne!(s(&g["first"]["r"]), s(&g["other"]["r"]));
    assert_eq!(s(&g["first"]["z"]), s(&g["other"]["z"]));
}

#[test]
fn implementation_matches_the_url_variant() {
    let v = load(PATH);
    let u = &v["invite_url_variant"];
    let (_, invite) = Invite::create(
        &mut SeededRng::new(INVITER_SEED),
        NOW,
        EXPIRES_AT,
        Some(VARIANT_URL),
    )
    .unwrap();
    assert_eq!(hex(&invite.to_bytes()), s(&u["bytes"]));
    assert_eq!(invite.to_link_fragment().as_str(), s(&u["link_fragment"]));
    let (joiner, hello) = invite.join(&mut SeededRng::new(JOINER_SEED), NOW).unwrap();
    assert_eq!(hex(&hello[0].write_key.0), s(&u["hello_write_key"]));
    assert_eq!(hex(&hello[0].address.0), s(&u["hello_address"]));
    assert_eq!(hex(&hello[0].blob), s(&u["hello_blob"]));
    assert_eq!(joiner.safety_code().digits(), s(&u["safety_code"]));
    assert_ne!(s(&u["hello_address"]), s(&v["invite"]["hello_address"]));
}

#[test]
fn implementation_refuses_the_negative_vectors() {
    let v = load(PATH);
    let negative = load(NEGATIVE_PATH);
    for n in negative["vectors"].as_array().unwrap() {
        let name = s(&n["name"]);
        let mut w = replay(&v, n["before_event"].as_u64().unwrap() as usize);
        let session = w.session(&s(&n["to"]));
        let address = Address(unhex(&s(&n["address"])).try_into().unwrap());
        let blob = unhex(&s(&n["blob"]));
        let before = session.pickle(&PICKLE_KEY);
        let expected = &n["expected"];
        match session.decrypt(&address, &blob) {
            Err(e) => {
                let got = format!("{e:?}");
                let got = got.split([' ', '{', '(']).next().unwrap();
                assert_eq!(got, s(&expected["error"]), "{name}");
                assert!(
                    session.pickle(&PICKLE_KEY) == before,
                    "{name}: state changed"
                );
            }
            Ok(received) => {
                assert!(
                    expected["error"].is_null(),
                    "{name}: accepted, expected {}",
                    expected["error"]
                );
                assert_eq!(
                    format!("{:?}", received.kind),
                    s(&expected["kind"]),
                    "{name}"
                );
                assert_eq!(
                    u64::from(received.seq),
                    expected["seq"].as_u64().unwrap(),
                    "{name}"
                );
                assert_eq!(
                    rollback_value(received.rollback),
                    expected["rollback"],
                    "{name}"
                );
                assert_eq!(
                    u64::from(session.next_seq()),
                    expected["next_seq"].as_u64().unwrap(),
                    "{name}"
                );
                assert_eq!(
                    ack_json(&received.acknowledged),
                    expected["acknowledged"],
                    "{name}"
                );
                assert_eq!(
                    json!(received.peer_rolled_back),
                    expected["peer_rolled_back"],
                    "{name}"
                );
                let floor = session.next_seq();
                let mut rng = SeededRng::new(NEXT_SEED);
                let next = session.encrypt(&mut rng, b"next", floor).unwrap();
                assert_eq!(
                    hex(&next[0].address.0),
                    s(&expected["next_blob_address"]),
                    "{name}"
                );
            }
        }
    }
}
