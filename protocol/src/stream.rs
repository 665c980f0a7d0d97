//! Each party's blob stream (`docs/PROTOCOL.md` §6.4-6.5): sequence numbers, what was received
//! of the peer, what the peer confirmed of ours, rollback detection, and message ids.
//!
//! An acknowledgement says "I received your blobs below `ack` (and these bits past it)" and
//! carries a digest of exactly which blobs those were: `D' = SHA-256("hush/v2/stream-digest"
//! ‖ D ‖ u32be(seq) ‖ r)[0..8]` over the counted blobs below `ack` in order, from eight zero
//! bytes, where `r` is each blob's hedge (its first 16 bytes, unique per blob). The sender
//! recomputes it over its own blobs: equal means everything below `ack` is *confirmed* (on the
//! peer's device, ours); different means the peer received other blobs under our sequence
//! numbers, which only a rolled-back copy of this device can have sent.

use crate::acknowledgement::{ACK_WINDOW, Acknowledgement};
use crate::crypto::sha256;
use crate::hedge::HEDGE_LEN;
use std::collections::VecDeque;

/// Length of a stream digest.
pub const STREAM_DIGEST_LEN: usize = 8;

/// Length of a message id.
pub const MESSAGE_ID_LEN: usize = 8;

/// How many of our blobs awaiting confirmation are remembered (their hedges, to check the
/// peer's digests). Beyond it the oldest are forgotten and the range they covered is accepted
/// unverified.
pub const MAX_UNCONFIRMED: usize = 4096;

/// How many of our blobs confirmed most recently are remembered (their hedges and floors),
/// so that a digest the peer restarted at a floor below our unconfirmed blobs can still be
/// checked (`docs/PROTOCOL.md` §6.5): a copy of the peer's device that lost blobs we had
/// confirmed (restored, its read blobs deleted from the mailbox) restarts its digest at the
/// floor of the first blob it receives, which may be older than what we still wait for.
pub const MAX_RECENT_CONFIRMED: usize = 256;

/// How many completed message ids are remembered to drop a re-sent message already shown.
pub const MESSAGE_ID_MEMORY: usize = 256;

/// How many of the peer's blobs past the contiguous prefix are remembered.
pub const MAX_AHEAD: usize = 512;

/// How many of the peer's blobs are remembered by sequence number (those with the highest
/// numbers; the first [`RECEIVED_HEDGE_LEN`] bytes of their hedges), to recognise a blob whose
/// predecessor (`prev`) is not the blob we received under that number: the peer's device went
/// back to an older copy and writes again under numbers its lost copy used
/// (`docs/PROTOCOL.md` §6.4, "Predecessors").
pub const MAX_RECEIVED_HEDGES: usize = 128;

/// How much of a received blob's hedge is remembered: enough that two blobs (whose hedges are
/// independent PRF outputs) share it with probability 2⁻⁶⁴.
pub const RECEIVED_HEDGE_LEN: usize = 8;

/// Label of the stream digest.
pub(crate) const STREAM_DIGEST_LABEL: &[u8] = b"hush/v2/stream-digest";

/// A digest of a stream prefix.
pub(crate) type Digest = [u8; STREAM_DIGEST_LEN];

/// `D' = SHA-256("hush/v2/stream-digest" ‖ D ‖ u32be(seq) ‖ r)[0..8]`.
pub(crate) fn extend_digest(digest: &Digest, seq: u32, r: &[u8; HEDGE_LEN]) -> Digest {
    let full = sha256(&[STREAM_DIGEST_LABEL, digest, &seq.to_be_bytes(), r]);
    full.first_chunk::<STREAM_DIGEST_LEN>()
        .copied()
        .unwrap_or_default()
}

/// One blob of ours not yet confirmed by the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SentBlob {
    pub(crate) seq: u32,
    pub(crate) r: [u8; HEDGE_LEN],
    /// Hello and data blobs count; acknowledgement-only and abandoned blobs do not.
    pub(crate) counted: bool,
    /// The floor the blob carried: where the peer's digest restarts if that floor passes
    /// numbers it never received.
    pub(crate) floor: u32,
}

/// One blob of the peer's received past the contiguous prefix, waiting for the gap to close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReceivedBlob {
    pub(crate) seq: u32,
    pub(crate) r: [u8; HEDGE_LEN],
    pub(crate) counted: bool,
}

/// A peer blob remembered by its number, to recognise the peer's blobs that follow another
/// blob than the one we received under that number (`docs/PROTOCOL.md` §6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReceivedHedge {
    pub(crate) seq: u32,
    /// The first [`RECEIVED_HEDGE_LEN`] bytes of its hedge.
    pub(crate) r: [u8; RECEIVED_HEDGE_LEN],
    pub(crate) state: HedgeState,
    /// Where a data blob stands in its message; `None` for a hello, an acknowledgement, and a
    /// blob remembered by a pickle written before this was kept.
    pub(crate) place: Option<Place>,
}

/// Where a data blob stands in its message: fragment `index` of `count` (`docs/PROTOCOL.md`
/// §3.6). A consistent sender seals a message's `count` fragments under consecutive numbers,
/// fragment `i` under `seq − index + i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) index: u16,
    pub(crate) count: u16,
}

/// What a remembered peer blob is to our stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HedgeState {
    /// A counted blob that took its number in our stream: our digest covers it once the
    /// prefix passes it, so a blob that names another predecessor shows its sender a rollback.
    Counted,
    /// Read, but another blob holds its number in our stream (a restored sender wrote again
    /// under a number its lost copy used): what follows it may name it, nothing more.
    Read,
    /// Refused: it followed a blob we never received ([`Stream::follows_other_blob`]).
    Refused,
    /// An acknowledgement-only blob that took its number: our digest does not cover it, so a
    /// blob refused because it names another predecessor marks our digest instead
    /// ([`Stream::take`]), which shows its sender the rollback all the same.
    AckOnly,
}

impl HedgeState {
    /// Its byte in a pickle.
    pub(crate) fn byte(self) -> u8 {
        match self {
            HedgeState::Counted => 0,
            HedgeState::Read => 1,
            HedgeState::Refused => 2,
            HedgeState::AckOnly => 3,
        }
    }

    /// The state of a pickle byte.
    pub(crate) fn from_byte(byte: u8) -> Option<HedgeState> {
        match byte {
            0 => Some(HedgeState::Counted),
            1 => Some(HedgeState::Read),
            2 => Some(HedgeState::Refused),
            3 => Some(HedgeState::AckOnly),
            _ => None,
        }
    }
}

/// The first [`RECEIVED_HEDGE_LEN`] bytes of a hedge.
pub(crate) fn hedge_prefix(r: &[u8; HEDGE_LEN]) -> [u8; RECEIVED_HEDGE_LEN] {
    r.first_chunk::<RECEIVED_HEDGE_LEN>()
        .copied()
        .unwrap_or_default()
}

/// This device sent less than the peer acknowledges, or other blobs under the same sequence
/// numbers: it runs on state older than what it once used (a restored backup, a copied
/// profile, a power loss). The session has moved past every sequence number and sending
/// position the lost state may have used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rollback {
    /// Blobs the lost state sent that this session does not remember (at least this many;
    /// 0 when the lost state sent no more than this one did since).
    pub lost_blobs: u32,
    /// Our blobs from this sequence number on are not confirmed: those the peer seemed to
    /// acknowledge may be the lost state's. Re-send their messages
    /// ([`Session::encrypt_resend`](crate::Session::encrypt_resend), same message id).
    pub unconfirmed_from: u32,
}

/// What an incoming blob told us about our own stream.
#[derive(Debug, Default)]
pub(crate) struct AckOutcome {
    pub(crate) rollback: Option<Rollback>,
    /// Positions the sending chain must skip (the lost state's extra blobs).
    pub(crate) skip: u32,
}

/// Sequence numbers, acknowledgements and message ids of one session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stream {
    /// The sequence number our next blob gets.
    pub(crate) next_seq: u32,
    /// Our blobs with seq `< confirmed` are confirmed on the peer's device.
    pub(crate) confirmed: u32,
    /// Digest of our counted blobs below `confirmed`, as the peer computed it.
    pub(crate) confirmed_digest: Digest,
    /// Our blobs from `confirmed` on (at most [`MAX_UNCONFIRMED`]), in seq order.
    pub(crate) sent: VecDeque<SentBlob>,
    /// Our blobs below `confirmed` that were confirmed most recently (at most
    /// [`MAX_RECENT_CONFIRMED`]), in seq order: only to check a restarted digest.
    pub(crate) recent: VecDeque<SentBlob>,
    /// What we have received of the peer's stream (raised to the peer's floor).
    pub(crate) received: Acknowledgement,
    /// Digest of the peer's counted blobs below `received.next`.
    pub(crate) received_digest: Digest,
    /// Peer blobs received past `received.next`, in seq order (at most [`MAX_AHEAD`]).
    pub(crate) ahead: Vec<ReceivedBlob>,
    /// Ids of the messages completed most recently, oldest first.
    pub(crate) message_ids: VecDeque<[u8; MESSAGE_ID_LEN]>,
    /// The peer blobs decrypted with the highest sequence numbers (at most
    /// [`MAX_RECEIVED_HEDGES`]), in seq order, one per number.
    pub(crate) received_hedges: VecDeque<ReceivedHedge>,
}

impl Stream {
    /// Records a blob we sent (its seq is `next_seq`, which advances) with the floor it carried.
    pub(crate) fn sent(&mut self, seq: u32, r: &[u8; HEDGE_LEN], counted: bool, floor: u32) {
        if self.sent.len() >= MAX_UNCONFIRMED {
            self.sent.pop_front();
        }
        self.sent.push_back(SentBlob {
            seq,
            r: *r,
            counted,
            floor,
        });
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
    }

    /// The caller gave up a blob that never reached the mailbox (a different blob sat at its
    /// address): the peer cannot have received it, so it leaves our digest.
    pub(crate) fn abandon(&mut self, seq: u32) {
        if let Some(blob) = self.sent.iter_mut().find(|b| b.seq == seq) {
            blob.counted = false;
            // Its hedge stays: the blob after it still names it (§6.4). The peer may hold
            // another copy's blob under this number (the one that took its address), and
            // only a blob naming ours shows it that we follow blobs it never received.
        }
    }

    /// Records a received peer blob: raises the prefix to the sender's `floor`, adds the blob,
    /// and folds whatever became contiguous into the digest. Blobs past the prefix are kept
    /// (at most [`MAX_AHEAD`]) whether or not the acknowledgement's bits can report them yet,
    /// so that a blob read once is never waited for again.
    /// Returns whether the blob took its number (none was received under it before).
    pub(crate) fn received(
        &mut self,
        floor: u32,
        seq: u32,
        r: &[u8; HEDGE_LEN],
        counted: bool,
    ) -> bool {
        let next = self.received.next;
        let took = seq >= next && !self.ahead.iter().any(|b| b.seq == seq);
        if took {
            let at = self.ahead.partition_point(|b| b.seq < seq);
            self.ahead.insert(
                at,
                ReceivedBlob {
                    seq,
                    r: *r,
                    counted,
                },
            );
            if self.ahead.len() > MAX_AHEAD {
                // The farthest is dropped: its sender deposits it again, and it is read again.
                self.ahead.pop();
            }
        }
        let mut next = next;
        if floor > next {
            // The floor passes numbers never received here (abandoned by the sender, or
            // received by a copy of this device that was lost to a restore): the digest
            // restarts at the floor, so that it only ever covers what this state received.
            let kept = self
                .ahead
                .iter()
                .filter(|b| b.seq >= next && b.seq < floor)
                .count();
            if u32::try_from(kept).map_or(true, |k| k < floor - next) {
                self.received_digest = [0u8; STREAM_DIGEST_LEN];
                self.ahead.retain(|b| b.seq >= floor);
                // No longer in the digest: not evidence of a rollback of the peer.
                for hedge in &mut self.received_hedges {
                    if hedge.seq < floor && hedge.state == HedgeState::Counted {
                        hedge.state = HedgeState::Read;
                        hedge.place = None;
                    }
                }
            }
            next = floor;
        }
        // Fold, in order, every kept blob below the prefix and every blob that extends it;
        // numbers the floor passed without a blob (abandoned by the sender) do not count.
        let mut folded = 0;
        for blob in &self.ahead {
            if blob.seq > next {
                break;
            }
            if blob.counted {
                self.received_digest = extend_digest(&self.received_digest, blob.seq, &blob.r);
            }
            next = next.max(blob.seq.saturating_add(1));
            folded += 1;
        }
        self.ahead.drain(..folded);
        self.received.next = next;
        self.refresh_bits();
        took
    }

    /// The hedge prefix our next blob names as its predecessor (`prev`, `docs/PROTOCOL.md`
    /// §6.4): that of our blob `next_seq − 1`, zero when this state never sealed that number
    /// (the first blob, or numbers skipped after a rollback).
    pub(crate) fn prev(&self) -> [u8; RECEIVED_HEDGE_LEN] {
        let Some(last) = self.next_seq.checked_sub(1) else {
            return [0u8; RECEIVED_HEDGE_LEN];
        };
        self.sent
            .back()
            .or(self.recent.back())
            .filter(|b| b.seq == last)
            .map_or([0u8; RECEIVED_HEDGE_LEN], |b| hedge_prefix(&b.r))
    }

    /// The number of the blob that shows the peer's blob (fragment `place.index` of
    /// `place.count` of a message, or an acknowledgement: fragment 0 of 1, floor `floor`,
    /// naming `prev`) with number `seq` to follow a blob of its sender's we never received
    /// (`docs/PROTOCOL.md` §6.4, "Predecessors"):
    /// * its predecessor `seq − index − 1`, which its sender still stands by (at or above its
    ///   floor), is not the counted blob we received under that number, or is one we refused;
    /// * or, for fragment `index ≥ 1` of a data message, a number `p` in `[seq − index, seq)`
    ///   (at or above the floor) holds a counted or acknowledgement-only blob below our prefix
    ///   that is not its message's fragment `index − (seq − p)` of `count`: its sender sealed
    ///   that fragment there, and we received another blob under the number.
    ///
    /// Then the sender is a copy of the peer's device that went back to an older copy and
    /// writes again under numbers its lost copy used; its blobs before this one sit where the
    /// lost copy wrote, which we read past, and this one, shown now, would come before them
    /// (or, a fragment, never complete its message while the messages after it show).
    ///
    /// Only a counted blob below our prefix is evidence: our digest covers it, so our next
    /// acknowledgement shows the sender its rollback, and the sender sends everything
    /// unconfirmed again, this blob's message after the ones it overtook (§6.5); an
    /// acknowledgement-only one marks the digest instead ([`Stream::take`]). Without that
    /// guarantee the blob is accepted, as it would otherwise never come again.
    pub(crate) fn follows_other_blob(
        &self,
        seq: u32,
        place: Place,
        data: bool,
        floor: u32,
        prev: &[u8; RECEIVED_HEDGE_LEN],
    ) -> Option<u32> {
        let first = seq.checked_sub(u32::from(place.index))?;
        let known = |number: u32| self.remembered(number);
        if let Some(before) = first.checked_sub(1)
            && *prev != [0u8; RECEIVED_HEDGE_LEN]
            && before >= floor
            && known(before).is_some_and(|h| match h.state {
                HedgeState::Refused => h.r == *prev,
                HedgeState::Counted | HedgeState::AckOnly => {
                    before < self.received.next && h.r != *prev
                }
                HedgeState::Read => false,
            })
        {
            return Some(before);
        }
        if !data {
            return None;
        }
        (first.max(floor)..seq).find(|&number| {
            let expected = Place {
                index: place
                    .index
                    .saturating_sub(u16::try_from(seq - number).unwrap_or(u16::MAX)),
                count: place.count,
            };
            number < self.received.next
                && known(number).is_some_and(|h| match h.state {
                    HedgeState::Counted => h.place.is_some_and(|at| at != expected),
                    HedgeState::AckOnly => true,
                    HedgeState::Refused | HedgeState::Read => false,
                })
        })
    }

    /// Whether we remember another blob than the one with hedge `r` under the peer's number
    /// `seq` (`docs/PROTOCOL.md` §6.4, "Predecessors"): two copies of the peer's device wrote
    /// under that number, one of them a copy that went back.
    pub(crate) fn holds_other_blob(&self, seq: u32, r: &[u8; HEDGE_LEN]) -> bool {
        self.remembered(seq).is_some_and(|h| h.r != hedge_prefix(r))
    }

    /// The peer blob remembered under number `seq`, if any ([`Stream::remember`]).
    fn remembered(&self, seq: u32) -> Option<&ReceivedHedge> {
        self.received_hedges
            .binary_search_by_key(&seq, |h| h.seq)
            .ok()
            .and_then(|i| self.received_hedges.get(i))
    }

    /// Whether a number in `[from, to)` holds a blob we refused ([`HedgeState::Refused`]).
    pub(crate) fn refused_between(&self, from: u32, to: u32) -> bool {
        self.received_hedges
            .iter()
            .any(|h| h.state == HedgeState::Refused && (from..to).contains(&h.seq))
    }

    /// Remembers a decrypted peer blob under its number (see [`Stream::follows_other_blob`]):
    /// one read replaces whatever was remembered there (the blobs after it name it, not the
    /// lost copy's), a refused one only fills an empty number. The lowest number goes beyond
    /// [`MAX_RECEIVED_HEDGES`].
    pub(crate) fn remember(
        &mut self,
        seq: u32,
        r: &[u8; HEDGE_LEN],
        state: HedgeState,
        place: Option<Place>,
    ) {
        let hedge = ReceivedHedge {
            seq,
            r: hedge_prefix(r),
            state,
            place: place.filter(|_| state == HedgeState::Counted),
        };
        match self.received_hedges.binary_search_by_key(&seq, |h| h.seq) {
            Ok(at) => {
                if let Some(known) = self.received_hedges.get_mut(at)
                    && state != HedgeState::Refused
                {
                    *known = hedge;
                }
            }
            Err(at) => {
                if at == 0 && self.received_hedges.len() >= MAX_RECEIVED_HEDGES {
                    return;
                }
                self.received_hedges.insert(at, hedge);
                if self.received_hedges.len() > MAX_RECEIVED_HEDGES {
                    self.received_hedges.pop_front();
                }
            }
        }
    }

    /// Takes a decrypted peer blob into the stream (§6.4): refused when it follows a blob of
    /// its sender's we never received ([`Stream::follows_other_blob`]), else received
    /// ([`Stream::received`]); either way remembered under its number ([`Stream::remember`]:
    /// a counted blob as [`HedgeState::Counted`] if it took its number, with its `place` if it
    /// is a data fragment (`data`), else [`HedgeState::Read`]; an acknowledgement-only blob
    /// as [`HedgeState::AckOnly`] if it took its number). Returns whether it was refused.
    pub(crate) fn take(
        &mut self,
        fields: &crate::message::StreamFields,
        place: Place,
        data: bool,
        r: &[u8; HEDGE_LEN],
        counted: bool,
    ) -> bool {
        if self
            .follows_other_blob(fields.seq, place, data, fields.floor, &fields.prev)
            .is_some()
        {
            // A refusal at or past our prefix goes into our digest, so that it differs from
            // any the sender computes and shows it its rollback (§6.5): when the blob we
            // received under the evidence's number is acknowledgement-only, neither digest
            // may cover that number; and when it is counted, the sender may have taken our
            // digest of that prefix as its own already (a copy that learnt of its rollback and
            // then sent again after blobs of its own we refuse: `restore` seed 8774, whose
            // every later blob we refused while its digest agreed with ours). Below the
            // prefix, the sender's floor passed the blob: it gave it up already.
            if fields.seq >= self.received.next {
                self.mark_digest(r);
            }
            self.remember(fields.seq, r, HedgeState::Refused, None);
            return true;
        }
        let took = self.received(fields.floor, fields.seq, r, counted);
        let state = match (counted, took) {
            (true, true) => Some(HedgeState::Counted),
            (true, false) => Some(HedgeState::Read),
            (false, true) => Some(HedgeState::AckOnly),
            (false, false) => None,
        };
        if let Some(state) = state {
            self.remember(fields.seq, r, state, data.then_some(place));
        }
        false
    }

    /// Marks our digest with the hedge `r` of a blob of the peer's that we refused (§6.4) or
    /// found where we had read another (§8, "Rewritten addresses"): `received_digest =
    /// D'(received_digest, 0xFFFFFFFF, r)`, a number no sender reaches, so that the digest
    /// differs from any the sender computes and shows it a rollback (§6.5).
    pub(crate) fn mark_digest(&mut self, r: &[u8; HEDGE_LEN]) {
        self.received_digest = extend_digest(&self.received_digest, u32::MAX, r);
    }

    /// Whether the peer's blob `seq` is past every blob of the peer received so far.
    pub(crate) fn is_newest(&self, seq: u32) -> bool {
        seq >= self.received.next && self.ahead.iter().all(|b| b.seq < seq)
    }

    /// Recomputes the acknowledgement's bits from the blobs kept past the prefix.
    pub(crate) fn refresh_bits(&mut self) {
        let next = self.received.next;
        let mut bits = 0u64;
        for blob in &self.ahead {
            if let Some(offset) = blob.seq.checked_sub(next).and_then(|d| d.checked_sub(1))
                && offset < ACK_WINDOW
            {
                bits |= 1 << offset;
            }
        }
        self.received.bits = bits;
    }

    /// Checks the peer's acknowledgement of our stream against what we sent. Confirms the
    /// prefix when the digests agree; reports a rollback when the peer acknowledges blobs we
    /// never sent or other blobs than ours.
    /// A digest that differs at the prefix we confirmed counts only in the peer's `newest`
    /// blob (past every blob of the peer's received so far): an older acknowledgement read
    /// late, or one of a copy of the peer restored to before it marked, carries an older
    /// digest of that prefix, which would otherwise report a rollback again.
    pub(crate) fn acknowledged(
        &mut self,
        ack: &Acknowledgement,
        digest: &Digest,
        newest: bool,
    ) -> AckOutcome {
        let mut outcome = AckOutcome::default();
        let highest = ack.highest();
        let beyond = highest
            .and_then(|h| h.checked_add(1))
            .and_then(|end| end.checked_sub(self.next_seq))
            .filter(|lost| *lost > 0);
        // The prefix we confirmed, with another digest: the peer marked a blob of ours it
        // refused (§6.4, "Predecessors") after confirming that prefix. Checked like a longer one.
        let remarked = newest && ack.next == self.confirmed && *digest != self.confirmed_digest;
        if ack.next <= self.confirmed && beyond.is_none() && !remarked {
            return outcome;
        }
        let unconfirmed_from = self.confirmed;
        let mut ours = self.confirmed_digest;
        let verifiable = self
            .sent
            .front()
            .is_none_or(|first| first.seq <= self.confirmed);
        for blob in self.sent.iter().take_while(|b| b.seq < ack.next) {
            if blob.counted {
                ours = extend_digest(&ours, blob.seq, &blob.r);
            }
        }
        // The peer's digest may have restarted at one of the floors we sent (it never
        // received some numbers below it): try those too, over the blobs we remember (the
        // recently confirmed ones too: a copy of the peer that lost blobs it had confirmed
        // restarts at the floor of the first blob it gets, which may be below `confirmed`).
        // Each distinct floor is tried once: blobs carry the same floor in long runs, and a
        // ring of up to MAX_UNCONFIRMED blobs must not cost a digest per blob per blob.
        let restarted = || {
            let remembered = || self.recent.iter().chain(self.sent.iter());
            let first = remembered().next().map(|b| b.seq);
            let floors: std::collections::BTreeSet<u32> = remembered()
                .map(|b| b.floor)
                .filter(|f| *f <= ack.next)
                .filter(|f| first.is_some_and(|first| first <= *f))
                .collect();
            floors.into_iter().any(|f| {
                let mut from = [0u8; STREAM_DIGEST_LEN];
                for blob in remembered().filter(|b| b.seq >= f && b.seq < ack.next) {
                    if blob.counted {
                        from = extend_digest(&from, blob.seq, &blob.r);
                    }
                }
                from == *digest
            })
        };
        let diverged = ack.next >= self.confirmed && verifiable && ours != *digest && !restarted();
        if remarked {
            self.confirmed_digest = *digest;
        }
        if ack.next > self.confirmed {
            self.confirmed = ack.next;
            self.confirmed_digest = *digest;
            let done = self.sent.partition_point(|b| b.seq < ack.next);
            self.recent.extend(self.sent.drain(..done));
            let excess = self.recent.len().saturating_sub(MAX_RECENT_CONFIRMED);
            self.recent.drain(..excess);
        }
        if let Some(lost) = beyond {
            self.next_seq = self.next_seq.saturating_add(lost);
            outcome.skip = lost;
        }
        if diverged || beyond.is_some() {
            outcome.rollback = Some(Rollback {
                lost_blobs: beyond.unwrap_or(0),
                unconfirmed_from,
            });
        }
        outcome
    }

    /// What the peer has confirmed of our stream: every seq below the confirmed prefix.
    pub(crate) fn confirmed(&self) -> Acknowledgement {
        Acknowledgement {
            next: self.confirmed,
            bits: 0,
        }
    }

    /// Remembers a completed message's id; false if it was seen already (a re-send).
    pub(crate) fn first_time(&mut self, id: &[u8; MESSAGE_ID_LEN]) -> bool {
        if *id == [0u8; MESSAGE_ID_LEN] {
            return true;
        }
        if self.message_ids.contains(id) {
            return false;
        }
        if self.message_ids.len() >= MESSAGE_ID_MEMORY {
            self.message_ids.pop_front();
        }
        self.message_ids.push_back(*id);
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn r(i: u8) -> [u8; HEDGE_LEN] {
        [i; HEDGE_LEN]
    }

    /// The receiver's digest equals the sender's over the same counted blobs, whatever the
    /// arrival order and whatever the floor skipped.
    #[test]
    fn digests_agree_across_orders_and_floors() {
        let mut sender = Stream::default();
        for seq in 0..6u32 {
            sender.sent(seq, &r(seq as u8), seq != 3, if seq == 5 { 5 } else { 0 });
        }
        sender.abandon(4);
        let mut receiver = Stream::default();
        receiver.received(0, 2, &r(2), true);
        receiver.received(0, 0, &r(0), true);
        receiver.received(0, 1, &r(1), true);
        receiver.received(5, 5, &r(5), true); // floor 5: 3 (ack-only, lost) and 4 abandoned
        assert_eq!(receiver.received.next, 6);
        let out = sender.acknowledged(&receiver.received, &receiver.received_digest, true);
        assert!(out.rollback.is_none());
        assert_eq!(sender.confirmed, 6);
        assert!(sender.sent.is_empty());
    }

    /// A peer that received other blobs under our sequence numbers is a rollback, even when
    /// we have sent as many blobs as it acknowledges.
    #[test]
    fn other_blobs_under_our_numbers_are_a_rollback() {
        let mut sender = Stream::default();
        let mut receiver = Stream::default();
        for seq in 0..2u32 {
            sender.sent(seq, &r(seq as u8), true, 0);
            receiver.received(0, seq, &r(seq as u8), true);
        }
        let out = sender.acknowledged(&receiver.received, &receiver.received_digest, true);
        assert!(out.rollback.is_none());
        let backup = sender.clone();
        for seq in 2..5u32 {
            sender.sent(seq, &r(10 + seq as u8), true, 2);
            receiver.received(0, seq, &r(10 + seq as u8), true);
        }
        // Restored, the device sends four blobs: more than it lost, none of them received.
        let mut restored = backup;
        for seq in 2..6u32 {
            restored.sent(seq, &r(20 + seq as u8), true, 2);
        }
        let out = restored.acknowledged(&receiver.received, &receiver.received_digest, true);
        assert_eq!(
            out.rollback,
            Some(Rollback {
                lost_blobs: 0,
                unconfirmed_from: 2
            })
        );
        assert_eq!(restored.confirmed(), Acknowledgement { next: 5, bits: 0 });
    }

    proptest::proptest! {
        /// Against a plain set: whatever the arrival order and duplicates, the prefix and bits
        /// say exactly what arrived (within the window), and the receiver's digest is one the
        /// sender accepts: no false rollback. Blobs from `t` on carry the sender's `floor`;
        /// the sender abandoned some numbers below it (they never arrive); others below it
        /// may arrive late, after the floor passed them.
        #[test]
        fn matches_a_set_and_the_senders_digest(
            order in proptest::collection::vec(0u32..120, 0..150),
            floor in 0u32..60,
            t_extra in 0u32..60,
            abandoned in proptest::collection::vec(proptest::bool::ANY, 60),
        ) {
            let t = floor + t_extra;
            let carried = |seq: u32| if seq >= t { floor } else { 0 };
            let is_abandoned = |seq: u32| seq < floor && abandoned[seq as usize];
            let mut sender = Stream::default();
            for seq in 0..120u32 {
                sender.sent(seq, &r(seq as u8), seq % 7 != 3, carried(seq));
                if is_abandoned(seq) {
                    sender.abandon(seq);
                }
            }
            let mut receiver = Stream::default();
            let mut got = std::collections::BTreeSet::new();
            let mut floor_seen = 0;
            for seq in order.iter().copied().filter(|s| !is_abandoned(*s)) {
                receiver.received(carried(seq), seq, &r(seq as u8), seq % 7 != 3);
                floor_seen = floor_seen.max(carried(seq));
                got.insert(seq);
            }
            let mut next = 0;
            while got.contains(&next) || next < floor_seen { next += 1; }
            proptest::prop_assert_eq!(receiver.received.next, next);
            for s in next..next + ACK_WINDOW + 1 {
                proptest::prop_assert_eq!(receiver.received.contains(s), got.contains(&s));
            }
            let out = sender.acknowledged(&receiver.received, &receiver.received_digest, true);
            proptest::prop_assert!(out.rollback.is_none(), "{:?}", out.rollback);
            proptest::prop_assert_eq!(sender.confirmed, next);
        }
    }

    /// A peer restored to before it received some of our blobs (which its lost copy
    /// confirmed) is no rollback of *ours*: its digest restarts at the floor that passes the
    /// numbers it lacks, and we accept a digest restarted at a floor we sent.
    #[test]
    fn a_restored_peer_is_not_our_rollback() {
        let mut alice = Stream::default();
        let mut lost_bob = Stream::default();
        for seq in 0..3u32 {
            alice.sent(seq, &r(seq as u8), true, seq);
            lost_bob.received(seq, seq, &r(seq as u8), true);
        }
        assert!(
            alice
                .acknowledged(&lost_bob.received, &lost_bob.received_digest, true)
                .rollback
                .is_none()
        );
        assert_eq!(alice.confirmed, 3);
        let mut bob = Stream::default();
        bob.received(0, 0, &r(0), true); // restored: only seq 0 was received then
        alice.sent(3, &r(3), true, 3);
        bob.received(3, 3, &r(3), true);
        assert_eq!(bob.received.next, 4);
        let out = alice.acknowledged(&bob.received, &bob.received_digest, true);
        assert!(out.rollback.is_none(), "{:?}", out.rollback);
        assert_eq!(alice.confirmed, 4);
    }

    /// The same, when the floor the restored peer's digest restarts at is older than every
    /// blob we still wait for: our blob 5 carries floor 2 (blob 2 was still unconfirmed when
    /// we sealed it), the lost copy confirmed up to 5, and the restored copy lacks 1 (read and
    /// deleted by the lost copy) but reads 2–5 again. The blobs confirmed most recently are
    /// remembered for this check ([`MAX_RECENT_CONFIRMED`]).
    #[test]
    fn a_restored_peer_restarting_below_our_unconfirmed_blobs_is_not_our_rollback() {
        let floor = |seq: u32| if seq == 5 { 2 } else { 0 };
        let mut alice = Stream::default();
        let mut lost_bob = Stream::default();
        for seq in 0..6u32 {
            alice.sent(seq, &r(seq as u8), true, floor(seq));
        }
        for seq in 0..5u32 {
            lost_bob.received(floor(seq), seq, &r(seq as u8), true);
        }
        let out = alice.acknowledged(&lost_bob.received, &lost_bob.received_digest, true);
        assert!(out.rollback.is_none());
        assert_eq!(alice.confirmed, 5);
        assert_eq!(alice.sent.len(), 1, "only blob 5 is still unconfirmed");
        let mut bob = Stream::default();
        bob.received(0, 0, &r(0), true); // restored: only seq 0 was received then
        for seq in 2..6u32 {
            bob.received(floor(seq), seq, &r(seq as u8), true);
        }
        assert_eq!(bob.received.next, 6);
        let out = alice.acknowledged(&bob.received, &bob.received_digest, true);
        assert!(out.rollback.is_none(), "{:?}", out.rollback);
        assert_eq!(alice.confirmed, 6);
    }

    /// Only a refused blob's number counts, and only inside the range asked.
    #[test]
    fn refused_numbers_are_found_in_their_range_only() {
        let mut s = Stream::default();
        s.remember(
            3,
            &r(3),
            HedgeState::Counted,
            Some(Place { index: 0, count: 1 }),
        );
        s.remember(5, &r(5), HedgeState::Refused, None);
        s.remember(6, &r(6), HedgeState::AckOnly, None);
        assert!(s.refused_between(5, 6) && s.refused_between(0, 9));
        assert!(!s.refused_between(0, 5) && !s.refused_between(6, 9));
        // A blob read under that number later replaces the refusal.
        s.remember(
            5,
            &r(7),
            HedgeState::Counted,
            Some(Place { index: 0, count: 1 }),
        );
        assert!(!s.refused_between(0, 9));
    }

    /// A restored sender that learnt of its rollback took our digest of the prefix as its
    /// confirmed one; its next blob follows its own blob under a number where we received
    /// its lost copy's (counted, in our digest), so we refuse it. The refusal must still
    /// change what our acknowledgements say, or the sender, whose digest agrees with ours,
    /// never learns (the simulator's `restore` seed 8774: every later blob refused, the
    /// messages stayed *sent*).
    #[test]
    fn a_refusal_shows_a_sender_that_confirmed_our_digest_its_rollback_again() {
        let fields = |seq: u32, prev: u8| crate::message::StreamFields {
            seq,
            floor: 0,
            ack: Acknowledgement::default(),
            ack_digest: [0; STREAM_DIGEST_LEN],
            message_id: [seq as u8 + 1; 8],
            prev: [prev; RECEIVED_HEDGE_LEN],
        };
        let one = Place { index: 0, count: 1 };
        let mut bob = Stream::default();
        let mut restored = Stream::default();
        for seq in 0..3u32 {
            // The lost copy's blobs, received; the restored copy's own under the same numbers.
            let prev = if seq == 0 { 0 } else { seq as u8 - 1 };
            assert!(!bob.take(&fields(seq, prev), one, true, &r(seq as u8), true));
            restored.sent(seq, &r(20 + seq as u8), true, 0);
        }
        let out = restored.acknowledged(&bob.received, &bob.received_digest, true);
        assert!(out.rollback.is_some(), "the digest shows other blobs");
        assert_eq!(restored.confirmed, 3);
        restored.sent(3, &r(23), true, 0);
        let digest_before_mark = bob.received_digest;
        assert!(
            bob.take(&fields(3, 22), one, true, &r(23), true),
            "it follows the restored copy's blob 2, not the one received"
        );
        assert_eq!(bob.received.next, 3, "a refused blob is not received");
        let out = restored.acknowledged(&bob.received, &bob.received_digest, true);
        assert_eq!(
            out.rollback,
            Some(Rollback {
                lost_blobs: 0,
                unconfirmed_from: 3
            }),
            "the marked digest shows the rollback again"
        );
        // An older acknowledgement of the same prefix, read late (not the peer's newest
        // blob), carries the digest before the mark: no rollback, the mark stays confirmed.
        let marked = restored.confirmed_digest;
        let out = restored.acknowledged(&bob.received, &digest_before_mark, false);
        assert!(out.rollback.is_none());
        assert_eq!(restored.confirmed_digest, marked);
        // A refused blob below our prefix was given up by its sender's floor: no mark.
        let digest = bob.received_digest;
        assert!(bob.take(&fields(1, 99), one, true, &r(31), true));
        assert_eq!(
            bob.received_digest, digest,
            "below the prefix: nothing marked"
        );
    }

    #[test]
    fn message_ids_drop_repeats() {
        let mut s = Stream::default();
        assert!(s.first_time(&[1; 8]));
        assert!(!s.first_time(&[1; 8]));
        assert!(
            s.first_time(&[0; 8]) && s.first_time(&[0; 8]),
            "zero is no id"
        );
    }
}
