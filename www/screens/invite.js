// @ts-check
// The invite made here, waiting for the other person: its QR code and link, and whether this
// device's clock (which sets its expiry) is right. And the screen for an invite someone else
// joined first.

import { qrSvg } from "../pkg/hush.js";
import { h, formatTime } from "../dom.js";
import { CLOCK_WRONG_MS, clockError, clockOffsetFromSite } from "../clock.js";
import { backButton, engine, named, setScreen, ui } from "./shell.js";
import { showHome } from "./home.js";
import { confirmDelete } from "./dialogs.js";

/** @param {string} id */
export function showInvite(id) {
  const c = engine.byId(id);
  if (!c || !c.inviteLink) return showHome();
  let img = null;
  /** @type {string | null} */
  let qrUrl = null;
  try {
    const svg = qrSvg(c.inviteLink);
    qrUrl = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
    img = h("img", { class: "qr", src: qrUrl, alt: "QR code of the invite link", width: 256, height: 256 });
  } catch (err) {
    img = h("p", { class: "field-error", text: "This link is too long for a QR code; share the link instead." });
  }
  const linkId = "invite-link";
  const link = h("input", { id: linkId, class: "mono", type: "text", readonly: true, value: c.inviteLink });
  const copied = h("span", { class: "copied", role: "status", "aria-live": "polite" });
  const copy = h("button", {
    type: "button",
    text: "Copy",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(link.value);
      } catch {
        link.select();
        document.execCommand("copy");
      }
      copied.textContent = "Link copied";
      setTimeout(() => (copied.textContent = ""), 3000);
    },
  });
  link.addEventListener("focus", () => link.select());
  const expired = c.expiresAt && c.expiresAt < Date.now();
  const waiting = h(
    "p",
    { class: expired ? "state warn" : "state waiting", role: "status", "aria-live": "polite", id: "invite-state" },
    expired
      ? "This invite has expired. Delete it and create a new one."
      : `Waiting for ${c.name} to join… This invite works once and expires ${c.expiresAt ? formatTime(c.expiresAt) : "in 24 hours"}.`,
  );
  setScreen(
    "invite",
    h(
      "section",
      { class: "card invite" },
      backButton(),
      h("h1", {}, "Invite ", named(c.name)),
      h("p", { text: `Let ${c.name} scan this code with Hush (Join, then Scan QR code), or send them the link through a channel you trust.` }),
      h("div", { class: "qr-frame" }, img),
      h("label", { class: "label", for: linkId, text: "Invite link" }),
      h("div", { class: "with-action" }, link, copy),
      copied,
      waiting,
      h("p", { class: "fine", text: "Anyone who gets this link before them could join in their place: the safety code you compare next shows if that happened." }),
      h("div", { class: "actions" }, h("button", { type: "button", class: "danger ghost", text: "Delete invite", onclick: () => confirmDelete(id) })),
    ),
    { id },
  );
  // Revoked when the screen changes (set after setScreen, which revokes the previous one).
  ui.qrUrl = qrUrl;
  if (!expired) {
    engine.schedulePoll(id, 0); // Waiting in front of this screen: poll at the open pace.
    warnIfClockWrong(waiting);
  }
}

/**
 * The invite's expiry comes from this device's clock: when that clock is off, say so under
 * the waiting notice (the other person may be told the invite expired, or it lasts longer).
 * @param {HTMLElement} after
 */
async function warnIfClockWrong(after) {
  const offset = await clockOffsetFromSite();
  if (offset === null || Math.abs(offset) < CLOCK_WRONG_MS || !after.isConnected) return;
  after.after(
    h("p", {
      class: "state warn",
      role: "alert",
      text:
        `This device's clock is ${clockError(offset)} the time at ${location.host}. The invite's expiry is set by it, so the other person may be told it has expired. ` +
        "Correct the date, time and time zone, then delete this invite and make a new one.",
    }),
  );
}

/**
 * We joined, but someone else had already joined with the same invite.
 * @param {string} id
 */
export function showInviteTaken(id) {
  const c = engine.byId(id);
  if (!c) return showHome();
  setScreen(
    "invite-taken",
    h(
      "section",
      { class: "card" },
      backButton(),
      h("h1", { text: `This invite was already used` }),
      h("p", {
        role: "alert",
        class: "state warn",
        text: `Someone joined with ${c.name}'s invite before you, so you are not connected to ${c.name}. Whoever joined first may have copied the invite.`,
      }),
      h("p", { text: `Meet ${c.name} again and ask for a new invite in person. Nothing you write here can reach them.` }),
      h("div", { class: "actions" }, h("button", { type: "button", class: "danger", text: "Delete conversation", onclick: () => confirmDelete(id) })),
    ),
    { id },
  );
}
