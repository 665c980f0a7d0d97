//! Test vectors: `tests/vectors/conversation.json` and `tests/vectors/negative.json`.
//!
//! Both files are written by an independent *reference model* in this test: it derives every
//! value straight from `docs/PROTOCOL.md` (version 2) with the raw primitives (x25519, HKDF,
//! HMAC, SHA-256, ChaCha20-Poly1305) and shares no code with the crate's ratchet, hedge,
//! payload or acknowledgement code. Tests:
//! * `reference_model_reproduces_the_vector_files`: the model's output equals the files, byte
//!   for byte (so the files are exactly what the spec says);
//! * `implementation_matches_the_vector_file`: the real `Invite` / `Session` API, driven by the
//!   same seeded randomness through the same script, produces every invite byte, write key,
//!   address, sequence number and blob in the file, decrypts to the recorded plaintexts, and
//!   reports the recorded retired addresses, poll sets (in order), kinds, acknowledgements and
//!   rollbacks;
//! * `implementation_matches_the_url_variant`: an invite with a mailbox URL derives other keys;
//! * `implementation_refuses_the_negative_vectors`: each blob of `negative.json`, delivered in
//!   the state before its event, gives the recorded error and leaves the state unchanged (or,
//!   for the rollback vectors, the recorded `Rollback`).
//!
//! Regenerate (only on a deliberate protocol change):
//! `HUSH_WRITE_VECTORS=1 cargo test -p protocol --test vectors`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_arguments
)]

use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce};
use hmac::Mac;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/conversation.json"
);
const NEGATIVE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/negative.json");
const W: u32 = 16;
const MAX_SKIP: u32 = 64;
const PAYLOAD_LEN: usize = 936;
const FIELDS_LEN: usize = 27;
const CAPACITY: usize = PAYLOAD_LEN - FIELDS_LEN;
const MAX_MESSAGE_LEN: usize = 64 * CAPACITY;
const ACK_WINDOW: u32 = 64;
const MAX_ROLLBACK_SKIP: u32 = 1 << 16;
const NOW: u64 = 1_767_225_600;
const EXPIRES_AT: u64 = NOW + 600;
const INVITER_SEED: u64 = 1;
const JOINER_SEED: u64 = 2;
const VARIANT_URL: &str = "https://mailbox.example.org/hush";
const PICKLE_KEY: [u8; 32] = [0x5a; 32];

const KIND_HELLO: u8 = 0x01;
const KIND_DATA: u8 = 0x02;
const KIND_ACK: u8 = 0x03;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------- reference primitives ----

/// The test RNG as specified: block i = SHA-256("hush/test-rng" ‖ u64be(seed) ‖ u64be(i)).
struct Rng {
    seed: u64,
    block: u64,
    buf: Vec<u8>,
}

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng {
            seed,
            block: 0,
            buf: Vec::new(),
        }
    }
    fn next32(&mut self) -> [u8; 32] {
        while self.buf.len() < 32 {
            self.buf.extend(sha(&[
                b"hush/test-rng",
                &self.seed.to_be_bytes(),
                &self.block.to_be_bytes(),
            ]));
            self.block += 1;
        }
        self.buf.drain(..32).collect::<Vec<_>>().try_into().unwrap()
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

fn aead(key: &[u8; 32], nonce: [u8; 12], ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut buf = plaintext.to_vec();
    let tag = ChaCha20Poly1305::new(&(*key).into())
        .encrypt_inout_detached(&Nonce::from(nonce), ad, buf.as_mut_slice().into())
        .unwrap();
    buf.extend_from_slice(&tag);
    buf
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

// ------------------------------------------------------- acknowledgements as plain sets ----

/// An acknowledgement as the set it stands for (§6.4), kept canonical: `next` is the smallest
/// non-member; `above` holds the members in `[next+1 .. next+65)`, nothing further.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
struct AckSet {
    next: u32,
    above: BTreeSet<u32>,
}

impl AckSet {
    fn canon(&mut self) {
        let next = self.next;
        self.above.retain(|&s| s >= next);
        while self.above.remove(&self.next) {
            self.next += 1;
        }
        let limit = u64::from(self.next) + u64::from(ACK_WINDOW);
        self.above.retain(|&s| u64::from(s) <= limit);
    }
    /// `add(A, [0..floor))`.
    fn add_below(&mut self, floor: u32) {
        self.next = self.next.max(floor);
        self.canon();
    }
    /// `add(A, {seq})`.
    fn add(&mut self, seq: u32) {
        if seq >= self.next {
            self.above.insert(seq);
        }
        self.canon();
    }
    /// `add(A, S(next, bits))`, members in ascending order.
    fn merge(&mut self, next: u32, bits: u64) {
        self.add_below(next);
        for i in 0..ACK_WINDOW {
            if bits >> i & 1 == 1 {
                self.add(next + 1 + i);
            }
        }
    }
    fn bits(&self) -> u64 {
        self.above
            .iter()
            .map(|&s| 1u64 << (s - self.next - 1))
            .fold(0, |a, b| a | b)
    }
    fn highest(&self) -> Option<u32> {
        self.above.last().copied().or(self.next.checked_sub(1))
    }
    fn json(&self) -> Value {
        json!({"next": self.next, "bits": format!("{:016x}", self.bits())})
    }
}

// ------------------------------------------------------------------------ the script ----

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
}

/// The floor a sender passes (§6.1, §8).
#[derive(Clone, Copy)]
enum Floor {
    /// Its lowest seq the peer has not acknowledged (what it would still retransmit).
    Unacknowledged,
    /// Its next seq: everything unacknowledged is abandoned.
    Abandon,
}

enum Step {
    Send(Party, &'static str, Vec<u8>, Floor),
    SendAck(Party, &'static str),
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
    use Floor::*;
    use Party::*;
    use Step::*;
    let t = |s: &str| s.as_bytes().to_vec();
    vec![
        Send(Joiner, "j1", t("hello inviter"), Unacknowledged),
        Send(Joiner, "j2", t("second message"), Unacknowledged),
        Deliver(Inviter, "j2", 0), // out of order
        Deliver(Inviter, "j1", 0),
        Send(Inviter, "i1", t("hi joiner (DH step)"), Unacknowledged),
        Send(Inviter, "i2", t("this one is lost"), Unacknowledged),
        Send(Inviter, "i3", t("third from inviter"), Unacknowledged),
        Deliver(Joiner, "i1", 0),
        Deliver(Joiner, "i3", 0), // i2 is never delivered
        Send(Joiner, "j3", t("reply (DH step)"), Unacknowledged),
        Send(Joiner, "long", pattern(2000, 0), Unacknowledged), // three blobs
        Deliver(Inviter, "long", 2),
        Deliver(Inviter, "j3", 0),
        Deliver(Inviter, "long", 0),
        Deliver(Inviter, "long", 1),
        // The inviter gives up on i2: its floor passes it, the joiner stops waiting for it.
        Send(Inviter, "i4", t("done (i2 abandoned)"), Abandon),
        Deliver(Joiner, "i4", 0),
        SendAck(Joiner, "ack1"), // an acknowledgement-only blob, on a new chain
        Deliver(Inviter, "ack1", 0),
        Send(Joiner, "empty", Vec::new(), Unacknowledged),
        Send(Joiner, "full", pattern(CAPACITY, 1), Unacknowledged), // exactly one fragment
        Send(Joiner, "full+1", pattern(CAPACITY + 1, 2), Unacknowledged), // two
        Deliver(Inviter, "empty", 0),
        Deliver(Inviter, "full", 0),
        DeliverAll(Inviter, "full+1"),
        Send(Inviter, "max", pattern(MAX_MESSAGE_LEN, 3), Unacknowledged), // 64 fragments
        DeliverAll(Joiner, "max"),
        // Rollback: the inviter's state is saved, it sends three blobs that the joiner reads,
        // then it is restored and seals another text in the first one's slot (same message
        // key and address, different z hence different r), and learns from the joiner's
        // acknowledgement that it lost blobs.
        Snapshot(Inviter),
        Send(
            Inviter,
            "lost1",
            t("sent by the state that is lost, 1"),
            Unacknowledged,
        ),
        Send(
            Inviter,
            "lost2",
            t("sent by the state that is lost, 2"),
            Unacknowledged,
        ),
        Send(
            Inviter,
            "lost3",
            t("sent by the state that is lost, 3"),
            Unacknowledged,
        ),
        Send(
            Joiner,
            "k0",
            t("joiner, before reading them"),
            Unacknowledged,
        ),
        Deliver(Joiner, "lost1", 0),
        Deliver(Joiner, "lost2", 0),
        Deliver(Joiner, "lost3", 0),
        Send(
            Joiner,
            "k1",
            t("joiner, after reading them"),
            Unacknowledged,
        ),
        Restore(Inviter),
        Send(
            Inviter,
            "lost1-again",
            t("another text from the restored state"),
            Unacknowledged,
        ),
        Deliver(Inviter, "k0", 0),
        Deliver(Inviter, "k1", 0), // Rollback { lost_blobs: 2 }
        Send(Inviter, "after", t("after the rollback"), Unacknowledged),
        Deliver(Joiner, "after", 0), // its PN (67) covers what the joiner read of chain 6
    ]
}

// ------------------------------------------------------------------- reference model ----

struct Chain {
    public: [u8; 32],
    ck0: [u8; 32],
    ck: [u8; 32],
    nhk: [u8; 32],
    sent: u32,
    pn: u32,
}

/// One sent blob.
#[derive(Clone)]
struct SentBlob {
    address: [u8; 32],
    blob: Vec<u8>,
    k: usize,
    n: u32,
    seq: u32,
    floor: u32,
    ack: (u32, u64),
    kind: u8,
    payload: Vec<u8>,
}

#[derive(Clone)]
struct Receiver {
    current: Option<(usize, u32)>,
    next: Option<usize>,
    pending: bool,
    skipped: Vec<(usize, u32)>,
}

/// `next_seq`, `received`, `acknowledged` (§4).
#[derive(Clone, Default)]
struct Stream {
    next_seq: u32,
    received: AckSet,
    acknowledged: AckSet,
}

/// What a snapshot of one party keeps: its sending position, receiver and stream.
struct Snapshot {
    own: Option<(usize, [u8; 32], u32)>,
    receiver: Receiver,
    stream: Stream,
}

struct Sealed {
    mk: [u8; 32],
    r: [u8; 16],
    hkr: [u8; 32],
    mkr: [u8; 32],
    encrypted_header: Vec<u8>,
    body_ad: Vec<u8>,
    blob: Vec<u8>,
}

struct Model {
    rngs: BTreeMap<&'static str, Rng>,
    hello_key: [u8; 32],
    hk1: [u8; 32],
    hk2: [u8; 32],
    ad: [u8; 32],
    root: [u8; 32],
    inviter_key: [u8; 32],
    chains: Vec<Chain>, // chains[k-1] is chain k
    own_chain: BTreeMap<&'static str, usize>,
    receivers: BTreeMap<&'static str, Receiver>,
    streams: BTreeMap<&'static str, Stream>,
    snapshots: BTreeMap<&'static str, Snapshot>,
    json_chains: Vec<Value>,
    json_messages: Vec<Value>,
    blobs: BTreeMap<String, Vec<SentBlob>>,
}

fn sender_of(k: usize) -> Party {
    if k % 2 == 1 {
        Party::Joiner
    } else {
        Party::Inviter
    }
}

fn write_key(hk: &[u8; 32], role: u8, n: u32) -> ([u8; 32], [u8; 32]) {
    let wk = hmac(hk, &[b"hush/v2/write-key", &[role], &n.to_be_bytes()]);
    (wk, sha(&[b"hush/v1/address", &wk]))
}

/// §3.7 with the raw primitives.
fn seal(
    hk: &[u8; 32],
    ck: &[u8; 32],
    ad: &[u8; 32],
    address: &[u8; 32],
    header: &[u8],
    payload: &[u8],
    z: &[u8; 32],
) -> Sealed {
    let mk = hmac(ck, &[&[1]]);
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

/// The padded payload of §3.6.
fn payload(
    kind: u8,
    index: u16,
    count: u16,
    data: &[u8],
    seq: u32,
    floor: u32,
    ack: (u32, u64),
) -> Vec<u8> {
    let mut p = vec![kind];
    p.extend(index.to_be_bytes());
    p.extend(count.to_be_bytes());
    p.extend((data.len() as u16).to_be_bytes());
    p.extend(seq.to_be_bytes());
    p.extend(floor.to_be_bytes());
    p.extend(ack.0.to_be_bytes());
    p.extend(ack.1.to_be_bytes());
    p.extend_from_slice(data);
    p.resize(PAYLOAD_LEN, 0);
    p
}

fn header(public: &[u8; 32], pn: u32, n: u32) -> Vec<u8> {
    [&public[..], &pn.to_be_bytes(), &n.to_be_bytes()].concat()
}

impl Model {
    /// §3.4: the header key of message `n` of chain `k`.
    fn header_key(&self, k: usize, n: u32) -> [u8; 32] {
        match (k, n) {
            (1, 0) => self.hello_key,
            (1, _) => self.hk1,
            (2, _) => self.hk2,
            _ => self.chains[k - 3].nhk,
        }
    }

    fn address(&self, k: usize, n: u32) -> ([u8; 32], [u8; 32]) {
        write_key(&self.header_key(k, n), sender_of(k).role_byte(), n)
    }

    /// The chain key of chain `k` before message `n`.
    fn ck_at(&self, k: usize, n: u32) -> [u8; 32] {
        (0..n).fold(self.chains[k - 1].ck0, |ck, _| hmac(&ck, &[&[2]]))
    }

    /// Chain k: DH(key_k, key_{k-1}) (for chain 1, dh0 = DH(a1, B0)), KDF_RK with the root
    /// key as salt.
    fn new_chain(&mut self, sender: Party) -> usize {
        let k = self.chains.len() + 1;
        let private = self.rngs.get_mut(sender.name()).unwrap().next32();
        let remote = if k == 1 {
            public(&self.inviter_key)
        } else {
            self.chains[k - 2].public
        };
        let dh = x25519_dalek::x25519(private, remote);
        if k == 1 {
            let first = split32(&hkdf(&self.root, &dh, b"hush/v2/first-header-keys", 64));
            self.hk1 = first[0];
            self.hk2 = first[1];
        }
        let okm = split32(&hkdf(&self.root, &dh, b"hush/v2/ratchet", 96));
        let pn = if k > 2 { self.chains[k - 3].sent } else { 0 };
        let header_key = match k {
            1 => self.hk1,
            2 => self.hk2,
            _ => self.chains[k - 3].nhk,
        };
        self.json_chains.push(json!({
            "chain": k, "sender": sender.name(),
            "ratchet_private": hex(&private), "ratchet_public": hex(&public(&private)),
            "remote_public": hex(&remote), "dh_output": hex(&dh),
            "root_key_in": hex(&self.root), "root_key_out": hex(&okm[0]),
            "chain_key": hex(&okm[1]), "next_header_key": hex(&okm[2]),
            "header_key": hex(&header_key), "previous_chain_length": pn,
        }));
        self.root = okm[0];
        self.chains.push(Chain {
            public: public(&private),
            ck0: okm[1],
            ck: okm[1],
            nhk: okm[2],
            sent: 0,
            pn,
        });
        self.own_chain.insert(sender.name(), k);
        k
    }

    /// The floor a sender passes.
    fn floor(&self, sender: Party, floor: Floor) -> u32 {
        let s = &self.streams[sender.name()];
        match floor {
            Floor::Abandon => s.next_seq,
            Floor::Unacknowledged => (0..s.next_seq)
                .find(|&q| q >= s.acknowledged.next && !s.acknowledged.above.contains(&q))
                .unwrap_or(s.next_seq),
        }
    }

    /// §6.1. Returns the floor passed.
    fn encrypt(&mut self, name: &str, sender: Party, kind: u8, text: &[u8], floor: u32) {
        let pending = self.receivers[sender.name()].pending;
        let k = match self.own_chain.get(sender.name()) {
            Some(&own) if !pending => own,
            _ => self.new_chain(sender),
        };
        self.receivers.get_mut(sender.name()).unwrap().pending = false;
        let pieces: Vec<&[u8]> = if text.is_empty() {
            vec![&[][..]]
        } else {
            text.chunks(CAPACITY).collect()
        };
        let count = pieces.len() as u16;
        let first_seq = self.streams[sender.name()].next_seq;
        let floor = floor.min(first_seq);
        for (index, piece) in pieces.iter().enumerate() {
            let stream = &self.streams[sender.name()];
            let seq = stream.next_seq;
            let ack = (stream.received.next, stream.received.bits());
            let chain = &self.chains[k - 1];
            let n = chain.sent;
            let ck = chain.ck;
            let next_ck = hmac(&ck, &[&[2]]);
            let hk = self.header_key(k, n);
            let (wk, address) = self.address(k, n);
            let header = header(&chain.public, chain.pn, n);
            let payload = payload(kind, index as u16, count, piece, seq, floor, ack);
            let z = self.rngs.get_mut(sender.name()).unwrap().next32();
            let s = seal(&hk, &ck, &self.ad, &address, &header, &payload, &z);
            self.json_messages.push(json!({
                "message": name, "fragment_index": index, "fragment_count": count,
                "sender": sender.name(), "chain": k, "n": n, "pn": chain.pn,
                "kind": kind, "seq": seq, "floor": floor, "ack": ack.0, "ack_bits": format!("{:016x}", ack.1),
                "chain_key": hex(&ck), "message_key": hex(&s.mk), "next_chain_key": hex(&next_ck),
                "header_key": hex(&hk), "write_key": hex(&wk), "address": hex(&address),
                "header": hex(&header), "padded_payload": hex(&payload),
                "z": hex(&z), "r": hex(&s.r), "header_key_hedged": hex(&s.hkr), "message_key_hedged": hex(&s.mkr),
                "encrypted_header": hex(&s.encrypted_header),
                "body_associated_data": hex(&s.body_ad), "blob": hex(&s.blob),
            }));
            let chain = &mut self.chains[k - 1];
            chain.ck = next_ck;
            chain.sent += 1;
            self.streams.get_mut(sender.name()).unwrap().next_seq += 1;
            self.blobs
                .entry(name.to_owned())
                .or_default()
                .push(SentBlob {
                    address,
                    blob: s.blob,
                    k,
                    n,
                    seq,
                    floor,
                    ack,
                    kind,
                    payload,
                });
        }
    }

    /// The poll addresses in order (§6.2).
    fn poll_list(&self, party: Party) -> Vec<[u8; 32]> {
        let r = &self.receivers[party.name()];
        let mut list: Vec<[u8; 32]> = r
            .skipped
            .iter()
            .map(|&(k, n)| self.address(k, n).1)
            .collect();
        if let Some((k, nr)) = r.current {
            list.extend((nr..nr + W).map(|n| self.address(k, n).1));
        }
        if let (Some(k), false) = (r.next, r.pending) {
            list.extend((0..W).map(|n| self.address(k, n).1));
        }
        list
    }

    /// The receiver's bookkeeping (§6.3 polling rules, §6.4, §6.5); returns the retired set
    /// and the rollback.
    fn receive(&mut self, party: Party, blob: &SentBlob) -> (Vec<[u8; 32]>, Option<u32>) {
        let (k, n) = (blob.k, blob.n);
        let before = self.poll_list(party);
        let pn = self.chains[k - 1].pn;
        let r = self.receivers.get_mut(party.name()).unwrap();
        if let Some((_, nr)) = r.current.filter(|&(ck, nr)| ck == k && n >= nr) {
            r.skipped.extend((nr..n).map(|i| (k, i)));
            r.current = Some((k, n + 1));
        } else if r.next == Some(k) && !r.pending {
            if let Some((old, nr)) = r.current {
                assert!(pn >= nr, "the script must not break the PN rule");
                r.skipped
                    .extend((nr..pn.min(nr + MAX_SKIP)).map(|i| (old, i)));
            }
            r.skipped.extend((0..n).map(|i| (k, i)));
            r.current = Some((k, n + 1));
            r.next = Some(k + 2);
            r.pending = true;
        } else {
            let at = r
                .skipped
                .iter()
                .position(|&s| s == (k, n))
                .expect("not polled");
            r.skipped.remove(at);
        }
        let after = self.poll_list(party);
        let retired = before
            .iter()
            .filter(|a| !after.contains(a))
            .copied()
            .collect();
        (retired, self.record_stream(party, blob))
    }

    /// §6.4 receiver rules and §6.5 rollback detection.
    fn record_stream(&mut self, party: Party, blob: &SentBlob) -> Option<u32> {
        let s = self.streams.get_mut(party.name()).unwrap();
        s.received.add_below(blob.floor);
        s.received.add(blob.seq);
        s.acknowledged.merge(blob.ack.0, blob.ack.1);
        let h = s.acknowledged.highest()?;
        if h < s.next_seq {
            return None;
        }
        let lost = h + 1 - s.next_seq;
        s.next_seq = h + 1;
        // §6.5: also while a send step is pending (the next chain's PN is this length).
        if let Some(&k) = self.own_chain.get(party.name()) {
            let chain = &mut self.chains[k - 1];
            for _ in 0..lost.min(MAX_ROLLBACK_SKIP) {
                chain.ck = hmac(&chain.ck, &[&[2]]);
                chain.sent += 1;
            }
        }
        Some(lost)
    }

    fn snapshot(&self, party: Party) -> Snapshot {
        Snapshot {
            own: self.own_chain.get(party.name()).map(|&k| {
                let c = &self.chains[k - 1];
                (k, c.ck, c.sent)
            }),
            receiver: self.receivers[party.name()].clone(),
            stream: self.streams[party.name()].clone(),
        }
    }

    fn restore(&mut self, party: Party, s: Snapshot) {
        let (k, ck, sent) = s.own.expect("the script snapshots a party that has sent");
        assert_eq!(
            self.own_chain[party.name()],
            k,
            "the lost state must not start chains"
        );
        self.chains[k - 1].ck = ck;
        self.chains[k - 1].sent = sent;
        self.receivers.insert(party.name(), s.receiver);
        self.streams.insert(party.name(), s.stream);
    }

    fn stream_json(&self, party: Party) -> Value {
        let s = &self.streams[party.name()];
        json!({"next_seq": s.next_seq, "received": s.received.json(), "acknowledged": s.acknowledged.json()})
    }
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

/// The same invite (secret, key, expiry) with a mailbox URL, joined by the same joiner seed:
/// every key and the hello's address differ.
fn url_variant(secret: &[u8; 32], inviter_key: &[u8; 32]) -> Value {
    let b0 = public(inviter_key);
    let (info, okm) = invite_keys(secret, &b0, VARIANT_URL);
    let (sk, hello_key, ad) = (okm[0], okm[1], okm[2]);
    let mut joiner = Rng::new(JOINER_SEED);
    let a1 = joiner.next32();
    let dh0 = x25519_dalek::x25519(a1, b0);
    let first = split32(&hkdf(&sk, &dh0, b"hush/v2/first-header-keys", 64));
    let chain = split32(&hkdf(&sk, &dh0, b"hush/v2/ratchet", 96));
    let (wk, address) = write_key(&hello_key, 0, 0);
    let header = header(&public(&a1), 0, 0);
    let payload = payload(KIND_HELLO, 0, 1, &[], 0, 0, (0, 0));
    let z = joiner.next32();
    let s = seal(&hello_key, &chain[1], &ad, &address, &header, &payload, &z);
    let bytes = invite_bytes(secret, &b0, VARIANT_URL);
    json!({
        "mailbox_url": VARIANT_URL, "kdf_info": hex(&info), "sk": hex(&sk), "hello_key": hex(&hello_key),
        "associated_data": hex(&ad), "hk1": hex(&first[0]), "hk2": hex(&first[1]),
        "bytes": hex(&bytes), "link_fragment": protocol::base64url::encode(&bytes),
        "hello_write_key": hex(&wk), "hello_address": hex(&address), "hello_z": hex(&z), "hello_r": hex(&s.r),
        "hello_blob": hex(&s.blob), "safety_code": safety_code(secret, &b0, &public(&a1)),
    })
}

fn reference() -> (Value, Value) {
    let mut inviter_rng = Rng::new(INVITER_SEED);
    let secret = inviter_rng.next32();
    let inviter_key = inviter_rng.next32();
    let inviter_public = public(&inviter_key);
    let (info, okm) = invite_keys(&secret, &inviter_public, "");
    let invite_bytes = invite_bytes(&secret, &inviter_public, "");
    let empty_receiver = |next| Receiver {
        current: None,
        next,
        pending: false,
        skipped: Vec::new(),
    };
    let mut model = Model {
        rngs: BTreeMap::from([("inviter", inviter_rng), ("joiner", Rng::new(JOINER_SEED))]),
        hello_key: okm[1],
        hk1: [0; 32],
        hk2: [0; 32],
        ad: okm[2],
        root: okm[0],
        inviter_key,
        chains: Vec::new(),
        own_chain: BTreeMap::new(),
        receivers: BTreeMap::from([
            ("joiner", empty_receiver(Some(2))),
            ("inviter", empty_receiver(None)),
        ]),
        streams: BTreeMap::from([
            ("joiner", Stream::default()),
            ("inviter", Stream::default()),
        ]),
        snapshots: BTreeMap::new(),
        json_chains: Vec::new(),
        json_messages: Vec::new(),
        blobs: BTreeMap::new(),
    };
    // Join: chain 1 and the hello (kind 0x01, seq 0). Accept: the inviter's receive half.
    model.encrypt("hello", Party::Joiner, KIND_HELLO, &[], 0);
    let joiner_private = model.json_chains[0]["ratchet_private"].clone();
    let dh0 = model.json_chains[0]["dh_output"].clone();
    let joiner_public = model.chains[0].public;
    let code = safety_code(&secret, &inviter_public, &joiner_public);
    {
        let r = model.receivers.get_mut("inviter").unwrap();
        r.current = Some((1, 1));
        r.next = Some(3);
        r.pending = true;
        let hello = model.blobs["hello"][0].clone();
        assert_eq!(model.record_stream(Party::Inviter, &hello), None);
    }
    let mut events = vec![json!({
        "action": "accept", "to": "inviter", "message": "hello", "fragment": 0,
        "stream_after": model.stream_json(Party::Inviter),
        "poll_addresses_after": model.poll_list(Party::Inviter).iter().map(|a| hex(a)).collect::<Vec<_>>(),
    })];
    let mut plaintexts: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let mut fragments_seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut deliveries: BTreeMap<String, usize> = BTreeMap::new();
    for step in script() {
        match step {
            Step::Send(party, name, text, floor) => {
                plaintexts.insert(name, text.clone());
                let floor = model.floor(party, floor);
                model.encrypt(name, party, KIND_DATA, &text, floor);
                events.push(json!({"action": "send", "from": party.name(), "message": name, "plaintext": hex(&text), "floor": floor}));
            }
            Step::SendAck(party, name) => {
                let floor = model.floor(party, Floor::Unacknowledged);
                model.encrypt(name, party, KIND_ACK, &[], floor);
                events.push(json!({"action": "send_acknowledgement", "from": party.name(), "message": name, "floor": floor}));
            }
            Step::Snapshot(party) => {
                let s = model.snapshot(party);
                model.snapshots.insert(party.name(), s);
                events.push(json!({"action": "snapshot", "party": party.name()}));
            }
            Step::Restore(party) => {
                let s = model.snapshots.remove(party.name()).unwrap();
                model.restore(party, s);
                events.push(json!({"action": "restore", "party": party.name()}));
            }
            Step::Deliver(party, name, _) | Step::DeliverAll(party, name) => {
                let fragments: Vec<usize> = match step {
                    Step::Deliver(_, _, f) => vec![f],
                    _ => (0..model.blobs[name].len()).collect(),
                };
                let mut retired = Vec::new();
                let mut rollback = None;
                let mut last = None;
                for &f in &fragments {
                    let blob = model.blobs[name][f].clone();
                    let (r, lost) = model.receive(party, &blob);
                    retired.extend(r);
                    rollback = rollback.or(lost);
                    last = Some(blob);
                }
                let last = last.unwrap();
                let seen = fragments_seen.entry(name).or_default();
                *seen += fragments.len();
                let complete = last.kind == KIND_DATA && *seen == model.blobs[name].len();
                deliveries.insert(format!("{}:{name}", party.name()), events.len());
                events.push(json!({
                    "action": if fragments.len() == 1 { "deliver" } else { "deliver_all" },
                    "to": party.name(), "message": name,
                    "fragment": if fragments.len() == 1 { json!(fragments[0]) } else { Value::Null },
                    "plaintext": if complete { Value::String(hex(&plaintexts[name])) } else { Value::Null },
                    "kind": kind_name(last.kind), "seq": last.seq,
                    "rollback": rollback.map_or(Value::Null, |l| json!({"lost_blobs": l})),
                    "stream_after": model.stream_json(party),
                    "retired": retired.iter().map(|a| hex(a)).collect::<Vec<_>>(),
                    "poll_addresses_after": model.poll_list(party).iter().map(|a| hex(a)).collect::<Vec<_>>(),
                }));
            }
        }
    }
    let r1 = &model.blobs["lost1"][0];
    let r1_again = &model.blobs["lost1-again"][0];
    assert_eq!(r1.address, r1_again.address);
    assert_ne!(r1.blob[..16], r1_again.blob[..16], "the hedge must differ");
    let negative = negative_vectors(&model, &deliveries);
    let conversation = json!({
        "description": "Hush v2 scripted conversation: invite and join; messages both ways; DH ratchet steps in each direction; out-of-order delivery (j2 before j1; long#2 first); a lost message (i2) that its sender later abandons (floor); a three-blob message (long); an acknowledgement-only blob (ack1); boundary sizes (empty, 909 = one full fragment, 910, 58176 = 64 fragments); a rollback (the inviter's state is snapshotted, lost1..3 are sent and read, the restored state seals lost1-again in lost1's slot with a different r, and detects the rollback when k1 acknowledges lost3; its next chain reports PN past the lost blobs, so the joiner reads it). All byte strings hex; address lists in poll order; acknowledgement bits as 16 hex digits (u64).",
        "constants": {"blob_len": 1024, "hedge_len": 16, "payload_len": PAYLOAD_LEN, "fragment_header_len": FIELDS_LEN, "fragment_capacity": CAPACITY, "max_message_len": MAX_MESSAGE_LEN, "window": W, "max_skip": MAX_SKIP, "ack_window": ACK_WINDOW},
        "rng": {"construction": "block i = SHA-256(\"hush/test-rng\" || u64be(seed) || u64be(i)); bytes consumed in order, 32 per draw: inviter: invite secret, b0, then per encrypt the new ratchet key if a DH step runs, then z per blob; joiner: a1, z of the hello, then the same", "inviter_seed": INVITER_SEED, "joiner_seed": JOINER_SEED},
        "invite": {
            "now": NOW, "expires_at": EXPIRES_AT, "mailbox_url": "", "secret": hex(&secret),
            "inviter_private": hex(&inviter_key), "inviter_public": hex(&inviter_public),
            "kdf_info": hex(&info), "sk": hex(&okm[0]), "hello_key": hex(&okm[1]),
            "associated_data": hex(&okm[2]),
            "bytes": hex(&invite_bytes), "link_fragment": protocol::base64url::encode(&invite_bytes),
            "joiner_private": joiner_private, "joiner_public": hex(&joiner_public), "dh0": dh0,
            "hk1": hex(&model.hk1), "hk2": hex(&model.hk2),
            "hello_address": hex(&model.blobs["hello"][0].address),
        },
        "invite_url_variant": url_variant(&secret, &inviter_key),
        "safety_code": code,
        "chains": model.json_chains,
        "messages": model.json_messages,
        "events": events,
    });
    (conversation, negative)
}

/// Blobs that must be refused (or, for the rollback vectors, accepted with a `Rollback`),
/// each delivered in the state before a delivery event of the conversation.
fn negative_vectors(model: &Model, deliveries: &BTreeMap<String, usize>) -> Value {
    let mut out = Vec::new();
    let mut push = |name: &str,
                    description: &str,
                    before: usize,
                    to: Party,
                    address: [u8; 32],
                    blob: &[u8],
                    expected: Value| {
        out.push(json!({
            "name": name, "description": description, "before_event": before, "to": to.name(),
            "address": hex(&address), "blob": hex(blob), "expected": expected,
        }));
    };
    let error = |e: &str| json!({"error": e});
    // Template: i1 (chain 2, message 0), which the joiner reads as the first of a new chain.
    let i1 = &model.blobs["i1"][0];
    let at = deliveries["joiner:i1"];
    let flipped = |i: usize| {
        let mut b = i1.blob.clone();
        b[i] ^= 0x01;
        b
    };
    let j = Party::Joiner;
    push(
        "header_tag",
        "a bit of the header tag changed",
        at,
        j,
        i1.address,
        &flipped(71),
        error("HeaderAuthentication"),
    );
    push(
        "header_ciphertext",
        "a bit of the encrypted header changed",
        at,
        j,
        i1.address,
        &flipped(16),
        error("HeaderAuthentication"),
    );
    push(
        "hedge",
        "a bit of r changed: another header key",
        at,
        j,
        i1.address,
        &flipped(0),
        error("HeaderAuthentication"),
    );
    push(
        "body_tag",
        "a bit of the body tag changed",
        at,
        j,
        i1.address,
        &flipped(1023),
        error("BodyAuthentication"),
    );
    push(
        "body_ciphertext",
        "a bit of the body changed",
        at,
        j,
        i1.address,
        &flipped(500),
        error("BodyAuthentication"),
    );
    let (_, slot1) = model.address(i1.k, 1);
    push(
        "moved",
        "the blob of message 0 found at the address of message 1 (both in the window)",
        at,
        j,
        slot1,
        &i1.blob,
        error("HeaderAuthentication"),
    );
    push(
        "replay",
        "the same blob again after it was read",
        at + 1,
        j,
        i1.address,
        &i1.blob,
        error("Duplicate"),
    );
    push(
        "wrong_length",
        "one byte short",
        at,
        j,
        i1.address,
        &i1.blob[..1023],
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
    // Correctly sealed blobs for chain 2, message n, with a given payload.
    let chain = &model.chains[i1.k - 1];
    let sealed = |n: u32, payload: &[u8], salt: u8| {
        let (_, address) = model.address(i1.k, n);
        let header = header(&chain.public, chain.pn, n);
        let s = seal(
            &model.header_key(i1.k, n),
            &model.ck_at(i1.k, n),
            &model.ad,
            &address,
            &header,
            payload,
            &[salt; 32],
        );
        (address, s.blob)
    };
    let (address, blob) = sealed(W, &i1.payload, 1);
    push(
        "beyond_window",
        "a genuine blob of message 16 of the chain: outside the window [0..16)",
        at,
        j,
        address,
        &blob,
        error("UnknownAddress"),
    );
    let (s, f, a) = (i1.seq, i1.floor, i1.ack);
    let data = b"hi joiner (DH step)";
    let malformed: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "malformed_kind",
            "kind 0x04",
            payload(0x04, 0, 1, data, s, f, a),
        ),
        (
            "malformed_floor_above_seq",
            "floor = seq + 1",
            payload(KIND_DATA, 0, 1, data, s, s + 1, a),
        ),
        ("malformed_padding", "a non-zero padding byte", {
            let mut p = i1.payload.clone();
            p[PAYLOAD_LEN - 1] = 1;
            p
        }),
        (
            "malformed_count_zero",
            "count 0",
            payload(KIND_DATA, 0, 0, data, s, f, a),
        ),
        (
            "malformed_index_not_below_count",
            "index 1 of count 1",
            payload(KIND_DATA, 1, 1, data, s, f, a),
        ),
        (
            "malformed_acknowledgement_with_data",
            "kind 0x03 with len 1",
            payload(KIND_ACK, 0, 1, b"x", s, f, a),
        ),
        ("malformed_length", "len 910 (more than fits)", {
            let mut p = payload(KIND_DATA, 0, 1, &[], s, f, a);
            p[5..7].copy_from_slice(&910u16.to_be_bytes());
            p
        }),
    ];
    for (name, what, p) in malformed {
        let (address, blob) = sealed(0, &p, 2);
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
    // not pending) and reads the joiner's chain 1 at n ≥ 3. An acknowledgement-only blob at
    // chain 1, message 3, claims inviter seqs the inviter never sent.
    let j2 = &model.blobs["j2"][0];
    let inviter = Party::Inviter;
    for (name, ack, lost, next_seq) in [
        ("rollback_ack", (7u32, 0u64), 4u32, 7u32),
        ("rollback_ack_bits", (2, 0b100), 3, 6),
    ] {
        let n = j2.n + 1;
        let (_, address) = model.address(1, n);
        let header = header(&model.chains[0].public, 0, n);
        let p = payload(KIND_ACK, 0, 1, &[], j2.seq + 1, j2.seq + 1, ack);
        let s = seal(
            &model.header_key(1, n),
            &model.ck_at(1, n),
            &model.ad,
            &address,
            &header,
            &p,
            &[3; 32],
        );
        let mut acknowledged = AckSet::default();
        acknowledged.merge(ack.0, ack.1);
        let (_, next_address) = model.address(i1.k, 3 + lost);
        push(
            name,
            "an acknowledgement of inviter seqs this session never sent (it sent 0..2): this device was rolled back",
            at,
            inviter,
            address,
            &s.blob,
            json!({
                "kind": "Acknowledgement", "seq": j2.seq + 1, "rollback": {"lost_blobs": lost},
                "next_seq": next_seq, "acknowledged": acknowledged.json(),
                "next_blob_address": hex(&next_address),
            }),
        );
    }
    json!({
        "description": "Hush v2 negative vectors: each blob is delivered to `to` in the state right before event `before_event` of conversation.json (events [0..before_event) applied). `expected.error` names the refusal (the state must be unchanged); the rollback vectors are accepted: expected kind, seq, rollback, next_seq afterwards, the merged acknowledgement, and the address of the next blob the party sends (its sending chain moved ahead by lost_blobs).",
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
use protocol::{Acknowledgement, Address, Invite, OutgoingBlob, PendingInvite, Session};

fn s(x: &Value) -> String {
    x.as_str().unwrap().to_owned()
}

fn ack_json(a: &Acknowledgement) -> Value {
    json!({"next": a.next, "bits": format!("{:016x}", a.bits)})
}

fn stream_json(session: &Session) -> Value {
    json!({
        "next_seq": session.next_seq(),
        "received": ack_json(&session.acknowledgement()),
        "acknowledged": ack_json(&session.peer_acknowledgement()),
    })
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
                    event["stream_after"],
                    "accept stream"
                );
                assert_eq!(
                    poll_hex(&session),
                    event["poll_addresses_after"],
                    "accept polls"
                );
                w.inviter = Some(session);
            }
            "send" | "send_acknowledgement" => {
                let from = s(&event["from"]);
                let floor = event["floor"].as_u64().unwrap() as u32;
                let mut rng = if from == "joiner" {
                    w.joiner_rng.clone()
                } else {
                    w.inviter_rng.clone()
                };
                let blobs = if event["action"] == "send" {
                    let text = unhex(&s(&event["plaintext"]));
                    w.session(&from).encrypt(&mut rng, &text, floor).unwrap()
                } else {
                    vec![
                        w.session(&from)
                            .encrypt_acknowledgement(&mut rng, floor)
                            .unwrap(),
                    ]
                };
                if from == "joiner" {
                    w.joiner_rng = rng;
                } else {
                    w.inviter_rng = rng;
                }
                w.check(v, &name, blobs);
            }
            "snapshot" => {
                let party = s(&event["party"]);
                let pickle = w.session(&party).pickle(&PICKLE_KEY);
                w.snapshots.insert(party, pickle);
            }
            "restore" => {
                let party = s(&event["party"]);
                let pickle = w.snapshots.remove(&party).unwrap();
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
                    format!("{:?}", received.kind),
                    s(&event["kind"]),
                    "{name} kind"
                );
                assert_eq!(
                    u64::from(received.seq),
                    event["seq"].as_u64().unwrap(),
                    "{name} seq"
                );
                let rollback =
                    rollback.map_or(Value::Null, |r| json!({"lost_blobs": r.lost_blobs}));
                assert_eq!(rollback, event["rollback"], "{name} rollback");
                assert_eq!(stream_json(session), event["stream_after"], "{name} stream");
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
                let rollback = received
                    .rollback
                    .map_or(Value::Null, |r| json!({"lost_blobs": r.lost_blobs}));
                assert_eq!(rollback, expected["rollback"], "{name}");
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
                let floor = session.next_seq();
                let mut rng = SeededRng::new(99);
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
