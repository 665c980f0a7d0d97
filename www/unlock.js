// @ts-check
// Unlock and set-up with the vault key derived in a Web Worker (./unlock-worker.js): the
// page asks the client for the vault's key-derivation input (salt and parameters, nothing
// secret), the worker derives the key from it and the passphrase, and the client here opens
// (or creates) the vault with that key, checking it exactly as `client.unlock` does. The
// page's thread never runs Argon2id, so it is never frozen for the second it takes, and a
// device short of memory gets ErrorCode.OutOfMemory instead of a broken page.
//
// The key crosses as one Uint8Array: created in the worker, its buffer transferred (moved,
// not copied) to this thread, copied once into the client's zeroized memory by
// unlockWithKey/createVaultWithKey, which wipe it; it is wiped again here on every path.

import { ErrorCode } from "./pkg/hush.js";

/** What the person sees when the worker cannot allocate the memory Argon2id needs. */
export const NOT_ENOUGH_MEMORY =
  "This device does not have enough free memory to unlock Hush (it needs about 130 MB). Close other tabs or apps and try again.";

/** Unlocks `client` with `passphrase`; rejects as `client.unlock` does, or with OutOfMemory. */
export async function unlockInWorker(client, passphrase) {
  const kdfInput = await client.vaultKdfInput();
  const key = await deriveInWorker(kdfInput, passphrase);
  if (!key) return client.unlock(passphrase);
  try {
    await client.unlockWithKey(key);
  } finally {
    key.fill(0);
  }
}

/**
 * Whether a new vault takes the cheapest Argon2id parameters RFC 9106 allows instead of the
 * default 128 MiB and 8 passes: only where the end-to-end suites ask for it (an init script
 * of tests/support/browser.mjs sets `hushTestFastKdf`, so that the hundreds of vaults they
 * make do not spend most of CI's CPU in Argon2id), and only on a loopback origin, so that no
 * page of a deployed site can ever take it. The parameters are recorded in the vault's
 * header, and unlocking follows what is recorded there.
 * tests/app-unlock-worker.test.mjs and the benches that time set-up or unlock
 * (tests/bench/client-figures.mjs, tests/bench/first-load.mjs) keep the default.
 */
function fastKdfForTests() {
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(globalThis.location?.hostname ?? "");
  return loopback && /** @type {{ hushTestFastKdf?: unknown }} */ (globalThis).hushTestFastKdf === true;
}

/** Creates the vault of `client` with `passphrase` and leaves it unlocked (as `createVault`). */
export async function createVaultInWorker(client, passphrase) {
  const fast = fastKdfForTests();
  const kdfInput = client.newVaultKdfInput(fast);
  const key = await deriveInWorker(kdfInput, passphrase);
  if (!key) return client.createVault(passphrase, fast);
  try {
    await client.createVaultWithKey(kdfInput, key);
  } finally {
    key.fill(0);
  }
}

/**
 * The 32-byte key from a worker started for this derivation alone and ended after it.
 * Resolves to `null` only where this browser cannot start a module worker at all (the caller
 * then derives on this thread). Rejects with an Error whose `code` is an ErrorCode: the
 * worker's own, or OutOfMemory for a RangeError (WebAssembly memory that cannot be reserved
 * or grown) or a WebAssembly trap (RuntimeError) during the derivation, or Internal.
 */
function deriveInWorker(kdfInput, passphrase) {
  let worker;
  try {
    worker = new Worker(new URL("./unlock-worker.js", import.meta.url), { type: "module", name: "hush-unlock" });
  } catch {
    return Promise.resolve(null);
  }
  return new Promise((resolve, reject) => {
    const fail = (error) => {
      worker.terminate();
      const err = /** @type {Error & { code?: number }} */ (new Error(error.message));
      err.name = "HushError";
      err.code =
        error.code ?? (error.name === "RangeError" || error.name === "RuntimeError" ? ErrorCode.OutOfMemory : ErrorCode.Internal);
      reject(err);
    };
    worker.onmessage = ({ data }) => {
      if (data.key) {
        worker.terminate();
        resolve(data.key);
      } else {
        fail(data.error);
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      fail({ name: "Error", code: null, message: `the unlock worker failed: ${event.message || "it could not start"}` });
    };
    worker.onmessageerror = () => fail({ name: "Error", code: null, message: "the unlock worker's answer could not be read" });
    worker.postMessage({ kdfInput, passphrase });
  });
}
