//! Invites: the one in-person exchange that starts a conversation.
//!
//! ```text
//! invite (v2) = version 0x02 (1) ‖ secret (32) ‖ inviter_public (32) ‖ expires_at (u64 BE)
//!               ‖ mailbox_url (0..=200 bytes of UTF-8; empty = the site's own origin)
//! ```
//! 73 bytes without a mailbox URL. From the secret both sides derive
//! `SK ‖ hello_key ‖ AD = HKDF-SHA256(salt = "", ikm = secret,
//! info = "hush/v2/invite" ‖ inviter_public ‖ u64be(expires_at) ‖ mailbox_url)`, so a changed
//! mailbox URL changes every key. The inviter's X25519 key is its first ratchet key (Signal's
//! Bob); the joiner generates a fresh one and sends first (Signal's Alice), so the first DH
//! ratchet step already mixes in fresh DH from both sides.
//!
//! Only the hello's address comes from the invite alone. The header keys of the first two
//! chains (`HK1`, `HK2`) are derived from `SK` and `DH(a1, B0)`, so someone who photographed
//! the invite can write nothing but the hello (`docs/PROTOCOL.md` §5.2, §7).

use crate::address::Address;
use crate::base64url;
use crate::crypto::hkdf_sha256;
use crate::double_ratchet::{AssociatedData, OutgoingBlob, Ratchet};
use crate::error::{DecryptError, InviteError};
use crate::header_key::{HeaderKey, Role};
use crate::hedge::HEDGE_LEN;
use crate::message::{KIND_HELLO, Reassembly, StreamFields, Unsealed};
use crate::ratchet_key::{RatchetKeyPair, RemoteRatchetKey};
use crate::read_addresses::ReadAddresses;
use crate::receiving_chain::ReceivingChain;
use crate::receiving_chain::WINDOW;
use crate::root_key::RootKey;
use crate::safety_code::SafetyCode;
use crate::secret::secret_key;
use crate::sending_chain::SendingChain;
use crate::session::Session;
use crate::skipped_keys::SkippedKeys;
use crate::stream::Stream;
use rand_core::CryptoRng;
use std::collections::VecDeque;
use zeroize::Zeroizing;

/// Version byte of the invite format.
pub const INVITE_VERSION: u8 = 0x02;

/// Length of an invite without a mailbox URL.
pub const INVITE_BASE_LEN: usize = 1 + 32 + 32 + 8;

/// Longest mailbox URL an invite may carry.
pub const MAX_MAILBOX_URL_LEN: usize = 200;

/// How long after its expiry the inviter still accepts the join message, in seconds: the
/// joiner must join before `expires_at`, but its first message may sit in the mailbox until
/// the inviter next polls.
pub const INVITE_ACCEPT_GRACE: u64 = 24 * 60 * 60;

/// How far past `expires_at` (seconds, by the joiner's clock) [`Invite::join`] still joins.
///
/// `expires_at` is read on the inviter's clock and compared with the joiner's, so the two
/// clocks' difference counts against the invite's life: with a 24-hour invite, a joiner whose
/// clock runs 25 hours ahead would otherwise be refused a fresh invite. Realistic errors of a
/// device clock set by hand are a wrong time zone (up to 26 hours: UTC−12 against UTC+14), a
/// date one day off, AM/PM (12 hours) or daylight saving (1 hour); 48 hours covers a wrong zone
/// together with a wrong day. The tolerance is safe to give because the joiner's check only
/// spares a pointless join: the inviter alone decides, on its own clock, by refusing a hello
/// after `expires_at + INVITE_ACCEPT_GRACE` ([`PendingInvite::accept`]). Its cost: a joiner
/// with a right clock can join an invite that expired up to 48 hours ago, and then waits for
/// an inviter that no longer listens.
pub const INVITE_CLOCK_TOLERANCE: u64 = 48 * 60 * 60;

/// Length of the link fragment of an invite without a mailbox URL (98 characters): the
/// shortest invite link fragment.
pub const INVITE_LINK_MIN_LEN: usize = base64url::encoded_len(INVITE_BASE_LEN);

/// Length of the longest link fragment (an invite with a 200-byte mailbox URL).
const INVITE_LINK_MAX_LEN: usize = base64url::encoded_len(INVITE_BASE_LEN + MAX_MAILBOX_URL_LEN);

/// Rounds of percent-decoding a pasted link gets (a link encoded by a redirect, then again).
const PERCENT_DECODE_ROUNDS: usize = 3;

/// HKDF info label of the invite key schedule.
pub const INVITE_KDF_LABEL: &[u8] = b"hush/v2/invite";

/// HKDF info label of the first two chains' header keys.
pub const FIRST_HEADER_KEYS_LABEL: &[u8] = b"hush/v2/first-header-keys";

secret_key! {
    /// The invite's fresh random 32-byte secret.
    pub(crate) struct InviteSecret;
}

/// The keys both sides derive from an invite.
pub(crate) struct InviteKeys {
    pub(crate) sk: RootKey,
    /// Header key of the hello alone (message 0 of the joiner's first chain).
    pub(crate) hello_key: HeaderKey,
    pub(crate) ad: AssociatedData,
}

/// `SK ‖ hello_key ‖ AD = HKDF(salt = "", ikm = secret,
/// info = "hush/v2/invite" ‖ B0 ‖ u64be(expires_at) ‖ mailbox_url, L = 96)`. The URL comes last
/// and everything before it has a fixed length, so the info is unambiguous.
pub(crate) fn invite_keys(
    secret: &InviteSecret,
    inviter_public: &[u8; 32],
    expires_at: u64,
    mailbox_url: Option<&str>,
) -> InviteKeys {
    let url = mailbox_url.unwrap_or("").as_bytes();
    let okm = hkdf_sha256::<3>(
        b"",
        secret.as_bytes(),
        &[
            INVITE_KDF_LABEL,
            inviter_public,
            &expires_at.to_be_bytes(),
            url,
        ],
    );
    let [sk, hello, ad] = &*okm;
    InviteKeys {
        sk: RootKey::from_bytes(sk),
        hello_key: HeaderKey::from_bytes(hello),
        ad: AssociatedData::from_bytes(ad),
    }
}

/// `HK1 ‖ HK2 = HKDF(salt = SK, ikm = DH(a1, B0), info = "hush/v2/first-header-keys", L = 64)`:
/// the header keys of the joiner's first chain (after the hello) and of the inviter's first
/// chain. Nobody without `a1` or `b0` can compute them.
pub(crate) fn first_header_keys(sk: &RootKey, dh0: &[u8; 32]) -> (HeaderKey, HeaderKey) {
    let okm = hkdf_sha256::<2>(sk.as_bytes(), dh0, &[FIRST_HEADER_KEYS_LABEL]);
    let [hk1, hk2] = &*okm;
    (HeaderKey::from_bytes(hk1), HeaderKey::from_bytes(hk2))
}

/// What the inviter shows (as a QR code or a link). Contains a secret: share it only in person.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    pub(crate) secret: InviteSecret,
    pub(crate) inviter_public: [u8; 32],
    pub(crate) expires_at: u64,
    pub(crate) mailbox_url: Option<String>,
}

/// The inviter's side of an invite until the joiner's first message arrives. One-time: after
/// [`PendingInvite::accept`] succeeds, drop it and keep the [`Session`].
pub struct PendingInvite {
    pub(crate) ratchet: Ratchet,
    pub(crate) secret: InviteSecret,
    pub(crate) expires_at: u64,
    /// The invite's mailbox URL (bound into its keys; mutual mode derives from it again).
    pub(crate) mailbox_url: Option<String>,
    /// In mutual mode: the joiner's ratchet public key, scanned in person; the hello must
    /// come from it.
    pub(crate) expected_joiner: Option<[u8; 32]>,
}

/// HKDF info label of the mutual-mode secret.
pub const MUTUAL_KDF_LABEL: &[u8] = b"hush/v2/mutual";

/// What [`PendingInvite::start_mutual`] yields: which role this side takes.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "made once per mutual start and consumed at once; both variants are large"
)]
pub enum MutualStart {
    /// This side's invite key is the smaller: wait for the other side's hello with the
    /// returned pending invite (it polls one address and accepts only the scanned key).
    Inviter(PendingInvite),
    /// This side's invite key is the larger: it has joined; deposit the hello blob.
    Joiner(Session, Vec<OutgoingBlob>),
}

impl core::fmt::Debug for Invite {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Invite")
            .field("inviter_public", &self.inviter_public)
            .field("expires_at", &self.expires_at)
            .field("mailbox_url", &self.mailbox_url)
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for PendingInvite {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingInvite")
            .field("inviter_public", &self.ratchet.ratchet_key.public_bytes())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Builds the inviter's ratchet (`RatchetInitBobHE`): `DHs` = the invite key pair, `RK = SK`,
/// `NHKr = hello_key`. Only message 0 of the joiner's first chain is polled: the joiner's
/// hello. `NHKs` (`HK2`) is set when the hello arrives ([`PendingInvite::accept`]); until
/// then it holds the hello key, which never encrypts anything of ours.
pub(crate) fn inviter_ratchet(keys: InviteKeys, key_pair: RatchetKeyPair) -> Ratchet {
    let first = keys
        .hello_key
        .chain_addresses(Role::Joiner)
        .write_key(0)
        .address();
    Ratchet {
        role: Role::Inviter,
        ad: keys.ad.clone(),
        root_key: keys.sk.clone(),
        ratchet_key: key_pair,
        remote_ratchet_key: None,
        sending: None,
        send_step_pending: false,
        previous_sending_len: 0,
        next_sending_header_key: keys.hello_key.clone(),
        receiving: None,
        next_receiving_header_key: keys.hello_key.clone(),
        next_window: vec![first],
        skipped: SkippedKeys::default(),
        recently_received: VecDeque::new(),
        receive_events: 0,
        previous_root: None,
        abandoned_keys: Vec::new(),
        next_chain_skip: 0,
        restore_keys: VecDeque::new(),
        skipped_ahead: 0,
        chain_after_rollback: false,
        next_chain_from: None,
        previous_chain_reach: 0,
        fork_past_reach: None,
    }
}

impl Invite {
    /// Creates an invite valid until `expires_at` (seconds, the caller's clock; exclusive).
    /// `mailbox_url` is `None` when the mailbox is the site's own origin.
    pub fn create<R: CryptoRng + ?Sized>(
        rng: &mut R,
        now: u64,
        expires_at: u64,
        mailbox_url: Option<&str>,
    ) -> Result<(PendingInvite, Invite), InviteError> {
        if expires_at <= now {
            return Err(InviteError::InvalidExpiry);
        }
        if mailbox_url.is_some_and(|u| u.len() > MAX_MAILBOX_URL_LEN) {
            return Err(InviteError::UrlTooLong);
        }
        if mailbox_url.is_some_and(|u| !is_url_text(u)) {
            return Err(InviteError::InvalidUrl);
        }
        let mut secret_bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut secret_bytes[..]);
        let secret = InviteSecret::from_bytes(&secret_bytes);
        let key_pair = RatchetKeyPair::generate(rng);
        let inviter_public = key_pair.public_bytes();
        let mailbox_url = mailbox_url.filter(|u| !u.is_empty()).map(str::to_owned);
        let keys = invite_keys(&secret, &inviter_public, expires_at, mailbox_url.as_deref());
        let pending = PendingInvite {
            ratchet: inviter_ratchet(keys, key_pair),
            secret: secret.clone(),
            expires_at,
            mailbox_url: mailbox_url.clone(),
            expected_joiner: None,
        };
        let invite = Invite {
            secret,
            inviter_public,
            expires_at,
            mailbox_url,
        };
        Ok((pending, invite))
    }

    /// The binary form (for a QR code). Contains the invite secret.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let url = self.mailbox_url.as_deref().unwrap_or("");
        let mut out = Zeroizing::new(Vec::with_capacity(INVITE_BASE_LEN + url.len()));
        out.push(INVITE_VERSION);
        out.extend_from_slice(self.secret.as_bytes());
        out.extend_from_slice(&self.inviter_public);
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(url.as_bytes());
        out
    }

    /// Parses the binary form. Does not check expiry (that needs the time: see [`Invite::join`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Invite, InviteError> {
        let (&version, rest) = bytes.split_first().ok_or(InviteError::Malformed)?;
        if version < INVITE_VERSION {
            return Err(InviteError::OlderVersion(version));
        }
        if version != INVITE_VERSION {
            return Err(InviteError::UnsupportedVersion(version));
        }
        let (secret, rest) = rest
            .split_first_chunk::<32>()
            .ok_or(InviteError::Malformed)?;
        let (public, rest) = rest
            .split_first_chunk::<32>()
            .ok_or(InviteError::Malformed)?;
        let (expires, url) = rest
            .split_first_chunk::<8>()
            .ok_or(InviteError::Malformed)?;
        if url.len() > MAX_MAILBOX_URL_LEN {
            return Err(InviteError::UrlTooLong);
        }
        let url = core::str::from_utf8(url).map_err(|_| InviteError::Malformed)?;
        if !is_url_text(url) {
            return Err(InviteError::Malformed);
        }
        Ok(Invite {
            secret: InviteSecret::from_bytes(secret),
            inviter_public: *public,
            expires_at: u64::from_be_bytes(*expires),
            mailbox_url: (!url.is_empty()).then(|| url.to_owned()),
        })
    }

    /// The unpadded base64url form, for the fragment of an invite link (`…/#<fragment>`), which
    /// browsers never send to a server.
    pub fn to_link_fragment(&self) -> Zeroizing<String> {
        Zeroizing::new(base64url::encode(&self.to_bytes()))
    }

    /// Parses an invite link as people paste it: the fragment alone, or a whole link, possibly
    /// damaged in transit. Ignores what cannot be part of an invite and explains a refusal.
    ///
    /// What it undoes: percent-encoding (`#` written as `%23`, a whole link encoded by a
    /// redirect, up to three times over); everything before the last `#`; and every character
    /// outside the base64url alphabet (sentence punctuation after the link, `<…>` or quotes
    /// around it, spaces, line breaks and `> ` quoting that a mail client inserts into it).
    ///
    /// Why this never turns one invite into another: a canonical fragment consists of
    /// base64url symbols only, and nothing here substitutes or reorders a symbol; it only
    /// removes non-symbols and undoes percent-encoding (`%` is not a symbol, so no symbol of an
    /// undamaged invite is touched). What remains is cut only where a removed character stood:
    /// the candidates are the symbols up to the end of each run between removed characters. A
    /// candidate counts when it is a canonical encoding of a valid invite, and exactly one
    /// must count: two are refused as [`InviteError::Ambiguous`] rather than guessed. So text
    /// that reached us with characters only inserted around or inside the link, or followed
    /// (after a space or any other non-symbol) by more text, yields that very invite or a
    /// refusal, never another one. A mailbox URL never holds a space or a control character
    /// ([`Invite::from_bytes`]), and after a URL-less invite the next decoded byte is below
    /// 0x10, so text after a URL-less invite never counts as part of it. An invite with a URL
    /// is refused as ambiguous when text after it, or a break inside its URL, leaves another
    /// candidate that decodes to a (longer or shorter) URL. Not undone, because nothing can
    /// tell it from a real invite (the format has no checksum): symbols changed, lost, or glued
    /// to the end of the link without a break; see [`InviteError`] for what a refusal says.
    /// `tests/invite_link.rs` (property test) and the fuzz harness check all of this.
    pub fn from_link_fragment(text: &str) -> Result<Invite, InviteError> {
        let decoded = percent_decode(text.as_bytes());
        let starts = candidate_starts(&decoded);
        let mut found: Option<Invite> = None;
        let mut refusals = Vec::new();
        for start in starts {
            let fragment = decoded.get(start..).unwrap_or_default();
            match Self::from_symbols(fragment) {
                Ok(invite) => match &found {
                    Some(earlier) if *earlier != invite => return Err(InviteError::Ambiguous),
                    _ => found = Some(invite),
                },
                Err(InviteError::Ambiguous) => return Err(InviteError::Ambiguous),
                Err(err) => refusals.push((start, err)),
            }
        }
        if let Some(invite) = found {
            return Ok(invite);
        }
        // The refusal to explain: that of the text after the last `#` which looks like a
        // damaged invite (not merely "not an invite", like a hashtag), else of the last `#`,
        // else of the whole text.
        let after_hash = |(start, _): &&(usize, InviteError)| *start > 0;
        let chosen = refusals
            .iter()
            .rev()
            .filter(after_hash)
            .find(|(_, err)| *err != InviteError::NotAnInvite)
            .or_else(|| refusals.iter().rev().find(after_hash))
            .or_else(|| refusals.first());
        Err(chosen.map_or(InviteError::NotAnInvite, |(_, err)| *err))
    }

    /// The one invite among the candidates of `fragment`: its base64url symbols up to the end
    /// of each run of them (see [`Invite::from_link_fragment`]).
    fn from_symbols(fragment: &[u8]) -> Result<Invite, InviteError> {
        // The base64url symbols, and where each run of them ends.
        let mut symbols = Zeroizing::new(Vec::with_capacity(fragment.len()));
        let mut run_ends = Vec::new();
        for (i, &byte) in fragment.iter().enumerate() {
            if base64url::is_symbol(byte) {
                symbols.push(byte);
                if symbols.len() > INVITE_LINK_MAX_LEN {
                    // Nothing longer can be an invite, and `diagnose` needs no more: bounded
                    // work per start whatever was pasted.
                    break;
                }
                let next_is_symbol = fragment
                    .get(i + 1)
                    .is_some_and(|&b| base64url::is_symbol(b));
                if !next_is_symbol {
                    run_ends.push(symbols.len());
                }
            }
        }
        let mut found = None;
        for end in run_ends {
            if end > INVITE_LINK_MAX_LEN {
                break;
            }
            if end < INVITE_LINK_MIN_LEN {
                continue;
            }
            if let Some(invite) = symbols.get(..end).and_then(|s| parse_canonical(s).ok()) {
                if found.is_some() {
                    return Err(InviteError::Ambiguous);
                }
                found = Some(invite);
            }
        }
        found.ok_or_else(|| diagnose(&symbols))
    }

    /// When the invite stops being joinable (seconds, exclusive).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The mailbox URL, when it is not the site's own origin.
    pub fn mailbox_url(&self) -> Option<&str> {
        self.mailbox_url.as_deref()
    }

    /// Joins (`RatchetInitAliceHE`): generates a fresh ratchet key, derives the first sending
    /// chain from `DH(joiner, inviter)`, and returns the session with the hello blob to
    /// deposit. The hello is message 0 of the joiner's first chain, the only address the
    /// inviter polls: the mailbox's first-write-wins makes a raced join fail visibly. Refused
    /// as expired only from `expires_at + INVITE_CLOCK_TOLERANCE` on (`now` is the joiner's
    /// clock, `expires_at` the inviter's; see [`INVITE_CLOCK_TOLERANCE`]).
    pub fn join<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        now: u64,
    ) -> Result<(Session, Vec<OutgoingBlob>), InviteError> {
        if now >= self.expires_at.saturating_add(INVITE_CLOCK_TOLERANCE) {
            return Err(InviteError::Expired);
        }
        let key_pair = RatchetKeyPair::generate(rng);
        self.join_with_key(rng, key_pair)
    }

    /// `RatchetInitAliceHE` with the joiner's first ratchet key pair given, then the hello.
    fn join_with_key<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        key_pair: RatchetKeyPair,
    ) -> Result<(Session, Vec<OutgoingBlob>), InviteError> {
        let keys = invite_keys(
            &self.secret,
            &self.inviter_public,
            self.expires_at,
            self.mailbox_url.as_deref(),
        );
        let remote = RemoteRatchetKey(self.inviter_public);
        let dh = key_pair
            .diffie_hellman(&remote)
            .ok_or(InviteError::InvalidPublicKey)?;
        let (hk1, hk2) = first_header_keys(&keys.sk, &dh);
        let (root_key, chain_key, next_sending_header_key) = keys.sk.advance(&dh);
        let joiner_public = key_pair.public_bytes();
        let mut ratchet = Ratchet {
            role: Role::Joiner,
            ad: keys.ad.clone(),
            root_key,
            ratchet_key: key_pair,
            remote_ratchet_key: Some(remote),
            // The hello travels under the hello key; the chain continues under HK1.
            sending: Some(SendingChain::new(
                chain_key,
                keys.hello_key.clone(),
                0,
                Role::Joiner,
            )),
            send_step_pending: false,
            previous_sending_len: 0,
            next_sending_header_key,
            receiving: None,
            next_receiving_header_key: hk2.clone(),
            next_window: hk2.addresses(Role::Inviter, 0, WINDOW),
            skipped: SkippedKeys::default(),
            recently_received: VecDeque::new(),
            receive_events: 0,
            previous_root: None,
            abandoned_keys: Vec::new(),
            next_chain_skip: 0,
            restore_keys: VecDeque::new(),
            skipped_ahead: 0,
            chain_after_rollback: false,
            next_chain_from: None,
            previous_chain_reach: 0,
            fork_past_reach: None,
        };
        let hello = Unsealed {
            kind: KIND_HELLO,
            index: 0,
            count: 1,
            data: &[],
        }
        .encode(StreamFields::default());
        let blobs = ratchet
            .encrypt(rng, &[(0, hello)], true)
            .map_err(|_| InviteError::InvalidPublicKey)?;
        let mut stream = Stream::default();
        if let Some(r) = blobs
            .first()
            .and_then(|b| b.blob.first_chunk::<HEDGE_LEN>())
        {
            stream.sent(0, r, true, 0);
        }
        if let Some(chain) = ratchet.sending.take() {
            ratchet.sending = Some(SendingChain::new(
                chain.chain_key.clone(),
                hk1,
                chain.next,
                Role::Joiner,
            ));
        }
        let safety_code =
            SafetyCode::derive(self.secret.as_bytes(), &self.inviter_public, &joiner_public);
        let session = Session {
            ratchet,
            reassembly: Reassembly::default(),
            safety_code,
            stream,
            read_addresses: ReadAddresses::default(),
        };
        Ok((session, blobs))
    }
}

impl PendingInvite {
    /// The one address to poll: message 0 of the joiner's first chain.
    pub fn poll_addresses(&self) -> Vec<Address> {
        self.ratchet.next_window.clone()
    }

    /// When the invite stops being joinable (seconds, exclusive).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Completes the invite with the joiner's hello fetched from `address`. Returns the
    /// inviter's session; `self` is unchanged on error. Rejected after
    /// `expires_at + INVITE_ACCEPT_GRACE`.
    pub fn accept(
        &self,
        now: u64,
        address: &Address,
        blob: &[u8],
    ) -> Result<Session, DecryptError> {
        if now >= self.expires_at.saturating_add(INVITE_ACCEPT_GRACE) {
            return Err(DecryptError::InviteExpired);
        }
        let mut ratchet = self.ratchet.clone();
        let decrypted = ratchet.decrypt(address, blob)?;
        if decrypted.fragment.kind != KIND_HELLO {
            return Err(DecryptError::MalformedPayload);
        }
        if self
            .expected_joiner
            .is_some_and(|expected| expected != decrypted.chain)
        {
            return Err(DecryptError::UnexpectedJoiner);
        }
        // The hello authenticated under keys from DH(b0, A1): switch the joiner's first chain
        // to HK1 (messages 1, 2, …) and our first sending chain to HK2.
        let joiner_key = RemoteRatchetKey(decrypted.chain);
        let dh = self
            .ratchet
            .ratchet_key
            .diffie_hellman(&joiner_key)
            .ok_or(DecryptError::InvalidRatchetKey)?;
        let (hk1, hk2) = first_header_keys(&self.ratchet.root_key, &dh);
        let receiving = ratchet
            .receiving
            .take()
            .ok_or(DecryptError::UnknownAddress)?;
        ratchet.receiving = Some(ReceivingChain::new(
            receiving.chain_key.clone(),
            hk1,
            joiner_key,
            receiving.next,
            VecDeque::new(),
            Role::Joiner,
        ));
        ratchet.next_sending_header_key = hk2;
        // No fork can precede the hello: keep no root key from before it. Nor its restore-
        // signal key: `SK` comes from the invite alone, so whoever photographed the invite
        // could write that signal and end the conversation (`docs/PROTOCOL.md` §6.9).
        ratchet.previous_root = None;
        ratchet.restore_keys.clear();
        let inviter_public = ratchet.ratchet_key.public_bytes();
        let safety_code =
            SafetyCode::derive(self.secret.as_bytes(), &inviter_public, &decrypted.chain);
        let mut session = Session {
            ratchet,
            reassembly: Reassembly::default(),
            safety_code,
            stream: Stream::default(),
            // Not the hello's address: anyone holding the invite can write there once the
            // hello expires, so another blob there shows nothing (§8, "Rewritten addresses").
            read_addresses: ReadAddresses::default(),
        };
        session.record_hello(&decrypted.fragment, &decrypted.r);
        Ok(session)
    }
}

impl PendingInvite {
    /// Mutual mode: both people created an invite and each scanned the other's. Both call
    /// this with the invite they scanned (refused when our own invite has expired, or theirs
    /// expired more than [`INVITE_CLOCK_TOLERANCE`] ago). The side whose invite public key is
    /// smaller (lexicographically) becomes the inviter and waits for a hello that must come from the
    /// other invite's key; the other side joins with that very key, so nothing can race and the
    /// safety code need not be compared. The invite secret becomes
    /// `HKDF(salt = "", ikm = secret_inviter ‖ secret_joiner,
    /// info = "hush/v1/mutual" ‖ inviter_public ‖ joiner_public, 32)`, and the inviter's expiry
    /// is used.
    pub fn start_mutual<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        now: u64,
        theirs: &Invite,
    ) -> Result<MutualStart, InviteError> {
        // Our own expiry is on our clock; theirs is on their clock (see INVITE_CLOCK_TOLERANCE).
        if now >= self.expires_at || now >= theirs.expires_at.saturating_add(INVITE_CLOCK_TOLERANCE)
        {
            return Err(InviteError::Expired);
        }
        let own_public = self.ratchet.ratchet_key.public_bytes();
        if theirs.inviter_public == own_public {
            return Err(InviteError::OwnInvite);
        }
        let we_invite = own_public < theirs.inviter_public;
        let (inviter, joiner) = if we_invite {
            (
                (&self.secret, own_public, self.expires_at, &self.mailbox_url),
                (&theirs.secret, theirs.inviter_public),
            )
        } else {
            (
                (
                    &theirs.secret,
                    theirs.inviter_public,
                    theirs.expires_at,
                    &theirs.mailbox_url,
                ),
                (&self.secret, own_public),
            )
        };
        let (inviter_secret, inviter_public, expires_at, mailbox_url) = inviter;
        let (joiner_secret, joiner_public) = joiner;
        let okm = hkdf_sha256::<1>(
            b"",
            &[
                inviter_secret.as_bytes().as_slice(),
                joiner_secret.as_bytes(),
            ]
            .concat(),
            &[MUTUAL_KDF_LABEL, &inviter_public, &joiner_public],
        );
        let [secret] = &*okm;
        let secret = InviteSecret::from_bytes(secret);
        if we_invite {
            let keys = invite_keys(&secret, &inviter_public, expires_at, mailbox_url.as_deref());
            Ok(MutualStart::Inviter(PendingInvite {
                ratchet: inviter_ratchet(keys, self.ratchet.ratchet_key.clone()),
                secret,
                expires_at,
                mailbox_url: mailbox_url.clone(),
                expected_joiner: Some(joiner_public),
            }))
        } else {
            let invite = Invite {
                secret,
                inviter_public,
                expires_at,
                mailbox_url: mailbox_url.clone(),
            };
            let (session, hello) = invite.join_with_key(rng, self.ratchet.ratchet_key.clone())?;
            Ok(MutualStart::Joiner(session, hello))
        }
    }
}

/// Whether `url` can be an invite's mailbox URL: no space and no control character (a URL
/// serializer percent-encodes them), so a URL is never whitespace or garbage bytes.
fn is_url_text(url: &str) -> bool {
    !url.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// `text` with `%XX` escapes decoded, repeatedly (up to [`PERCENT_DECODE_ROUNDS`]) while any
/// remain. Other bytes, and a `%` without two hex digits, stay as they are.
pub(crate) fn percent_decode(text: &[u8]) -> Zeroizing<Vec<u8>> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut current = Zeroizing::new(text.to_vec());
    for _ in 0..PERCENT_DECODE_ROUNDS {
        let mut out = Zeroizing::new(Vec::with_capacity(current.len()));
        let mut changed = false;
        let mut i = 0;
        while let Some(&byte) = current.get(i) {
            let escape = (byte == b'%')
                .then(|| Some((hex(*current.get(i + 1)?)?, hex(*current.get(i + 2)?)?)))
                .flatten();
            match escape {
                Some((high, low)) => {
                    out.push(u8::try_from(high * 16 + low).unwrap_or(b'%'));
                    changed = true;
                    i += 3;
                }
                None => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        current = out;
        if !changed {
            break;
        }
    }
    current
}

/// Strict parse of base64url symbols: the canonical link fragment of one valid invite.
fn parse_canonical(symbols: &[u8]) -> Result<Invite, InviteError> {
    let text = core::str::from_utf8(symbols).map_err(|_| InviteError::InvalidBase64)?;
    let bytes = Zeroizing::new(base64url::decode(text).ok_or(InviteError::InvalidBase64)?);
    Invite::from_bytes(&bytes)
}

/// Why no candidate of a pasted link was an invite, from all its base64url symbols.
/// Where invite candidates start in percent-decoded pasted text: at its beginning and after
/// each `#`, so that a `#` around the link (a hashtag after it, say) does not hide the invite.
pub(crate) fn candidate_starts(decoded: &[u8]) -> impl Iterator<Item = usize> + '_ {
    core::iter::once(0).chain(
        decoded
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'#')
            .map(|(i, _)| i + 1),
    )
}

fn diagnose(symbols: &[u8]) -> InviteError {
    // The version byte is the first symbol's 6 bits and the second's top 2: a version-2 invite
    // starts with `A` and one of `g` to `v`; a version-1 invite with `A` and one of `Q R S T`.
    let version = match symbols {
        [first, second, ..] => match (base64url::value(*first), base64url::value(*second)) {
            (Some(a), Some(b)) => (a << 2) | (b >> 4),
            _ => return InviteError::NotAnInvite,
        },
        _ => return InviteError::NotAnInvite,
    };
    if u32::from(INVITE_VERSION) != version {
        // A newer format is invite-sized; shorter text that happens to start like one is not.
        return match u8::try_from(version) {
            Ok(1) if symbols.len() >= INVITE_LINK_MIN_LEN => InviteError::OlderVersion(1),
            Ok(v @ 3..=15) if symbols.len() >= INVITE_LINK_MIN_LEN => {
                InviteError::UnsupportedVersion(v)
            }
            _ => InviteError::NotAnInvite,
        };
    }
    if symbols.len() < INVITE_LINK_MIN_LEN {
        return InviteError::Incomplete {
            found: symbols.len(),
            needed: INVITE_LINK_MIN_LEN,
        };
    }
    // A URL-less invite followed directly (no break) by more symbols.
    if symbols
        .get(..INVITE_LINK_MIN_LEN)
        .is_some_and(|s| parse_canonical(s).is_ok())
    {
        return InviteError::ExtraCharacters;
    }
    InviteError::InvalidBase64
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use crate::testing::SeededRng;

    #[test]
    fn mutual_inviter_refuses_a_hello_from_another_key() {
        let mut rng = SeededRng::new(3);
        let (px, ix) = Invite::create(&mut rng, 0, 100, None).unwrap();
        let (py, iy) = Invite::create(&mut rng, 0, 100, None).unwrap();
        let (pending, joiner_invite_key) = match px.start_mutual(&mut rng, 1, &iy).unwrap() {
            MutualStart::Inviter(p) => (p, iy.inviter_public),
            MutualStart::Joiner(..) => match py.start_mutual(&mut rng, 1, &ix).unwrap() {
                MutualStart::Inviter(p) => (p, ix.inviter_public),
                MutualStart::Joiner(..) => panic!("two joiners"),
            },
        };
        // Someone who photographed both codes knows the combined secret: rebuild the
        // synthetic invite and join it with a fresh key of their own.
        let synthetic = Invite {
            secret: pending.secret.clone(),
            inviter_public: pending.ratchet.ratchet_key.public_bytes(),
            expires_at: pending.expires_at,
            mailbox_url: None,
        };
        let (_s, hello) = synthetic.join(&mut rng, 1).unwrap();
        assert_eq!(pending.expected_joiner, Some(joiner_invite_key));
        assert_eq!(
            pending
                .accept(1, &hello[0].address, &hello[0].blob)
                .unwrap_err(),
            DecryptError::UnexpectedJoiner
        );
    }
}
