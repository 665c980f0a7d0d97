// @ts-check
// The message box's length limit. A message's text may be as long as the protocol carries,
// counted in UTF-8 bytes (what is encrypted), never cut: near the limit a counter says how
// much room is left; past it, sending is refused and the box says by how much it is too long.
//
// Both stay cheap however much is pasted: the length is counted without building the bytes,
// and the box's direction is set from its first letter here rather than with `dir="auto"`,
// which makes Chromium resolve the direction over the whole text on each change (a 1 MB paste
// froze the page for 2.2 s in one task with it, 0.2 s without; tests/app-composer.test.mjs).

/**
 * The longest message text, in UTF-8 bytes: the protocol's `MAX_MESSAGE_LEN`
 * (protocol/src/message.rs: `MAX_FRAGMENTS` 64 × `FRAGMENT_CAPACITY` 885 = 56,640;
 * docs/PROTOCOL.md §2). The client sends the text's bytes as they are, with nothing added,
 * and refuses a longer one with `ErrorCode.MessageTooLong`. The wasm API exports no constant
 * for it: tests/app-composer.test.mjs checks that the client takes exactly this many bytes
 * and refuses one more, so the two cannot drift apart.
 */
export const MAX_MESSAGE_BYTES = 56_640;

/** From this share of the limit on, the counter shows. */
const SHOW_FROM = 0.9;

/**
 * The UTF-8 length of `text` as the client will encode it (a lone surrogate becomes U+FFFD,
 * 3 bytes, in both), counted without encoding it.
 * @param {string} text
 */
export function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4; // A surrogate pair: one code point past U+FFFF.
      i += 1;
    } else bytes += 3;
  }
  return bytes;
}

/** The first letter of a text. */
const FIRST_LETTER = /\p{L}/u;
/** Letters of the right-to-left scripts (Hebrew, Arabic, Syriac, Thaana, N'Ko and the rest). */
const RIGHT_TO_LEFT = /^[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\u{10800}-\u{10fff}\u{1e800}-\u{1efff}]/u;

/**
 * The direction of `text` as `dir="auto"` would find it, from its first letter: "rtl", or
 * "ltr" (also with no letter). The search stops at the first letter.
 * @param {string} text
 * @returns {"rtl" | "ltr"}
 */
export function textDirection(text) {
  const at = text.search(FIRST_LETTER);
  if (at < 0) return "ltr";
  return RIGHT_TO_LEFT.test(text.slice(at, at + 2)) ? "rtl" : "ltr";
}

const number = new Intl.NumberFormat();
/** @param {number} n */
const bytes = (n) => `${number.format(n)} ${n === 1 ? "byte" : "bytes"}`;

/**
 * Characters that show nothing on their own: white space, the default-ignorable code points
 * (zero-width space, joiners, word joiner, byte-order mark, direction marks, soft hyphen,
 * variation selectors, Hangul fillers, tags, …), controls and the blank Braille pattern.
 */
const INVISIBLE = /^[\s\p{Default_Ignorable_Code_Point}\p{Cc}\u2800]*$/u;

/**
 * Whether `text` shows nothing: empty, or only invisible characters. Such a text is not sent
 * (it would arrive as an empty-looking bubble); an emoji's joiners or a direction mark inside
 * real text do not make it blank.
 * @param {string} text
 */
export function isBlank(text) {
  return INVISIBLE.test(text);
}

/**
 * Watches `textarea` against MAX_MESSAGE_BYTES, and sets its direction from its text.
 * `counter`: an element for the count, shown near the limit (the textarea is described by
 * it); `send`: the button refused past the limit; `announce(text)`: says a change of state to
 * screen readers (once, not on every key); the button is also off for a blank text. Returns
 * { update(), fits() }: update() after the text or the button's state changed from
 * elsewhere; fits() whether the text may be sent (not blank, within the limit).
 * @param {HTMLTextAreaElement} textarea
 * @param {{ counter: HTMLElement, send: HTMLButtonElement, announce: (text: string) => void }} parts
 */
export function limitComposer(textarea, { counter, send, announce }) {
  counter.id ||= `${textarea.id || "composer"}-count`;
  const described = new Set((textarea.getAttribute("aria-describedby") ?? "").split(" ").filter(Boolean));
  described.add(counter.id);
  textarea.setAttribute("aria-describedby", [...described].join(" "));
  let over = false;

  /** How many messages `length` bytes take at the least, in words up to ten. */
  function messagesNeeded(length) {
    const n = Math.ceil(length / MAX_MESSAGE_BYTES);
    return ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"][n] ?? new Intl.NumberFormat("en").format(n);
  }

  function update() {
    // A composer switched off for another reason (an ended conversation): nothing to count.
    if (textarea.disabled) {
      counter.hidden = true;
      return;
    }
    const text = textarea.value;
    const dir = textDirection(text);
    if (textarea.dir !== dir) textarea.dir = dir;
    const length = utf8Length(text);
    const left = MAX_MESSAGE_BYTES - length;
    const nowOver = left < 0;
    if (nowOver) {
      counter.textContent = `Too long by ${bytes(-left)} (a letter takes 1 to 4 bytes): shorten it, or send it as ${messagesNeeded(length)} messages.`;
    } else if (length >= MAX_MESSAGE_BYTES * SHOW_FROM) {
      counter.textContent = `${bytes(left)} left`;
    } else {
      counter.textContent = "";
    }
    counter.hidden = !counter.textContent;
    counter.classList.toggle("over", nowOver);
    if (nowOver) textarea.setAttribute("aria-invalid", "true");
    else textarea.removeAttribute("aria-invalid");
    // Nothing to send in a blank text either (Enter does nothing then, too).
    send.disabled = nowOver || isBlank(text);
    if (nowOver !== over) {
      over = nowOver;
      announce(nowOver ? `This message is too long to send, by ${bytes(-left)}.` : "The message fits again.");
    }
  }

  textarea.addEventListener("input", update);
  // A paste takes its direction before it is laid out, not after (a second layout of it all).
  textarea.addEventListener("paste", (event) => {
    const pasted = event.clipboardData?.getData("text/plain");
    if (!pasted) return;
    const { value, selectionStart, selectionEnd } = textarea;
    const dir = textDirection(value.slice(0, selectionStart) + pasted + value.slice(selectionEnd));
    if (textarea.dir !== dir) textarea.dir = dir;
  });
  update();
  return { update, fits: () => !isBlank(textarea.value) && utf8Length(textarea.value) <= MAX_MESSAGE_BYTES };
}
