// @ts-check
// Notices: what happened to a conversation that the person must know, in plain words, with
// what they can do. They stay until dismissed (interference, a restored device) or for good
// (a conversation that ended); a new event raises them again. Shown at the top of its chat.

import { ErrorCode } from "../pkg/hush.js";
import { h, replace } from "../dom.js";
import { codeOf, messageOf } from "../engine/errors.js";
import { announce, client, engine, ui } from "./shell.js";
import { showNewConversation } from "./new.js";
import { showSafety } from "./safety.js";
import { NOTICE_ACTIONS, freshNotices, noticesKey, noticesOf } from "./notice-content.js";

/**
 * Shows the open chat's notices; a notice that appears while it is open is announced once.
 * @param {import("./shell.js").OpenChat} chat
 */
export function renderNotices(chat) {
  const c = engine.byId(chat.id);
  if (!c) return;
  const list = noticesOf(c);
  const key = noticesKey(list);
  const ended = Boolean(c.ended);
  for (const control of chat.composer.elements) /** @type {HTMLButtonElement | HTMLTextAreaElement} */ (control).disabled = ended;
  chat.composer.hidden = ended;
  chat.limit.update();
  if (chat.shownNotices === key) return;
  const before = chat.shownNotices;
  chat.shownNotices = key;
  /** What each of NOTICE_ACTIONS does here. @type {Record<keyof typeof NOTICE_ACTIONS, () => void>} */
  const actions = {
    newConversation: () => showNewConversation(),
    showSafety: () => showSafety(c.id),
  };
  replace(
    chat.notices,
    list.map((n) => {
      const titleId = `notice-${n.kind}`;
      return h(
        "section",
        { class: `notice notice-${n.kind}`, "aria-labelledby": titleId },
        h("h2", { id: titleId, text: n.title }),
        h("p", { text: n.text }),
        // A notice that asks only to wait has no buttons (and no empty row for them).
        n.actions.length > 0 &&
        h(
          "div",
          { class: "actions" },
          n.actions.map((a) => {
            const dismiss = a.dismiss;
            return h("button", {
              type: "button",
              class: dismiss ? "ghost" : "",
              text: a.text,
              "aria-describedby": titleId,
              onclick: dismiss ? () => dismissNotice(c.id, dismiss) : a.does ? actions[a.does] : undefined,
            });
          }),
        ),
      );
    }),
  );
  // Announced when it appears while the chat is open (not on opening the chat).
  const fresh = before === null ? [] : freshNotices(before, list);
  if (fresh.length) announce(fresh.map((n) => `${n.title}. ${n.text}`).join("\n"));
}

/**
 * @param {string} id
 * @param {"interference" | "rollback"} kind
 */
async function dismissNotice(id, kind) {
  try {
    await client().clearNotice(id, kind);
  } catch (err) {
    if (codeOf(err) !== ErrorCode.Locked) console.warn("Could not dismiss the notice", messageOf(err));
    return;
  }
  await engine.refreshList();
  ui.chat?.composer.querySelector("textarea")?.focus();
}
