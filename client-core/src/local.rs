//! Changes that stay on this device and tell the mailbox and the other person nothing:
//! marking a conversation's safety code as verified, and deleting a message from this
//! device's history.

use crate::client::Client;
use crate::error::ClientError;
use crate::platform::{Durability, Platform, RecordStore, Write};
use crate::records::{self, ConversationState, Message, Status};

impl<P: Platform> Client<P> {
    /// Marks conversation `id`'s safety code as compared with the other person's and
    /// matching (`verified`), or removes the mark. Kept in the sealed conversation record
    /// ([`crate::ConversationSummary::verified_ms`]); nothing is sent.
    ///
    /// Errors: [`ClientError::NotJoined`] while there is no safety code yet (the invite
    /// waits, or it was taken); [`ClientError::UnknownConversation`]; storage and lock errors.
    pub async fn set_verified(&self, id: &str, verified: bool) -> Result<(), ClientError> {
        let key = self.key()?;
        let conversation = self.conversation(&key, id).await?;
        if !matches!(conversation.state, ConversationState::Active { .. }) {
            return Err(ClientError::NotJoined);
        }
        drop(conversation);
        let now = self.now_ms();
        self.update(id, |c| {
            c.verified_ms = if verified {
                c.verified_ms.or(Some(now))
            } else {
                None
            };
        })
        .await
    }

    /// Deletes history entry `seq` of conversation `id` from this device, in one durable
    /// transaction. The other person's copy is untouched and nothing is sent. An entry of
    /// ours that is on the mailbox but not yet delivered is still checked and deposited again
    /// by its retransmission (its blobs are already sealed); one still *sending* (not yet
    /// on the mailbox) cannot be deleted, so that a message is never half sent.
    ///
    /// The record's bytes were sealed under the vault key; the browser may keep freed pages
    /// of its database until it compacts them (`docs/CLIENT.md`).
    ///
    /// Errors: [`ClientError::NoSuchMessage`] if there is no entry `seq`;
    /// [`ClientError::StillSending`] for an entry of ours not on the mailbox yet;
    /// [`ClientError::UnknownConversation`]; storage and lock errors.
    pub async fn delete_message(&self, id: &str, seq: u64) -> Result<(), ClientError> {
        let key = self.key()?;
        let _guard = self.lock_conversation(id).await?;
        self.conversation(&key, id).await?;
        let name = records::message_key(id, seq);
        let message = self
            .read::<Message>(&key, &name)
            .await?
            .ok_or(ClientError::NoSuchMessage)?;
        if message.outgoing && message.status == Status::Sending {
            return Err(ClientError::StillSending);
        }
        drop(message);
        self.store()
            .commit(vec![Write::Delete(name)], Durability::Strict)
            .await?;
        Ok(())
    }
}
