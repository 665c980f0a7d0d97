// @ts-check
// Small DOM helpers: build elements without innerHTML (no markup injection from message text,
// names or links) and without inline styles (the CSP forbids them).

/**
 * h("button", { type: "button", class: "primary", onclick }, "Send") → <button>.
 * Attributes: `class`, `text`, `on<event>` handlers, booleans (true → present, false/null →
 * absent), anything else as an attribute.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...unknown} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), /** @type {EventListener} */ (value));
    } else if (name === "text") {
      el.textContent = /** @type {string} */ (value);
    } else if (name === "value") {
      /** @type {HTMLInputElement} */ (el).value = /** @type {string} */ (value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let idCounter = 0;
/** A unique element id with a readable prefix. */
export function uid(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/**
 * A labelled form field: returns { wrap, input, error, fits } (error is an aria-live message
 * slot). `maxlength` (characters) is a limit said, never a cut: the browser's attribute drops
 * what is typed or pasted past it without a word, so it is not set. From LIMIT_SHOW_FROM of it
 * a counter under the field says how many characters are left, that the limit is reached, or
 * by how much the text is over it (the field is then invalid); the change of state is said to
 * screen readers once. `fits()` whether the text is within the limit: a form refuses it
 * otherwise (refuseTooLong).
 * @param {{ label: string, type?: string, value?: string, hint?: string, autocomplete?: string, multiline?: boolean, maxlength?: number, [attr: string]: unknown }} options
 */
export function field({ label, type = "text", value = "", hint, autocomplete, multiline = false, maxlength, ...attrs }) {
  const id = uid("field");
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const countId = maxlength ? `${id}-count` : null;
  const input = /** @type {HTMLInputElement} */ (h(multiline ? "textarea" : "input", {
    id,
    type: multiline ? null : type,
    value,
    autocomplete,
    "aria-describedby": [hintId, countId, errorId].filter(Boolean).join(" "),
    ...attrs,
  }));
  const error = h("p", { class: "field-error", id: errorId, role: "alert" });
  const limit = maxlength ? lengthLimit(input, maxlength, /** @type {string} */ (countId)) : null;
  const wrap = h(
    "div",
    { class: "field" },
    h("label", { for: id, text: label }),
    hint ? h("p", { class: "hint", id: hintId, text: hint }) : null,
    input,
    limit?.counter,
    limit?.said,
    error,
  );
  return { wrap, input, error, fits: () => !limit || limit.fits() };
}

/** From this share of a field's limit on, its counter shows. */
const LIMIT_SHOW_FROM = 0.8;

/** @param {number} n */
const characters = (n) => `${n} ${n === 1 ? "character" : "characters"}`;

/**
 * The counter of a field limited to `max` characters (code points, as a person counts them
 * more nearly than UTF-16 units): { counter, said, fits }.
 * @param {HTMLInputElement} input
 * @param {number} max
 * @param {string} counterId
 */
function lengthLimit(input, max, counterId) {
  const counter = h("p", { class: "field-count", id: counterId, hidden: true });
  // Says a change of state (reached, over, fits again) once, not the count on every key.
  const said = h("p", { class: "sr-only", role: "status", "aria-live": "polite" });
  const length = () => [...input.value].length;
  /** @type {"under" | "reached" | "over"} */
  let state = "under";
  const update = () => {
    const n = length();
    const now = n > max ? "over" : n === max ? "reached" : "under";
    counter.textContent =
      now === "over"
        ? `Too long by ${characters(n - max)}: ${max} characters at most. Shorten it; nothing was cut.`
        : now === "reached"
          ? `${max} of ${max} characters: the limit is reached.`
          : n >= max * LIMIT_SHOW_FROM
            ? `${characters(max - n)} left`
            : "";
    counter.hidden = !counter.textContent;
    counter.classList.toggle("over", now === "over");
    if (now === "over") input.setAttribute("aria-invalid", "true");
    else if (state === "over") input.removeAttribute("aria-invalid");
    if (now !== state) {
      said.textContent =
        now === "over"
          ? `Too long by ${characters(n - max)}: ${max} characters at most.`
          : now === "reached"
            ? `The limit of ${max} characters is reached.`
            : state === "over"
              ? "It fits again."
              : "";
      state = now;
    }
  };
  input.addEventListener("input", update);
  update();
  return { counter, said, fits: () => length() <= max };
}

/**
 * Refuses a form whose field `f` is over its limit: says so under it and focuses it. Returns
 * whether it refused.
 * @param {{ input: HTMLInputElement, error: HTMLElement, fits: () => boolean }} f
 */
export function refuseTooLong(f) {
  if (f.fits()) return false;
  setFieldError(f, "This is too long: shorten it to fit (the count is above).");
  f.input.focus();
  return true;
}

/** A labelled checkbox with an optional hint: returns { wrap, input }. */
export function checkbox({ label, hint, checked = false, onchange }) {
  const id = uid("check");
  const hintId = hint ? `${id}-hint` : null;
  const input = h("input", { id, type: "checkbox", "aria-describedby": hintId, onchange });
  input.checked = checked;
  return {
    wrap: h(
      "div",
      { class: "check" },
      input,
      h("label", { for: id, text: label }),
      hint ? h("p", { class: "hint", id: hintId, text: hint }) : null,
    ),
    input,
  };
}

/** Shows `message` under a field (or clears it) and marks the field invalid. */
export function setFieldError(f, message) {
  f.error.textContent = message ?? "";
  if (message) f.input.setAttribute("aria-invalid", "true");
  else f.input.removeAttribute("aria-invalid");
}

/** Bidirectional embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069). */
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;

/**
 * A message's `text` as shown: without bidirectional embeddings, overrides and isolates.
 * An override shows characters in another order than they were written ("\u202Egnp.exe"
 * reads "exe.png"), so a message could dress a file name or a link as another; the page lays
 * out right-to-left text by its own rules (`dir="auto"`, each bubble isolated). Marks (U+200E,
 * U+200F, U+061C) stay: they reorder nothing. Copying a message keeps the text as sent.
 * @param {string} text
 */
export function shownText(text) {
  return text.replace(BIDI_CONTROLS, "");
}

/** Local time of day, or date and time when not today. */
export function formatTime(ms) {
  const date = new Date(ms);
  const now = new Date();
  const sameDay = date.toDateString() === now.toDateString();
  /** @type {Intl.DateTimeFormatOptions} */
  const opts = sameDay
    ? { hour: "2-digit", minute: "2-digit" }
    : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  return new Intl.DateTimeFormat(undefined, opts).format(date);
}
