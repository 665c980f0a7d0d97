// @ts-check
// We joined, but our answer to the invite (the hello) is not on the mailbox yet: the other
// person cannot see us, so nothing says "Connected" and no safety code is shown (one compared
// now could not match theirs: they have none yet). Redrawn as "Connected" once a flush stores
// the hello (showConnectedWhenDelivered).

import { h } from "../dom.js";
import { hostOf } from "../settings.js";
import { backButton, engine, named, setScreen, ui } from "./shell.js";
import { showHome } from "./home.js";
import { showSafety } from "./safety.js";
import { showChat } from "./chat.js";
import { wrongMailboxText } from "./texts.js";

/**
 * @param {string} id
 * @param {{ justJoined?: boolean }} [options]
 */
export function showConnecting(id, { justJoined = false } = {}) {
  const c = engine.byId(id);
  if (!c) return showHome();
  // Not a live region: what goes wrong on the way (offline, the mailbox unreachable or wrong) is
  // said by the top bar's line (#netstatus), the one live region for it, once.
  const state = h("p", { class: "state waiting", id: "connect-state" });
  setScreen(
    "safety",
    h(
      "section",
      { class: "card safety" },
      justJoined ? null : backButton(() => showChat(id)),
      h("h1", {}, "Connecting to ", named(c.name), "…"),
      state,
      h("p", { class: "fine", text: `Once it is there, you both see a safety code to compare. Messages you write now are sent after it.` }),
      h("div", { class: "actions" }, h("button", { type: "button", class: "primary", text: justJoined ? "Start chatting" : "Back to chat", onclick: () => showChat(id) })),
    ),
    { id },
  );
  ui.screen.connecting = true;
  ui.screen.justJoined = justJoined;
  updateConnectingState();
}

/** The connecting screen's line: on its way, or why it is not getting there. */
export function updateConnectingState() {
  const state = ui.screen.connecting ? document.getElementById("connect-state") : null;
  const c = state && engine.byId(ui.screen.id);
  if (!state || !c) return;
  const problem = engine.mailboxProblem(c);
  let text = `Your answer to ${c.name}'s invite is on its way to the mailbox at ${hostOf(c.mailbox)}. ${c.name} can't see you until it is there.`;
  if (problem === "wrong") text = `${wrongMailboxText(c.mailbox)} Your answer to ${c.name}'s invite can't be delivered: ask ${c.name} for a new invite.`;
  else if (problem === "refused") text = `The mailbox at ${hostOf(c.mailbox)} answers but refuses to store your answer to ${c.name}'s invite right now. Hush keeps trying.`;
  else if (problem === "unreachable") text = `Can't reach the mailbox at ${hostOf(c.mailbox)} to deliver your answer to ${c.name}'s invite. Hush keeps trying.`;
  if (state.textContent !== text) state.textContent = text;
  state.className = problem ? "state warn" : "state waiting";
}

/**
 * The connecting screen becomes the "Connected" one once the hello is on the mailbox (checked
 * whenever the list is read again: after this tab's flush, or another tab's).
 */
export function showConnectedWhenDelivered() {
  if (!ui.screen.connecting) return;
  const c = engine.byId(ui.screen.id);
  if (c && !c.connecting) showSafety(c.id, { justJoined: ui.screen.justJoined });
}
