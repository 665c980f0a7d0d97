// @ts-check
// Home: on a wide screen, the space beside the conversation list; on a phone, the list itself.

import { h } from "../dom.js";
import { els, engine, setScreen } from "./shell.js";

export function showHome() {
  const any = engine.conversations.length > 0;
  setScreen(
    "home",
    h(
      "section",
      { class: "card center empty-state" },
      h("h2", { text: any ? "Pick a conversation" : "Start your first conversation" }),
      h("p", {
        text: any
          ? "Choose one from the list, start a new one, or join someone else's."
          : "Use New conversation to invite someone in person, or Join if someone showed you their code or sent you a link.",
      }),
    ),
    { pane: "list" },
  );
  // Home is the conversation list (all a phone shows of it): its title is the screen's h1.
  els.sidebarTitle.setAttribute("aria-level", "1");
}
