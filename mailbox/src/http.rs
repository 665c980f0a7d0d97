//! A plain request/response model that each host adapts to its own HTTP types.

/// Header that carries the 64-hex write key of a `PUT`.
pub const WRITE_KEY_HEADER: &str = "mailbox-write-key";

/// Header of a `PUT` that puts back the very bytes a `DELETE` removed (revision 1.3,
/// `docs/MAILBOX-API.md`, "Putting a deleted message back"): the RFC 8941 boolean `?1`.
pub const PUT_BACK_HEADER: &str = "mailbox-put-back";

/// Headers on every mailbox response: open CORS (the mailbox serves only ciphertext and the
/// site may live on any origin), no caching anywhere, no content sniffing.
pub const COMMON_HEADERS: [(&str, &str); 3] = [
    ("access-control-allow-origin", "*"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
];

/// Extra headers on a CORS preflight answer.
pub const PREFLIGHT_HEADERS: [(&str, &str); 3] = [
    (
        "access-control-allow-methods",
        "GET, HEAD, PUT, POST, DELETE, OPTIONS",
    ),
    (
        "access-control-allow-headers",
        "Mailbox-Write-Key, Mailbox-Put-Back, Content-Type",
    ),
    ("access-control-max-age", "86400"),
];

/// The request body as the host read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// The whole body, no longer than [`crate::Config::body_read_limit`].
    Complete(&'a [u8]),
    /// The body was longer than [`crate::Config::body_read_limit`]; the host stopped reading
    /// at the limit plus one byte.
    TooLarge,
    /// The body could not be read to its end: malformed chunked encoding, a connection
    /// aborted mid-body, or fewer bytes than `Content-Length` announced.
    Malformed,
    /// The body did not arrive within
    /// [`crate::limits::ConnectionLimits::body_read_timeout`].
    TimedOut,
}

/// One HTTP request, as much of it as the mailbox looks at.
///
/// Hosts pass no client address, user agent or cookie: the mailbox never sees them.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Method, upper case as sent (`GET`, `PUT`, ...).
    pub method: &'a str,
    /// Path without query string.
    pub path: &'a str,
    /// Value of the `Mailbox-Write-Key` header, if present.
    pub write_key: Option<&'a [u8]>,
    /// Value of the `Mailbox-Put-Back` header ([`PUT_BACK_HEADER`]), if present.
    pub put_back: Option<&'a [u8]>,
    /// The body.
    pub body: Body<'a>,
}

/// One HTTP response: status, every header to send, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// All headers to send, lower-case names.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with the common headers, a content type and a body.
    pub(crate) fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        let mut headers = Vec::with_capacity(COMMON_HEADERS.len() + 1);
        headers.extend_from_slice(&COMMON_HEADERS);
        headers.push(("content-type", content_type));
        Self {
            status,
            headers,
            body,
        }
    }

    /// A short plain-text response.
    pub(crate) fn text(status: u16, reason: &'static str) -> Self {
        Self::new(
            status,
            "text/plain; charset=utf-8",
            reason.as_bytes().to_vec(),
        )
    }

    /// No content (`204`): the common headers only, no body and no content type.
    pub(crate) fn empty(status: u16) -> Self {
        Self {
            status,
            headers: COMMON_HEADERS.to_vec(),
            body: Vec::new(),
        }
    }

    /// Binary payload.
    pub(crate) fn octets(status: u16, body: Vec<u8>) -> Self {
        Self::new(status, "application/octet-stream", body)
    }

    /// The answer to a CORS preflight.
    pub(crate) fn preflight() -> Self {
        let mut headers = Vec::with_capacity(COMMON_HEADERS.len() + PREFLIGHT_HEADERS.len());
        headers.extend_from_slice(&COMMON_HEADERS);
        headers.extend_from_slice(&PREFLIGHT_HEADERS);
        Self {
            status: 204,
            headers,
            body: Vec::new(),
        }
    }

    /// The value of header `name` (lower case), if set.
    pub fn header(&self, name: &str) -> Option<&'static str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    }
}
