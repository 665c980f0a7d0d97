//! What a spent address remembers of the message deleted there, and how a `PUT` there is
//! answered.
//!
//! A `DELETE` empties the row's body and records `SHA-256(deleted body)` in its `digest`
//! column (never the body itself). Until the row's expiry a `PUT` of the same bytes (a retry
//! whose `201` was lost) is [`Put::Spent`] (`410`: your blob was read), one of other bytes
//! (say, from a copy of the sender's device restored from a backup) is [`Put::Exists`]
//! (`409`: someone else wrote there first). A row spent before digests were recorded has
//! none (`NULL`) and answers [`Put::Spent`] for any body, as it did then.
//!
//! A *put-back* (`PUT` with `Mailbox-Put-Back: ?1`, API revision 1.3) of those very bytes
//! is [`PutBack::Restore`]: the row gets its body back, keeping its own expiry. Anything else
//! is answered as a `PUT` ([`PutBack::AsPut`]): other bytes [`Put::Exists`], a row without
//! a digest [`Put::Spent`].
//!
//! Pure functions, compiled and unit-tested natively too.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of a recorded digest (SHA-256).
pub const DIGEST_LEN: usize = 32;

/// What a put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Stored.
    Stored,
    /// A live message is there, or the address is spent and the deleted message had other
    /// bytes.
    Exists,
    /// The address was deleted and is spent until its message's expiry, and the deleted
    /// message had these bytes (or its digest was not recorded).
    Spent,
}

/// What a put-back does at a spent address ([`put_back_at_spent`]), or did at any address
/// (`Messages::put_back`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutBack {
    /// The deleted message's very bytes: stored again in its row, live until the row's own
    /// expiry (never a fresh TTL).
    Restore,
    /// Answered exactly as a `PUT` of the same body: [`Put::Exists`] or [`Put::Spent`] at a
    /// spent address or a live one; [`Put::Stored`] at a free address (a first write, with
    /// a fresh TTL).
    AsPut(Put),
}

/// The digest a `DELETE` records for `body`.
pub fn digest(body: &[u8]) -> [u8; DIGEST_LEN] {
    Sha256::digest(body).into()
}

/// The answer to a `PUT` of `body` at a spent address whose row holds `recorded`: the digest
/// of the deleted message, or nothing (`None` or empty) for a row spent before digests were
/// recorded. The digests are compared in constant time; `body` is hashed only here, so a
/// `PUT` to a free address costs no hash. `None` if `recorded` is not a digest (a corrupt
/// row).
pub fn put_at_spent(recorded: Option<&[u8]>, body: &[u8]) -> Option<Put> {
    put_back_at_spent(recorded, body).map(|answer| match answer {
        PutBack::Restore => Put::Spent,
        PutBack::AsPut(put) => put,
    })
}

/// What a put-back of `body` does at a spent address whose row holds `recorded` (as for
/// [`put_at_spent`]): [`PutBack::Restore`] if `SHA-256(body)` equals the recorded digest
/// (compared in constant time), else the answer a `PUT` gets there ([`Put::Exists`] for
/// other bytes, [`Put::Spent`] for a row without a digest, whatever the body). `None` if
/// `recorded` is not a digest (a corrupt row).
pub fn put_back_at_spent(recorded: Option<&[u8]>, body: &[u8]) -> Option<PutBack> {
    match recorded {
        None | Some([]) => Some(PutBack::AsPut(Put::Spent)),
        Some(recorded) if recorded.len() == DIGEST_LEN => {
            if bool::from(recorded.ct_eq(&digest(body))) {
                Some(PutBack::Restore)
            } else {
                Some(PutBack::AsPut(Put::Exists))
            }
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_are_spent_other_bytes_exist() {
        let recorded = digest(b"the blob that was read");
        assert_eq!(
            put_at_spent(Some(&recorded), b"the blob that was read"),
            Some(Put::Spent)
        );
        assert_eq!(
            put_at_spent(Some(&recorded), b"the blob that was reaD"),
            Some(Put::Exists)
        );
        assert_eq!(put_at_spent(Some(&recorded), b""), Some(Put::Exists));
    }

    #[test]
    fn a_row_spent_before_digests_is_spent_for_any_body() {
        for body in [&b"x"[..], b"anything else"] {
            assert_eq!(put_at_spent(None, body), Some(Put::Spent));
            assert_eq!(put_at_spent(Some(&[]), body), Some(Put::Spent));
        }
    }

    #[test]
    fn a_recorded_value_of_another_length_is_refused() {
        let recorded = digest(b"m");
        assert_eq!(put_at_spent(recorded.get(..31), b"m"), None);
        assert_eq!(put_at_spent(Some(&[0; 33]), b"m"), None);
    }

    #[test]
    fn only_the_deleted_bytes_are_put_back() {
        let recorded = digest(b"the blob that was read");
        assert_eq!(
            put_back_at_spent(Some(&recorded), b"the blob that was read"),
            Some(PutBack::Restore)
        );
        assert_eq!(
            put_back_at_spent(Some(&recorded), b"the blob that was reaD"),
            Some(PutBack::AsPut(Put::Exists))
        );
        assert_eq!(
            put_back_at_spent(Some(&recorded), b""),
            Some(PutBack::AsPut(Put::Exists))
        );
    }

    #[test]
    fn a_row_spent_before_digests_is_never_put_back() {
        for body in [&b"x"[..], b"anything else"] {
            assert_eq!(
                put_back_at_spent(None, body),
                Some(PutBack::AsPut(Put::Spent))
            );
            assert_eq!(
                put_back_at_spent(Some(&[]), body),
                Some(PutBack::AsPut(Put::Spent))
            );
        }
        let recorded = digest(b"m");
        assert_eq!(put_back_at_spent(recorded.get(..31), b"m"), None);
        assert_eq!(put_back_at_spent(Some(&[0; 33]), b"m"), None);
    }

    #[test]
    fn the_digest_is_sha256() {
        // FIPS 180-2, "abc".
        assert_eq!(
            digest(b"abc").first_chunk::<4>(),
            Some(&[0xba, 0x78, 0x16, 0xbf]),
            "SHA-256(\"abc\") = ba7816bf…"
        );
    }
}
