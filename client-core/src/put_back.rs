//! Putting back what a lost copy of the peer's device read (`docs/CLIENT.md`, "Putting back
//! what a lost copy read"; Mailbox API revision 1.3).
//!
//! With delete after read, the reader deletes each blob once it is committed on its device.
//! If its device then goes back to an older copy (a restored profile), that copy never read
//! those blobs and finds their addresses spent: without help it cannot read what its lost
//! copy read, nor follow the chain further. Without deletes it would simply read them again.
//!
//! So the writer keeps each blob the peer confirms (its outbox record, still sealed, under
//! `sent/{id}/{seq}`: at most [`records::MAX_KEPT_SENT`] sequence numbers back and
//! [`KEPT_SENT_MS`] after the mailbox last held it), and when the peer's device shows it went
//! back (`protocol::Received::peer_behind`: its acknowledgements went back below what its lost
//! copy confirmed, or it wrote again under numbers its lost copy used) it looks at all of them
//! and at the outbox's blobs on the mailbox: which ones the restored copy lacks, its
//! acknowledgement does not tell (blobs it skipped and still awaits lie below what it counts
//! as settled). Where one padded fetch of our own addresses reports the address spent, the
//! very bytes go back (`PUT` with `Mailbox-Put-Back: ?1`): the mailbox stores them again only
//! where they were deleted, and only until their own expiry, and the restored reader reads
//! them where it looks, as if nothing had been deleted. Where nothing was deleted nothing is
//! sent, and what expired stays gone (as it would without deletes).
//!
//! **No key or nonce meets new plaintext:** only the bytes first encrypted go back, to their
//! one address, and the mailbox refuses any other bytes there (`409`).

use protocol::{Address, WriteKey};

use crate::client::{Client, DECOY_KEY_LABEL, HistoryEntry};
use crate::decoys::padded_batches;
use crate::error::ClientError;
use crate::outbox::OutRecord;
use crate::platform::{Deposit, Durability, NetError, Platform, RecordStore, Transport, Write};
use crate::records::{self, BlobKind, KEPT_SENT_MS, Message, Outgoing, PutBack};
use crate::vault::VaultKey;

/// How many flushes of one put-back round may fail (the network, or a mailbox that refuses
/// the header) before the round gives up: the messages the peer's lost copy read then stay
/// gone, as before revision 1.3, and the restored copy's notice says so.
pub const MAX_PUT_BACK_TRIES: u32 = 3;

/// Whether a receive step that finds the peer behind at `now` starts a put-back round, given
/// the conversation's `current` one: unless one is under way or ended less than
/// [`crate::RETRANSMIT_AFTER_MS`] ago (the restored peer's blobs sealed before it read what
/// went back still acknowledge too little).
pub(crate) fn starts(current: Option<&PutBack>, now: u64) -> bool {
    match current {
        None => true,
        Some(round) => round
            .done_ms
            .is_some_and(|done| now >= done.saturating_add(crate::RETRANSMIT_AFTER_MS)),
    }
}

impl<P: Platform> Client<P> {
    /// Works off conversation `id`'s put-back `round` (under way: `done_ms` is `None`): looks
    /// at its kept blobs and the outbox's blobs on the mailbox from the round's `resume_seq`
    /// on, and puts back, in sequence order, those whose address the mailbox reports spent.
    /// Then records the round done, or where to resume after a network error (unless a
    /// receive step started another round meanwhile); after [`MAX_PUT_BACK_TRIES`] flushes
    /// that failed so, it gives up (a mailbox before revision 1.3 whose CORS preflight does
    /// not allow the header fails every time in a browser). Kept blobs past [`KEPT_SENT_MS`],
    /// or more than [`records::MAX_KEPT_SENT`] numbers below the newest, are dropped on the
    /// way. Returns how many the mailbox stored again, the messages of those (as the history
    /// shows them), and the network error that stopped the round, if one did. A blob already
    /// back (or never deleted) is not sent again within a round. `outbox`: the conversation's
    /// outbox records, as the flush read them.
    pub(crate) async fn put_back_kept(
        &self,
        key: &VaultKey,
        id: &str,
        mailbox: &str,
        round: PutBack,
        outbox: &[OutRecord],
    ) -> Result<(u32, Vec<HistoryEntry>, Option<NetError>), ClientError> {
        let prefix = records::kept_sent_prefix(id);
        let now = self.now_ms();
        let mut drops = Vec::new();
        let mut kept_due: Vec<(u32, Outgoing)> = Vec::new();
        let listed = self.store().list(&prefix).await?;
        let newest = listed
            .iter()
            .filter_map(|(name, _)| records::parse_kept_sent_seq(&prefix, name))
            .max()
            .unwrap_or(0);
        for (name, sealed) in listed {
            let Some(seq) = records::parse_kept_sent_seq(&prefix, &name) else {
                drops.push(name);
                continue;
            };
            // Numbers left behind by the trimming at confirmation (never confirmed
            // themselves: abandoned, skipped), and blobs past their lifetime. A blob whose
            // `201` never reached us has no time of its own (`checked_ms` 0): kept by number.
            if seq.saturating_add(records::MAX_KEPT_SENT) <= newest {
                drops.push(name);
                continue;
            }
            // Sealed under its outbox name, as it was kept.
            let plain = key.open(&records::outgoing_key(id, seq), &sealed)?;
            match records::decode::<Outgoing>(&plain) {
                Some(kept)
                    if kept.checked_ms != 0
                        && now >= kept.checked_ms.saturating_add(KEPT_SENT_MS) =>
                {
                    drops.push(name);
                }
                Some(kept) if seq >= round.resume_seq => kept_due.push((seq, kept)),
                Some(_) => {}
                None => drops.push(name),
            }
        }
        // Blobs of ours on the mailbox and not yet confirmed too: the lost copy may have read
        // and deleted them before its acknowledgement could reach us.
        let mut due: Vec<(u32, &Outgoing)> = kept_due
            .iter()
            .map(|(seq, kept)| (*seq, kept))
            .chain(outbox.iter().filter_map(|(_, seq, outgoing)| {
                (outgoing.stored && outgoing.kind != BlobKind::Hello && *seq >= round.resume_seq)
                    .then_some((*seq, outgoing))
            }))
            .collect();
        due.sort_by_key(|(seq, _)| *seq);
        let net = self.platform().net();
        let addresses: Vec<Address> = due
            .iter()
            .map(|(_, blob)| WriteKey(blob.write_key).address())
            .collect();
        let decoy_key = key.subkey(DECOY_KEY_LABEL);
        let mut spent = Vec::new();
        let mut failure = None;
        for batch in padded_batches(&decoy_key, &addresses) {
            match net.fetch(mailbox, &batch).await {
                Ok(found) => spent.extend(
                    found
                        .into_iter()
                        .filter(|(_, blob)| blob.is_empty())
                        .map(|(address, _)| address),
                ),
                Err(err) => {
                    failure = Some((round.resume_seq, err));
                    break;
                }
            }
        }
        let mut stored = 0;
        let mut messages = Vec::new();
        if failure.is_none() {
            for ((seq, blob), address) in due.iter().zip(&addresses) {
                if !spent.contains(address) {
                    continue;
                }
                match net
                    .put_back(mailbox, &WriteKey(blob.write_key), &blob.blob)
                    .await
                {
                    // Stored again, now or by an earlier attempt of this round whose answer
                    // was lost (the address read spent above, and only we hold these bytes):
                    // either way put back, and reported, since the reader may read it after
                    // later messages.
                    Ok(Deposit::Stored | Deposit::AlreadyStored) => {
                        stored += 1;
                        if let BlobKind::Data { message } = blob.kind
                            && !messages.contains(&message)
                        {
                            messages.push(message);
                        }
                    }
                    // Read there again already: nothing to do.
                    Ok(Deposit::Spent) => {}
                    Err(err) if err.is_transient() => {
                        failure = Some((*seq, err));
                        break;
                    }
                    // Refused (a mailbox that will never take it): nothing more to try.
                    Err(_) => {}
                }
            }
        }
        let _guard = self.lock_conversation(id).await?;
        let mut writes: Vec<Write> = drops.into_iter().map(Write::Delete).collect();
        let name = records::conversation_key(id);
        if let Some(mut conversation) = self.read::<records::Conversation>(key, &name).await?
            && conversation
                .put_back
                .is_some_and(|now| now.found_ms == round.found_ms)
        {
            let tries = round.tries.saturating_add(u32::from(failure.is_some()));
            conversation.put_back = Some(PutBack {
                found_ms: round.found_ms,
                resume_seq: failure.as_ref().map_or(round.resume_seq, |(seq, _)| *seq),
                done_ms: (failure.is_none() || tries >= MAX_PUT_BACK_TRIES).then_some(now),
                tries,
            });
            writes.push(self.put(key, name, &conversation));
        }
        if !writes.is_empty() {
            self.store().commit(writes, Durability::Relaxed).await?;
        }
        let mut shown = Vec::new();
        for message in messages {
            if let Some(entry) = self
                .read::<Message>(key, &records::message_key(id, message))
                .await?
            {
                shown.push(HistoryEntry::from(&entry));
            }
        }
        Ok((stored, shown, failure.map(|(_, err)| err)))
    }
}
