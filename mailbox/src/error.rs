//! Every way a mailbox request can fail, and the one function that maps them to HTTP.

use crate::store::StoreError;

/// Why a request was not served. Grouped by fault: the client's request, the state of the
/// mailbox, or the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    // --- The client sent something malformed (400).
    /// The address in the path is not 64 lowercase hex characters.
    #[error("bad address")]
    BadAddress,
    /// `PUT` without a `Mailbox-Write-Key` header.
    #[error("missing write key")]
    MissingWriteKey,
    /// The `Mailbox-Write-Key` header is not 64 lowercase hex characters.
    #[error("bad write key")]
    BadWriteKey,
    /// `PUT` with an empty body.
    #[error("empty body")]
    EmptyBody,
    /// A fetch body that is empty, not a multiple of 32 bytes, or more than 256 addresses.
    #[error("bad batch")]
    BadBatch,
    /// The body could not be read to its end (malformed chunked encoding, aborted, shorter
    /// than its `Content-Length`).
    #[error("malformed body")]
    MalformedBody,
    /// The body did not arrive in time (408).
    #[error("body timeout")]
    BodyTimeout,

    // --- The client asked for something it may not have (403/404/405/413).
    /// The write key does not hash to the address.
    #[error("write key does not match address")]
    WrongWriteKey,
    /// The body is larger than the configured maximum.
    #[error("body too large")]
    BodyTooLarge,
    /// No route has this path.
    #[error("not found")]
    NoRoute,
    /// `GET /v1/subscribe` without the WebSocket upgrade headers (426, with
    /// `Upgrade: websocket`).
    #[error("upgrade required")]
    UpgradeRequired,
    /// The route exists but not for this method; `allow` lists the methods it has.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Value of the `Allow` header.
        allow: &'static str,
    },

    /// A `Mailbox-Put-Back` header whose value is not the RFC 8941 boolean `?1` or `?0`.
    #[error("bad put-back header")]
    BadPutBack,

    // --- State of the mailbox (404/409/507).
    /// No live message at the address.
    #[error("no message")]
    NoMessage,
    /// A message already sits at the address (first write wins).
    #[error("address already written")]
    AlreadyExists,
    /// The address was written and its message deleted (read) since; it stays spent until
    /// that message would have expired (410).
    #[error("address spent")]
    Spent,
    /// The store refused the write because its quota is reached.
    #[error("quota reached")]
    QuotaReached,
    /// The store refused the write because its disk is (nearly) full.
    #[error("disk full")]
    DiskFull,

    // --- The store failed (503).
    /// The backing store failed.
    #[error("store unavailable")]
    StoreUnavailable(&'static str),
    /// `GET /v1/health` while writes are failing (reads are still served); the inner error
    /// says why.
    #[error("writes failing")]
    WritesFailing(StoreError),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::QuotaReached => Self::QuotaReached,
            StoreError::DiskFull => Self::DiskFull,
            StoreError::Unavailable(class) => Self::StoreUnavailable(class),
        }
    }
}

impl ApiError {
    /// The HTTP status and the short text reason sent as the body. The only place errors
    /// meet status codes.
    pub fn status_and_reason(&self) -> (u16, &'static str) {
        match self {
            Self::BadAddress => (400, "bad address"),
            Self::MissingWriteKey => (400, "missing write key"),
            Self::BadWriteKey => (400, "bad write key"),
            Self::BadPutBack => (400, "bad put-back header"),
            Self::EmptyBody => (400, "empty body"),
            Self::BadBatch => (400, "bad batch"),
            Self::MalformedBody => (400, "malformed body"),
            Self::BodyTimeout => (408, "body timeout"),
            Self::WrongWriteKey => (403, "write key does not match address"),
            Self::NoRoute => (404, "not found"),
            Self::NoMessage => (404, "no message"),
            Self::MethodNotAllowed { .. } => (405, "method not allowed"),
            Self::AlreadyExists => (409, "address already written"),
            Self::Spent => (410, "address spent"),
            Self::UpgradeRequired => (426, "upgrade required"),
            Self::BodyTooLarge => (413, "body too large"),
            Self::StoreUnavailable(_) => (503, "store unavailable"),
            Self::WritesFailing(StoreError::DiskFull | StoreError::QuotaReached) => {
                (503, "writes failing: disk full")
            }
            Self::WritesFailing(_) => (503, "writes failing: store error"),
            Self::QuotaReached => (507, "quota reached"),
            Self::DiskFull => (507, "disk full"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_api_v1() {
        assert_eq!(ApiError::BadAddress.status_and_reason().0, 400);
        assert_eq!(ApiError::WrongWriteKey.status_and_reason().0, 403);
        assert_eq!(ApiError::AlreadyExists.status_and_reason().0, 409);
        assert_eq!(ApiError::Spent.status_and_reason(), (410, "address spent"));
        assert_eq!(ApiError::BodyTooLarge.status_and_reason().0, 413);
        assert_eq!(ApiError::QuotaReached.status_and_reason().0, 507);
        assert_eq!(
            ApiError::MethodNotAllowed { allow: "GET" }
                .status_and_reason()
                .0,
            405
        );
        assert_eq!(
            ApiError::from(StoreError::QuotaReached),
            ApiError::QuotaReached
        );
        assert_eq!(
            ApiError::from(StoreError::DiskFull).status_and_reason(),
            (507, "disk full")
        );
        assert_eq!(ApiError::MalformedBody.status_and_reason().0, 400);
        assert_eq!(
            ApiError::UpgradeRequired.status_and_reason(),
            (426, "upgrade required")
        );
        assert_eq!(ApiError::BodyTimeout.status_and_reason().0, 408);
        assert_eq!(
            ApiError::WritesFailing(StoreError::DiskFull).status_and_reason(),
            (503, "writes failing: disk full")
        );
        assert_eq!(
            ApiError::from(StoreError::Unavailable("io"))
                .status_and_reason()
                .0,
            503
        );
    }
}
