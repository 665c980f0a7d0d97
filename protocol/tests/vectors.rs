//! Test vectors: `tests/vectors/conversation.json`.
//!
//! The file is written by an independent *reference model* in this test: it derives every
//! value straight from `docs/PROTOCOL.md` with the raw primitives (x25519, HKDF, HMAC,
//! SHA-256, ChaCha20-Poly1305) and shares no code with the crate's ratchet. Two tests:
//! * `reference_model_reproduces_the_vector_file`: the model's output equals the file, byte
//!   for byte (so the file is exactly what the spec says);
//! * `implementation_matches_the_vector_file`: the real `Invite` / `Session` API, driven by the
//!   same seeded randomness through the same script, produces every invite byte, write key,
//!   address and blob in the file, decrypts to the recorded plaintexts, and reports the
//!   recorded retired addresses and poll sets.
//!
//! Regenerate (only on a deliberate protocol change):
//! `HUSH_WRITE_VECTORS=1 cargo test -p protocol --test vectors`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
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
const W: u32 = 16;
const MAX_SKIP: u32 = 64;
const PAYLOAD_LEN: usize = 952;
const NOW: u64 = 1_767_225_600;
const EXPIRES_AT: u64 = NOW + 600;
const INVITER_SEED: u64 = 1;
const JOINER_SEED: u64 = 2;

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

enum Step {
    Send(Party, &'static str, Vec<u8>),
    Deliver(Party, &'static str, usize),
}

fn long_text() -> Vec<u8> {
    (0..2000u32).map(|i| (i * 31 + 7) as u8).collect()
}

/// Invite, join, accept happen first; then these steps.
fn script() -> Vec<Step> {
    use Party::*;
    use Step::*;
    vec![
        Send(Joiner, "j1", b"hello inviter".to_vec()),
        Send(Joiner, "j2", b"second message".to_vec()),
        Deliver(Inviter, "j2", 0), // out of order
        Deliver(Inviter, "j1", 0),
        Send(Inviter, "i1", b"hi joiner (DH step)".to_vec()),
        Send(Inviter, "i2", b"this one is lost".to_vec()),
        Send(Inviter, "i3", b"third from inviter".to_vec()),
        Deliver(Joiner, "i1", 0),
        Deliver(Joiner, "i3", 0), // i2 is never delivered
        Send(Joiner, "j3", b"reply (DH step)".to_vec()),
        Send(Joiner, "long", long_text()), // three blobs
        Deliver(Inviter, "long", 2),
        Deliver(Inviter, "j3", 0),
        Deliver(Inviter, "long", 0),
        Deliver(Inviter, "long", 1),
        Send(Inviter, "i4", b"done".to_vec()),
        Deliver(Joiner, "i4", 0),
    ]
}

// ------------------------------------------------------------------- reference model ----

struct Chain {
    public: [u8; 32],
    ck: [u8; 32],
    nhk: [u8; 32],
    sent: u32,
    pn: u32,
}

/// (address, blob, chain, n) of one sent blob.
type SentBlob = ([u8; 32], Vec<u8>, usize, u32);

struct Receiver {
    current: Option<(usize, u32)>,
    next: Option<usize>,
    pending: bool,
    skipped: Vec<(usize, u32)>,
}

struct Model {
    rngs: BTreeMap<&'static str, Rng>,
    secret: [u8; 32],
    hka: [u8; 32],
    nhkb: [u8; 32],
    ad: [u8; 32],
    root: [u8; 32],
    inviter_key: [u8; 32],
    chains: Vec<Chain>, // chains[k-1] is chain k
    own_chain: BTreeMap<&'static str, usize>,
    receivers: BTreeMap<&'static str, Receiver>,
    json_chains: Vec<Value>,
    json_messages: Vec<Value>,
    blobs: BTreeMap<String, Vec<SentBlob>>,
}

impl Model {
    fn header_key(&self, k: usize) -> [u8; 32] {
        match k {
            1 => self.hka,
            2 => self.nhkb,
            _ => self.chains[k - 3].nhk,
        }
    }

    fn sender_of(k: usize) -> Party {
        if k % 2 == 1 {
            Party::Joiner
        } else {
            Party::Inviter
        }
    }

    fn address(&self, k: usize, n: u32) -> ([u8; 32], [u8; 32]) {
        let wk = hmac(
            &self.header_key(k),
            &[
                b"hush/v1/write-key",
                &[Self::sender_of(k).role_byte()],
                &n.to_be_bytes(),
            ],
        );
        (wk, sha(&[b"hush/v1/address", &wk]))
    }

    /// Chain k: DH(key_k, key_{k-1}), KDF_RK with the root key as salt.
    fn new_chain(&mut self, sender: Party) -> usize {
        let k = self.chains.len() + 1;
        let private = self.rngs.get_mut(sender.name()).unwrap().next32();
        let remote = if k == 1 {
            public(&self.inviter_key)
        } else {
            self.chains[k - 2].public
        };
        let dh = x25519_dalek::x25519(private, remote);
        let okm = split32(&hkdf(&self.root, &dh, b"hush/v1/ratchet", 96));
        let pn = if k > 2 { self.chains[k - 3].sent } else { 0 };
        self.json_chains.push(json!({
            "chain": k, "sender": sender.name(),
            "ratchet_private": hex(&private), "ratchet_public": hex(&public(&private)),
            "remote_public": hex(&remote), "dh_output": hex(&dh),
            "root_key_in": hex(&self.root), "root_key_out": hex(&okm[0]),
            "chain_key": hex(&okm[1]), "next_header_key": hex(&okm[2]),
            "header_key": hex(&self.header_key_for_new(k)), "previous_chain_length": pn,
        }));
        self.root = okm[0];
        self.chains.push(Chain {
            public: public(&private),
            ck: okm[1],
            nhk: okm[2],
            sent: 0,
            pn,
        });
        self.own_chain.insert(sender.name(), k);
        k
    }

    fn header_key_for_new(&self, k: usize) -> [u8; 32] {
        match k {
            1 => self.hka,
            2 => self.nhkb,
            _ => self.chains[k - 3].nhk,
        }
    }

    fn encrypt(&mut self, name: &str, sender: Party, kind: u8, text: &[u8]) {
        let received = match sender {
            Party::Joiner => self.receivers["joiner"].current.map_or(0, |c| c.0),
            Party::Inviter => self.receivers["inviter"].current.map_or(0, |c| c.0),
        };
        let own = self.own_chain.get(sender.name()).copied().unwrap_or(0);
        let k = if own == 0 || received > own {
            self.new_chain(sender)
        } else {
            own
        };
        self.receivers.get_mut(sender.name()).unwrap().pending = false;
        let cap = PAYLOAD_LEN - 7;
        let pieces: Vec<&[u8]> = if text.is_empty() {
            vec![&[][..]]
        } else {
            text.chunks(cap).collect()
        };
        let count = pieces.len() as u16;
        for (index, piece) in pieces.iter().enumerate() {
            let chain = &self.chains[k - 1];
            let n = chain.sent;
            let ck = chain.ck;
            let mk = hmac(&ck, &[&[1]]);
            let next_ck = hmac(&ck, &[&[2]]);
            let hk = self.header_key(k);
            let (wk, address) = self.address(k, n);
            let mut header = chain.public.to_vec();
            header.extend(chain.pn.to_be_bytes());
            header.extend(n.to_be_bytes());
            let mut nonce = [0u8; 12];
            nonce[8..].copy_from_slice(&n.to_be_bytes());
            let enc_header = aead(&hk, nonce, &self.ad, &header);
            let mut payload = vec![kind];
            payload.extend((index as u16).to_be_bytes());
            payload.extend(count.to_be_bytes());
            payload.extend((piece.len() as u16).to_be_bytes());
            payload.extend_from_slice(piece);
            payload.resize(PAYLOAD_LEN, 0);
            let body_ad = [&self.ad[..], &address, &enc_header].concat();
            let body = aead(&mk, [0; 12], &body_ad, &payload);
            let blob = [enc_header.clone(), body].concat();
            assert_eq!(blob.len(), 1024);
            self.json_messages.push(json!({
                "message": name, "fragment_index": index, "fragment_count": count,
                "sender": sender.name(), "chain": k, "n": n, "pn": chain.pn,
                "chain_key": hex(&ck), "message_key": hex(&mk), "next_chain_key": hex(&next_ck),
                "header_key": hex(&hk), "write_key": hex(&wk), "address": hex(&address),
                "header": hex(&header), "header_nonce": hex(&nonce), "encrypted_header": hex(&enc_header),
                "padded_payload": hex(&payload), "body_associated_data": hex(&body_ad), "blob": hex(&blob),
            }));
            let chain = &mut self.chains[k - 1];
            chain.ck = next_ck;
            chain.sent += 1;
            self.blobs
                .entry(name.to_owned())
                .or_default()
                .push((address, blob, k, n));
        }
    }

    fn poll_set(&self, party: Party) -> BTreeSet<[u8; 32]> {
        let r = &self.receivers[party.name()];
        let mut set = BTreeSet::new();
        if let Some((k, nr)) = r.current {
            set.extend((nr..nr + W).map(|n| self.address(k, n).1));
        }
        if let (Some(k), false) = (r.next, r.pending) {
            set.extend((0..W).map(|n| self.address(k, n).1));
        }
        set.extend(r.skipped.iter().map(|&(k, n)| self.address(k, n).1));
        set
    }

    /// The receiver's bookkeeping of the spec's polling rules; returns the retired set.
    fn receive(&mut self, party: Party, k: usize, n: u32) -> Vec<[u8; 32]> {
        let before = self.poll_set(party);
        let pn = self.chains[k - 1].pn;
        let r = self.receivers.get_mut(party.name()).unwrap();
        if let Some((_, nr)) = r.current.filter(|&(ck, nr)| ck == k && n >= nr) {
            r.skipped.extend((nr..n).map(|i| (k, i)));
            r.current = Some((k, n + 1));
        } else if r.next == Some(k) {
            if let Some((old, nr)) = r.current {
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
        let after = self.poll_set(party);
        before.difference(&after).copied().collect()
    }
}

fn reference() -> Value {
    let mut inviter_rng = Rng::new(INVITER_SEED);
    let secret = inviter_rng.next32();
    let inviter_key = inviter_rng.next32();
    let inviter_public = public(&inviter_key);
    let info = [
        &b"hush/v1/invite"[..],
        &inviter_public,
        &EXPIRES_AT.to_be_bytes(),
    ]
    .concat();
    let okm = split32(&hkdf(b"", &secret, &info, 128));
    let mut invite_bytes = vec![1u8];
    invite_bytes.extend(secret);
    invite_bytes.extend(inviter_public);
    invite_bytes.extend(EXPIRES_AT.to_be_bytes());
    let mut model = Model {
        rngs: BTreeMap::from([("inviter", inviter_rng), ("joiner", Rng::new(JOINER_SEED))]),
        secret,
        hka: okm[1],
        nhkb: okm[2],
        ad: okm[3],
        root: okm[0],
        inviter_key,
        chains: Vec::new(),
        own_chain: BTreeMap::new(),
        receivers: BTreeMap::from([
            (
                "joiner",
                Receiver {
                    current: None,
                    next: Some(2),
                    pending: false,
                    skipped: Vec::new(),
                },
            ),
            (
                "inviter",
                Receiver {
                    current: None,
                    next: None,
                    pending: false,
                    skipped: Vec::new(),
                },
            ),
        ]),
        json_chains: Vec::new(),
        json_messages: Vec::new(),
        blobs: BTreeMap::new(),
    };
    // Join: chain 1 and the hello (kind 0x01, empty). Accept: the inviter's receive half.
    model.encrypt("hello", Party::Joiner, 0x01, &[]);
    let joiner_public = model.chains[0].public;
    let code = u64::from_be_bytes(
        sha(&[
            b"hush/v1/safety-code",
            &model.secret,
            &inviter_public,
            &joiner_public,
        ])[..8]
            .try_into()
            .unwrap(),
    ) % 1_000_000_000_000;
    {
        let r = model.receivers.get_mut("inviter").unwrap();
        r.current = Some((1, 1));
        r.next = Some(3);
        r.pending = true;
    }
    let mut events = vec![json!({
        "action": "accept", "to": "inviter", "message": "hello", "fragment": 0,
        "poll_addresses_after": model.poll_set(Party::Inviter).iter().map(|a| hex(a)).collect::<Vec<_>>(),
    })];
    let mut plaintexts: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let mut fragments_seen: BTreeMap<&str, usize> = BTreeMap::new();
    for step in script() {
        match step {
            Step::Send(party, name, text) => {
                plaintexts.insert(name, text.clone());
                model.encrypt(name, party, 0x02, &text);
                events.push(json!({"action": "send", "from": party.name(), "message": name, "plaintext": hex(&text)}));
            }
            Step::Deliver(party, name, fragment) => {
                let (_, _, k, n) = model.blobs[name][fragment].clone();
                let retired = model.receive(party, k, n);
                let seen = fragments_seen.entry(name).or_default();
                *seen += 1;
                let complete = *seen == model.blobs[name].len();
                events.push(json!({
                    "action": "deliver", "to": party.name(), "message": name, "fragment": fragment,
                    "plaintext": if complete { Value::String(hex(&plaintexts[name])) } else { Value::Null },
                    "retired": retired.iter().map(|a| hex(a)).collect::<Vec<_>>(),
                    "poll_addresses_after": model.poll_set(party).iter().map(|a| hex(a)).collect::<Vec<_>>(),
                }));
            }
        }
    }
    json!({
        "description": "Hush v1 scripted conversation: invite and join, messages both ways, a DH ratchet step in each direction, out-of-order delivery (j2 before j1; long#2 first), one lost message (i2), one three-blob message (long). All values hex; address sets sorted.",
        "constants": {"blob_len": 1024, "payload_len": PAYLOAD_LEN, "window": W, "max_skip": MAX_SKIP},
        "rng": {"construction": "block i = SHA-256(\"hush/test-rng\" || u64be(seed) || u64be(i)); bytes consumed in order, 32 per key", "inviter_seed": INVITER_SEED, "joiner_seed": JOINER_SEED},
        "invite": {
            "now": NOW, "expires_at": EXPIRES_AT, "secret": hex(&secret),
            "inviter_private": hex(&inviter_key), "inviter_public": hex(&inviter_public),
            "kdf_info": hex(&info), "sk": hex(&okm[0]), "shared_hka": hex(&okm[1]),
            "shared_nhkb": hex(&okm[2]), "associated_data": hex(&okm[3]),
            "bytes": hex(&invite_bytes), "link_fragment": protocol::base64url::encode(&invite_bytes),
        },
        "safety_code": format!("{code:012}"),
        "chains": model.json_chains,
        "messages": model.json_messages,
        "events": events,
    })
}

fn load() -> Value {
    serde_json::from_str(&std::fs::read_to_string(PATH).expect("vector file")).unwrap()
}

#[test]
fn reference_model_reproduces_the_vector_file() {
    let generated = reference();
    if std::env::var_os("HUSH_WRITE_VECTORS").is_some() {
        std::fs::write(
            PATH,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    assert_eq!(generated, load());
}

// --------------------------------------------------------------- the implementation ----

#[test]
fn implementation_matches_the_vector_file() {
    use protocol::testing::SeededRng;
    use protocol::{Address, Invite, OutgoingBlob, Session};

    let v = load();
    let s = |x: &Value| x.as_str().unwrap().to_owned();
    let mut inviter_rng = SeededRng::new(INVITER_SEED);
    let mut joiner_rng = SeededRng::new(JOINER_SEED);
    let (pending, invite) = Invite::create(&mut inviter_rng, NOW, EXPIRES_AT, None).unwrap();
    assert_eq!(hex(&invite.to_bytes()), s(&v["invite"]["bytes"]));
    assert_eq!(
        invite.to_link_fragment().as_str(),
        s(&v["invite"]["link_fragment"])
    );
    let invite = Invite::from_link_fragment(&s(&v["invite"]["link_fragment"])).unwrap();
    let (mut joiner, hello) = invite.join(&mut joiner_rng, NOW).unwrap();

    // Every blob the implementation produces, in order, must be the file's next message.
    let messages = v["messages"].as_array().unwrap();
    let mut cursor = 0usize;
    let mut sent: BTreeMap<String, Vec<OutgoingBlob>> = BTreeMap::new();
    let mut check =
        |name: &str, blobs: Vec<OutgoingBlob>, sent: &mut BTreeMap<String, Vec<OutgoingBlob>>| {
            for b in &blobs {
                let m = &messages[cursor];
                assert_eq!(s(&m["message"]), name);
                assert_eq!(hex(&b.write_key.0), s(&m["write_key"]), "{name} write key");
                assert_eq!(hex(&b.address.0), s(&m["address"]), "{name} address");
                assert_eq!(hex(&b.blob), s(&m["blob"]), "{name} blob");
                cursor += 1;
            }
            sent.insert(name.to_owned(), blobs);
        };
    check("hello", hello, &mut sent);
    let mut inviter = None;
    let mut sessions_pending = Some(pending);
    let poll_hex = |session: &Session| -> Vec<String> {
        let set: BTreeSet<String> = session.poll_addresses().iter().map(|a| hex(&a.0)).collect();
        set.into_iter().collect()
    };
    let expected_list = |e: &Value, key: &str| -> Vec<String> {
        e[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect()
    };
    for event in v["events"].as_array().unwrap() {
        let name = s(&event["message"]);
        match event["action"].as_str().unwrap() {
            "accept" => {
                let pending = sessions_pending.take().unwrap();
                let hello = &sent["hello"][0];
                let session = pending.accept(NOW, &hello.address, &hello.blob).unwrap();
                assert_eq!(session.safety_code().digits(), s(&v["safety_code"]));
                assert_eq!(joiner.safety_code().digits(), s(&v["safety_code"]));
                assert_eq!(
                    poll_hex(&session),
                    expected_list(event, "poll_addresses_after")
                );
                inviter = Some(session);
            }
            "send" => {
                let text: Vec<u8> = (0..event["plaintext"].as_str().unwrap().len() / 2)
                    .map(|i| {
                        u8::from_str_radix(
                            &event["plaintext"].as_str().unwrap()[2 * i..2 * i + 2],
                            16,
                        )
                        .unwrap()
                    })
                    .collect();
                let blobs = if event["from"] == "joiner" {
                    joiner.encrypt(&mut joiner_rng, &text).unwrap()
                } else {
                    inviter
                        .as_mut()
                        .unwrap()
                        .encrypt(&mut inviter_rng, &text)
                        .unwrap()
                };
                check(&name, blobs, &mut sent);
            }
            "deliver" => {
                let fragment = event["fragment"].as_u64().unwrap() as usize;
                let blob = &sent[&name][fragment];
                let session = if event["to"] == "joiner" {
                    &mut joiner
                } else {
                    inviter.as_mut().unwrap()
                };
                let received = session
                    .decrypt(&Address(blob.address.0), &blob.blob)
                    .unwrap();
                let plaintext = received.plaintext.map(|p| Value::String(hex(&p)));
                assert_eq!(
                    plaintext.unwrap_or(Value::Null),
                    event["plaintext"],
                    "{name} plaintext"
                );
                let retired: BTreeSet<String> =
                    received.retired.iter().map(|a| hex(&a.0)).collect();
                let expected: BTreeSet<String> =
                    expected_list(event, "retired").into_iter().collect();
                assert_eq!(retired, expected, "{name} retired");
                assert_eq!(
                    poll_hex(session),
                    expected_list(event, "poll_addresses_after"),
                    "{name} polls"
                );
            }
            other => panic!("unknown action {other}"),
        }
    }
    assert_eq!(cursor, messages.len());
}
