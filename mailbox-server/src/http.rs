//! axum ⇄ `mailbox` request/response adapter, and the static site with its headers.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use tower_http::services::ServeDir;

use crate::store::DiskStore;

type Shared = Arc<mailbox::Mailbox<DiskStore>>;

/// Content-Security-Policy of the static site.
pub const SITE_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
connect-src *; img-src 'self' data: blob:; style-src 'self'; media-src 'self' blob:; \
object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The whole app: the API under `/v1/`, the site (or the API's 404) elsewhere.
pub fn router(mailbox: Shared, www: Option<&Path>) -> Router {
    let routes = Router::new().route("/v1/{*rest}", any(serve_api));
    let routes = match www {
        Some(dir) => {
            let site = Router::new()
                // `cargo xtask build-web` writes a `.gz` beside every file: served to clients
                // that accept gzip (the wasm shrinks to less than half).
                .fallback_service(ServeDir::new(dir).precompressed_gzip())
                .layer(axum::middleware::map_response(site_headers));
            routes.fallback_service(site)
        }
        None => routes.fallback(serve_api),
    };
    routes.with_state(mailbox)
}

async fn site_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SITE_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Reads the body (bounded), hands the request to the mailbox, writes its answer.
async fn serve_api(State(mailbox): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let limit = mailbox.config().body_read_limit();
    let declared_too_large = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64);
    let bytes = if declared_too_large {
        None
    } else {
        axum::body::to_bytes(body, limit).await.ok()
    };
    let body = match &bytes {
        Some(b) => mailbox::Body::Complete(b),
        None => mailbox::Body::TooLarge,
    };
    let request = mailbox::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        write_key: parts
            .headers
            .get(mailbox::WRITE_KEY_HEADER)
            .map(HeaderValue::as_bytes),
        body,
    };
    let answer = mailbox.handle(&request).await;
    to_axum(answer)
}

fn to_axum(answer: mailbox::Response) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}
