// The site's type check (no browser): every script of www/ (the wasm-bindgen output in pkg/
// aside) starts with `// @ts-check` and is covered by one of the tsconfig files that
// `cargo xtask test` runs, and tsc finds no error in any of them. The service worker
// (www/sw.js, a classic script with the worker's globals) has a project of its own,
// tsconfig.sw.json.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const WWW = join(ROOT, "www");
const CONFIGS = ["tsconfig.json", "tsconfig.engine.json", "tsconfig.worker.json", "tsconfig.sw.json"];

/** Site-relative paths of the site's own scripts. */
function scripts(dir = WWW, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    const path = relative(WWW, full).split(sep).join("/");
    if (entry.isDirectory()) {
      if (path !== "pkg") scripts(full, out);
    } else if (entry.name.endsWith(".js")) {
      out.push(path);
    }
  }
  return out;
}

test("every script of the site asks to be type-checked", () => {
  const unchecked = scripts().filter((path) => !readFileSync(join(WWW, path), "utf8").startsWith("// @ts-check\n"));
  assert.deepEqual(unchecked, [], "scripts without // @ts-check on their first line");
});

test("every script of the site is in a tsconfig project, and tsc finds no error in any", () => {
  const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
  const covered = new Set();
  for (const config of CONFIGS) {
    let out;
    try {
      out = execFileSync(process.execPath, [tsc, "--project", config, "--pretty", "false", "--listFilesOnly"], { cwd: ROOT, encoding: "utf8" });
    } catch (err) {
      assert.fail(`${config}: ${err.stdout}${err.stderr}`);
    }
    for (const line of out.split("\n")) {
      const path = relative(WWW, line.trim()).split(sep).join("/");
      if (path && !path.startsWith("..")) covered.add(path);
    }
    try {
      execFileSync(process.execPath, [tsc, "--project", config, "--pretty", "false"], { cwd: ROOT, encoding: "utf8" });
    } catch (err) {
      assert.fail(`type errors with ${config}:\n${err.stdout}${err.stderr}`);
    }
  }
  assert.deepEqual(scripts().filter((path) => !covered.has(path)), [], "scripts no tsconfig project checks");
});
