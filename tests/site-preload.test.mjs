// The site's first load (issue #12): index.html preloads every module the page imports at
// start (app.js and, transitively, what its modules import from the site) and the wasm, so
// the browser fetches them at once instead of one import level after another; and it
// preloads nothing the page does not load. The unlocked app's screens are not loaded at start:
// one dynamic import (screens/unlocked.js) brings them at the first unlock, so they are not
// preloaded either, and every module of the site is reached one way or the other. Reads the
// files; no browser (tests/app-first-load.test.mjs watches what Chromium fetches).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve, dirname, normalize, sep } from "node:path";

const WWW = resolve(import.meta.dirname, "../www");

/**
 * Site-relative paths of the modules `file` imports statically (`import … from "./x.js"`, and
 * `export … from`), or with `dynamic`, those it imports with `import("./x.js")`.
 */
function importsOf(file, dynamic = false) {
  let text = readFileSync(join(WWW, file), "utf8");
  // Types named in JSDoc (`import("./types.js").Client`) load nothing.
  if (dynamic) text = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  const pattern = dynamic ? /\bimport\("(\.{1,2}\/[^"]+)"\)/g : /^(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gms;
  return [...text.matchAll(pattern)].map((m) => normalize(join(dirname(file), m[1])));
}

/** Every module reached from `entries` by static imports. */
function staticGraph(entries) {
  const loaded = new Set();
  const queue = [...entries];
  while (queue.length) {
    const file = queue.shift();
    if (loaded.has(file)) continue;
    loaded.add(file);
    // The wasm-bindgen glue imports nothing of the site's; a worker script runs elsewhere.
    if (!file.startsWith("pkg/")) queue.push(...importsOf(file));
  }
  return loaded;
}

test("index.html preloads every module loaded at start, and only those, plus the wasm", () => {
  const html = readFileSync(join(WWW, "index.html"), "utf8");
  const entry = [...html.matchAll(/<script type="module" src="([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(entry, ["app.js"]);
  const loaded = staticGraph(entry);
  loaded.delete("app.js"); // The entry itself.
  const preloaded = new Set([...html.matchAll(/<link rel="modulepreload" href="([^"]+)"/g)].map((m) => m[1]));
  assert.deepEqual([...loaded].filter((f) => !preloaded.has(f)).sort(), [], "loaded at start but not preloaded");
  assert.deepEqual([...preloaded].filter((f) => !loaded.has(f)).sort(), [], "preloaded but not loaded at start");
  assert.match(html, /<link rel="preload" href="pkg\/hush_bg\.wasm" as="fetch" type="application\/wasm" crossorigin>/);
});

test("the unlocked app's screens come by one dynamic import, not at start; every module of the site is reached", () => {
  const atStart = staticGraph(["app.js"]);
  const dynamic = [...atStart].filter((f) => !f.startsWith("pkg/")).flatMap((f) => importsOf(f, true));
  assert.deepEqual(dynamic, ["screens/unlocked.js"], "the dynamic imports of the modules loaded at start");
  const later = [...staticGraph(dynamic)].filter((f) => !atStart.has(f));
  assert.ok(later.length >= 15, `the screens of the unlocked app load later: ${later.join(" ")}`);
  for (const lazy of ["screens/list.js", "screens/chat.js", "screens/join.js", "composer.js", "message-menu.js"]) assert.ok(later.includes(lazy), `${lazy} loads later`);
  const scripts = readdirSync(WWW, { recursive: true })
    .map((f) => String(f).split(sep).join("/"))
    // Not modules of the page: the workers, and the engine's JSDoc types (tsc reads them).
    .filter((f) => f.endsWith(".js") && !f.startsWith("pkg/") && !["sw.js", "unlock-worker.js", "engine/types.js"].includes(f));
  const reached = new Set([...atStart, ...later]);
  assert.deepEqual(scripts.filter((f) => !reached.has(f)).sort(), [], "modules neither loaded at start nor by the unlock");
});
