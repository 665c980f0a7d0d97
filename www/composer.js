// @ts-check
// The message box's length limit. A message's text may be as long as the protocol carries,
// counted in UTF-8 bytes (what is encrypted), never cut: near the limit a counter says how
// much room is left; past it, sending is refused and the box says by how much it is too long.

/**
 * The longest message text, in UTF-8 bytes: the protocol's `MAX_MESSAGE_LEN`
 * (protocol/src/message.rs: `MAX_FRAGMENTS` 64 × `FRAGMENT_CAPACITY` 893 = 57,152;
 * docs/PROTOCOL.md §2). The client sends the text's bytes as they are, with nothing added,
 * and refuses a longer one with `ErrorCode.MessageTooLong`. The wasm API exports no constant
 * for it: tests/app-composer.test.mjs checks that the client takes exactly this many bytes
 * and refuses one more, so the two cannot drift apart.
 */
export const MAX_MESSAGE_BYTES = 57_152;

/** From this share of the limit on, the counter shows. */
const SHOW_FROM = 0.9;

const encoder = new TextEncoder();

/**
 * The UTF-8 length of `text` as the client will encode it (a lone surrogate becomes U+FFFD,
 * 3 bytes, in both).
 */
export function utf8Length(text) {
  return encoder.encode(text).length;
}

const number = new Intl.NumberFormat();
const bytes = (n) => `${number.format(n)} ${n === 1 ? "byte" : "bytes"}`;

/**
 * Watches `textarea` against MAX_MESSAGE_BYTES. `counter`: an element for the count, shown near
 * the limit (the textarea is described by it); `send`: the button refused past the limit;
 * `announce(text)`: says a change of state to screen readers (once, not on every key).
 * Returns { update(), fits() }: update() after the text or the button's state changed from
 * elsewhere; fits() whether the text may be sent.
 */
export function limitComposer(textarea, { counter, send, announce }) {
  counter.id ||= `${textarea.id || "composer"}-count`;
  const described = new Set((textarea.getAttribute("aria-describedby") ?? "").split(" ").filter(Boolean));
  described.add(counter.id);
  textarea.setAttribute("aria-describedby", [...described].join(" "));
  let over = false;

  function update() {
    // A composer switched off for another reason (an ended conversation): nothing to count.
    if (textarea.disabled) {
      counter.hidden = true;
      return;
    }
    const length = utf8Length(textarea.value);
    const left = MAX_MESSAGE_BYTES - length;
    const nowOver = left < 0;
    if (nowOver) {
      counter.textContent = `Too long by ${bytes(-left)} (a letter takes 1 to 4 bytes): shorten it, or send it as two messages.`;
    } else if (length >= MAX_MESSAGE_BYTES * SHOW_FROM) {
      counter.textContent = `${bytes(left)} left`;
    } else {
      counter.textContent = "";
    }
    counter.hidden = !counter.textContent;
    counter.classList.toggle("over", nowOver);
    if (nowOver) textarea.setAttribute("aria-invalid", "true");
    else textarea.removeAttribute("aria-invalid");
    send.disabled = nowOver;
    if (nowOver !== over) {
      over = nowOver;
      announce(nowOver ? `This message is too long to send, by ${bytes(-left)}.` : "The message fits again.");
    }
  }

  textarea.addEventListener("input", update);
  update();
  return { update, fits: () => utf8Length(textarea.value) <= MAX_MESSAGE_BYTES };
}
