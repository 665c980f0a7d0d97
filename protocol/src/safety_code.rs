//! The safety code both people compare in person after joining.
//!
//! `code = u128be(SHA-256("hush/v2/safety-code" ‖ invite_secret ‖ inviter_public ‖
//! joiner_public)[0..16]) mod 10²⁰`, written as 20 decimal digits in five groups of four
//! (66.4 bits: an attacker who substitutes the invite and relays the join must find a key
//! whose code matches, about 2⁶⁶ X25519 operations; `docs/PROTOCOL.md` §5.4).

use crate::crypto::sha256;

/// Domain-separation label of the safety code.
pub const SAFETY_CODE_LABEL: &[u8] = b"hush/v2/safety-code";

/// Number of decimal digits in a safety code.
pub const SAFETY_CODE_DIGITS: usize = 20;

/// A 20-digit safety code, e.g. `0421 9937 1180 5521 0093`. Not secret: it is shown on screen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SafetyCode(String);

impl SafetyCode {
    pub(crate) fn derive(
        invite_secret: &[u8; 32],
        inviter_public: &[u8; 32],
        joiner_public: &[u8; 32],
    ) -> Self {
        let digest = sha256(&[
            SAFETY_CODE_LABEL,
            invite_secret,
            inviter_public,
            joiner_public,
        ]);
        let first = digest.first_chunk::<16>().copied().unwrap_or_default();
        let value = u128::from_be_bytes(first) % 100_000_000_000_000_000_000;
        SafetyCode(format!("{value:020}"))
    }

    pub(crate) fn from_digits(digits: &str) -> Option<Self> {
        (digits.len() == SAFETY_CODE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| SafetyCode(digits.to_owned()))
    }

    /// The 20 digits without spaces.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The digits in groups of four separated by spaces, for display.
    pub fn grouped(&self) -> String {
        let mut out = String::with_capacity(SAFETY_CODE_DIGITS + SAFETY_CODE_DIGITS / 4);
        for (i, c) in self.0.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }
}

impl core::fmt::Display for SafetyCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.grouped())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn format_and_sensitivity() {
        let a = SafetyCode::derive(&[1; 32], &[2; 32], &[3; 32]);
        assert_eq!(a.digits().len(), 20);
        assert_eq!(a.grouped().len(), 24);
        assert_eq!(a.grouped().replace(' ', ""), a.digits());
        assert_ne!(a, SafetyCode::derive(&[1; 32], &[2; 32], &[4; 32]));
        assert_ne!(a, SafetyCode::derive(&[1; 32], &[5; 32], &[3; 32]));
        assert_ne!(a, SafetyCode::derive(&[6; 32], &[2; 32], &[3; 32]));
        assert_eq!(SafetyCode::from_digits(a.digits()), Some(a));
        assert_eq!(SafetyCode::from_digits("12345"), None);
    }
}
