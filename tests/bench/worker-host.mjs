// Serves the built edge worker in workerd (miniflare) for the load benchmark until SIGTERM.
// Prints "worker listening on URL" once ready. Env: HUSH_EDGE_WORKER_DIR.

import { startWorker } from "../support/servers.mjs";

const host = await startWorker({ ttl: 604800 });
console.log(`worker listening on ${host.url}`);
const stop = async () => {
  await host.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
