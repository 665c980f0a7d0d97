//! axum ⇄ `mailbox` request/response adapter, and the static site with its headers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::BodyExt;
use mailbox::limits::BoundedBody;
use tower_http::services::ServeDir;

use crate::subscribe::{HostMailbox, Subscriptions};

/// What every API request handler shares: the mailbox, how long a body may take, and the
/// subscriptions.
#[derive(Clone)]
pub struct Api {
    /// The mailbox.
    pub mailbox: Arc<HostMailbox>,
    /// [`mailbox::limits::ConnectionLimits::body_read_timeout`].
    pub body_read_timeout: Duration,
    /// `GET /v1/subscribe` WebSockets.
    pub subscriptions: Subscriptions,
}

/// Content-Security-Policy of the static site.
pub const SITE_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
connect-src *; img-src 'self' data: blob:; style-src 'self'; media-src 'self' blob:; \
object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The whole app: the API under `/v1/`, the site (or the API's 404) elsewhere.
pub fn router(api: Api, www: Option<&Path>) -> Router {
    let routes = Router::new().route("/v1/{*rest}", any(serve_api));
    let routes = match www {
        Some(dir) => {
            let site = Router::new()
                // `cargo xtask build-web` writes a `.gz` beside every file: served to clients
                // that accept gzip (the wasm shrinks to less than half).
                .fallback_service(ServeDir::new(dir).precompressed_gzip())
                .layer(axum::middleware::from_fn(no_such_file_name))
                .layer(axum::middleware::map_response(site_headers))
                .layer(axum::middleware::from_fn(invite_in_path));
            routes.fallback_service(site)
        }
        None => routes.fallback(serve_api),
    };
    routes.with_state(api)
}

/// The `index.html` to serve for a path whose last segment is an invite link whose `#`
/// became `%23` (or `%2523`, encoded twice): `/%23AQ…` → `/index.html`,
/// `/hush/%23AQ…` → `/hush/index.html` (docs/HOSTING.md). `None` for any other path.
fn invite_page(path: &str) -> Option<String> {
    let (folder, last) = path.rsplit_once('/')?;
    let starts = |prefix: &str| {
        last.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    (starts("%23") || starts("%2523")).then(|| format!("{folder}/index.html"))
}

/// Serves the app for links whose `#` became `%23`: the app finds the invite in its own
/// address. Such a path carries an invite (a secret): it is never logged, and the answer
/// is not cached.
async fn invite_in_path(mut request: Request, next: axum::middleware::Next) -> Response {
    let Some(page) = invite_page(request.uri().path()) else {
        return next.run(request).await;
    };
    match page.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return next.run(request).await,
    }
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Longest name of one path segment (bytes) and of a whole path that a file of the site can
/// have: `NAME_MAX` and `PATH_MAX` on Linux.
const MAX_FILE_NAME: usize = 255;
const MAX_FILE_PATH: usize = 4096;

/// Whether `path` is too long to name any file (so the file system would answer
/// `ENAMETOOLONG`).
fn too_long_for_a_file(path: &str) -> bool {
    path.len() > MAX_FILE_PATH || path.split('/').any(|segment| segment.len() > MAX_FILE_NAME)
}

/// `404` for a path no file can have: `ServeDir` answers the file system's `ENAMETOOLONG`
/// with a `500`, which says the server failed when the request named nothing.
async fn no_such_file_name(request: Request, next: axum::middleware::Next) -> Response {
    if too_long_for_a_file(request.uri().path()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    next.run(request).await
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

/// How reading a request body ended.
enum ReadBody {
    Complete(Vec<u8>),
    TooLarge,
    Malformed,
    TimedOut,
}

/// Reads `body` frame by frame into a [`BoundedBody`]: stops at the limit plus one byte
/// (chunked or not), at a malformed or aborted body, or at `timeout`.
async fn read_body(body: Body, limit: usize, declared: Option<u64>, timeout: Duration) -> ReadBody {
    let Ok(mut bounded) = BoundedBody::new(limit, declared) else {
        return ReadBody::TooLarge;
    };
    let mut body = body;
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return ReadBody::Malformed;
            };
            if let Some(data) = frame.data_ref()
                && bounded.push(data).is_err()
            {
                return ReadBody::TooLarge;
            }
        }
        ReadBody::Complete(Vec::new())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(ReadBody::Complete(_)) => ReadBody::Complete(bounded.into_bytes()),
        Ok(other) => other,
        Err(_) => ReadBody::TimedOut,
    }
}

/// Reads the body (bounded in size and time), hands the request to the mailbox, writes its
/// answer.
async fn serve_api(State(api): State<Api>, mut request: Request) -> Response {
    if request.method() == axum::http::Method::GET
        && request.uri().path() == mailbox::SUBSCRIBE_PATH
        && let Some(upgraded) = api.subscriptions.accept(&mut request, &api.mailbox)
    {
        return upgraded;
    }
    let (parts, body) = request.into_parts();
    let mailbox = &api.mailbox;
    let limit = mailbox.config().body_read_limit();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let read = read_body(body, limit, declared, api.body_read_timeout).await;
    let body = match &read {
        ReadBody::Complete(b) => mailbox::Body::Complete(b),
        ReadBody::TooLarge => mailbox::Body::TooLarge,
        ReadBody::Malformed => mailbox::Body::Malformed,
        ReadBody::TimedOut => mailbox::Body::TimedOut,
    };
    let request = mailbox::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        write_key: parts
            .headers
            .get(mailbox::WRITE_KEY_HEADER)
            .map(HeaderValue::as_bytes),
        put_back: parts
            .headers
            .get(mailbox::PUT_BACK_HEADER)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::Request;
    use http_body_util::BodyExt;
    use hyper_util::service::TowerToHyperService;
    use mailbox::limits::SubscriptionLimits;
    use mailbox::{Mailbox, hex};
    use protocol::WriteKey;

    use super::{Api, invite_page, router, too_long_for_a_file};
    use crate::store::{DiskStore, StoreConfig};
    use crate::subscribe::{Publishing, Subscriptions};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[tokio::test]
    async fn a_put_back_after_a_delete_is_stored_again_and_allowed_by_cors() -> TestResult {
        let dir = std::env::temp_dir().join(format!(
            "mailbox-server-http-put-back-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, writer) = DiskStore::open(
            &dir,
            StoreConfig {
                ttl: Duration::from_secs(60),
                quota_bytes: 1 << 20,
                cache_bytes: 1 << 20,
                checkpoint_every: Duration::from_secs(10),
                reserve_bytes: 0,
                free_space: crate::disk::statvfs_free(),
                max_body: 1024,
            },
        )?;
        let subscriptions = Subscriptions::new(SubscriptionLimits::default());
        let mailbox = Arc::new(Mailbox::new(
            Publishing::new(store, Arc::clone(&subscriptions.hub)),
            mailbox::Config::default(),
        ));
        let api = Api {
            mailbox,
            body_read_timeout: Duration::from_secs(5),
            subscriptions,
        };
        let service = TowerToHyperService::new(router(api, None));
        let key = WriteKey([0x3c; 32]);
        let path = format!("/v1/m/{}", hex::encode_32(&key.address().0));
        let key_hex = hex::encode_32(&key.0);
        let call = async |method: &str, put_back: Option<&str>, body: &'static [u8]| {
            let mut request = Request::builder()
                .method(method)
                .uri(&path)
                .header(mailbox::WRITE_KEY_HEADER, &key_hex);
            if let Some(value) = put_back {
                request = request.header("Mailbox-Put-Back", value);
            }
            let request = request.body(Body::from(body))?;
            let response = hyper::service::Service::call(&service, request).await?;
            let status = response.status().as_u16();
            let allowed = response
                .headers()
                .get("access-control-allow-headers")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.into_body().collect().await?.to_bytes().to_vec();
            Ok::<_, Box<dyn std::error::Error>>((status, body, allowed))
        };
        assert_eq!(call("PUT", None, b"sealed").await?.0, 201);
        assert_eq!(call("DELETE", None, b"").await?.0, 204);
        assert_eq!(call("GET", None, b"").await?.0, 410);
        assert_eq!(call("PUT", None, b"sealed").await?.0, 410);
        assert_eq!(call("PUT", Some("?1"), b"forged").await?.0, 409);
        assert_eq!(call("PUT", Some("1"), b"sealed").await?.0, 400);
        let (status, body, _) = call("PUT", Some("?1"), b"sealed").await?;
        assert_eq!((status, body.as_slice()), (201, &b"stored"[..]));
        let (status, body, _) = call("GET", None, b"").await?;
        assert_eq!((status, body.as_slice()), (200, &b"sealed"[..]));
        assert_eq!(call("PUT", Some("?1"), b"sealed").await?.0, 409);
        // A browser may send the header: the preflight allows it.
        let (status, _, allowed) = call("OPTIONS", None, b"").await?;
        assert_eq!(status, 204);
        let allowed = allowed.unwrap_or_default().to_ascii_lowercase();
        assert!(
            allowed
                .split(',')
                .any(|h| h.trim() == mailbox::PUT_BACK_HEADER),
            "{allowed}"
        );
        drop(service);
        tokio::task::spawn_blocking(move || writer.shutdown()).await?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn paths_longer_than_a_file_name_are_no_file() {
        assert!(!too_long_for_a_file(&format!("/{}", "a".repeat(255))));
        assert!(too_long_for_a_file(&format!("/{}", "a".repeat(256))));
        assert!(too_long_for_a_file(&format!("/x/{}/y", "a".repeat(300))));
        assert!(too_long_for_a_file(&"/aaaaaaaa".repeat(600)));
        assert!(!too_long_for_a_file("/index.html"));
    }

    #[test]
    fn invite_links_whose_hash_became_percent_23_get_the_app() {
        assert_eq!(invite_page("/%23AQx-_").as_deref(), Some("/index.html"));
        assert_eq!(invite_page("/%2523AQ").as_deref(), Some("/index.html"));
        assert_eq!(
            invite_page("/hush/%23AQ").as_deref(),
            Some("/hush/index.html")
        );
        assert_eq!(
            invite_page("/hush/%2523aq").as_deref(),
            Some("/hush/index.html")
        );
        assert_eq!(invite_page("/app.js"), None);
        assert_eq!(invite_page("/"), None);
        assert_eq!(invite_page("/%2"), None);
        assert_eq!(invite_page("/x%23"), None);
    }
}
