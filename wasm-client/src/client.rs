//! The client over the browser: [`client_core::Client`] on a [`BrowserPlatform`]. Every
//! method (vault, invites, send, flush, poll, history, …) is the core's, reached through
//! `Deref`; this module only opens it.

use std::ops::Deref;
use std::rc::Rc;

pub use client_core::{ClientError, ConversationSummary, FlushOutcome, HistoryEntry, PollOutcome};

use crate::net::FetchTransport;
use crate::platform::BrowserPlatform;

/// The Hush client for one browser profile: the core client over IndexedDB, `fetch` and Web
/// Locks.
pub struct Client(client_core::Client<BrowserPlatform>);

impl Client {
    /// Opens the client over the IndexedDB database `db_name`, locked.
    pub async fn open(db_name: &str) -> Result<Rc<Client>, ClientError> {
        Self::open_with(db_name, FetchTransport::default()).await
    }

    /// As [`Client::open`], with a given transport (tests shorten its request deadline).
    pub async fn open_with(db_name: &str, net: FetchTransport) -> Result<Rc<Client>, ClientError> {
        let platform = BrowserPlatform::open(db_name, net).await?;
        Ok(Rc::new(Client(client_core::Client::new(platform))))
    }
}

impl Deref for Client {
    type Target = client_core::Client<BrowserPlatform>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
