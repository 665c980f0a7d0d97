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

/** A labelled form field: returns { wrap, input, error } (error is an aria-live message slot). */
/**
 * @param {{ label: string, type?: string, value?: string, hint?: string, autocomplete?: string, multiline?: boolean, [attr: string]: unknown }} options
 */
export function field({ label, type = "text", value = "", hint, autocomplete, multiline = false, ...attrs }) {
  const id = uid("field");
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const input = /** @type {HTMLInputElement} */ (h(multiline ? "textarea" : "input", {
    id,
    type: multiline ? null : type,
    value,
    autocomplete,
    "aria-describedby": [hintId, errorId].filter(Boolean).join(" "),
    ...attrs,
  }));
  const error = h("p", { class: "field-error", id: errorId, role: "alert" });
  const wrap = h(
    "div",
    { class: "field" },
    h("label", { for: id, text: label }),
    hint ? h("p", { class: "hint", id: hintId, text: hint }) : null,
    input,
    error,
  );
  return { wrap, input, error };
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
