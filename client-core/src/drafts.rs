//! Drafts: the unsent text of a conversation's composer, sealed in the vault like every
//! other record (`draft/{id}`), so that a lock, a reload or leaving the chat loses nothing
//! and nothing of it is kept in the clear.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::client::Client;
use crate::error::ClientError;
use crate::platform::{Durability, Platform, RecordStore, Write};
use crate::records::{self, Record};

/// The unsent text of one conversation (`draft/{id}`).
#[derive(serde::Serialize, serde::Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Draft {
    /// The text, at most [`protocol::MAX_MESSAGE_LEN`] bytes.
    pub text: String,
}

impl Record for Draft {}

impl<P: Platform> Client<P> {
    /// Keeps `text` as conversation `id`'s draft, sealed; an empty `text` deletes it. Written
    /// with relaxed durability (a draft is saved again as the user types).
    ///
    /// Errors: [`ClientError::Encrypt`] (`MessageTooLong`) for a text longer than a message
    /// may be (the draft kept before stays); [`ClientError::UnknownConversation`];
    /// [`ClientError::Locked`]; storage errors.
    pub async fn save_draft(&self, id: &str, text: &str) -> Result<(), ClientError> {
        let key = self.key()?;
        if text.len() > protocol::MAX_MESSAGE_LEN {
            return Err(ClientError::Encrypt(
                protocol::EncryptError::MessageTooLong {
                    len: text.len(),
                    max: protocol::MAX_MESSAGE_LEN,
                },
            ));
        }
        self.conversation(&key, id).await?;
        let name = records::draft_key(id);
        let write = if text.is_empty() {
            Write::Delete(name)
        } else {
            let draft = Draft {
                text: text.to_owned(),
            };
            self.put(&key, name, &draft)
        };
        self.store()
            .commit(vec![write], Durability::Relaxed)
            .await?;
        Ok(())
    }

    /// Conversation `id`'s draft, if it has one. The caller's copy is its own to wipe; the
    /// decoded record is zeroized here.
    ///
    /// Errors: [`ClientError::Locked`]; [`ClientError::Vault`] for a tampered record; storage
    /// errors. A draft that does not decode reads as none.
    pub async fn draft(&self, id: &str) -> Result<Option<Zeroizing<String>>, ClientError> {
        let key = self.key()?;
        Ok(self
            .read_lenient::<Draft>(&key, &records::draft_key(id))
            .await?
            .map(|mut draft| Zeroizing::new(core::mem::take(&mut draft.text))))
    }
}
