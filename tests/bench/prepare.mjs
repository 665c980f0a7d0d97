// Prepares a mailbox load run: stores `--hits` messages at BASE_URL, and writes the files the
// wrk scripts read into OUT_DIR:
//   hits.txt   one stored address per line (64 hex)
//   misses.txt one never-written address per line
//   pairs.txt  "address key" per line: fresh write keys for PUTs (`--pairs` of them)
//   fetch.txt  one fetch body per line, as hex: 16 addresses, 4 stored + 12 empty
//   blob.bin   the message body every PUT sends (`--size` bytes)
//
// usage: node prepare.mjs BASE_URL OUT_DIR [--hits N] [--pairs N] [--size BYTES]

import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [base, out, ...rest] = process.argv.slice(2);
if (!base || !out) {
  console.error("usage: node prepare.mjs BASE_URL OUT_DIR [--hits N] [--pairs N] [--size BYTES]");
  process.exit(2);
}
const opt = (name, dflt) => {
  const i = rest.indexOf(name);
  return i >= 0 ? Number(rest[i + 1]) : dflt;
};
const hits = opt("--hits", 10_000);
const pairs = opt("--pairs", 400_000);
const size = opt("--size", 1024);
mkdirSync(out, { recursive: true });

function slot() {
  const key = randomBytes(32);
  const address = createHash("sha256").update("hush/v1/address").update(key).digest("hex");
  return { key: key.toString("hex"), address };
}

const blob = randomBytes(size);
writeFileSync(join(out, "blob.bin"), blob);

// Store the hit set with a few concurrent writers.
const stored = Array.from({ length: hits }, slot);
let next = 0;
let failed = 0;
async function writer() {
  while (next < stored.length) {
    const s = stored[next++];
    const res = await fetch(`${base}/v1/m/${s.address}`, {
      method: "PUT",
      headers: { "Mailbox-Write-Key": s.key },
      body: blob,
    });
    await res.arrayBuffer();
    if (res.status !== 201) failed += 1;
  }
}
await Promise.all(Array.from({ length: 32 }, writer));
if (failed) {
  console.error(`prepare: ${failed} of ${hits} preload PUTs failed`);
  process.exit(1);
}
writeFileSync(join(out, "hits.txt"), stored.map((s) => s.address).join("\n") + "\n");
writeFileSync(
  join(out, "misses.txt"),
  Array.from({ length: 10_000 }, () => randomBytes(32).toString("hex")).join("\n") + "\n",
);

const fetches = [];
for (let i = 0; i < (hits > 0 ? 1000 : 0); i += 1) {
  const batch = [];
  for (let j = 0; j < 16; j += 1) {
    batch.push(j % 4 === 0 ? stored[(i * 4 + j) % stored.length].address : randomBytes(32).toString("hex"));
  }
  fetches.push(batch.join(""));
}
writeFileSync(join(out, "fetch.txt"), fetches.join("\n") + "\n");

const stream = createWriteStream(join(out, "pairs.txt"));
for (let i = 0; i < pairs; i += 1) {
  const s = slot();
  if (!stream.write(`${s.address} ${s.key}\n`)) await new Promise((ok) => stream.once("drain", ok));
}
await new Promise((ok) => stream.end(ok));
console.error(`prepare: stored ${hits} messages of ${size} B; wrote ${pairs} PUT pairs to ${out}`);
