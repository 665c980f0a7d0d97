// The one mailbox conformance suite (API v1 revision 1.3, docs/MAILBOX-API.md), parameterized
// by host; the tests of revision 1.1 (DELETE, subscriptions) live in suite-v1-1.mjs, those of
// revision 1.2 (delete messages over the subscription) in suite-v1-2.mjs, those of revision
// 1.3 (putting a deleted message back) in suite-v1-3.mjs.
//
// conformanceSuite(name, { start, maxBody, passTtl, ttlMs }) registers a `describe` block:
// - start(): resolves to { url, output(), stop() } of a host configured with `maxBody`;
// - passTtl(host): resolves once every message stored so far has outlived its TTL;
// - ttlMs: the host's message lifetime in ms, if known (a put-back's expiry is tested then);
// - upgradeHeader: whether the host can send `Upgrade: websocket` with a 426 (workerd drops
//   it from every response but a 101; docs/MAILBOX-API.md, edge notes).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { bytes, del, fetchBatch, get, newSlot, parseFrames, put, used } from "./helpers.mjs";
import { revision11Tests } from "./suite-v1-1.mjs";
import { revision12Tests } from "./suite-v1-2.mjs";
import { revision13Tests } from "./suite-v1-3.mjs";

/** Headers every mailbox response carries, and headers none may carry. */
function assertCommonHeaders(res, what) {
  assert.equal(res.headers.get("access-control-allow-origin"), "*", `${what}: CORS`);
  assert.equal(res.headers.get("cache-control"), "no-store", `${what}: Cache-Control`);
  assert.equal(res.headers.get("set-cookie"), null, `${what}: no cookies`);
  assert.equal(res.headers.get("server"), null, `${what}: no Server banner`);
}

export function conformanceSuite(name, { start, maxBody, passTtl, ttlMs, upgradeHeader = true }) {
  describe(`mailbox API v1 conformance: ${name}`, () => {
    let host;
    let base;
    before(async () => {
      host = await start();
      base = host.url;
    });
    after(async () => {
      await host?.stop();
    });

    test("GET /v1/health is 200 with the common headers", async () => {
      const res = await fetch(`${base}/v1/health`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "ok");
      assertCommonHeaders(res, "health");
    });

    test("PUT stores (201), GET returns the bytes (200), a second PUT is 409 and changes nothing", async () => {
      const slot = newSlot();
      const blob = randomBytes(maxBody);
      let res = await put(base, slot, blob);
      assert.equal(res.status, 201);
      assertCommonHeaders(res, "PUT 201");
      await res.arrayBuffer();

      res = await get(base, slot);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "application/octet-stream");
      assertCommonHeaders(res, "GET 200");
      assert.deepEqual(await bytes(res), blob);

      res = await put(base, slot, randomBytes(10));
      assert.equal(res.status, 409);
      assertCommonHeaders(res, "PUT 409");
      await res.arrayBuffer();

      res = await put(base, slot, blob);
      assert.ok([201, 409].includes(res.status), `identical retry: ${res.status}`);
      await res.arrayBuffer();

      res = await get(base, slot);
      assert.deepEqual(await bytes(res), blob, "first write wins");
    });

    test("HEAD is answered wherever GET is, with GET's status and length and no body", async () => {
      const slot = newSlot();
      const blob = randomBytes(100);
      let res = await fetch(`${base}/v1/m/${slot.addressHex}`, { method: "HEAD" });
      assert.equal(res.status, 404);
      await res.arrayBuffer();
      res = await put(base, slot, blob);
      assert.equal(res.status, 201);
      await res.arrayBuffer();
      res = await fetch(`${base}/v1/m/${slot.addressHex}`, { method: "HEAD" });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "application/octet-stream");
      assertCommonHeaders(res, "HEAD 200");
      assert.equal((await bytes(res)).length, 0, "no body");
      res = await fetch(`${base}/v1/health`, { method: "HEAD" });
      assert.equal(res.status, 200);
      assert.equal((await bytes(res)).length, 0);
      res = await fetch(`${base}/v1/fetch`, { method: "HEAD" });
      assert.equal(res.status, 405);
      assert.match(res.headers.get("allow") ?? "", /POST/);
      await res.arrayBuffer();
      res = await fetch(`${base}/v1/m/${slot.addressHex}`, { method: "PATCH" });
      assert.equal(res.headers.get("allow"), "GET, HEAD, PUT, DELETE, OPTIONS");
      await res.arrayBuffer();
    });

    test("streamed bodies without Content-Length: too large is 413 (PUT) or 400 (fetch), an aborted one is 400", async () => {
      // Each streamed request goes on a connection of its own (node:http, `agent: false`) and
      // is sent with `Transfer-Encoding: chunked` in 16 KiB chunks. A host may answer a body it
      // refuses before reading all of it, and close: on a shared keep-alive pool (fetch) that
      // closed socket could be handed to the next request, which then fails for no fault of
      // the host. Here no socket outlives its request.
      const { request } = await import("node:http");
      const url = new URL(base);
      /** Sends `total` bytes chunked; resolves to { status, text } once the answer is read. */
      const streamed = (path, method, total, headers) =>
        new Promise((ok, fail) => {
          let answered = false;
          const req = request(
            { host: url.hostname, port: Number(url.port), path, method, headers, agent: false },
            (res) => {
              answered = true;
              let text = "";
              res.setEncoding("utf8");
              res.on("data", (c) => (text += c));
              res.on("end", () => {
                ok({ status: res.statusCode, text });
                req.destroy();
              });
              res.on("error", fail);
            },
          );
          // Writing on after a refusal can fail (EPIPE, ECONNRESET); only the answer counts.
          req.on("error", (err) => {
            if (!answered) fail(err);
          });
          const chunk = new Uint8Array(16 << 10).fill(7);
          const pump = () => {
            while (total > 0 && !answered) {
              const n = Math.min(chunk.length, total);
              total -= n;
              if (!req.write(chunk.subarray(0, n))) return req.once("drain", pump);
            }
            if (!answered) req.end();
          };
          pump();
        });
      // A host may also reset a refused request before its answer reaches the client: such a
      // request is sent again until the answer is read (at most 5 times).
      const refused = async (path, method, total, headers) => {
        for (let attempt = 1; ; attempt += 1) {
          try {
            return await streamed(path, method, total, headers);
          } catch (err) {
            if (attempt === 5 || !["ECONNRESET", "EPIPE"].includes(err?.code)) throw err;
          }
        }
      };
      const slot = newSlot();
      let res = await refused(`/v1/m/${slot.addressHex}`, "PUT", maxBody + 1, {
        "Mailbox-Write-Key": slot.keyHex,
      });
      assert.equal(res.status, 413);
      assert.equal(res.text, "body too large");
      res = await refused("/v1/fetch", "POST", 256 * 32 + 1, {});
      assert.equal(res.status, 400);
      assert.equal(res.text, "bad batch");
      res = await streamed(`/v1/m/${slot.addressHex}`, "PUT", maxBody, { "Mailbox-Write-Key": slot.keyHex });
      assert.equal(res.status, 201, "a chunked body of exactly the maximum is fine");
      // Malformed chunked encoding, on a raw socket.
      const other = newSlot();
      const answer = await new Promise((ok, fail) => {
        import("node:net").then(({ connect }) => {
          const s = connect(Number(url.port), url.hostname);
          let out = "";
          s.on("data", (c) => (out += c));
          s.on("close", () => ok(out));
          s.on("error", fail);
          s.write(
            `PUT /v1/m/${other.addressHex} HTTP/1.1\r\nHost: ${url.host}\r\nMailbox-Write-Key: ${other.keyHex}\r\n` +
              "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n",
          );
          setTimeout(() => s.end(), 200);
        });
      });
      assert.match(answer, /^HTTP\/1\.1 400 /, `malformed chunked body: ${answer.split("\r\n")[0]}`);
      const stored = await get(base, other);
      assert.equal(stored.status, 404, "nothing stored from it");
      await stored.arrayBuffer();
    });

    test("GET of an empty address is 404", async () => {
      const res = await get(base, newSlot());
      assert.equal(res.status, 404);
      assertCommonHeaders(res, "GET 404");
      await res.arrayBuffer();
    });

    test("PUT with another address's write key is 403 and stores nothing", async () => {
      const slot = newSlot();
      const other = newSlot();
      const res = await put(base, slot, "x", { key: other.keyHex });
      assert.equal(res.status, 403);
      await res.arrayBuffer();
      const after403 = await get(base, slot);
      assert.equal(after403.status, 404);
      await after403.arrayBuffer();
    });

    test("bad-input table", async () => {
      const slot = newSlot();
      const okAddress = (s) => `/v1/m/${s.addressHex}`;
      const cases = [
        ["bad hex", () => put(base, slot, "x", { path: `/v1/m/${"zz".repeat(32)}` }), 400],
        ["address too short", () => put(base, slot, "x", { path: `/v1/m/${slot.addressHex.slice(2)}` }), 400],
        ["address too long", () => put(base, slot, "x", { path: `/v1/m/${slot.addressHex}00` }), 400],
        ["uppercase address", () => put(base, slot, "x", { path: `/v1/m/${slot.addressHex.toUpperCase()}` }), 400],
        ["GET bad address", () => fetch(`${base}/v1/m/not-hex`), 400],
        ["GET uppercase address", () => fetch(`${base}/v1/m/${slot.addressHex.toUpperCase()}`), 400],
        ["missing write key", () => put(base, slot, "x", { key: null }), 400],
        ["malformed write key", () => put(base, slot, "x", { key: "abc" }), 400],
        ["uppercase write key", () => put(base, slot, "x", { key: slot.keyHex.toUpperCase() }), 400],
        ["wrong write key", () => put(base, slot, "x", { key: newSlot().keyHex }), 403],
        ["empty body", () => put(base, slot, new Uint8Array(0)), 400],
        ["oversize body (max + 1)", () => put(base, slot, randomBytes(maxBody + 1)), 413],
        ["oversize body (64 KiB)", () => put(base, slot, randomBytes(65536)), 413],
        ["empty batch", () => fetchBatch(base, []), 400],
        ["truncated batch (33 bytes)", () => fetchBatch(base, [slot.address, Buffer.from([1])]), 400],
        ["truncated batch (31 bytes)", () => fetchBatch(base, [slot.address.subarray(1)]), 400],
        ["257 addresses", () => fetchBatch(base, Array.from({ length: 257 }, () => slot.address)), 400],
        ["GET /v1/fetch", () => fetch(`${base}/v1/fetch`), 405],
        ["PUT /v1/fetch", () => fetch(`${base}/v1/fetch`, { method: "PUT", body: slot.address }), 405],
        ["DELETE /v1/fetch", () => fetch(`${base}/v1/fetch`, { method: "DELETE" }), 405],
        ["PATCH /v1/fetch", () => fetch(`${base}/v1/fetch`, { method: "PATCH", body: slot.address }), 405],
        ["POST /v1/m/{address}", () => fetch(`${base}${okAddress(slot)}`, { method: "POST", body: "x" }), 405],
        ["PATCH /v1/m/{address}", () => fetch(`${base}${okAddress(slot)}`, { method: "PATCH", body: "x" }), 405],
        ["DELETE without a write key", () => fetch(`${base}${okAddress(slot)}`, { method: "DELETE" }), 400],
        ["DELETE with a wrong write key", () => fetch(`${base}${okAddress(slot)}`, { method: "DELETE", headers: { "Mailbox-Write-Key": newSlot().keyHex } }), 403],
        ["DELETE bad address", () => fetch(`${base}/v1/m/zz`, { method: "DELETE", headers: { "Mailbox-Write-Key": slot.keyHex } }), 400],
        ["PUT /v1/subscribe", () => fetch(`${base}/v1/subscribe`, { method: "PUT", body: "x" }), 405],
        ["POST /v1/health", () => fetch(`${base}/v1/health`, { method: "POST" }), 405],
        ["unknown route", () => fetch(`${base}/v1/list`), 404],
      ];
      const wrong = [];
      for (const [what, send, want] of cases) {
        const res = await send();
        await res.arrayBuffer();
        assertCommonHeaders(res, what);
        if (res.status !== want) wrong.push(`${what}: got ${res.status}, want ${want}`);
        if (res.status === 405) assert.ok(res.headers.get("allow"), `${what}: Allow header`);
      }
      assert.deepEqual(wrong, []);
      const untouched = await get(base, slot);
      assert.equal(untouched.status, 404, "no bad request stored anything");
      await untouched.arrayBuffer();
      const exact = await put(base, slot, randomBytes(maxBody));
      assert.equal(exact.status, 201, "a body of exactly the maximum is accepted");
      await exact.arrayBuffer();
    });

    test("CORS preflight is answered for every route", async () => {
      for (const path of [`/v1/m/${newSlot().addressHex}`, "/v1/fetch", "/v1/health", "/v1/subscribe"]) {
        const res = await fetch(`${base}${path}`, {
          method: "OPTIONS",
          headers: {
            Origin: "https://somewhere.example",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "mailbox-write-key",
          },
        });
        assert.ok(res.status === 204 || res.status === 200, `preflight ${path}: ${res.status}`);
        assertCommonHeaders(res, `preflight ${path}`);
        const methods = res.headers.get("access-control-allow-methods") ?? "";
        for (const m of ["GET", "PUT", "POST", "DELETE"]) assert.ok(methods.includes(m), `${path} allows ${m}`);
        const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
        assert.ok(allowed.includes("mailbox-write-key"), `${path} allows the write-key header`);
        await res.arrayBuffer();
      }
    });

    test("POST /v1/fetch frames found messages in request order, byte for byte", async () => {
      const [a, b, c] = [newSlot(), newSlot(), newSlot()];
      const missing = newSlot();
      const blobs = new Map([
        [a.addressHex, randomBytes(1)],
        [b.addressHex, randomBytes(maxBody)],
        [c.addressHex, Buffer.from([0, 0, 0, 0, 0xff])],
      ]);
      for (const s of [a, b, c]) {
        const res = await put(base, s, blobs.get(s.addressHex));
        assert.equal(res.status, 201);
        await res.arrayBuffer();
      }
      const order = [c, missing, a, c, b];
      const res = await fetchBatch(base, order.map((s) => s.address));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "application/octet-stream");
      assertCommonHeaders(res, "fetch");
      const body = await bytes(res);
      const frames = parseFrames(body);
      const want = [c, a, c, b].map((s) => ({ address: s.addressHex, body: blobs.get(s.addressHex) }));
      assert.deepEqual(frames, want);
      // Exact framing: address ‖ u32 BE length ‖ bytes, nothing else.
      const expected = Buffer.concat(
        want.map((f) => {
          const len = Buffer.alloc(4);
          len.writeUInt32BE(f.body.length);
          return Buffer.concat([Buffer.from(f.address, "hex"), len, f.body]);
        }),
      );
      assert.deepEqual(body, expected);
    });

    test("POST /v1/fetch of 256 addresses is accepted; nothing found is an empty 200", async () => {
      const batch = Array.from({ length: 256 }, () => newSlot().address);
      const res = await fetchBatch(base, batch);
      assert.equal(res.status, 200);
      assert.equal((await bytes(res)).length, 0);
    });

    revision11Tests({ base: () => base, maxBody, upgradeHeader });
    revision12Tests({ base: () => base, maxBody });
    revision13Tests({ base: () => base, maxBody, ttlMs });

    test("messages expire after the TTL and the address is free again", async () => {
      const slot = newSlot();
      const deleted = newSlot();
      let res = await put(base, slot, "short-lived");
      assert.equal(res.status, 201);
      await res.arrayBuffer();
      res = await put(base, deleted, "read and deleted");
      assert.equal(res.status, 201);
      await res.arrayBuffer();
      res = await del(base, deleted);
      assert.equal(res.status, 204);
      await res.arrayBuffer();
      res = await get(base, slot);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      await passTtl(host);
      res = await get(base, slot);
      assert.equal(res.status, 404, "expired message is gone");
      await res.arrayBuffer();
      res = await fetchBatch(base, [slot.address]);
      assert.equal((await bytes(res)).length, 0, "fetch no longer returns it");
      res = await put(base, slot, "again");
      assert.equal(res.status, 201, "expired address can be written again");
      await res.arrayBuffer();
      res = await fetchBatch(base, [deleted.address]);
      assert.equal((await bytes(res)).length, 0, "no longer spent");
      res = await put(base, deleted, "again");
      assert.equal(res.status, 201, "a spent address is free again once its message would have expired");
      await res.arrayBuffer();
    });

    test("the host's whole output holds no address or write key", async () => {
      // Give asynchronous log lines a moment to arrive.
      await new Promise((ok) => setTimeout(ok, 300));
      const out = host.output();
      assert.ok(used.addresses.size > 250 && used.keys.size > 250, "the suite used many addresses");
      const leaked = [...used.addresses, ...used.keys].filter(
        (hex) => out.includes(hex) || out.includes(hex.toUpperCase()) || out.includes(hex.slice(0, 16)),
      );
      assert.deepEqual(leaked, [], "no address or key (or a 16-hex-digit prefix) in the output");
    });
  });
}
