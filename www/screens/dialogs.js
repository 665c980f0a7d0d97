// @ts-check
// The dialogs over a conversation: rename it, delete it, delete one of its messages.

import { ErrorCode } from "../pkg/hush.js";
import { h, replace, field, refuseTooLong, setFieldError } from "../dom.js";
import { codeOf } from "../engine/errors.js";
import { announce, client, dialog, els, engine, ui } from "./shell.js";
import { showHome } from "./home.js";
import { focusAfterDeleting, removeFromChat, settleDrafts } from "./chat.js";
import { errorText } from "./texts.js";

/** @param {string} id */
export function renameDialog(id) {
  const c = engine.byId(id);
  if (!c) return;
  const name = field({ label: "Name", value: c.name, autocomplete: "off", maxlength: 60, dir: "auto" });
  const form = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      onsubmit: async (/** @type {SubmitEvent} */ event) => {
        event.preventDefault();
        const value = name.input.value.trim();
        if (!value) {
          setFieldError(name, "A name cannot be empty.");
          return;
        }
        if (refuseTooLong(name)) return;
        try {
          await client().rename(id, value);
        } catch (err) {
          setFieldError(name, errorText(err));
          return;
        }
        els.dialog.close();
        await engine.refreshList();
        if (ui.chat?.id === id) ui.chat.rename(value);
      },
    },
    name.wrap,
    h(
      "div",
      { class: "actions end" },
      h("button", { type: "button", class: "ghost", text: "Cancel", onclick: () => els.dialog.close() }),
      h("button", { type: "submit", class: "primary", text: "Save name" }),
    ),
  );
  const d = els.dialog;
  replace(d, h("h2", { id: "dialog-title", text: `Rename ${c.name}` }), h("p", { class: "fine", text: "Only you see this name." }), form);
  d.showModal();
  name.input.select();
}

/** @param {string} id */
export function confirmDelete(id) {
  const c = engine.byId(id);
  if (!c) return;
  const body = h(
    "div",
    {},
    h("p", { text: "This erases, on this device:" }),
    h(
      "ul",
      {},
      h("li", { text: "the keys of this conversation, so its messages can never be read here again;" }),
      h("li", { text: "the whole message history;" }),
      h("li", { text: "any messages not sent yet." }),
    ),
    h("p", { text: `${c.name} is not notified. Messages they send afterwards are never read. This cannot be undone.` }),
  );
  const erase = h("button", {
    type: "button",
    class: "danger",
    text: "Erase conversation",
    onclick: async () => {
      erase.disabled = true;
      try {
        await settleDrafts(); // No save of its draft lands after the deletion.
        await client().deleteConversation(id);
      } catch (err) {
        erase.disabled = false;
        body.append(h("p", { class: "field-error", role: "alert", text: errorText(err) }));
        return;
      }
      els.dialog.close();
      engine.forget(id);
      await engine.refreshList();
      showHome();
    },
  });
  dialog(`Delete the conversation with ${c.name}?`, body, [
    h("button", { type: "button", class: "ghost", text: "Cancel", onclick: () => els.dialog.close() }),
    erase,
  ]);
}

/**
 * Asks, then deletes message item `li` of the open chat from this device only
 * (`deleteMessage`): the other person keeps theirs and is not told. Focus goes back to the
 * message on Cancel, to the next message (else the one before, else the composer)
 * after deleting.
 * @param {HTMLLIElement} li
 * @param {HTMLButtonElement} button
 */
export function confirmDeleteMessage(li, button) {
  const chat = ui.chat;
  const seq = Number(li.dataset.seq);
  const c = chat && engine.byId(chat.id);
  if (!chat || !c || !Number.isSafeInteger(seq)) return;
  const own = li.classList.contains("out");
  const body = h(
    "div",
    {},
    h("p", { text: `The message disappears from this device only. ${c.name} keeps their copy and is not told.` }),
    own && !li.querySelector(".delivery")?.textContent?.includes("Delivered")
      ? h("p", { class: "fine", text: "It is already on its way: it will still reach them." })
      : null,
  );
  const cancel = h("button", {
    type: "button",
    class: "ghost",
    text: "Cancel",
    onclick: () => {
      els.dialog.close();
      (li.isConnected ? li : button).focus();
    },
  });
  const remove = h("button", {
    type: "button",
    class: "danger",
    text: "Delete message",
    onclick: async () => {
      remove.disabled = true;
      try {
        await client().deleteMessage(chat.id, seq);
      } catch (err) {
        if (codeOf(err) !== ErrorCode.NoSuchMessage) {
          remove.disabled = false;
          const text = codeOf(err) === ErrorCode.StillSending ? "This message is still being sent. You can delete it once it is sent." : errorText(err);
          body.append(h("p", { class: "field-error", role: "alert", text }));
          return;
        }
      }
      els.dialog.close();
      if (ui.chat === chat) {
        // The focus goes to the next message (else the one before, else the composer), not
        // to the page.
        const next = focusAfterDeleting(li);
        removeFromChat([seq]);
        next?.focus();
      }
      announce("Message deleted on this device.");
      await engine.refreshList(chat.id);
    },
  });
  dialog("Delete this message on this device?", body, [cancel, remove]);
}
