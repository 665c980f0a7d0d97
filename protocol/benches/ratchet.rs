//! Protocol cost next to the bare primitives it needs ("the floor"), measured in one run.
//!
//! * `floor/one_direction`: per 256-byte message without a DH step: `KDF_CK` on both sides
//!   (2 HMAC-SHA256 each) plus one ChaCha20-Poly1305 seal and open of 256 bytes.
//! * `floor/ping_pong`: the same plus one X25519 key generation, two X25519 DH and two
//!   HKDF-SHA256 of 96 bytes (`KDF_RK` for both halves of a DH ratchet step on every message).
//! * `floor/one_direction_hush_primitives`: the primitives Hush's design itself calls per
//!   message, for comparison: `KDF_CK` on both sides, the write key (HMAC) and address
//!   (SHA-256) on both sides, the 40-byte header sealed and opened, the 952-byte payload sealed
//!   and opened. The difference to `floor/one_direction` is the price of header encryption,
//!   addresses and the 1 KiB blob; the difference to `protocol/one_direction` is the
//!   implementation's own overhead.
//! * `floor/one_direction_hedged_primitives`: the same plus what hedging (protocol v2, issue
//!   #15) adds per message: 32 random bytes, the hedge `r = HMAC(MK, z ‖ header ‖ payload)`
//!   over ~1 KiB on the sender, and the per-blob header and body keys (`HKr`, `MKr`: two
//!   HMACs) on each side, with the 936-byte payload. Next to the line above, in the same run:
//!   the cost of hedging against v1's design.
//! * `protocol/one_direction` and `protocol/ping_pong`: `Session::encrypt` + `Session::decrypt`
//!   of one 256-byte message (ping-pong alternates direction every message).
//!
//! Run briefly: `cargo bench -p protocol -- --warm-up-time 1 --measurement-time 3`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce};
use criterion::Criterion;
use hkdf::HmacImpl;
use protocol::testing::{SeededRng, joined_pair as pair, transfer};
use std::hint::black_box;
use x25519_dalek::{PublicKey, StaticSecret};

type Hmac = hmac::Hmac<sha2::Sha256>;

fn kdf_ck(ck: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let keyed = <Hmac as HmacImpl>::new_from_slice(ck);
    let mut a = keyed.clone();
    HmacImpl::update(&mut a, &[1]);
    let mut b = keyed;
    HmacImpl::update(&mut b, &[2]);
    (HmacImpl::finalize(a).into(), HmacImpl::finalize(b).into())
}

fn aead_round_trip(key: &[u8; 32], buf: &mut [u8; 256]) {
    let cipher = ChaCha20Poly1305::new(&(*key).into());
    let nonce = Nonce::from([0u8; 12]);
    let tag = cipher
        .encrypt_inout_detached(&nonce, b"", (&mut buf[..]).into())
        .unwrap();
    let cipher = ChaCha20Poly1305::new(&(*key).into());
    cipher
        .decrypt_inout_detached(&nonce, b"", (&mut buf[..]).into(), &tag)
        .unwrap();
}

fn one_direction_floor(ck_s: &mut [u8; 32], ck_r: &mut [u8; 32], buf: &mut [u8; 256]) {
    let (mk, next) = kdf_ck(ck_s);
    *ck_s = next;
    let (mk2, next) = kdf_ck(ck_r);
    *ck_r = next;
    black_box(mk2);
    aead_round_trip(&mk, buf);
}

fn benches(c: &mut Criterion) {
    let text = [0x61u8; 256];
    let mut group = c.benchmark_group("floor");
    let mut rng = SeededRng::new(1);
    group.bench_function("x25519_keygen", |b| {
        b.iter(|| {
            let s = StaticSecret::random_from_rng(&mut rng);
            black_box(PublicKey::from(&s))
        })
    });
    let s = StaticSecret::random_from_rng(&mut rng);
    let p = PublicKey::from(&StaticSecret::random_from_rng(&mut rng));
    group.bench_function("x25519_dh", |b| b.iter(|| black_box(s.diffie_hellman(&p))));
    group.bench_function("hkdf_sha256_96", |b| {
        b.iter(|| {
            let mut okm = [0u8; 96];
            hkdf::Hkdf::<sha2::Sha256>::new(Some(&[1u8; 32]), &[2u8; 32])
                .expand(b"info", &mut okm)
                .unwrap();
            black_box(okm)
        })
    });
    group.bench_function("kdf_ck_hmac_x2", |b| {
        b.iter(|| black_box(kdf_ck(black_box(&[3u8; 32]))))
    });
    let mut buf = [0u8; 256];
    group.bench_function("aead_256_seal_open", |b| {
        b.iter(|| aead_round_trip(&[4u8; 32], &mut buf))
    });
    let mut buf1k = [0u8; 1024];
    group.bench_function("aead_1024_seal_open", |b| {
        b.iter(|| {
            let cipher = ChaCha20Poly1305::new(&[4u8; 32].into());
            let nonce = Nonce::from([0u8; 12]);
            let tag = cipher
                .encrypt_inout_detached(&nonce, b"", (&mut buf1k[..]).into())
                .unwrap();
            cipher
                .decrypt_inout_detached(&nonce, b"", (&mut buf1k[..]).into(), &tag)
                .unwrap();
        })
    });
    let (mut ck_s, mut ck_r) = ([5u8; 32], [5u8; 32]);
    group.bench_function("one_direction", |b| {
        b.iter(|| one_direction_floor(&mut ck_s, &mut ck_r, &mut buf))
    });
    let remote = PublicKey::from(&StaticSecret::random_from_rng(&mut rng));
    group.bench_function("ping_pong", |b| {
        b.iter(|| {
            let fresh = StaticSecret::random_from_rng(&mut rng);
            let public = PublicKey::from(&fresh);
            let dh1 = fresh.diffie_hellman(&remote);
            let dh2 = s.diffie_hellman(&public);
            for dh in [dh1, dh2] {
                let mut okm = [0u8; 96];
                hkdf::Hkdf::<sha2::Sha256>::new(Some(&ck_s), dh.as_bytes())
                    .expand(b"hush/v1/ratchet", &mut okm)
                    .unwrap();
                black_box(okm);
            }
            one_direction_floor(&mut ck_s, &mut ck_r, &mut buf)
        })
    });
    let mut header = [0u8; 40];
    let mut payload = [0u8; 952];
    let hk = [6u8; 32];
    group.bench_function("one_direction_hush_primitives", |b| {
        b.iter(|| {
            for _side in 0..2 {
                let (mk, next) = kdf_ck(&ck_s);
                ck_s = next;
                black_box(mk);
                let mut mac = <Hmac as HmacImpl>::new_from_slice(&hk);
                HmacImpl::update(&mut mac, b"hush/v1/write-key");
                let mut mac = mac.clone();
                HmacImpl::update(&mut mac, &[0, 0, 0, 0, 1]);
                let wk: [u8; 32] = HmacImpl::finalize(mac).into();
                black_box(protocol::WriteKey(wk).address());
            }
            let cipher = ChaCha20Poly1305::new(&hk.into());
            let nonce = Nonce::from([0u8; 12]);
            let tag = cipher
                .encrypt_inout_detached(&nonce, &[0u8; 32], (&mut header[..]).into())
                .unwrap();
            let cipher = ChaCha20Poly1305::new(&hk.into());
            cipher
                .decrypt_inout_detached(&nonce, &[0u8; 32], (&mut header[..]).into(), &tag)
                .unwrap();
            let cipher = ChaCha20Poly1305::new(&ck_s.into());
            let tag = cipher
                .encrypt_inout_detached(&nonce, &[0u8; 120], (&mut payload[..]).into())
                .unwrap();
            let cipher = ChaCha20Poly1305::new(&ck_s.into());
            cipher
                .decrypt_inout_detached(&nonce, &[0u8; 120], (&mut payload[..]).into(), &tag)
                .unwrap();
        })
    });
    let mut payload2 = [0u8; 936];
    group.bench_function("one_direction_hedged_primitives", |b| {
        b.iter(|| {
            let mut z = [0u8; 32];
            rand_core::Rng::fill_bytes(&mut rng, &mut z);
            let mut keys = [[0u8; 32]; 2];
            for (side, key) in keys.iter_mut().enumerate() {
                let (mk, next) = kdf_ck(&ck_s);
                ck_s = next;
                let mut mac = <Hmac as HmacImpl>::new_from_slice(&hk);
                HmacImpl::update(&mut mac, b"hush/v2/write-key");
                HmacImpl::update(&mut mac, &[0, 0, 0, 0, 1]);
                let wk: [u8; 32] = HmacImpl::finalize(mac).into();
                black_box(protocol::WriteKey(wk).address());
                if side == 0 {
                    let mut mac = <Hmac as HmacImpl>::new_from_slice(&mk);
                    for part in [&b"hush/v2/hedge"[..], &z, &header, &payload2] {
                        HmacImpl::update(&mut mac, part);
                    }
                    black_box(HmacImpl::finalize(mac));
                }
                for label in [&b"hush/v2/header-key"[..], b"hush/v2/body-key"] {
                    let mut mac = <Hmac as HmacImpl>::new_from_slice(&mk);
                    HmacImpl::update(&mut mac, label);
                    HmacImpl::update(&mut mac, &z[..16]);
                    *key = HmacImpl::finalize(mac).into();
                }
            }
            let nonce = Nonce::from([0u8; 12]);
            let cipher = ChaCha20Poly1305::new(&keys[0].into());
            let tag = cipher
                .encrypt_inout_detached(&nonce, &[0u8; 64], (&mut header[..]).into())
                .unwrap();
            cipher
                .decrypt_inout_detached(&nonce, &[0u8; 64], (&mut header[..]).into(), &tag)
                .unwrap();
            let cipher = ChaCha20Poly1305::new(&keys[0].into());
            let tag = cipher
                .encrypt_inout_detached(&nonce, &[0u8; 136], (&mut payload2[..]).into())
                .unwrap();
            cipher
                .decrypt_inout_detached(&nonce, &[0u8; 136], (&mut payload2[..]).into(), &tag)
                .unwrap();
        })
    });
    group.finish();

    let mut group = c.benchmark_group("protocol");
    let (mut a, mut b, mut rng) = pair(2);
    group.bench_function("one_direction", |bench| {
        bench.iter(|| transfer(&mut a, &mut b, &mut rng, &text))
    });
    let (mut a, mut b, mut rng) = pair(3);
    let mut forward = true;
    group.bench_function("ping_pong", |bench| {
        bench.iter(|| {
            if forward {
                transfer(&mut a, &mut b, &mut rng, &text)
            } else {
                transfer(&mut b, &mut a, &mut rng, &text)
            }
            forward = !forward;
        })
    });
    group.finish();
}

/// Median over rounds of (protocol time / floor time), each round timing a batch of the floor
/// and then a batch of the protocol back to back, so that load changes on a shared machine hit
/// both sides of each ratio alike.
fn paired_ratio(
    rounds: usize,
    mut floor: impl FnMut(),
    mut protocol: impl FnMut(),
) -> (f64, f64, f64) {
    use std::time::Instant;
    let batch = 50;
    let mut ratios = Vec::with_capacity(rounds);
    let mut floors = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..batch {
            floor();
        }
        let f = start.elapsed().as_secs_f64();
        let start = Instant::now();
        for _ in 0..batch {
            protocol();
        }
        let p = start.elapsed().as_secs_f64();
        ratios.push(p / f);
        floors.push(f / batch as f64 * 1e6);
    }
    ratios.sort_by(f64::total_cmp);
    floors.sort_by(f64::total_cmp);
    (ratios[rounds / 2], ratios[rounds / 10], floors[rounds / 2])
}

fn paired_ratios() {
    let text = [0x61u8; 256];
    let mut buf = [0u8; 256];
    let (mut ck_s, mut ck_r) = ([5u8; 32], [5u8; 32]);
    let (mut a, mut b, mut rng) = pair(4);
    let (median, p10, floor_us) = paired_ratio(
        400,
        || one_direction_floor(&mut ck_s, &mut ck_r, &mut buf),
        || transfer(&mut a, &mut b, &mut rng, &text),
    );
    println!(
        "paired one_direction: protocol/floor median {median:.2}x (p10 {p10:.2}x), floor {floor_us:.2} us"
    );

    let mut floor_rng = SeededRng::new(5);
    let s = StaticSecret::random_from_rng(&mut floor_rng);
    let remote = PublicKey::from(&StaticSecret::random_from_rng(&mut floor_rng));
    let (mut a, mut b, mut rng) = pair(6);
    let mut forward = true;
    let (median, p10, floor_us) = paired_ratio(
        60,
        || {
            let fresh = StaticSecret::random_from_rng(&mut floor_rng);
            let public = PublicKey::from(&fresh);
            let dh1 = fresh.diffie_hellman(&remote);
            let dh2 = s.diffie_hellman(&public);
            for dh in [dh1, dh2] {
                let mut okm = [0u8; 96];
                hkdf::Hkdf::<sha2::Sha256>::new(Some(&ck_s), dh.as_bytes())
                    .expand(b"hush/v1/ratchet", &mut okm)
                    .unwrap();
                black_box(okm);
            }
            one_direction_floor(&mut ck_s, &mut ck_r, &mut buf)
        },
        || {
            if forward {
                transfer(&mut a, &mut b, &mut rng, &text)
            } else {
                transfer(&mut b, &mut a, &mut rng, &text)
            }
            forward = !forward;
        },
    );
    println!(
        "paired ping_pong: protocol/floor median {median:.2}x (p10 {p10:.2}x), floor {floor_us:.2} us"
    );
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        paired_ratios();
    }
}
