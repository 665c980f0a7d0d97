// @ts-check
// A module Web Worker that derives the vault key (Unicode NFC, then Argon2id: ~1 s and about
// 130 MB of WebAssembly memory with the default parameters) off the page's thread, so the
// page stays responsive and a failed allocation cannot freeze or break it. Started by
// ./unlock.js for one derivation, then ended, which frees that memory.
//
// In:  { kdfInput: Uint8Array (29 bytes, nothing secret), passphrase: string }.
// Out: { key: Uint8Array (32 bytes) } with its ArrayBuffer transferred (not copied), or
//      { error: { name, code, message } } (`code`: an ErrorCode number, or null for a
//      JavaScript exception such as a RangeError from a WebAssembly memory that cannot grow).
// The derivation itself is the wasm client's (deriveVaultKey in wasm-client/src/api.rs).

import init, { deriveVaultKey } from "./pkg/hush.js";

self.onmessage = async ({ data }) => {
  try {
    await init();
    const key = deriveVaultKey(data.kdfInput, data.passphrase);
    self.postMessage({ key }, [key.buffer]);
  } catch (err) {
    self.postMessage({
      error: {
        name: String(err?.name ?? "Error"),
        code: typeof err?.code === "number" ? err.code : null,
        message: String(err?.message ?? err),
      },
    });
  }
};
