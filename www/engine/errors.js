// @ts-check
// The error code of a rejected client call, and the groups the engine and the screens branch on.

import { ErrorCode } from "../pkg/hush.js";

/**
 * The `ErrorCode` of `err` (a `HushError`), or `Internal` for anything else.
 * @param {unknown} err
 * @returns {number}
 */
export function codeOf(err) {
  const code = err && typeof err === "object" && "code" in err ? err.code : undefined;
  return typeof code === "number" ? code : ErrorCode.Internal;
}

/**
 * This browser's storage failed (or is full): not the mailbox's fault.
 * @param {unknown} err
 */
export const isStorageError = (err) => codeOf(err) === ErrorCode.Storage || codeOf(err) === ErrorCode.StorageFull;

/**
 * The message of `err`, for a console warning (never an address or a message's text: the
 * client's messages name neither).
 * @param {unknown} err
 */
export const messageOf = (err) => (err && typeof err === "object" && "message" in err ? err.message : undefined);
