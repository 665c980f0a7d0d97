// The site's first load (issue #12): index.html preloads every module the page imports at
// start (app.js and, transitively, what its modules import from the site) and the wasm, so
// the browser fetches them at once instead of one import level after another; and it
// preloads nothing the page does not load. Reads the files; no browser.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, resolve, dirname, normalize } from "node:path";

const WWW = resolve(import.meta.dirname, "../www");

/** Site-relative paths of the modules `file` imports statically (`import … from "./x.js"`). */
function importsOf(file) {
  const text = readFileSync(join(WWW, file), "utf8");
  const found = [];
  for (const m of text.matchAll(/^import\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gms)) {
    found.push(normalize(join(dirname(file), m[1])));
  }
  return found;
}

test("index.html preloads every module loaded at start, and only those, plus the wasm", () => {
  const html = readFileSync(join(WWW, "index.html"), "utf8");
  const entry = [...html.matchAll(/<script type="module" src="([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(entry, ["app.js"]);
  const loaded = new Set();
  const queue = [...entry];
  while (queue.length) {
    const file = queue.shift();
    if (loaded.has(file)) continue;
    loaded.add(file);
    // The wasm-bindgen glue imports nothing of the site's; a worker script runs elsewhere.
    if (!file.startsWith("pkg/")) queue.push(...importsOf(file));
  }
  loaded.delete("app.js"); // The entry itself.
  const preloaded = new Set([...html.matchAll(/<link rel="modulepreload" href="([^"]+)"/g)].map((m) => m[1]));
  assert.deepEqual([...loaded].filter((f) => !preloaded.has(f)).sort(), [], "loaded at start but not preloaded");
  assert.deepEqual([...preloaded].filter((f) => !loaded.has(f)).sort(), [], "preloaded but not loaded at start");
  assert.match(html, /<link rel="preload" href="pkg\/hush_bg\.wasm" as="fetch" type="application\/wasm" crossorigin>/);
});
