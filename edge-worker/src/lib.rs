//! The Hush mailbox as a Cloudflare Worker on Workers KV.
//!
//! Only compiled for `wasm32-unknown-unknown` (built by `cargo xtask`); natively it is empty.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(target_arch = "wasm32")]
mod worker_entry {
    use worker::{Context, Env, Request, Response, Result, event};

    /// Hands every request to the router.
    #[event(fetch)]
    pub async fn fetch(req: Request, _env: Env, _ctx: Context) -> Result<Response> {
        if req.path() == "/v1/health" {
            let mut resp = Response::ok(mailbox::HEALTH_BODY)?;
            resp.headers_mut().set("Cache-Control", "no-store")?;
            return Ok(resp);
        }
        Response::error("not found", 404)
    }
}
