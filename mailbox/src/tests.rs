//! Unit tests of the API semantics over an in-memory store.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::*;

/// In-memory store; `quota` is a message count.
#[derive(Default)]
struct MemStore {
    map: RefCell<HashMap<[u8; 32], Vec<u8>>>,
    /// Deleted addresses, each with the deleted body (this store has no clock: spent for
    /// good; the hosts keep a digest of the body instead).
    spent: RefCell<HashMap<[u8; 32], Vec<u8>>>,
    quota: Option<usize>,
    broken: bool,
    disk_full: bool,
}

impl Store for MemStore {
    async fn put_if_absent(
        &self,
        address: &Address,
        body: &[u8],
    ) -> Result<PutOutcome, StoreError> {
        if self.broken {
            return Err(StoreError::Unavailable("test"));
        }
        if self.disk_full {
            return Err(StoreError::DiskFull);
        }
        let mut map = self.map.borrow_mut();
        if map.contains_key(&address.0) {
            return Ok(PutOutcome::AlreadyExists);
        }
        if let Some(deleted) = self.spent.borrow().get(&address.0) {
            return Ok(if deleted.as_slice() == body {
                PutOutcome::Spent
            } else {
                PutOutcome::AlreadyExists
            });
        }
        if self.quota.is_some_and(|q| map.len() >= q) {
            return Err(StoreError::QuotaReached);
        }
        map.insert(address.0, body.to_vec());
        Ok(PutOutcome::Stored)
    }

    async fn put_back(&self, address: &Address, body: &[u8]) -> Result<PutOutcome, StoreError> {
        if self.broken {
            return Err(StoreError::Unavailable("test"));
        }
        let deleted = self.spent.borrow().get(&address.0).cloned();
        if deleted.as_deref() == Some(body) && !self.map.borrow().contains_key(&address.0) {
            self.spent.borrow_mut().remove(&address.0);
            self.map.borrow_mut().insert(address.0, body.to_vec());
            return Ok(PutOutcome::Stored);
        }
        self.put_if_absent(address, body).await
    }

    async fn delete(&self, address: &Address) -> Result<(), StoreError> {
        if self.broken {
            return Err(StoreError::Unavailable("test"));
        }
        if let Some(body) = self.map.borrow_mut().remove(&address.0) {
            self.spent.borrow_mut().insert(address.0, body);
        }
        Ok(())
    }

    async fn get(&self, address: &Address) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .get_many(core::slice::from_ref(address))
            .await?
            .pop()
            .flatten())
    }

    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let map = self.map.borrow();
        let spent = self.spent.borrow();
        Ok(addresses
            .iter()
            .map(|a| match map.get(&a.0) {
                Some(body) => Some(body.clone()),
                None => spent.contains_key(&a.0).then(Vec::new),
            })
            .collect())
    }

    fn write_health(&self) -> Result<(), StoreError> {
        if self.disk_full {
            Err(StoreError::DiskFull)
        } else {
            Ok(())
        }
    }
}

/// Drives a future whose awaits are all immediately ready.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn key(n: u8) -> WriteKey {
    WriteKey([n; 32])
}

fn addr_hex(k: &WriteKey) -> String {
    hex::encode_32(&k.address().0)
}

fn key_hex(k: &WriteKey) -> String {
    hex::encode_32(&k.0)
}

fn call(
    m: &Mailbox<MemStore>,
    method: &str,
    path: &str,
    wk: Option<&str>,
    body: &[u8],
) -> Response {
    let req = Request {
        method,
        path,
        write_key: wk.map(str::as_bytes),
        put_back: None,
        body: Body::Complete(body),
    };
    block_on(m.handle(&req))
}

/// `PUT` with `Mailbox-Put-Back: {value}`.
fn put_back(m: &Mailbox<MemStore>, k: &WriteKey, value: &[u8], body: &[u8]) -> Response {
    let path = format!("/v1/m/{}", addr_hex(k));
    let key = key_hex(k);
    let req = Request {
        method: "PUT",
        path: &path,
        write_key: Some(key.as_bytes()),
        put_back: Some(value),
        body: Body::Complete(body),
    };
    block_on(m.handle(&req))
}

fn put(m: &Mailbox<MemStore>, k: &WriteKey, body: &[u8]) -> u16 {
    call(
        m,
        "PUT",
        &format!("/v1/m/{}", addr_hex(k)),
        Some(&key_hex(k)),
        body,
    )
    .status
}

fn mailbox() -> Mailbox<MemStore> {
    Mailbox::new(MemStore::default(), Config { max_body: 16 })
}

#[test]
fn put_then_get_then_conflict() {
    let m = mailbox();
    let k = key(1);
    assert_eq!(put(&m, &k, b"hello"), 201);
    let got = call(&m, "GET", &format!("/v1/m/{}", addr_hex(&k)), None, b"");
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"hello");
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(put(&m, &k, b"other"), 409);
    assert_eq!(put(&m, &k, b"hello"), 409);
    let got = call(&m, "GET", &format!("/v1/m/{}", addr_hex(&k)), None, b"");
    assert_eq!(got.body, b"hello", "first write wins");
    assert_eq!(m.counters().get(Outcome::Created), 1);
    assert_eq!(m.counters().get(Outcome::Conflict), 2);
}

#[test]
fn every_response_has_cors_and_no_store() {
    let m = mailbox();
    for r in [
        call(&m, "GET", "/v1/health", None, b""),
        call(&m, "GET", "/nope", None, b""),
        call(&m, "DELETE", "/v1/fetch", None, b""),
        call(&m, "OPTIONS", "/v1/fetch", None, b""),
    ] {
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(r.header("set-cookie").is_none());
        assert!(r.header("server").is_none());
    }
}

#[test]
fn preflight_allows_the_write_key_header() {
    let m = mailbox();
    let r = call(
        &m,
        "OPTIONS",
        &format!("/v1/m/{}", "a".repeat(64)),
        None,
        b"",
    );
    assert_eq!(r.status, 204);
    assert!(
        r.header("access-control-allow-headers")
            .is_some_and(|v| v.contains("Mailbox-Write-Key"))
    );
    assert!(
        r.header("access-control-allow-methods")
            .is_some_and(|v| v.contains("PUT"))
    );
}

#[test]
fn get_miss_is_404_and_health_is_200() {
    let m = mailbox();
    assert_eq!(
        call(&m, "GET", &format!("/v1/m/{}", "0".repeat(64)), None, b"").status,
        404
    );
    let h = call(&m, "GET", "/v1/health", None, b"");
    assert_eq!((h.status, h.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(call(&m, "GET", "/v1/", None, b"").status, 404);
    assert_eq!(m.counters().get(Outcome::Miss), 1);
}

#[test]
fn bad_input_table() {
    let m = mailbox();
    let k = key(0xab); // hex with letters, so upper case differs
    let good_addr = addr_hex(&k);
    let good_key = key_hex(&k);
    let path = format!("/v1/m/{good_addr}");
    type Case = (&'static str, String, Option<String>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        (
            "PUT",
            "/v1/m/xyz".into(),
            Some(good_key.clone()),
            b"x".to_vec(),
            400,
        ),
        (
            "PUT",
            format!("/v1/m/{}", &good_addr[..62]),
            Some(good_key.clone()),
            b"x".to_vec(),
            400,
        ),
        (
            "PUT",
            format!("/v1/m/{}", good_addr.to_uppercase()),
            Some(good_key.clone()),
            b"x".to_vec(),
            400,
        ),
        (
            "PUT",
            format!("/v1/m/{good_addr}/"),
            Some(good_key.clone()),
            b"x".to_vec(),
            400,
        ),
        (
            "GET",
            format!("/v1/m/{}", "g".repeat(64)),
            None,
            vec![],
            400,
        ),
        ("PUT", path.clone(), None, b"x".to_vec(), 400),
        ("PUT", path.clone(), Some("zz".into()), b"x".to_vec(), 400),
        (
            "PUT",
            path.clone(),
            Some(good_key.to_uppercase()),
            b"x".to_vec(),
            400,
        ),
        (
            "PUT",
            path.clone(),
            Some(key_hex(&key(3))),
            b"x".to_vec(),
            403,
        ),
        ("PUT", path.clone(), Some(good_key.clone()), vec![], 400),
        (
            "PUT",
            path.clone(),
            Some(good_key.clone()),
            vec![7; 17],
            413,
        ),
        ("POST", path.clone(), None, vec![], 405),
        ("DELETE", path.clone(), None, vec![], 400),
        ("PATCH", path.clone(), None, vec![], 405),
        ("POST", "/v1/fetch".into(), None, vec![], 400),
        ("POST", "/v1/fetch".into(), None, vec![0; 33], 400),
        ("POST", "/v1/fetch".into(), None, vec![0; 31], 400),
        ("POST", "/v1/fetch".into(), None, vec![0; 257 * 32], 400),
        ("GET", "/v1/fetch".into(), None, vec![], 405),
        ("PUT", "/v1/fetch".into(), None, vec![0; 32], 405),
        ("POST", "/v1/health".into(), None, vec![], 405),
    ];
    for (method, path, wk, body, want) in cases {
        let r = call(&m, method, &path, wk.as_deref(), &body);
        assert_eq!(
            r.status,
            want,
            "{method} {path} key={wk:?} body={}",
            body.len()
        );
    }
    assert_eq!(put(&m, &k, &[7; 16]), 201, "exactly max_body is accepted");
}

#[test]
fn method_not_allowed_names_allowed_methods() {
    let m = mailbox();
    let r = call(&m, "GET", "/v1/fetch", None, b"");
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
    let r = call(&m, "DELETE", "/v1/health", None, b"");
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
}

#[test]
fn head_is_answered_wherever_get_is() {
    let m = mailbox();
    let k = key(30);
    let path = format!("/v1/m/{}", addr_hex(&k));
    assert_eq!(call(&m, "HEAD", &path, None, b"").status, 404);
    assert_eq!(put(&m, &k, b"hello"), 201);
    for p in [path.as_str(), "/v1/health"] {
        let get = call(&m, "GET", p, None, b"");
        let head = call(&m, "HEAD", p, None, b"");
        assert_eq!(
            head, get,
            "{p}: the host drops HEAD's body, nothing else differs"
        );
    }
    assert_eq!(call(&m, "HEAD", "/v1/fetch", None, b"").status, 405);
    assert_eq!(call(&m, "HEAD", "/v1/m/xyz", None, b"").status, 400);
}

#[test]
fn malformed_or_late_bodies_are_not_counted_as_too_large() {
    let m = mailbox();
    let k = key(31);
    let key_text = key_hex(&k);
    let path = format!("/v1/m/{}", addr_hex(&k));
    for (body, want) in [(Body::Malformed, 400), (Body::TimedOut, 408)] {
        for (method, path) in [("PUT", path.as_str()), ("POST", "/v1/fetch")] {
            let request = Request {
                method,
                path,
                write_key: Some(key_text.as_bytes()),
                put_back: None,
                body,
            };
            assert_eq!(
                block_on(m.handle(&request)).status,
                want,
                "{method} {body:?}"
            );
        }
    }
    assert_eq!(m.counters().get(Outcome::BadBody), 2);
    assert_eq!(m.counters().get(Outcome::BodyTimeout), 2);
    assert_eq!(m.counters().get(Outcome::TooLarge), 0);
    assert_eq!(m.counters().get(Outcome::BadRequest), 0);
}

#[test]
fn oversize_reads_map_to_413_for_put_and_400_for_fetch() {
    let m = mailbox();
    let k = key(4);
    let key_text = key_hex(&k);
    let put = Request {
        method: "PUT",
        path: &format!("/v1/m/{}", addr_hex(&k)),
        write_key: Some(key_text.as_bytes()),
        put_back: None,
        body: Body::TooLarge,
    };
    assert_eq!(block_on(m.handle(&put)).status, 413);
    let fetch = Request {
        method: "POST",
        path: "/v1/fetch",
        write_key: None,
        put_back: None,
        body: Body::TooLarge,
    };
    assert_eq!(block_on(m.handle(&fetch)).status, 400);
    assert!(Config { max_body: 1 }.body_read_limit() >= fetch::MAX_FETCH_BODY);
}

#[test]
fn fetch_frames_found_messages_in_request_order() {
    let m = mailbox();
    let (a, b, c) = (key(10), key(11), key(12));
    assert_eq!(put(&m, &a, b"aa"), 201);
    assert_eq!(put(&m, &c, b"cccc"), 201);
    let mut body = Vec::new();
    for k in [&c, &b, &a, &c] {
        body.extend_from_slice(&k.address().0);
    }
    let r = call(&m, "POST", "/v1/fetch", None, &body);
    assert_eq!(r.status, 200);
    let frames = fetch::decode_response(&r.body).unwrap_or_default();
    let want = vec![
        (c.address(), &b"cccc"[..]),
        (a.address(), &b"aa"[..]),
        (c.address(), &b"cccc"[..]),
    ];
    assert_eq!(frames, want);
    let none = call(&m, "POST", "/v1/fetch", None, &key(13).address().0);
    assert_eq!((none.status, none.body.len()), (200, 0));
}

#[test]
fn quota_is_507_and_store_failure_is_503() {
    let m = Mailbox::new(
        MemStore {
            quota: Some(1),
            ..MemStore::default()
        },
        Config::default(),
    );
    assert_eq!(put(&m, &key(20), b"1"), 201);
    assert_eq!(put(&m, &key(21), b"2"), 507);
    let broken = Mailbox::new(
        MemStore {
            broken: true,
            ..MemStore::default()
        },
        Config::default(),
    );
    let r = call(
        &broken,
        "PUT",
        &format!("/v1/m/{}", addr_hex(&key(22))),
        Some(&key_hex(&key(22))),
        b"x",
    );
    assert_eq!(r.status, 503);
    assert_eq!(broken.counters().get(Outcome::StoreError), 1);
}

#[test]
fn a_full_disk_is_507_for_writes_503_for_health_and_reads_go_on() {
    let m = Mailbox::new(
        MemStore {
            disk_full: true,
            ..MemStore::default()
        },
        Config::default(),
    );
    let k = key(40);
    m.store()
        .map
        .borrow_mut()
        .insert(k.address().0, b"kept".to_vec());
    assert_eq!(put(&m, &key(41), b"x"), 507);
    assert_eq!(m.counters().get(Outcome::DiskFull), 1);
    let got = call(&m, "GET", &format!("/v1/m/{}", addr_hex(&k)), None, b"");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"kept"[..]));
    let health = call(&m, "GET", "/v1/health", None, b"");
    assert_eq!(
        (health.status, health.body.as_slice()),
        (503, &b"writes failing: disk full"[..])
    );
    assert_eq!(health.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn parse_write_key_rejects_everything_but_64_lowercase_hex() {
    assert!(parse_write_key(&[b'a'; 64]).is_ok());
    assert_eq!(
        parse_write_key(&[b'A'; 64]).err(),
        Some(ApiError::BadWriteKey)
    );
    assert_eq!(
        parse_write_key(&[b'a'; 63]).err(),
        Some(ApiError::BadWriteKey)
    );
    assert_eq!(parse_write_key(b"").err(), Some(ApiError::BadWriteKey));
}

#[test]
fn delete_needs_the_write_key_and_never_tells_occupancy_without_it() {
    let m = mailbox();
    let k = key(7);
    let path = format!("/v1/m/{}", addr_hex(&k));
    assert_eq!(put(&m, &k, b"read me"), 201);

    // No key, a malformed key, or another address's key: refused before the store is touched,
    // the same whether or not a message is there.
    let empty = key(8);
    let empty_path = format!("/v1/m/{}", addr_hex(&empty));
    for target in [&path, &empty_path] {
        let r = call(&m, "DELETE", target, None, b"");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (400, &b"missing write key"[..])
        );
        let r = call(&m, "DELETE", target, Some("ABC"), b"");
        assert_eq!((r.status, r.body.as_slice()), (400, &b"bad write key"[..]));
        let r = call(&m, "DELETE", target, Some(&key_hex(&key(9))), b"");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (403, &b"write key does not match address"[..])
        );
    }
    let r = call(&m, "DELETE", "/v1/m/xyz", Some(&key_hex(&k)), b"");
    assert_eq!(r.status, 400);
    assert_eq!(call(&m, "GET", &path, None, b"").status, 200, "still there");

    // The right key: 204 with no body, gone, and writable again; 204 again when already gone.
    let r = call(&m, "DELETE", &path, Some(&key_hex(&k)), b"");
    assert_eq!((r.status, r.body.len()), (204, 0));
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = call(&m, "GET", &path, None, b"");
    assert_eq!((r.status, r.body.as_slice()), (410, &b"address spent"[..]));
    let r = call(&m, "DELETE", &path, Some(&key_hex(&k)), b"");
    assert_eq!(r.status, 204);
    let r = call(&m, "DELETE", &empty_path, Some(&key_hex(&empty)), b"");
    assert_eq!(r.status, 204, "never written: the same answer");
    // Spent: a PUT with the key of the very bytes that were read is 410, of other bytes 409
    // (someone else's blob stood there); neither stores anything; a wrong key is still 403.
    let again = call(&m, "PUT", &path, Some(&key_hex(&k)), b"read me");
    assert_eq!(
        (again.status, again.body.as_slice()),
        (410, &b"address spent"[..])
    );
    let other_bytes = call(&m, "PUT", &path, Some(&key_hex(&k)), b"again");
    assert_eq!(
        (other_bytes.status, other_bytes.body.as_slice()),
        (409, &b"address already written"[..])
    );
    let r = call(&m, "PUT", &path, Some(&key_hex(&key(9))), b"again");
    assert_eq!(r.status, 403);
    assert_eq!(call(&m, "GET", &path, None, b"").status, 410);
    // A fetch reports the spent address with a record of length 0, a stored one in full, and
    // nothing for an empty one.
    let other = key(10);
    assert_eq!(put(&m, &other, b"kept"), 201);
    let batch = [k.address().0, empty.address().0, other.address().0].concat();
    let r = call(&m, "POST", "/v1/fetch", None, &batch);
    assert_eq!(
        fetch::decode_response(&r.body),
        Ok(vec![
            (k.address(), &b""[..]),
            (other.address(), &b"kept"[..])
        ])
    );
    // Deleting where nothing was stored spends nothing.
    assert_eq!(put(&m, &empty, b"first"), 201);
    assert_eq!(m.counters().get(Outcome::Deleted), 3);
    assert_eq!(m.counters().get(Outcome::Spent), 1);
}

#[test]
fn put_back_stores_only_the_deleted_bytes_again() {
    let m = mailbox();
    let k = key(7);
    let path = format!("/v1/m/{}", addr_hex(&k));
    // On a live message: first write wins, as for any PUT.
    assert_eq!(put(&m, &k, b"read me"), 201);
    assert_eq!(put_back(&m, &k, b"?1", b"read me").status, 409);
    assert_eq!(put_back(&m, &k, b"?1", b"other").status, 409);
    assert_eq!(
        call(&m, "DELETE", &path, Some(&key_hex(&k)), b"").status,
        204
    );
    // Spent: other bytes stay refused; a bad header value is refused before the store.
    let r = put_back(&m, &k, b"?1", b"other");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (409, &b"address already written"[..])
    );
    for bad in [&b"1"[..], b"true", b"?1 ", b""] {
        let r = put_back(&m, &k, bad, b"read me");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (400, &b"bad put-back header"[..])
        );
    }
    // `?0` is an ordinary PUT: the very bytes are still 410.
    assert_eq!(put_back(&m, &k, b"?0", b"read me").status, 410);
    // The wrong key is 403 before anything else is looked at.
    let wrong_key = key_hex(&key(9));
    let wrong = Request {
        method: "PUT",
        path: &path,
        write_key: Some(wrong_key.as_bytes()),
        put_back: Some(b"?1"),
        body: Body::Complete(b"read me"),
    };
    assert_eq!(block_on(m.handle(&wrong)).status, 403);
    assert_eq!(call(&m, "GET", &path, None, b"").status, 410);
    // The very bytes: stored again, readable, and first write wins again.
    let r = put_back(&m, &k, b"?1", b"read me");
    assert_eq!((r.status, r.body.as_slice()), (201, &b"stored"[..]));
    let r = call(&m, "GET", &path, None, b"");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"read me"[..]));
    assert_eq!(put_back(&m, &k, b"?1", b"read me").status, 409);
    // A free address takes a put-back as a first write.
    let free = key(11);
    assert_eq!(put_back(&m, &free, b"?1", b"new").status, 201);
    assert_eq!(put(&m, &free, b"new"), 409);
}

#[test]
fn delete_reports_a_failing_store() {
    let m = Mailbox::new(
        MemStore {
            broken: true,
            ..MemStore::default()
        },
        Config { max_body: 16 },
    );
    let k = key(3);
    let r = call(
        &m,
        "DELETE",
        &format!("/v1/m/{}", addr_hex(&k)),
        Some(&key_hex(&k)),
        b"",
    );
    assert_eq!(
        (r.status, r.body.as_slice()),
        (503, &b"store unavailable"[..])
    );
}

#[test]
fn subscribe_without_an_upgrade_is_426_and_other_methods_405() {
    let m = mailbox();
    let r = call(&m, "GET", "/v1/subscribe", None, b"");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (426, &b"upgrade required"[..])
    );
    assert_eq!(r.header("upgrade"), Some("websocket"));
    let r = call(&m, "POST", "/v1/subscribe", None, b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, OPTIONS")));
    let r = call(&m, "OPTIONS", "/v1/subscribe", None, b"");
    assert_eq!(r.status, 204);
    assert!(
        r.header("access-control-allow-methods")
            .is_some_and(|v| v.contains("DELETE"))
    );
    let r = call(&m, "PATCH", &format!("/v1/m/{}", "0".repeat(64)), None, b"");
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, HEAD, PUT, DELETE, OPTIONS"))
    );
}

#[test]
fn a_snapshot_holds_what_is_stored_at_the_watched_addresses_in_order() {
    let m = mailbox();
    let (a, b, c) = (key(1), key(2), key(3));
    assert_eq!(put(&m, &a, b"A"), 201);
    assert_eq!(put(&m, &c, b"C"), 201);
    let watch = [c.address(), b.address(), a.address()];
    let frames = block_on(subscribe::snapshot(m.store(), &watch));
    let frames = frames.unwrap_or_default();
    assert_eq!(
        fetch::decode_response(&frames),
        Ok(vec![(c.address(), &b"C"[..]), (a.address(), &b"A"[..])])
    );
    let none = block_on(subscribe::snapshot(m.store(), &[b.address()]));
    assert_eq!(none, Ok(Vec::new()), "nothing stored: an empty message");
    let broken = MemStore {
        broken: true,
        ..MemStore::default()
    };
    assert_eq!(
        block_on(subscribe::snapshot(&broken, &watch)),
        Ok(Vec::new()),
        "get_many of the test store does not fail"
    );
}

/// The delete message of `keys`, parsed as a host parses it.
fn deletes(keys: &[&WriteKey]) -> Result<subscribe::Deletes, String> {
    let mut message = vec![subscribe::DELETE_TAG];
    for k in keys {
        message.extend_from_slice(&k.0);
    }
    match subscribe::read_client_message(subscribe::ClientMessage::Binary(&message)) {
        Ok(subscribe::FromClient::Delete(d)) => Ok(d),
        other => Err(format!("not a delete message: {other:?}")),
    }
}

#[test]
fn a_delete_message_does_what_delete_with_each_key_does() -> Result<(), String> {
    let m = mailbox();
    let (read, never, other) = (key(1), key(2), key(3));
    assert_eq!(put(&m, &read, b"read"), 201);
    assert_eq!(put(&m, &other, b"kept"), 201);
    assert_eq!(
        block_on(subscribe::delete(m.store(), &deletes(&[&read, &never])?)),
        Ok(2)
    );
    let r = call(&m, "GET", &format!("/v1/m/{}", addr_hex(&read)), None, b"");
    assert_eq!(r.status, 410, "the message is gone, its address spent");
    assert_eq!(put(&m, &read, b"read"), 410, "its address is spent");
    assert_eq!(put(&m, &read, b"again"), 409, "other bytes: not ours");
    let r = call(&m, "GET", &format!("/v1/m/{}", addr_hex(&other)), None, b"");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"kept"[..]),
        "a message whose key was not sent is untouched"
    );
    assert_eq!(
        put(&m, &never, b"first"),
        201,
        "deleting an empty address spends nothing"
    );
    assert_eq!(
        block_on(subscribe::delete(m.store(), &deletes(&[&read])?)),
        Ok(1),
        "deleting a spent address again changes nothing"
    );
    assert_eq!(put(&m, &read, b"read"), 410);
    Ok(())
}

#[test]
fn a_delete_message_on_a_failing_store_closes_store_unavailable() -> Result<(), String> {
    let broken = MemStore {
        broken: true,
        ..MemStore::default()
    };
    let close = block_on(subscribe::delete(&broken, &deletes(&[&key(1)])?));
    assert_eq!(close, Err(subscribe::Close::StoreUnavailable));
    let close = subscribe::Close::StoreUnavailable;
    assert_eq!((close.code(), close.reason()), (1011, "store unavailable"));
    Ok(())
}
