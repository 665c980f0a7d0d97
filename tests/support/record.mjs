// What a mailbox receives from one browser profile, seen from the browser (Playwright's
// request interception, every request passed through unchanged), and snapshots of a
// profile's IndexedDB (the client's whole stored state) to restore later.

/** Lowercase hex of a Buffer. */
const hex = (buf) => buf.toString("hex");

/**
 * Records every mailbox request the pages of `context` make: each PUT with its address,
 * body, status and time, and a count of fetches (POST /v1/fetch) and GETs. Requests go to the
 * mailbox unchanged; the answer is handed back unchanged.
 *
 * Returns { puts: [{ address, body (Buffer), status, at, who }], fetches, gets, label(who) }:
 * `label(who)` tags the PUTs recorded from then on (e.g. "before restore").
 */
export async function recordMailbox(context) {
  const log = { puts: [], fetches: 0, gets: 0, who: "", label(who) { log.who = who; } };
  await context.route(/\/v1\/(m\/[0-9a-f]{64}|fetch)$/, async (route) => {
    const request = route.request();
    const url = new URL(request.url());
    if (request.method() === "POST") log.fetches += 1;
    if (request.method() === "GET" || request.method() === "HEAD") log.gets += 1;
    if (request.method() !== "PUT") return route.fallback();
    const body = request.postDataBuffer() ?? Buffer.alloc(0);
    const entry = { address: url.pathname.split("/").pop(), body, status: 0, at: Date.now(), who: log.who };
    log.puts.push(entry);
    let response;
    try {
      response = await route.fetch();
    } catch (err) {
      entry.status = -1; // Mailbox not reachable: the browser sees a network failure.
      return route.abort("connectionrefused");
    }
    entry.status = response.status();
    return route.fulfill({ response });
  });
  return log;
}

/** Number of byte positions in which two equal-length buffers agree. */
export function agreeing(a, b) {
  let same = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] === b[i]) same += 1;
  return same;
}

/**
 * The PUTs of `logs` grouped by address: Map address → { bodies: distinct bodies (Buffer),
 * statuses: [{ status, body index }] }.
 */
export function byAddress(...logs) {
  const out = new Map();
  for (const log of logs) {
    for (const put of log.puts) {
      let slot = out.get(put.address);
      if (!slot) out.set(put.address, (slot = { bodies: [], puts: [] }));
      let index = slot.bodies.findIndex((b) => b.equals(put.body));
      if (index < 0) index = slot.bodies.push(put.body) - 1;
      slot.puts.push({ status: put.status, index, who: put.who, at: put.at });
    }
  }
  return out;
}

/**
 * 409s answered to a PUT whose body is not the first body stored at that address (the
 * mailbox already held someone else's bytes there, "foreign bytes"), and 409s over the same
 * bytes (a retry of a blob already stored: harmless).
 */
export function conflicts(addresses) {
  let foreign = 0;
  let own = 0;
  for (const slot of addresses.values()) {
    const stored = slot.puts.find((p) => p.status === 201)?.index;
    for (const put of slot.puts) {
      if (put.status !== 409) continue;
      if (stored === undefined || put.index !== stored) foreign += 1;
      else own += 1;
    }
  }
  return { foreign, own };
}

export { hex };

/**
 * Every record of the IndexedDB database `db` (default "hush") of the page's origin, as
 * [key, base64 of the bytes] pairs. Run it on a page of the origin where no app is open
 * (a bare same-origin URL), so nothing writes meanwhile.
 */
export async function dumpDatabase(page, db = "hush") {
  return page.evaluate(async (name) => {
    const open = indexedDB.open(name);
    const conn = await new Promise((ok, fail) => {
      open.onsuccess = () => ok(open.result);
      open.onerror = () => fail(open.error);
    });
    try {
      const stores = [...conn.objectStoreNames];
      const dump = { version: conn.version, stores: {} };
      for (const store of stores) {
        const tx = conn.transaction(store, "readonly");
        const os = tx.objectStore(store);
        const req = (r) => new Promise((ok, fail) => ((r.onsuccess = () => ok(r.result)), (r.onerror = () => fail(r.error))));
        const [keys, values] = await Promise.all([req(os.getAllKeys()), req(os.getAll())]);
        const b64 = (v) => {
          const bytes = v instanceof Uint8Array ? v : new Uint8Array(v instanceof ArrayBuffer ? v : v.buffer);
          let s = "";
          for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
          return btoa(s);
        };
        dump.stores[store] = keys.map((k, i) => [k, b64(values[i])]);
      }
      return dump;
    } finally {
      conn.close();
    }
  }, db);
}

/**
 * Puts back a `dumpDatabase` snapshot: every store cleared, then refilled with its records
 * (a profile that never had the database gets it, at the snapshot's version).
 */
export async function restoreDatabase(page, dump, db = "hush") {
  await page.evaluate(
    async ({ name, dump }) => {
      const open = indexedDB.open(name, dump.version);
      const conn = await new Promise((ok, fail) => {
        open.onupgradeneeded = () => {
          for (const store of Object.keys(dump.stores)) {
            if (!open.result.objectStoreNames.contains(store)) open.result.createObjectStore(store);
          }
        };
        open.onsuccess = () => ok(open.result);
        open.onerror = () => fail(open.error);
        open.onblocked = () => fail(new Error("database blocked: another tab holds it"));
      });
      try {
        const names = Object.keys(dump.stores);
        const tx = conn.transaction(names, "readwrite", { durability: "strict" });
        const done = new Promise((ok, fail) => {
          tx.oncomplete = ok;
          tx.onabort = () => fail(tx.error);
        });
        for (const store of names) {
          const os = tx.objectStore(store);
          os.clear();
          for (const [key, b64] of dump.stores[store]) {
            const s = atob(b64);
            const bytes = new Uint8Array(s.length);
            for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
            os.put(bytes, key);
          }
        }
        await done;
      } finally {
        conn.close();
      }
    },
    { name: db, dump },
  );
}
