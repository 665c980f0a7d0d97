//! Fuzzing harnesses. Each `cargo fuzz` target in `fuzz/` is a one-line call to one of these,
//! and `cargo test` replays the committed corpora in `tests/fuzz-corpus/<target>/` through
//! the same functions. Every harness asserts an invariant besides "does not panic".

use crate::base64url;
use crate::invite::{Invite, percent_decode};
use crate::pickle::seal_raw;
use crate::session::Session;
use crate::testing::SeededRng;
use crate::{BLOB_LEN, PendingInvite};

/// Invite parsing: binary and link forms. Whatever parses as bytes must re-encode to the same
/// bytes; whatever parses as a link must come from the text by stripping only.
pub fn invite(data: &[u8]) {
    if let Ok(invite) = Invite::from_bytes(data) {
        assert_eq!(
            invite.to_bytes().as_slice(),
            data,
            "invite re-encoding differs"
        );
        // Mutual mode against a fixed pending invite: any scanned invite either starts a
        // session or is refused, never panics, and an accepted role is consistent.
        let mut rng = SeededRng::new(0xf023);
        if let Ok((pending, _own)) = Invite::create(&mut rng, 0, u64::MAX, None) {
            match pending.start_mutual(&mut rng, 0, &invite) {
                Ok(crate::MutualStart::Joiner(_session, hello)) => assert_eq!(hello.len(), 1),
                Ok(crate::MutualStart::Inviter(p)) => assert_eq!(p.poll_addresses().len(), 1),
                Err(_) => {}
            }
        }
        let link = invite.to_link_fragment();
        assert_eq!(Invite::from_link_fragment(&link).as_ref(), Ok(&invite));
    }
    if let Ok(text) = core::str::from_utf8(data) {
        invite_link(text);
    }
}

/// Link parsing only strips: whatever a pasted text parses to, its canonical fragment is the
/// leading symbols of the text, or of what follows one of its `#` (after percent-decoding),
/// in order; a text that is a canonical fragment parses to exactly that (strict) invite.
fn invite_link(text: &str) {
    let parsed = Invite::from_link_fragment(text);
    let strict = base64url::decode(text).and_then(|bytes| Invite::from_bytes(&bytes).ok());
    if let Some(strict) = &strict {
        assert_eq!(
            parsed.as_ref(),
            Ok(strict),
            "a canonical fragment parses strictly"
        );
    }
    if let Ok(invite) = parsed {
        let canonical = invite.to_link_fragment();
        let decoded = percent_decode(text.as_bytes());
        let starts = crate::invite::candidate_starts(&decoded);
        let leading = |start: usize| -> Vec<u8> {
            decoded
                .get(start..)
                .unwrap_or_default()
                .iter()
                .copied()
                .filter(|&b| base64url::is_symbol(b))
                .collect()
        };
        assert!(
            starts
                .map(leading)
                .any(|symbols| symbols.starts_with(canonical.as_bytes())),
            "the invite is not the leading symbols of the text or of what follows a #"
        );
        if text.bytes().all(base64url::is_symbol) {
            assert_eq!(canonical.as_str(), text, "link re-encoding differs");
        }
        assert_eq!(Invite::from_link_fragment(&canonical).as_ref(), Ok(&invite));
    }
}

const PICKLE_KEY: [u8; 32] = [0x42; 32];

/// Pickle loading: raw bytes under a fixed key (exercises the envelope), and the same bytes
/// sealed as a plaintext of the current pickle version (exercises the decoder behind the AEAD). A loaded session must
/// re-pickle and reload to the same poll set.
pub fn pickle(data: &[u8]) {
    check_pickle(data);
    check_pickle(&seal_raw(&PICKLE_KEY, data));
}

fn check_pickle(bytes: &[u8]) {
    if let Ok(session) = Session::from_pickle(&PICKLE_KEY, bytes) {
        let again = Session::from_pickle(&PICKLE_KEY, &session.pickle(&PICKLE_KEY));
        assert_eq!(
            again.map(|s| s.poll_addresses()).ok(),
            Some(session.poll_addresses())
        );
    }
    if let Ok(pending) = PendingInvite::from_pickle(&PICKLE_KEY, bytes) {
        assert_eq!(pending.poll_addresses().len(), 1);
    }
}

/// A fixed pair of sessions (joiner and inviter after the join) for the decrypt harness.
pub fn session_pair() -> (Session, Session) {
    let mut rng = SeededRng::new(0xf022);
    let now = 1_000;
    let created = Invite::create(&mut rng, now, now + 100, None);
    let Ok((pending, invite)) = created else {
        unreachable_pair()
    };
    let Ok((joiner, hello)) = invite.join(&mut rng, now) else {
        unreachable_pair()
    };
    let Some(first) = hello.first() else {
        unreachable_pair()
    };
    let Ok(inviter) = pending.accept(now, &first.address, &first.blob) else {
        unreachable_pair()
    };
    (joiner, inviter)
}

#[expect(
    clippy::panic,
    reason = "fixed inputs, not an input path: a failure is a bug to report"
)]
fn unreachable_pair() -> ! {
    panic!("fixed session pair failed to build")
}

/// Decrypting arbitrary blobs: the first byte picks an address from the poll set, the rest
/// (padded or cut to [`BLOB_LEN`], or left as is when the length bit says so) is the blob. A
/// forged blob must be rejected and leave the session's poll set and pickle unchanged.
pub fn decrypt(data: &[u8]) {
    let (mut joiner, _inviter) = session_pair();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let polls = joiner.poll_addresses();
    let Some(address) = polls
        .get(usize::from(selector) % polls.len().max(1))
        .copied()
    else {
        return;
    };
    let blob: Vec<u8> = if selector & 0x80 != 0 {
        rest.to_vec()
    } else {
        rest.iter()
            .copied()
            .chain(core::iter::repeat(0))
            .take(BLOB_LEN)
            .collect()
    };
    let before = joiner.pickle(&PICKLE_KEY);
    let result = joiner.decrypt(&address, &blob);
    assert!(result.is_err(), "a forged blob decrypted");
    assert_eq!(
        joiner.pickle(&PICKLE_KEY),
        before,
        "a rejected blob changed the session"
    );
}
