//! Drafts: the unsent text of a conversation's composer, sealed in the vault like every
//! other record (`draft/{id}`), so that a lock, a reload or leaving the chat loses nothing
//! and nothing of it is kept in the clear.
//!
//! A draft may be longer than a message (up to [`MAX_DRAFT_LEN`]): the person can still cut
//! it into messages, and what they typed is kept meanwhile.
//!
//! A message being sent stays the draft until its send has committed: the composer's text is
//! first sealed as the draft, marked with the conversation's next history position
//! ([`Client::keep_draft_for_send`]); then [`Client::send`] commits the message; then the
//! caller saves the composer's new text (empty: the draft goes). Torn down in between (a
//! reload, a closed tab), the marked draft is read back by [`Client::draft`], which looks for
//! the message in the history from the marked position on: there, the send committed and the
//! draft is deleted (no second send of it); not there, the send never happened and the text
//! is handed back for the composer. A sent message is never lost nor offered twice.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::client::Client;
use crate::error::ClientError;
use crate::platform::{Durability, Platform, RecordStore, Write};
use crate::records::{self, Message, Record};
use crate::vault::VaultKey;

/// The longest draft kept, in bytes of UTF-8: four messages' worth
/// (4 × [`protocol::MAX_MESSAGE_LEN`]), so a text pasted or typed past a message's limit is
/// kept while the person cuts it, and a draft's record stays small.
pub const MAX_DRAFT_LEN: usize = 4 * protocol::MAX_MESSAGE_LEN;
// A draft's record stays small: at most 256 KiB of text.
const _: () = assert!(MAX_DRAFT_LEN <= 256 * 1024);

/// The unsent text of one conversation (`draft/{id}`).
#[derive(serde::Serialize, serde::Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Draft {
    /// The text, at most [`MAX_DRAFT_LEN`] bytes.
    pub text: String,
    /// Set while `text` is being sent: the conversation's next history position when the
    /// send began (its message, once committed, is at this position or after).
    pub sending_from: Option<u64>,
}

/// Record version 1 of a draft: the text only.
#[derive(serde::Deserialize, Zeroize, ZeroizeOnDrop)]
struct DraftV1 {
    text: String,
}

impl Record for Draft {
    // Version 1 had no `sending_from`.
    const VERSION: u8 = 2;
    fn upgrade(version: u8, body: &[u8]) -> Option<Self> {
        if version != 1 {
            return None;
        }
        let mut old: DraftV1 = postcard::from_bytes(body).ok()?;
        Some(Draft {
            text: core::mem::take(&mut old.text),
            sending_from: None,
        })
    }
}

impl<P: Platform> Client<P> {
    /// Keeps `text` as conversation `id`'s draft, sealed; an empty `text` deletes it. Written
    /// with relaxed durability (a draft is saved again as the user types).
    ///
    /// Errors: [`ClientError::DraftTooLong`] for a text longer than [`MAX_DRAFT_LEN`] (the
    /// draft kept before stays); [`ClientError::UnknownConversation`];
    /// [`ClientError::Locked`]; storage errors.
    pub async fn save_draft(&self, id: &str, text: &str) -> Result<(), ClientError> {
        self.write_draft(id, text, false).await
    }

    /// Keeps `text`, about to be passed to [`Client::send`], as conversation `id`'s draft,
    /// marked with the conversation's next history position, so that a send torn down before
    /// it committed leaves the text to put back and one that committed leaves nothing (see
    /// the module's documentation). Call it before `send` (after it has resolved), then
    /// [`Client::save_draft`] once `send` settled.
    ///
    /// Errors: as [`Client::save_draft`]; an empty `text` is a no-op.
    pub async fn keep_draft_for_send(&self, id: &str, text: &str) -> Result<(), ClientError> {
        if text.is_empty() {
            return Ok(());
        }
        self.write_draft(id, text, true).await
    }

    async fn write_draft(&self, id: &str, text: &str, sending: bool) -> Result<(), ClientError> {
        let key = self.key()?;
        if text.len() > MAX_DRAFT_LEN {
            return Err(ClientError::DraftTooLong {
                len: text.len(),
                max: MAX_DRAFT_LEN,
            });
        }
        let conversation = self.conversation(&key, id).await?;
        let name = records::draft_key(id);
        let write = if text.is_empty() {
            Write::Delete(name)
        } else {
            let draft = Draft {
                text: text.to_owned(),
                sending_from: sending.then_some(conversation.next_seq),
            };
            self.put(&key, name, &draft)
        };
        self.store()
            .commit(vec![write], Durability::Relaxed)
            .await?;
        Ok(())
    }

    /// Seals `text`, which the page is about to send in conversation `id`, **synchronously**,
    /// under the vault key and a name bound to the conversation
    /// ([`records::pending_send_name`]), for the page to keep in its session storage until
    /// the text is sealed as the draft ([`Client::keep_draft_for_send`]). That takes a storage
    /// transaction, which a reload or a closed tab in the first milliseconds after Send
    /// aborts; the page's synchronous copy survives a reload, and [`Client::open_pending_send`]
    /// gives the text back after it. Nothing is kept in the clear. Returns the sealed bytes
    /// (`nonce ‖ ciphertext ‖ tag`, as every vault record, `VaultKey::seal`).
    ///
    /// Errors: [`ClientError::Locked`]; [`ClientError::DraftTooLong`] past [`MAX_DRAFT_LEN`].
    pub fn seal_pending_send(&self, id: &str, text: &str) -> Result<Vec<u8>, ClientError> {
        let key = self.key()?;
        if text.len() > MAX_DRAFT_LEN {
            return Err(ClientError::DraftTooLong {
                len: text.len(),
                max: MAX_DRAFT_LEN,
            });
        }
        Ok(key.seal(
            &mut self.rng(),
            &records::pending_send_name(id),
            text.as_bytes(),
        ))
    }

    /// Opens what [`Client::seal_pending_send`] sealed for conversation `id`.
    ///
    /// Errors: [`ClientError::Locked`]; [`ClientError::Vault`] if it was not sealed for this
    /// conversation under this vault's key, or was altered; [`ClientError::CorruptRecord`]
    /// for text that is not UTF-8.
    pub fn open_pending_send(
        &self,
        id: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<String>, ClientError> {
        let key = self.key()?;
        let plain = key.open(&records::pending_send_name(id), sealed)?;
        let text = core::str::from_utf8(&plain).map_err(|_| ClientError::CorruptRecord)?;
        Ok(Zeroizing::new(text.to_owned()))
    }

    /// Conversation `id`'s draft, if it has one. A draft marked as being sent whose message
    /// is in the history (the send committed, and the page was gone before the draft was
    /// cleared) is deleted here and reads as none. The caller's copy is its own to wipe; the
    /// decoded record is zeroized here.
    ///
    /// Errors: [`ClientError::Locked`]; [`ClientError::Vault`] for a tampered record; storage
    /// errors. A draft that does not decode reads as none.
    pub async fn draft(&self, id: &str) -> Result<Option<Zeroizing<String>>, ClientError> {
        let key = self.key()?;
        let name = records::draft_key(id);
        let Some(mut draft) = self.read_lenient::<Draft>(&key, &name).await? else {
            return Ok(None);
        };
        if let Some(from) = draft.sending_from
            && self.sent_since(&key, id, from, &draft.text).await?
        {
            self.store()
                .commit(vec![Write::Delete(name)], Durability::Relaxed)
                .await?;
            return Ok(None);
        }
        Ok(Some(Zeroizing::new(core::mem::take(&mut draft.text))))
    }

    /// Whether one of our messages with `text` is in conversation `id`'s history at
    /// position `from` or after.
    async fn sent_since(
        &self,
        key: &VaultKey,
        id: &str,
        from: u64,
        text: &str,
    ) -> Result<bool, ClientError> {
        let Some(conversation) = self
            .read_lenient::<crate::records::Conversation>(key, &records::conversation_key(id))
            .await?
        else {
            return Ok(false);
        };
        for seq in from..conversation.next_seq {
            let message = self
                .read_lenient::<Message>(key, &records::message_key(id, seq))
                .await?;
            if message.is_some_and(|m| m.outgoing && m.text == text) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_draft_still_loads_unmarked() {
        #[derive(serde::Serialize)]
        struct V1<'a> {
            text: &'a str,
        }
        let mut bytes = vec![1];
        bytes.extend(postcard::to_allocvec(&V1 { text: "kept" }).unwrap_or_default());
        let draft: Draft = records::decode(&bytes).unwrap_or(Draft {
            text: String::new(),
            sending_from: Some(0),
        });
        assert_eq!(draft.text, "kept");
        assert_eq!(draft.sending_from, None);
    }
}
