// @ts-check
// The last message of each conversation, for the conversation list: "You: " before one's own,
// the text (a reply without the quote it starts with) on one line (its first PREVIEW_CHARS characters, cut by CSS with an ellipsis, never in the stored text) and when it was
// written. Each conversation's newest entry is read (historyPage(id, null, 1): one entry from
// storage) only when its lastActivity changed since the last read, so redrawing the list after
// a poll reads again only the conversation that poll touched. Kept in memory only; forgotten
// on lock.

import { h, shownText } from "./dom.js";
import { shortWhen } from "./days.js";
import { splitQuote } from "./message-menu.js";

/** The most characters of a message put into the list (the line shows far fewer). */
export const PREVIEW_CHARS = 200;

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/**
 * The start of `text` the preview line holds: at most PREVIEW_CHARS UTF-16 units, cut between
 * two graphemes (never inside a surrogate pair or an emoji's sequence), with an ellipsis when
 * cut. The line is cut by CSS far earlier, so it looks the same; the DOM, and the list
 * button's accessible name, stay short whatever the message's length.
 * @param {string} text
 */
export function previewText(text) {
  text = shownText(text);
  if (text.length <= PREVIEW_CHARS) return text;
  let end = 0;
  for (const { index, segment } of graphemes.segment(text.slice(0, PREVIEW_CHARS + 64))) {
    if (index + segment.length > PREVIEW_CHARS) break;
    end = index + segment.length;
  }
  return `${text.slice(0, end).trimEnd()}…`;
}

export class Previews {
  constructor() {
    /** id → { activity, entry | null } */
    this.byId = new Map();
  }

  /**
   * Reads the newest entry of each joined conversation in `conversations` whose activity
   * changed (`force`: of conversation `force` whatever its activity, after a send).
   */
  async refresh(client, conversations, force = null) {
    const ids = new Set(conversations.map((c) => c.id));
    for (const id of this.byId.keys()) if (!ids.has(id)) this.byId.delete(id);
    const stale = conversations.filter((c) => {
      if (!c.joined) return false;
      const known = this.byId.get(c.id);
      return c.id === force || !known || known.activity !== c.lastActivity;
    });
    await Promise.all(
      stale.map(async (c) => {
        try {
          const [entry = null] = await client.historyPage(c.id, null, 1);
          this.byId.set(c.id, { activity: c.lastActivity, entry });
        } catch {
          // Locked or deleted meanwhile: no preview.
        }
      }),
    );
  }

  /** Whether conversation `id` has a message to preview. */
  has(id) {
    return Boolean(this.byId.get(id)?.entry);
  }

  /** The preview line of conversation `id`, or null. */
  render(id) {
    const entry = this.byId.get(id)?.entry;
    if (!entry) return null;
    return h(
      "span",
      { class: "conv-preview" },
      // Laid out in the text's own direction (dir="auto"), so that a right-to-left message
      // shows its first words and loses its last to the ellipsis, as a left-to-right one
      // does; after "You: " the text is isolated (<bdi>) instead.
      entry.outgoing
        ? h("span", { class: "conv-preview-text" }, h("span", { class: "conv-preview-who", text: "You: " }), h("bdi", { text: previewText(splitQuote(entry.text).rest) }))
        : h("span", { class: "conv-preview-text", dir: "auto", text: previewText(splitQuote(entry.text).rest) }),
      h("time", { class: "conv-preview-when", datetime: new Date(entry.time).toISOString(), text: shortWhen(entry.time) }),
    );
  }

  /** Reads conversation `id`'s preview again at the next refresh (a message of it was deleted). */
  forget(id) {
    this.byId.delete(id);
  }

  /** Forgets every preview (on lock). */
  clear() {
    this.byId.clear();
  }
}

/** The list's previews (read by the engine with the list). */
export const previews = new Previews();
