//! Request bodies read from the request's stream chunk by chunk into a
//! [`mailbox::limits::BoundedBody`], cancelling the stream one byte past the limit.

use mailbox::limits::BoundedBody;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::Request;

/// How reading a request body ended.
pub enum ReadBody {
    /// The whole body (at most the limit).
    Complete(Vec<u8>),
    /// Longer than the limit; reading stopped one byte past it.
    TooLarge,
    /// The stream failed or ended short of its `Content-Length`.
    Malformed,
}

/// Reads the request's body stream into a [`BoundedBody`], cancelling the stream at the
/// limit plus one byte.
pub async fn read_body(req: &Request, limit: usize, declared: Option<u64>) -> ReadBody {
    let Ok(mut body) = BoundedBody::new(limit, declared) else {
        return ReadBody::TooLarge;
    };
    let Some(stream) = req.inner().body() else {
        return ReadBody::Complete(Vec::new());
    };
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    loop {
        let Ok(step) = JsFuture::from(reader.read()).await else {
            return ReadBody::Malformed;
        };
        let field = |name: &str| js_sys::Reflect::get(&step, &name.into()).ok();
        if field("done").and_then(|d| d.as_bool()).unwrap_or(true) {
            break;
        }
        let Some(chunk) = field("value").and_then(|v| v.dyn_into::<js_sys::Uint8Array>().ok())
        else {
            return ReadBody::Malformed;
        };
        let room = limit.saturating_sub(body.len());
        if chunk.length() as usize > room {
            // Tell the runtime to stop receiving; nothing more is read or kept.
            let _ = JsFuture::from(reader.cancel()).await;
            return ReadBody::TooLarge;
        }
        if body.push(&chunk.to_vec()).is_err() {
            return ReadBody::TooLarge;
        }
    }
    match declared {
        Some(n) if n != body.len() as u64 => ReadBody::Malformed,
        _ => ReadBody::Complete(body.into_bytes()),
    }
}
