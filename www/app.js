// Hush web app entry: loads the wasm client and reports readiness.
import init, { clientVersion } from "./pkg/hush.js";

const status = document.getElementById("status");

try {
  await init();
  status.textContent = `Client ready (v${clientVersion()}).`;
  document.body.dataset.state = "ready";
} catch (err) {
  status.textContent = "This browser could not start the Hush client.";
  document.body.dataset.state = "error";
  console.error(err);
}
