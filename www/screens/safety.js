// @ts-check
// The safety code to compare with the other person's, and the mark that it was compared.

import { h } from "../dom.js";
import { backButton, client, engine, named, setScreen } from "./shell.js";
import { showHome } from "./home.js";
import { showInviteTaken } from "./invite.js";
import { showConnecting } from "./connecting.js";
import { showChat } from "./chat.js";

/** @typedef {import("../engine/types.js").ConversationSummary} ConversationSummary */

/**
 * @param {string} id
 * @param {{ justJoined?: boolean }} [options] `justJoined`: right after joining (no Back).
 */
export function showSafety(id, { justJoined = false } = {}) {
  const c = engine.byId(id);
  if (c?.inviteTaken) return showInviteTaken(id);
  if (!c || !c.safetyCode) return showHome();
  if (c.connecting) return showConnecting(id, { justJoined });
  setScreen(
    "safety",
    h(
      "section",
      { class: "card safety" },
      justJoined ? null : backButton(() => showChat(id)),
      h("h1", {}, justJoined ? "Connected with " : "Safety code with ", named(c.name)),
      h("p", { text: `Compare this code with the one ${c.name} sees, face to face or on a call you trust.` }),
      h("output", { class: "code", "aria-label": "Safety code", text: c.safetyCode }),
      h("p", {
        class: "fine",
        text: "If the codes match, nobody sits between you. If they differ, someone else used the invite: delete this conversation and make a new invite in person.",
      }),
      verification(c, justJoined),
      h("div", { class: "actions" }, h("button", { type: "button", class: "primary", text: justJoined ? "Start chatting" : "Back to chat", onclick: () => showChat(id) })),
    ),
    { id },
  );
}

/**
 * The safety screen's verified mark: "Mark as verified" once the codes were compared and
 * match, or when it was marked and a way to remove the mark. Kept in the vault only.
 * @param {ConversationSummary} c
 * @param {boolean} justJoined
 */
function verification(c, justJoined) {
  const status = h("p", { class: "verified-state", role: "status" });
  const button = h("button", { type: "button", class: c.verifiedAt ? "ghost" : "" });
  if (c.verifiedAt) {
    status.append(h("span", { class: "verified-mark", "aria-hidden": "true", text: "✓ " }), `You marked this code as verified on ${new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }).format(c.verifiedAt)}.`);
    button.textContent = "Remove the mark";
  } else {
    status.textContent = "Not marked as verified yet.";
    button.textContent = "The codes match: mark as verified";
  }
  button.onclick = async () => {
    button.disabled = true;
    try {
      await client().setVerified(c.id, !c.verifiedAt);
      await engine.refreshList();
      showSafety(c.id, { justJoined });
      /** @type {HTMLElement | null} */ (document.querySelector(".verification button"))?.focus();
    } catch (err) {
      button.disabled = false;
      status.textContent = `Could not save the mark: ${/** @type {Error} */ (err).message}`;
    }
  };
  return h("div", { class: "verification" }, status, button);
}
