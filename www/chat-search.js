// @ts-check
// Search within the open conversation: the whole history (client.history, not only the pages
// shown), case-insensitive, with the number of matches, older/newer, and the match scrolled
// to and highlighted with <mark> elements made from the message's own text nodes (never
// markup). Escape closes it; Ctrl+F (Cmd+F) opens it while a chat is open.

import { h } from "./dom.js";

/**
 * The search bar of one chat. `host`: { client, id, showEntry(seq) → Promise<li | null>,
 * toggle (the button that opens it) }.
 */
export class ChatSearch {
  constructor(host) {
    this.host = host;
    this.matches = []; // seqs, oldest first
    this.at = -1;
    this.turn = 0;
    this.timer = 0;
    this.input = h("input", { type: "search", class: "search-input", "aria-label": "Search this conversation", autocomplete: "off", spellcheck: "false" });
    this.count = h("p", { class: "search-count", role: "status", "aria-live": "polite" });
    this.older = h("button", { type: "button", class: "ghost", text: "Older", "aria-label": "Older match", disabled: true, onclick: () => this.step(-1) });
    this.newer = h("button", { type: "button", class: "ghost", text: "Newer", "aria-label": "Newer match", disabled: true, onclick: () => this.step(1) });
    const close = h("button", { type: "button", class: "ghost", text: "Close", "aria-label": "Close search", onclick: () => this.close() });
    this.el = h("div", { class: "chat-search", role: "search", "aria-label": "Search this conversation", hidden: true }, this.input, this.count, this.older, this.newer, close);
    this.input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.run(), 150);
    });
    this.el.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.close();
      } else if (event.key === "Enter" && event.target === this.input) {
        event.preventDefault();
        this.step(event.shiftKey ? 1 : -1);
      }
    });
  }

  get isOpen() {
    return !this.el.hidden;
  }

  open() {
    this.el.hidden = false;
    this.host.toggle?.setAttribute("aria-expanded", "true");
    this.input.focus();
    this.input.select();
  }

  close() {
    clearTimeout(this.timer);
    this.turn++;
    unmark();
    this.el.hidden = true;
    this.input.value = "";
    this.count.textContent = "";
    this.matches = [];
    this.at = -1;
    this.setButtons();
    this.host.toggle?.setAttribute("aria-expanded", "false");
    this.host.toggle?.focus();
  }

  async run() {
    const turn = ++this.turn;
    const query = this.input.value.trim();
    unmark();
    this.matches = [];
    this.at = -1;
    if (!query) {
      this.count.textContent = "";
      return this.setButtons();
    }
    let history;
    try {
      history = await this.host.client.history(this.host.id);
    } catch {
      if (turn === this.turn) this.count.textContent = "Could not search.";
      return;
    }
    if (turn !== this.turn) return;
    const needle = query.toLocaleLowerCase();
    this.matches = history.filter((e) => e.text.toLocaleLowerCase().includes(needle)).map((e) => e.seq);
    this.query = query;
    if (!this.matches.length) {
      this.count.textContent = "No matches";
      return this.setButtons();
    }
    // The newest match first, as the chat shows the newest end.
    this.at = this.matches.length - 1;
    await this.show(turn);
  }

  async step(by) {
    if (!this.matches.length) return;
    const next = this.at + by;
    if (next < 0 || next >= this.matches.length) return;
    this.at = next;
    await this.show(this.turn);
  }

  async show(turn) {
    this.setButtons();
    this.count.textContent = `${this.at + 1} of ${this.matches.length} ${this.matches.length === 1 ? "match" : "matches"}`;
    const li = await this.host.showEntry(this.matches[this.at]);
    if (turn !== this.turn || !li) return;
    unmark();
    markIn(li.querySelector(".text"), this.query);
    li.classList.add("search-current");
    li.scrollIntoView({ block: "center" });
  }

  setButtons() {
    this.older.disabled = this.at <= 0;
    this.newer.disabled = this.at < 0 || this.at >= this.matches.length - 1;
  }
}

/** Wraps each case-insensitive occurrence of `query` in the text nodes under `root` in <mark>. */
function markIn(root, query) {
  if (!root) return;
  const needle = query.toLocaleLowerCase();
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  /** @type {Text[]} */
  const nodes = [];
  while (walker.nextNode()) nodes.push(/** @type {Text} */ (walker.currentNode));
  for (let node of nodes) {
    // Only where lower-casing keeps the length can an index in it be one in the text.
    if (node.data.toLocaleLowerCase().length !== node.data.length) continue;
    let at = node.data.toLocaleLowerCase().indexOf(needle);
    while (at >= 0) {
      const hit = node.splitText(at);
      node = hit.splitText(needle.length);
      const mark = document.createElement("mark");
      hit.replaceWith(mark);
      mark.append(hit);
      at = node.data.toLocaleLowerCase().indexOf(needle);
    }
  }
}

/** Takes every search highlight away, joining the text back. */
function unmark() {
  for (const li of document.querySelectorAll(".search-current")) {
    li.classList.remove("search-current");
    for (const mark of li.querySelectorAll("mark")) {
      const parent = mark.parentNode;
      mark.replaceWith(...mark.childNodes);
      parent.normalize();
    }
  }
}
