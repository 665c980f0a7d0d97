// The web app end to end, driven through roles and accessible names only, in real headless
// Chromium: each person is a separate browser profile. Runs against both mailboxes:
//   (a) mailbox-server serving the site and the mailbox on one origin;
//   (b) the edge worker in workerd as a cross-origin mailbox (chosen in Settings), with the
//       site served by mailbox-server.
// Scenario (issue 6): passphrases → invite → join by link → equal safety codes → 20 messages
// each way, interleaved → reload both and unlock → every message once, in order → mailbox
// stopped, messages sent during the outage shown as sending → mailbox restarted on the same
// port and data → everything arrives. A third person in a second conversation stays separate;
// the invite QR decodes back to the link, and in run (a) the third person joins through the
// camera, with the QR fed to Chromium as a fake camera.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startNative, startWorker } from "./support/servers.mjs";
import { launch, screenshot, NO_BROWSER } from "./support/browser.mjs";
import {
  createPassphrase,
  unlock,
  newConversation,
  safetyCode,
  listItem,
  openChat,
  send,
  messages,
  eventually,
  unlabelledControls,
  recordArrivals,
  arrivals,
  onMailbox,
} from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
// Sent back to back, interleaved, without waiting for the other side: each side's 20 is more
// than the receiving window (protocol::WINDOW = 16), with ratchet steps inside the burst.
const PER_SIDE = 20;
const PHONE = { width: 390, height: 844 };
const PASS = { alice: "alice correct horse", bob: "bob battery staple", carol: "carol purple lantern" };

/**
 * Browser log lines that are Chromium reporting a refused connection during the outage: a
 * request, or a subscription's WebSocket reconnecting.
 */
const refused = (line) =>
  /(Failed to load resource|WebSocket connection to '[^']*' failed: Error in connection establishment): net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE|INTERNET_DISCONNECTED)/.test(
    line,
  );

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Sum of bytes transferred (headers + encoded bodies) for every request while `load()` runs. */
async function measureFirstLoad(person, load) {
  const cdp = await person.context.newCDPSession(person.page);
  await cdp.send("Network.enable");
  const urls = new Map();
  let bytes = 0;
  cdp.on("Network.requestWillBeSent", (e) => urls.set(e.requestId, e.request.url));
  cdp.on("Network.loadingFinished", (e) => (bytes += e.encodedDataLength));
  await load();
  await cdp.detach();
  return { bytes, urls: [...urls.values()] };
}

/** Draws the invite QR <img> on a canvas in the page and decodes it with the scan module. */
async function decodeShownQr(page) {
  const img = page.getByRole("img", { name: "QR code of the invite link" });
  return img.evaluate(async (el) => {
    await el.decode();
    const canvas = document.createElement("canvas");
    canvas.width = 400;
    canvas.height = 400;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, 400, 400);
    ctx.drawImage(el, 20, 20, 360, 360);
    const data = ctx.getImageData(0, 0, 400, 400).data;
    const scan = await import(new URL("pkg/scan.js", document.baseURI).href);
    await scan.default();
    return scan.decodeQr(400, 400, data);
  });
}

/**
 * A one-frame YUV4MPEG2 (4:2:0) video of the shown invite QR, for Chromium's fake camera.
 * The pixels are computed in the page (canvas getImageData → BT.601 luma, grey chroma).
 */
async function qrCameraFile(page, path) {
  const [W, H] = [640, 480];
  const img = page.getByRole("img", { name: "QR code of the invite link" });
  const lumaB64 = await img.evaluate(
    async (el, { W, H }) => {
      await el.decode();
      const canvas = document.createElement("canvas");
      canvas.width = W;
      canvas.height = H;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, W, H);
      const side = 420;
      ctx.drawImage(el, (W - side) / 2, (H - side) / 2, side, side);
      const rgba = ctx.getImageData(0, 0, W, H).data;
      const y = new Uint8Array(W * H);
      for (let i = 0; i < W * H; i++) {
        const lum = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
        y[i] = Math.round(16 + (219 * lum) / 255);
      }
      let bin = "";
      for (let i = 0; i < y.length; i += 0x8000) bin += String.fromCharCode(...y.subarray(i, i + 0x8000));
      return btoa(bin);
    },
    { W, H },
  );
  const luma = Buffer.from(lumaB64, "base64");
  assert.equal(luma.length, W * H);
  const chroma = Buffer.alloc((W / 2) * (H / 2), 128);
  const header = Buffer.from(`YUV4MPEG2 W${W} H${H} F10:1 Ip A1:1 C420jpeg\nFRAME\n`);
  writeFileSync(path, Buffer.concat([header, luma, chroma, chroma]));
}

/** Checks `person`'s chat holds exactly `expected` per sender, in order, once each. */
async function assertConversation(page, expectedBySender, total) {
  const list = await messages(page);
  assert.equal(list.length, total, `${total} messages in the chat`);
  const texts = list.map((m) => m.text);
  assert.equal(new Set(texts).size, texts.length, "no message shows twice");
  for (const [prefix, expected] of Object.entries(expectedBySender)) {
    assert.deepEqual(
      texts.filter((t) => t.startsWith(`${prefix} #`)),
      expected,
      `${prefix}'s messages once each, in order, as seen by ${await page.evaluate(() => document.title)} at ${page.url()}: ${JSON.stringify(list)}`,
    );
  }
  return list;
}

const range = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix} #${String(i).padStart(2, "0")}`);

/**
 * The whole scenario against one mailbox. `mailbox` is "native" (the site's own origin) or
 * "worker" (cross-origin, in workerd).
 */
async function scenario(kind, report) {
  const tmp = mkdtempSync(join(tmpdir(), `hush-app-${kind}-`));
  const site = await startNative({ www: WWW, dataDir: join(tmp, "site") });
  let worker = null;
  let kvDir = join(tmp, "kv");
  if (kind === "worker") worker = await startWorker({ kvPersist: kvDir });
  // The mailbox that gets stopped and restarted.
  let mailbox = worker ?? site;
  const restartMailbox = async () => {
    if (worker) {
      await worker.stop();
      // Nothing else may take the port in between: same port, same KV folder.
      return async () => (mailbox = worker = await startWorker({ port: worker.port, kvPersist: kvDir }));
    }
    await site.stop({ keepData: true });
    return async () => (mailbox = await startNative({ www: WWW, port: site.port, dataDir: site.dataDir }));
  };
  const origin = site.url;
  const people = [];
  const shot = (page, name) => screenshot(page, `app-${kind}-${name}`);
  try {
    const alice = await launch();
    people.push(alice);
    const bob = await launch({ viewport: PHONE });
    people.push(bob);

    // --- First run, measured: every byte of the first load comes from the site's origin.
    const load = await measureFirstLoad(alice, async () => {
      await alice.page.goto(`${origin}/`);
      await alice.page.getByLabel("Passphrase", { exact: true }).waitFor();
    });
    for (const url of load.urls) assert.ok(url.startsWith(`${origin}/`), `first load stays on the site's origin: ${url}`);
    report.firstLoadBytes = load.bytes;
    report.firstLoadRequests = load.urls.length;
    assert.deepEqual(await unlabelledControls(alice.page), [], "setup: every control has a name");
    await shot(alice.page, "setup-desktop");
    await createPassphrase(alice.page, PASS.alice);

    if (kind === "worker") {
      // A cross-origin mailbox, set in Settings.
      await alice.page.getByRole("button", { name: "Settings" }).click();
      await alice.page.getByLabel("Mailbox URL").fill(worker.url);
      await alice.page.getByRole("button", { name: "Save", exact: true }).click();
      await alice.page.getByRole("status").filter({ hasText: "answered" }).waitFor();
      await shot(alice.page, "settings-desktop");
      assert.deepEqual(await unlabelledControls(alice.page), [], "settings: every control has a name");
    }

    // --- New conversation: QR and link; the QR decodes back to the link.
    const link = await newConversation(alice.page, "Bob");
    assert.ok(link.startsWith(`${origin}/#`), "the link points at the site");
    assert.equal(await decodeShownQr(alice.page), link, "the QR code decodes to the invite link");
    await alice.page.getByText("Waiting for Bob to join").waitFor();
    assert.deepEqual(await unlabelledControls(alice.page), [], "invite: every control has a name");
    await shot(alice.page, "invite-desktop");
    await alice.page.getByRole("button", { name: "Copy", exact: true }).click();
    await alice.page.getByRole("status").filter({ hasText: "Link copied" }).waitFor();

    // --- Bob opens the link: first run, then straight to the join flow; the fragment goes.
    await bob.page.goto(link);
    await bob.page.getByText("You opened an invite link").waitFor();
    await shot(bob.page, "setup-phone");
    await createPassphrase(bob.page, PASS.bob);
    assert.ok(!bob.page.url().includes("#"), "the invite fragment is removed from the address bar");
    assert.equal(await bob.page.getByLabel("Invite link").inputValue(), link, "the join flow holds the opened link");
    assert.deepEqual(await unlabelledControls(bob.page), [], "join: every control has a name");
    await shot(bob.page, "join-phone");
    await bob.page.getByLabel("Their name").fill("Alice");
    await bob.page.getByRole("button", { name: "Accept invite" }).click();
    const bobCode = await safetyCode(bob.page);
    const aliceCode = await safetyCode(alice.page);
    assert.equal(aliceCode, bobCode, "both show the same safety code");
    assert.deepEqual(await unlabelledControls(bob.page), [], "safety code: every control has a name");
    await shot(bob.page, "safety-phone");
    await shot(alice.page, "safety-desktop");
    await alice.page.getByRole("button", { name: "Start chatting" }).click();
    await bob.page.getByRole("button", { name: "Start chatting" }).click();
    await alice.page.getByRole("textbox", { name: "Message" }).waitFor();
    await bob.page.getByRole("textbox", { name: "Message" }).waitFor();

    // --- 20 messages each way, interleaved; arrival times recorded on the receiving side.
    await recordArrivals(alice.page);
    await recordArrivals(bob.page);
    const sentAt = {};
    const aliceMsgs = range("alice", PER_SIDE);
    const bobMsgs = range("bob", PER_SIDE);
    for (let i = 0; i < PER_SIDE; i++) {
      sentAt[aliceMsgs[i]] = await send(alice.page, aliceMsgs[i]);
      sentAt[bobMsgs[i]] = await send(bob.page, bobMsgs[i]);
    }
    const settled = (page) => async () => {
      const list = await messages(page);
      return list.length === 2 * PER_SIDE && list.every((m) => onMailbox(m.status) || m.status === "received");
    };
    await eventually(settled(alice.page), { timeout: 60_000, what: "alice to have 40 settled messages" });
    await eventually(settled(bob.page), { timeout: 60_000, what: "bob to have 40 settled messages" });
    const expected = { alice: aliceMsgs, bob: bobMsgs };
    await assertConversation(alice.page, expected, 2 * PER_SIDE);
    await assertConversation(bob.page, expected, 2 * PER_SIDE);
    const seenByBob = await arrivals(bob.page);
    const seenByAlice = await arrivals(alice.page);
    const latencies = [
      ...aliceMsgs.map((t) => seenByBob[t] - sentAt[t]),
      ...bobMsgs.map((t) => seenByAlice[t] - sentAt[t]),
    ];
    assert.ok(latencies.every((ms) => Number.isFinite(ms) && ms > 0), "every arrival was seen");
    report.latencyMedianMs = median(latencies);
    report.latencyMaxMs = Math.max(...latencies);
    assert.deepEqual(await unlabelledControls(alice.page), [], "chat: every control has a name");
    await shot(alice.page, "chat-desktop");
    await shot(bob.page, "chat-phone");
    await alice.page.emulateMedia({ colorScheme: "dark" });
    await shot(alice.page, "chat-desktop-dark");
    await alice.page.emulateMedia({ colorScheme: "light" });

    // --- Offline (the browser's own notion): shown, then gone.
    const errorsBefore = { alice: alice.errors.length, bob: bob.errors.length };
    await alice.context.setOffline(true);
    await alice.page.getByRole("status").filter({ hasText: "Offline" }).first().waitFor();
    await alice.context.setOffline(false);
    await eventually(async () => (await alice.page.getByRole("status").filter({ hasText: "Offline" }).count()) === 0, { what: "the offline notice to go" });

    // --- Reload both and unlock (Alice mistypes first); every message once, in order.
    await alice.page.reload();
    await bob.page.reload();
    await alice.page.getByLabel("Passphrase", { exact: true }).fill("not the passphrase");
    await alice.page.getByRole("button", { name: "Unlock", exact: true }).click();
    await alice.page.getByRole("alert").filter({ hasText: "does not unlock" }).waitFor();
    await shot(alice.page, "unlock-wrong-desktop");
    await shot(bob.page, "unlock-phone");
    assert.deepEqual(await unlabelledControls(alice.page), [], "unlock: every control has a name");
    await unlock(alice.page, PASS.alice);
    await unlock(bob.page, PASS.bob);
    // Each had the chat open before the reload: it is open again.
    for (const [page, name] of [[alice.page, "Bob"], [bob.page, "Alice"]]) {
      await page.getByRole("textbox", { name: "Message" }).waitFor();
      assert.equal(await page.locator(".chat-title").innerText(), name);
    }
    await eventually(async () => (await messages(alice.page)).length === 2 * PER_SIDE, { what: "alice's history after reload" });
    await eventually(async () => (await messages(bob.page)).length === 2 * PER_SIDE, { what: "bob's history after reload" });
    await assertConversation(alice.page, expected, 2 * PER_SIDE);
    await assertConversation(bob.page, expected, 2 * PER_SIDE);

    // --- Outage: stop the mailbox; what is sent meanwhile shows as sending; restart; it arrives.
    const start = await restartMailbox();
    const outage = { alice: range("alice outage", 2), bob: range("bob outage", 2) };
    for (let i = 0; i < 2; i++) {
      await send(alice.page, outage.alice[i]);
      await send(bob.page, outage.bob[i]);
    }
    for (const [page, own] of [[alice.page, outage.alice], [bob.page, outage.bob]]) {
      await eventually(
        async () => {
          const list = await messages(page);
          return own.every((t) => list.some((m) => m.text === t && m.status === "sending"));
        },
        { what: "messages sent during the outage to show as sending" },
      );
      await page.getByRole("status").filter({ hasText: "Can't reach the mailbox" }).first().waitFor({ timeout: 30_000 });
    }
    await shot(alice.page, "outage-desktop");
    await shot(bob.page, "outage-phone");
    await start();
    const allAlice = [...aliceMsgs, ...outage.alice];
    const allBob = [...bobMsgs, ...outage.bob];
    const total = allAlice.length + allBob.length;
    for (const page of [alice.page, bob.page]) {
      await eventually(
        async () => {
          const list = await messages(page);
          return list.length === total && list.every((m) => onMailbox(m.status) || m.status === "received");
        },
        { timeout: 60_000, what: "everything to arrive after the restart" },
      );
      await assertConversation(page, { alice: aliceMsgs, bob: bobMsgs, "alice outage": outage.alice, "bob outage": outage.bob }, total);
    }
    await eventually(async () => (await alice.page.getByRole("status").filter({ hasText: "Can't reach the mailbox" }).count()) === 0, {
      what: "the unreachable notice to clear",
    });

    // --- The mailbox answers but refuses to store (a full disk: 507): said as such, not as
    // "can't reach"; the message waits and goes out once it stores again.
    const full = (route) =>
      route.request().method() === "PUT" ? route.fulfill({ status: 507, contentType: "text/plain", body: "storage full" }) : route.continue();
    await alice.page.route("**/v1/m/*", full);
    const refusedText = "alice while the mailbox is full";
    await send(alice.page, refusedText);
    const refusal = alice.page.getByRole("status").filter({ hasText: "refuses to store" }).first();
    await refusal.waitFor({ timeout: 30_000 });
    assert.equal(await alice.page.getByRole("status").filter({ hasText: "Can't reach the mailbox" }).count(), 0, "not called unreachable");
    await alice.page.unroute("**/v1/m/*", full);
    await eventually(async () => (await messages(bob.page)).some((m) => m.text === refusedText), { timeout: 60_000, what: "the refused message to arrive" });
    await eventually(async () => (await alice.page.getByRole("status").filter({ hasText: "refuses to store" }).count()) === 0, {
      what: "the refusal notice to clear",
    });
    allAlice.push(refusedText);
    const storageFullLines = (line) => /status of 507/.test(line);
    alice.errors.splice(0, alice.errors.length, ...alice.errors.filter((e) => !storageFullLines(e)));
    // The only browser errors while offline and in the outage are Chromium's own network lines.
    for (const [name, p] of [["alice", alice], ["bob", bob]]) {
      const during = p.errors.slice(errorsBefore[name]);
      assert.deepEqual(during.filter((e) => !refused(e)), [], `${name}: no errors but failed connections while offline or in the outage`);
      p.errors.splice(errorsBefore[name], during.length);
    }

    // --- A third person in a second conversation. Run (a) joins through the camera.
    await alice.page.setViewportSize(PHONE);
    await alice.page.getByRole("button", { name: "Back" }).click();
    const carolLink = await newConversation(alice.page, "Carol");
    assert.equal(await decodeShownQr(alice.page), carolLink, "the second invite's QR decodes to its link");
    await shot(alice.page, "invite-phone");
    let carol;
    if (kind === "native") {
      const video = join(tmp, "invite-qr.y4m");
      await qrCameraFile(alice.page, video);
      carol = await launch({
        extraArgs: ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", `--use-file-for-fake-video-capture=${video}`],
      });
      people.push(carol);
      await carol.page.goto(`${origin}/`);
      await createPassphrase(carol.page, PASS.carol);
      await carol.page.getByRole("button", { name: "Join", exact: true }).click();
      await carol.page.getByLabel("Their name").fill("Alice");
      await carol.page.getByRole("button", { name: "Scan QR code" }).click();
      await carol.page.getByRole("status").filter({ hasText: "Invite read from the QR code" }).waitFor({ timeout: 30_000 });
      assert.equal(await carol.page.getByLabel("Invite link").inputValue(), carolLink, "the camera read the invite");
      await shot(carol.page, "join-camera-desktop");
    } else {
      carol = await launch();
      people.push(carol);
      await carol.page.goto(`${origin}/`);
      await createPassphrase(carol.page, PASS.carol);
      await carol.page.getByRole("button", { name: "Join", exact: true }).click();
      await carol.page.getByLabel("Their name").fill("Alice");
      await carol.page.getByLabel("Invite link").fill(carolLink);
    }
    await carol.page.getByRole("button", { name: "Accept invite" }).click();
    assert.equal(await safetyCode(carol.page), await safetyCode(alice.page), "Carol and Alice see the same code");
    assert.notEqual(await safetyCode(carol.page), aliceCode, "a different conversation, a different code");
    await alice.page.setViewportSize({ width: 1280, height: 800 });

    // Alice is in Bob's chat; Carol writes: an unread count on Carol's list item.
    await openChat(alice.page, "Bob");
    await carol.page.getByRole("button", { name: "Start chatting" }).click();
    await send(carol.page, "carol #00");
    await listItem(alice.page, "Carol").getByText("1 unread").waitFor({ timeout: 30_000 });
    await shot(alice.page, "list-unread-desktop");
    await openChat(alice.page, "Carol");
    await eventually(async () => (await messages(alice.page)).some((m) => m.text === "carol #00"), { what: "carol's message" });
    await eventually(async () => (await listItem(alice.page, "Carol").getByText("unread").count()) === 0, { what: "unread cleared" });
    await send(alice.page, "alice to carol #00");
    await eventually(async () => (await messages(carol.page)).some((m) => m.text === "alice to carol #00"), { what: "alice's reply to carol" });
    assert.deepEqual((await messages(carol.page)).map((m) => m.text), ["carol #00", "alice to carol #00"], "Carol sees only her conversation");
    assert.deepEqual((await messages(alice.page)).map((m) => m.text), ["carol #00", "alice to carol #00"]);
    const bobTexts = (await messages(bob.page)).map((m) => m.text);
    assert.ok(!bobTexts.some((t) => t.includes("carol")), "nothing of Carol's conversation reaches Bob");
    // On the phone, Back leads from the chat to the list.
    await bob.page.getByRole("button", { name: "Back" }).click();
    await listItem(bob.page, "Alice").waitFor();
    assert.equal(await bob.page.getByRole("navigation", { name: "Conversations" }).getByRole("listitem").count(), 1, "Bob has one conversation");
    await shot(bob.page, "list-phone");

    // --- Rename, then delete with a confirmation that says what is erased.
    await alice.page.getByRole("button", { name: "Rename" }).click();
    await alice.page.getByRole("dialog").getByLabel("Name").fill("Carol (work)");
    await alice.page.getByRole("button", { name: "Save name" }).click();
    await listItem(alice.page, "Carol (work)").waitFor();
    await alice.page.getByRole("button", { name: "Delete", exact: true }).click();
    const confirm = alice.page.getByRole("dialog", { name: "Delete the conversation with Carol (work)?" });
    await confirm.waitFor();
    const said = await confirm.textContent();
    for (const what of ["keys", "history", "not sent", "not notified"]) assert.ok(said.includes(what), `the confirmation mentions ${what}`);
    await shot(alice.page, "delete-confirm-desktop");
    assert.deepEqual(await unlabelledControls(alice.page), [], "delete dialog: every control has a name");
    await confirm.getByRole("button", { name: "Erase conversation" }).click();
    await eventually(async () => (await listItem(alice.page, "Carol (work)").count()) === 0, { what: "the conversation to go" });
    assert.equal(await alice.page.getByRole("navigation", { name: "Conversations" }).getByRole("listitem").count(), 1);

    // --- Lock: back to the passphrase; nothing of the conversations stays on screen.
    await alice.page.getByRole("button", { name: "Lock", exact: true }).click();
    await alice.page.getByRole("button", { name: "Unlock", exact: true }).waitFor();
    assert.equal(await alice.page.getByText(/(alice|bob) #\d\d/).count(), 0, "locked: no message left in the page");
    assert.equal(await alice.page.getByRole("navigation", { name: "Conversations" }).isVisible(), false);
    await shot(alice.page, "unlock-desktop");
    await unlock(alice.page, PASS.alice);
    await listItem(alice.page, "Bob").waitFor();

    for (const [name, p] of [["alice", alice], ["bob", bob], ["carol", carol]]) {
      assert.deepEqual(p.errors, [], `${name}: no console errors`);
    }
  } finally {
    for (const p of people) await p.context.close().catch(() => {});
    if (worker) await worker.stop().catch(() => {});
    if (mailbox !== worker && mailbox !== site) await mailbox.stop().catch(() => {});
    await site.stop().catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  }
}

for (const kind of ["native", "worker"]) {
  const label = kind === "native" ? "mailbox-server serving site and mailbox" : "edge worker in workerd as a cross-origin mailbox";
  test(`the web app end to end: ${label}`, { skip: NO_BROWSER, timeout: 240_000 }, async () => {
    const report = {};
    const t0 = Date.now();
    await scenario(kind, report);
    console.log(
      `# ${kind}: send→show median ${report.latencyMedianMs} ms (max ${report.latencyMaxMs} ms) over ${2 * PER_SIDE} messages; ` +
        `first load ${report.firstLoadBytes} bytes in ${report.firstLoadRequests} requests; ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  });
}
