// @ts-check
// Join: an invite link pasted, opened (it arrives in the URL's fragment) or read from the
// other person's QR code with the camera.

import { ErrorCode } from "../pkg/hush.js";
import { h, field, refuseTooLong, setFieldError } from "../dom.js";
import { startScanner, canScan } from "../scanner.js";
import { mailboxUrl } from "../settings.js";
import { clockOffsetFromSite } from "../clock.js";
import { codeOf } from "../engine/errors.js";
import { backButton, client, engine, setScreen, ui } from "./shell.js";
import { errorText, expiredInvite, OWN_INVITE } from "./texts.js";
import { showSafety } from "./safety.js";
import { openConversation } from "./list.js";

/** How long typing in the link field pauses before the link is checked. */
const CHECK_DELAY_MS = 300;

/** @param {string} [prefill] An invite link that was opened. */
export function showJoin(prefill = "") {
  const name = field({ label: "Their name", hint: "Only you see this name.", autocomplete: "off", required: true, maxlength: 60, dir: "auto" });
  const link = field({
    label: "Invite link",
    hint: "Paste the link they sent you, or scan their QR code.",
    autocomplete: "off",
    spellcheck: "false",
    class: "mono",
    value: prefill,
  });
  const submit = h("button", { type: "submit", class: "primary", text: "Accept invite" });
  const heading = h("h1", { text: prefill ? "You've been invited" : "Join a conversation" });
  const intro = h("p", {
    text: prefill
      ? "Give this conversation a name, then accept the invite. You will both see a safety code to compare."
      : "Scan the QR code on the other person's screen, or paste the link they sent you.",
  });
  const camState = h("p", { class: "state", role: "status", "aria-live": "polite" });
  const video = h("video", { class: "camera", muted: true, playsinline: true, "aria-label": "Camera preview", hidden: true });
  video.muted = true;
  const scan = h("button", { type: "button", text: "Scan QR code", onclick: startCamera });
  const stopCam = h("button", { type: "button", class: "ghost", text: "Stop camera", hidden: true, onclick: stopCamera });
  if (!canScan()) scan.hidden = true;

  async function startCamera() {
    scan.disabled = true;
    camState.textContent = "Opening the camera…";
    video.hidden = false;
    let read = false;
    /** @param {string} text */
    const onRead = (text) => {
      read = true;
      ui.stopCamera = null;
      video.hidden = true;
      stopCam.hidden = true;
      scan.disabled = false;
      link.input.value = text;
      setFieldError(link, null);
      link.input.dispatchEvent(new Event("input")); // Checked as a pasted link is.
      camState.textContent = "Invite read from the QR code.";
      if (name.input.value.trim()) submit.focus();
      else name.input.focus();
    };
    try {
      const stop = await startScanner(video, onRead);
      if (read) return;
      if (!video.isConnected) return stop(); // The screen changed while the camera opened.
      ui.stopCamera = stop;
      stopCam.hidden = false;
      camState.textContent = "Point the camera at the QR code on their screen.";
    } catch (err) {
      scan.disabled = false;
      video.hidden = true;
      camState.textContent =
        err && /** @type {Error} */ (err).name === "NotAllowedError"
          ? "Hush may not use the camera. Allow it in the browser's site settings, or paste the link instead."
          : "The camera could not be opened. Paste the link instead.";
    }
  }
  function stopCamera() {
    if (ui.stopCamera) ui.stopCamera();
    ui.stopCamera = null;
    video.hidden = true;
    stopCam.hidden = true;
    scan.disabled = false;
    camState.textContent = "Camera stopped.";
  }

  /** The way to the conversation an invite already started (see alreadyJoined). @type {HTMLElement | null} */
  let openExisting = null;

  /** @param {SubmitEvent} event */
  async function onSubmit(event) {
    event.preventDefault();
    const who = name.input.value.trim();
    const invite = link.input.value.trim();
    setFieldError(name, who ? null : "Give this conversation a name.");
    setFieldError(link, invite ? null : "Paste the invite link or scan the QR code.");
    openExisting?.remove();
    openExisting = null;
    if (!who) return name.input.focus();
    if (refuseTooLong(name)) return;
    if (!invite) return link.input.focus();
    submit.disabled = true;
    try {
      const id = await client().join(invite, joinDefaultMailbox(invite), who);
      await engine.refreshList();
      engine.flushSoon(0);
      engine.schedulePoll(id, 0);
      showSafety(id, { justJoined: true });
    } catch (err) {
      submit.disabled = false;
      const code = codeOf(err);
      if (code === ErrorCode.AlreadyJoined) return alreadyJoined(/** @type {import("../engine/types.js").HushError} */ (err).conversationId ?? null);
      const expired = code === ErrorCode.InviteExpired;
      setFieldError(link, expired ? expiredInvite(await clockOffsetFromSite()) : code === ErrorCode.OwnInvite ? OWN_INVITE : errorText(err));
      link.input.focus();
    }
  }

  /**
   * This vault joined the invite before: say so, and lead to that conversation (`focus`: move
   * the focus there; not while the link is being typed).
   * @param {string | null} id
   * @param {{ focus?: boolean }} [options]
   */
  async function alreadyJoined(id, { focus = true } = {}) {
    await engine.refreshList();
    const c = id && engine.byId(id);
    if (!c) {
      setFieldError(link, "You already joined this invite, and the conversation it started was deleted. An invite works only once: ask them for a new one.");
      if (focus) link.input.focus();
      return;
    }
    setFieldError(link, `You already joined this invite: it started your conversation with ${c.name}.`);
    const button = h("button", { type: "button", class: "primary", text: `Open the conversation with ${c.name}`, onclick: () => openConversation(c.id) });
    openExisting?.remove();
    openExisting = button;
    link.error.after(button);
    if (focus) button.focus();
  }

  setScreen(
    "join",
    h(
      "section",
      { class: "card" },
      backButton(),
      heading,
      intro,
      h(
        "form",
        { class: "stack", novalidate: true, onsubmit: onSubmit },
        name.wrap,
        link.wrap,
        h("div", { class: "scan" }, h("div", { class: "actions" }, scan, stopCam), video, camState),
        submit,
      ),
    ),
    { focus: name.input },
  );
  if (prefill) checkInvite(prefill, { opened: true });

  // A pasted or typed link is checked too, once the typing pauses (and at once when the field
  // is left): one's own invite, or one already joined, is said before Accept, which is off.
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let checkTimer;
  /** The link the last check refused (its message is shown and Accept is off), or null. @type {string | null} */
  let refused = null;
  const checkTyped = () => {
    clearTimeout(checkTimer);
    const invite = link.input.value.trim();
    if (invite && invite !== refused) checkInvite(invite);
  };
  link.input.addEventListener("input", () => {
    clearTimeout(checkTimer);
    if (refused !== null && link.input.value.trim() !== refused) {
      // Another link: what was said about the refused one no longer holds.
      refused = null;
      submit.disabled = false;
      setFieldError(link, null);
      openExisting?.remove();
      openExisting = null;
    }
    checkTimer = setTimeout(checkTyped, CHECK_DELAY_MS);
  });
  link.input.addEventListener("change", checkTyped);

  /**
   * An invite this vault made (or joined) is said at once, before a name is typed (`opened`:
   * it arrived as a link opened, which the heading then says too).
   * @param {string} invite
   * @param {{ opened?: boolean }} [options]
   */
  async function checkInvite(invite, { opened = false } = {}) {
    const screen = ui.screen;
    try {
      await client().checkInvite(invite);
      return;
    } catch (err) {
      if (ui.screen !== screen || link.input.value.trim() !== invite.trim()) return; // Moved on.
      const code = codeOf(err);
      if (code === ErrorCode.OwnInvite) {
        if (opened) {
          heading.textContent = "This is your own invite";
          intro.textContent = "You made this invite on this device. The other person opens it on theirs.";
        }
        refused = invite.trim();
        setFieldError(link, OWN_INVITE);
        submit.disabled = true;
      } else if (code === ErrorCode.AlreadyJoined) {
        refused = invite.trim();
        submit.disabled = true;
        await alreadyJoined(/** @type {import("../engine/types.js").HushError} */ (err).conversationId ?? null, { focus: opened });
      }
      // Anything else (not an invite yet, locked) is said when it is accepted.
    }
  }
}

/**
 * The mailbox for an invite that names none: the mailbox of the site the link points to. The
 * pasted text may be damaged the ways the client's parser undoes (protocol/src/invite.rs,
 * `Invite::from_link_fragment`): percent-encoded, wrapped in brackets or quotes, inside a
 * sentence. The site is the last http(s) URL before the invite's `#`.
 * @param {string} invite
 */
function joinDefaultMailbox(invite) {
  let text = invite;
  for (let round = 0; round < 3 && /%[0-9a-f]{2}/i.test(text); round++) {
    text = text.replace(/%([0-9a-f]{2})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  }
  const hash = text.lastIndexOf("#");
  const before = hash >= 0 ? text.slice(0, hash) : text;
  // The last "http(s)://" starts the site's URL (a redirect's own URL comes before it).
  const start = [...before.matchAll(/https?:\/\//gi)].at(-1);
  // A URL holds no white space: a line break or space inside it (a mail client wrapping a
  // long line, even inside the host name) is dropped, never taken as its end.
  const joined = start && before.slice(start.index).replace(/[\s\u200b-\u200d\u2060\ufeff]+/g, "");
  const site = joined && /^[^"'<>()[\]{}“”‘’«»]+/.exec(joined);
  try {
    if (site) return new URL(site[0]).origin;
  } catch {
    // Not a URL after all.
  }
  return mailboxUrl(); // Only the fragment was pasted.
}
