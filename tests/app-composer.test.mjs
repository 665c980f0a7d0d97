// The message box and the bubbles, in real headless Chromium against a real mailbox-server:
//   - right-to-left text: Hebrew and Arabic messages, the composer and a Hebrew conversation
//     name take the right-to-left direction, English stays left-to-right, and the bubbles stay
//     where they are (one's own on the right, the other person's on the left);
//   - no silent truncation: a 5,000-character paste arrives whole; a text of exactly the
//     protocol's limit (MAX_MESSAGE_BYTES UTF-8 bytes, multi-byte characters included)
//     arrives intact; one byte more cannot be sent, says why, and stays in the box;
//   - the limit the page uses is the wasm client's own: it takes exactly that many bytes and
//     refuses one more;
//   - 1 MB pasted is refused with the reason and kept whole, and the check is cheap: the length
//     is counted without encoding, the box's direction set from its first letter (dir="auto"
//     froze the page); the long tasks of the paste are printed, not asserted;
//   - a long name keeps the placeholder ("Message <name>") on the box's one line, with "…".

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, NO_BROWSER } from "./support/browser.mjs";
import { createPassphrase, connect, listItem, send, messages, eventually, openChat } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = { alice: "alice correct horse", bob: "bob battery staple" };
const HEBREW = "שלום! מה שלומך היום?";
const ARABIC = "مرحبا، كيف حالك اليوم؟";
const ENGLISH = "Hello! How are you today?";
/** Bob's name for Alice: a Hebrew name. */
const ALICE_AT_BOB = "אליס";

const utf8 = (text) => Buffer.byteLength(text, "utf8");

/** A text of exactly `bytes` UTF-8 bytes: Hebrew, emoji with a skin tone, and ASCII to fill. */
function textOfBytes(bytes) {
  const unit = "שלום עולם 👋🏽 hello ";
  let text = "";
  while (utf8(text) + utf8(unit) <= bytes) text += unit;
  return text + "x".repeat(bytes - utf8(text));
}

/** The page's limit, from the module the app uses. */
const pageLimit = (page) => page.evaluate(async () => (await import("/composer.js")).MAX_MESSAGE_BYTES);

describe("the message box: right-to-left text, and long messages never cut", { skip: NO_BROWSER }, () => {
  let server;
  let alice;
  let bob;
  let limit;

  before(async () => {
    server = await startNative({ www: WWW });
    alice = await launch();
    bob = await launch();
    for (const [p, pass] of [[alice, PASS.alice], [bob, PASS.bob]]) {
      await p.page.goto(`${server.url}/`);
      await createPassphrase(p.page, pass);
    }
    await connect(alice.page, bob.page, "Bob", ALICE_AT_BOB);
    limit = await pageLimit(alice.page);
  });

  after(async () => {
    for (const p of [alice, bob]) await p?.context.close().catch(() => {});
    await server?.stop().catch(() => {});
  });

  test("Hebrew and Arabic read right to left in the bubbles, the composer and names; English left to right; the bubbles do not swap sides", async () => {
    await send(alice.page, HEBREW);
    await send(alice.page, ARABIC);
    await send(bob.page, ENGLISH);
    await send(bob.page, HEBREW);
    for (const page of [alice.page, bob.page]) {
      await eventually(async () => (await messages(page)).length === 4, {
        timeout: 60_000,
        what: "all four messages",
        explain: async () => ({ alice: await messages(alice.page), bob: await messages(bob.page) }),
      });
    }
    const bubbles = (page) =>
      page.getByRole("list", { name: "Conversation history" }).evaluate((list) => {
        const box = list.getBoundingClientRect();
        return [...list.querySelectorAll("li.msg")].map((li) => {
          const text = li.querySelector(".text");
          const r = li.getBoundingClientRect();
          return {
            text: text.textContent,
            own: li.classList.contains("out"),
            direction: getComputedStyle(text).direction,
            // Distance from the list's left and right edges.
            left: Math.round(r.left - box.left),
            right: Math.round(box.right - r.right),
          };
        });
      });
    for (const [who, page] of [["alice", alice.page], ["bob", bob.page]]) {
      const shown = await bubbles(page);
      assert.equal(shown.length, 4, who);
      for (const b of shown) {
        const expected = b.text === ENGLISH ? "ltr" : "rtl";
        assert.equal(b.direction, expected, `${who}: "${b.text}" is ${expected}`);
        // Own messages hug the right edge, theirs the left, whatever the text's direction.
        if (b.own) assert.ok(b.right <= 1 && b.left > 20, `${who}: own "${b.text}" on the right (${JSON.stringify(b)})`);
        else assert.ok(b.left <= 1 && b.right > 20, `${who}: their "${b.text}" on the left (${JSON.stringify(b)})`);
      }
    }

    const box = bob.page.getByRole("textbox", { name: "Message" });
    const direction = () => box.evaluate((el) => getComputedStyle(el).direction);
    await box.fill(ARABIC);
    assert.equal(await direction(), "rtl", "the composer with Arabic");
    await box.fill(HEBREW);
    assert.equal(await direction(), "rtl", "the composer with Hebrew");
    await box.fill(ENGLISH);
    assert.equal(await direction(), "ltr", "the composer with English");
    await box.fill("");

    // A Hebrew name, in the list and as the chat's title.
    const nameDirection = (locator) => locator.evaluate((el) => getComputedStyle(el).direction);
    assert.equal(await nameDirection(listItem(bob.page, ALICE_AT_BOB).locator(".conv-name")), "rtl", "the name in the list");
    assert.equal(await nameDirection(bob.page.getByRole("heading", { name: ALICE_AT_BOB, exact: true })), "rtl", "the name as the chat's title");
    assert.equal(await nameDirection(listItem(alice.page, "Bob").locator(".conv-name")), "ltr", "an English name stays left to right");
    // The last message (Bob's Hebrew) previewed in the list in its own direction, so that the
    // ellipsis takes its last words, not its first: theirs, and ours after "You: ".
    const preview = (page, name, inner) => listItem(page, name).locator(`.conv-preview-text${inner}`);
    await eventually(async () => (await preview(alice.page, "Bob", "").textContent()) === HEBREW, { what: "the preview at Alice" });
    assert.equal(await nameDirection(preview(alice.page, "Bob", "")), "rtl", "their Hebrew preview");
    await eventually(async () => (await preview(bob.page, ALICE_AT_BOB, " bdi").count()) === 1, { what: "the preview at Bob" });
    assert.equal(await nameDirection(preview(bob.page, ALICE_AT_BOB, " bdi")), "rtl", "our Hebrew preview after You:");
    // The Hebrew title stays beside the avatar, on the left, as an English one would.
    const titleGap = await bob.page.getByRole("heading", { name: ALICE_AT_BOB, exact: true }).evaluate((el) => {
      const range = document.createRange();
      range.selectNodeContents(el);
      return Math.round(range.getBoundingClientRect().left - el.getBoundingClientRect().left);
    });
    assert.ok(titleGap <= 1, `the chat's title starts at its left edge (${titleGap} px in)`);
  });

  test("a right-to-left override cannot dress a file name as another: the bubble and the preview show what was written", async () => {
    // "\u202Egnp.exe\u202C" would read "exe.png" with the override applied.
    const spoof = "\u202Egnp.exe\u202C";
    await send(bob.page, spoof);
    const bubble = alice.page.getByRole("list", { name: "Conversation history" }).locator("li.msg .text").last();
    await eventually(async () => (await bubble.textContent()) === "gnp.exe", { what: "the message without its override" });
    await eventually(async () => (await listItem(alice.page, "Bob").locator(".conv-preview-text").textContent()) === "gnp.exe", {
      what: "the preview without its override",
    });
    // Ordinary right-to-left text is laid out by the page's own rules, unchanged.
    await send(bob.page, HEBREW);
    await eventually(async () => (await bubble.textContent()) === HEBREW, { what: "Hebrew as written" });
  });

  test("a 5,000-character paste arrives whole", async () => {
    const lines = [];
    for (let i = 0; lines.join("\n").length < 5_000; i++) lines.push(`Line ${i}: the quick brown fox jumps over the lazy dog.`);
    const text = lines.join("\n").slice(0, 5_000);
    assert.equal(text.length, 5_000);
    const box = alice.page.getByRole("textbox", { name: "Message" });
    await box.fill(text);
    assert.equal((await box.inputValue()).length, 5_000, "the box holds all of it");
    await alice.page.getByRole("button", { name: "Send", exact: true }).click();
    const got = await eventually(async () => (await messages(bob.page)).find((m) => m.text.startsWith("Line 0:")), {
      timeout: 60_000,
      what: "the long message at Bob's",
    });
    assert.equal(got.text.length, text.length, "as long at Bob's");
    assert.ok(got.text === text, "the same text at Bob's");
  });

  test("a text of exactly the limit, with multi-byte characters, is delivered intact; the counter says how much room is left", async () => {
    const box = alice.page.getByRole("textbox", { name: "Message" });
    const counter = alice.page.locator(".composer-count");
    // Below 90 % of the limit: no counter.
    await box.fill(textOfBytes(Math.floor(limit * 0.8)));
    assert.equal(await counter.isVisible(), false, "no counter far from the limit");
    const near = textOfBytes(limit - 1_000);
    await box.fill(near);
    assert.equal((await counter.textContent()).trim(), `${(1_000).toLocaleString("en-US")} bytes left`);
    assert.ok((await box.getAttribute("aria-describedby")).split(" ").includes(await counter.getAttribute("id")), "the box is described by the counter");

    const text = textOfBytes(limit);
    assert.equal(utf8(text), limit);
    assert.ok(text.length < limit, "multi-byte characters in it");
    await box.fill(text);
    assert.equal((await counter.textContent()).trim(), "0 bytes left");
    assert.equal(await box.getAttribute("aria-invalid"), null);
    const sendButton = alice.page.getByRole("button", { name: "Send", exact: true });
    assert.equal(await sendButton.isEnabled(), true, "a text at the limit can be sent");
    const before = (await messages(bob.page)).length;
    await sendButton.click();
    assert.equal(await box.inputValue(), "", "sent: the box is empty");
    assert.equal(await counter.isVisible(), false, "and the counter gone");
    const got = await eventually(
      async () => {
        const all = await messages(bob.page);
        return all.length > before && all.at(-1).text.length > 1_000 ? all.at(-1) : null;
      },
      { timeout: 90_000, what: "the message at the limit at Bob's" },
    );
    assert.equal(utf8(got.text), limit, "as many bytes at Bob's");
    assert.ok(got.text === text, "the same text at Bob's");
  });

  test("a text one byte over the limit cannot be sent, says why, and is not cut", async () => {
    const box = alice.page.getByRole("textbox", { name: "Message" });
    const counter = alice.page.locator(".composer-count");
    const sendButton = alice.page.getByRole("button", { name: "Send", exact: true });
    const sentBefore = (await messages(alice.page)).length;
    // One emoji too many: 4 bytes over, then 1 byte over.
    const over = `${textOfBytes(limit - 3)}🙂`;
    assert.equal(utf8(over), limit + 1);
    await box.fill(over);
    assert.ok((await box.inputValue()) === over, "nothing cut");
    assert.equal(await box.getAttribute("aria-invalid"), "true");
    assert.equal(await sendButton.isDisabled(), true, "Send is off");
    assert.match((await counter.textContent()).trim(), /^Too long by 1 byte\b.*shorten it, or send it as two messages\.$/);
    await alice.page.getByText("This message is too long to send, by 1 byte.").waitFor({ state: "attached" });
    // Enter does not send it either.
    await box.press("Enter");
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal((await messages(alice.page)).length, sentBefore, "nothing sent");
    assert.ok((await box.inputValue()) === over, "still all there");

    // Shortened by one character (the emoji, 4 bytes): it fits again.
    await box.press("End");
    await box.press("Backspace");
    assert.equal(utf8(await box.inputValue()), limit - 3);
    assert.equal(await box.getAttribute("aria-invalid"), null);
    assert.equal(await sendButton.isEnabled(), true);
    assert.equal((await counter.textContent()).trim(), "3 bytes left");
    await box.fill("");
  });

  test("1 MB pasted is refused with the reason and kept whole; the box finds its direction without dir=auto", async () => {
    const page = alice.page;
    const box = page.getByRole("textbox", { name: "Message" });
    const counter = page.locator(".composer-count");
    // The length is counted as the client encodes it, lone surrogates and all, without encoding.
    const mismatches = await page.evaluate(async () => {
      const { utf8Length } = await import("/composer.js");
      const samples = ["", "a", "é", "€", "👋🏽", "\ud800", "\udc00x", "x\ud83d", "\ud83d\ud83d\ude00", "שלום עולם 👋🏽 hello"];
      return samples.filter((t) => utf8Length(t) !== new TextEncoder().encode(t).length);
    });
    assert.deepEqual(mismatches, [], "utf8Length agrees with TextEncoder");
    await alice.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
    // One line of 1 MB (what froze the page for 2.4 s), then 1 MB of Hebrew lines.
    const pastes = [
      { what: "1 MB, one line of English", text: "The quick brown fox jumps over the lazy dog. ".repeat(25_000).slice(0, 1_000_000), dir: "ltr" },
      { what: "1 MB of Hebrew lines", text: `${HEBREW}\n`.repeat(60_000).slice(0, 1_000_000), dir: "rtl" },
    ];
    for (const { what, text, dir } of pastes) {
      await box.fill("");
      await page.evaluate(async (t) => {
        await navigator.clipboard.writeText(t);
        window.__longTasks = [];
        window.__longTaskObserver ??= new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((e) => e.duration)));
        window.__longTaskObserver.observe({ type: "longtask" });
      }, text);
      await box.focus();
      const started = Date.now();
      await page.keyboard.press("Control+V");
      const over = new Intl.NumberFormat("en").format(utf8(text) - limit);
      await page.getByText(`This message is too long to send, by ${over} bytes.`).waitFor({ state: "attached", timeout: 120_000 });
      // As many messages as it takes, not "two" (a fresh outside trial read "two" for four).
      const needed = Math.ceil(utf8(text) / limit);
      assert.match((await counter.textContent()).trim(), new RegExp(`send it as ${needed} messages\\.$`), what);
      const shown = Date.now() - started;
      await page.evaluate(() => new Promise((ok) => requestAnimationFrame(() => setTimeout(ok, 200))));
      assert.match((await counter.textContent()).trim(), new RegExp(`^Too long by ${over} bytes`), `${what}: the counter says by how much`);
      assert.ok((await box.inputValue()) === text, `${what}: kept whole, not cut`);
      assert.equal(await box.getAttribute("aria-invalid"), "true");
      assert.equal(await page.getByRole("button", { name: "Send", exact: true }).isDisabled(), true, `${what}: Send is off`);
      // Its direction is set from its first letter: dir="auto" made Chromium resolve it over
      // the whole text on each change (the freeze).
      assert.equal(await box.getAttribute("dir"), dir, `${what}: the box's direction is set from its text`);
      assert.equal(await box.evaluate((el) => getComputedStyle(el).direction), dir);
      const tasks = await page.evaluate(() => window.__longTasks);
      console.log(`# paste of ${what}: refusal shown after ${shown} ms; long tasks on the page's thread: ${tasks.map((d) => `${Math.round(d)} ms`).join(", ") || "none"}`);
    }
    await box.fill("");
    assert.equal(await box.getAttribute("aria-invalid"), null);
  });

  test("the page's limit is the wasm client's: it takes exactly that many bytes and refuses one more", async () => {
    const page = await alice.context.newPage();
    try {
      // A bare page of the site's origin (its favicon request answered here, not a 404).
      await page.route("**/favicon.ico", (route) => route.fulfill({ status: 204 }));
      await page.goto(`${server.url}/v1/health`);
      const outcome = await page.evaluate(
        async ({ limit, mailbox }) => {
          const hush = await import("/pkg/hush.js");
          await hush.default();
          const inviter = await hush.HushClient.open("limit-inviter");
          await inviter.createVault("limit inviter passphrase", true);
          const joiner = await hush.HushClient.open("limit-joiner");
          await joiner.createVault("limit joiner passphrase", true);
          const { link } = await inviter.createInvite(`${mailbox}/`, mailbox, "Joiner");
          const id = await joiner.join(link, mailbox, "Inviter");
          const text = (bytes) => "é".repeat(Math.floor(bytes / 2)) + "x".repeat(bytes % 2);
          const atLimit = new TextEncoder().encode(text(limit)).length;
          let accepted = null;
          try {
            accepted = typeof (await joiner.send(id, text(limit)));
          } catch (err) {
            accepted = `refused: ${err.message}`;
          }
          let refused = null;
          try {
            await joiner.send(id, text(limit + 1));
            refused = "accepted";
          } catch (err) {
            refused = err.code === hush.ErrorCode.MessageTooLong ? "MessageTooLong" : `code ${err.code}: ${err.message}`;
          }
          return { atLimit, accepted, refused };
        },
        { limit, mailbox: server.url },
      );
      assert.equal(outcome.atLimit, limit);
      assert.equal(outcome.accepted, "number", "a text of exactly the limit is taken (resolves to its sequence number)");
      assert.equal(outcome.refused, "MessageTooLong", "one byte more is refused as too long");
    } finally {
      await page.close();
    }
  });

  test("with a long name, the composer's placeholder stays on one line, cut with an ellipsis", async () => {
    const page = alice.page;
    const long = "Bartholomew Maximilian Montgomery-Featherstonehaugh III";
    await page.getByRole("button", { name: "Rename" }).click();
    await page.getByRole("dialog").getByLabel("Name").fill(long);
    await page.getByRole("button", { name: "Save name" }).click();
    await page.getByRole("heading", { name: long }).waitFor();
    await openChat(page, long); // Opened again: drawn with the long name from the start.
    const box = page.getByRole("textbox", { name: "Message" });
    await box.fill("");
    const placeholder = () =>
      box.evaluate((el) => new Promise((ok) => requestAnimationFrame(() => ok({ text: el.placeholder, overflow: el.scrollHeight - el.clientHeight }))));
    try {
      // The box refits when its ResizeObserver reports the new width, which a loaded machine
      // may deliver a frame or two after the resize (CI once read the 320 px text at 1280 px).
      for (const width of [390, 320]) {
        await page.setViewportSize({ width, height: 844 });
        const shown = await eventually(async () => {
          const p = await placeholder();
          return p.overflow === 0 && /^Message Barth.*…$/.test(p.text) && p;
        }, { what: `${width} px: the placeholder cut with an ellipsis on one line` });
        assert.equal(shown.overflow, 0, `${width} px: the empty box holds its placeholder on one line (${JSON.stringify(shown)})`);
      }
      await page.setViewportSize({ width: 1280, height: 800 });
      await eventually(async () => {
        const p = await placeholder();
        return p.text === `Message ${long}` && p.overflow === 0;
      }, { what: "wide: the whole name" });
      // Renamed with the chat open: the placeholder follows (and the title keeps its mark).
      await page.getByRole("button", { name: "Rename" }).click();
      await page.getByRole("dialog").getByLabel("Name").fill("Bob");
      await page.getByRole("button", { name: "Save name" }).click();
      await page.getByRole("heading", { name: "Bob", exact: true }).waitFor();
      assert.deepEqual(await placeholder(), { text: "Message Bob", overflow: 0 }, "the new name in the placeholder");
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  test("no console errors", () => {
    for (const [name, p] of [["alice", alice], ["bob", bob]]) assert.deepEqual(p.errors, [], `${name}: no console errors`);
  });
});
