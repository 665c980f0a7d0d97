// Screenshots of the web app for the README (issue #12): the conversation list, a chat and the
// safety-code screen, at a phone size (390×844) and a desktop size (1280×800), in light and
// dark mode, written to docs/screenshots/NAME-WIDTHxHEIGHT-SCHEME.png. Prints the paths;
// asserts nothing; not part of the test suite.
//
//   cargo build -p mailbox-server && cargo xtask build-web && node tests/bench/app-screenshots.mjs
//
// Two real Chromium profiles talk through a real mailbox-server (no mock): Ana invites Ben,
// they exchange a few messages, and a second conversation gives the list more than one row.
// The screenshots show Ana's screens; the content is made up for the pictures.

import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { startNative } from "../support/servers.mjs";
import { launch } from "../support/browser.mjs";
import { connect, createPassphrase, eventually, messages, openChat, send } from "../support/app.mjs";

const ROOT = resolve(import.meta.dirname, "../..");
const WWW = process.env.HUSH_WWW_DIR ?? join(ROOT, "www");
const OUT = join(ROOT, "docs/screenshots");
const SIZES = [
  { width: 390, height: 844 },
  { width: 1280, height: 800 },
];
const SCHEMES = ["light", "dark"];

const server = await startNative({ www: WWW });
const profiles = [];
try {
  const open = async () => {
    const browser = await launch();
    profiles.push(browser);
    await browser.page.goto(`${server.url}/`);
    await createPassphrase(browser.page, "screenshots are not secret");
    return browser.page;
  };
  const ana = await open();
  const ben = await open();
  const cleo = await open();
  await connect(ana, ben, "Ben", "Ana");
  const lines = [
    [ben, "Are we still on for Saturday?"],
    [ana, "Yes! The market opens at nine, shall we meet at the fountain?"],
    [ben, "Perfect. I'll bring the thermos."],
    [ana, "שבת שלום — see you there"],
  ];
  for (const [page, text] of lines) {
    await send(page, text);
    const other = page === ana ? ben : ana;
    await eventually(async () => (await messages(other)).some((m) => m.text === text), { what: `"${text}" arrives` });
  }
  // Ben's last message shows as delivered on Ana's side once his acknowledgement is back.
  await eventually(async () => (await messages(ana)).at(-1)?.status === "delivered", {
    what: "Ana's last message delivered",
    timeout: 90_000,
  });
  await connect(ana, cleo, "Cleo", "Ana");
  await send(cleo, "Thanks for the book, I finished it in two days.");
  await eventually(async () => (await messages(ana)).some((m) => m.text.startsWith("Thanks for the book")), {
    what: "Cleo's message arrives",
  });

  mkdirSync(OUT, { recursive: true });
  const shots = [];
  for (const size of SIZES) {
    for (const scheme of SCHEMES) {
      await ana.setViewportSize(size);
      await ana.emulateMedia({ colorScheme: scheme });
      const suffix = `${size.width}x${size.height}-${scheme}`;
      const take = async (name) => {
        const path = join(OUT, `${name}-${suffix}.png`);
        await ana.screenshot({ path });
        shots.push(path);
      };
      // The list: the home screen (on a phone, the list pane), by the top bar's "Hush" link.
      await ana.locator("a.brand").click();
      await ana.getByRole("navigation", { name: "Conversations" }).waitFor();
      await ana.mouse.move(0, 0);
      await ana.waitForTimeout(300);
      await take("list");
      await openChat(ana, "Ben");
      await ana.waitForTimeout(200);
      await ana.mouse.move(0, 0);
      await take("chat");
      await ana.getByRole("button", { name: "Safety code", exact: true }).first().click();
      await ana.getByLabel("Safety code").waitFor();
      await take("safety-code");
    }
  }
  for (const path of shots) console.log(path.slice(ROOT.length + 1));
} finally {
  for (const { context } of profiles) await context.close();
  await server.stop();
}
