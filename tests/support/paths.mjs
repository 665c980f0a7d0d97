// One origin with the site and the mailbox under paths, as a host that routes by path has it
// (issue 16, item 2): a small reverse proxy in front of one `mailbox-server --www`, serving
//   /app/…  the site (the server's /…),
//   /mb/…   the mailbox (the server's /v1/…, so `${url}/mb` is the mailbox's base URL),
// and 404 for everything else, the bare origin's /v1/… included.
//
// `holdPuts = true` answers every mailbox PUT with 503 without passing it on (a mailbox that
// stores nothing for a while); `requests` lists "METHOD /path" of every mailbox request.

import { createServer, request } from "node:http";

/** Starts the proxy on a free loopback port in front of `upstream` ({ port }). */
export async function startPathSite(upstream) {
  const state = { holdPuts: false, requests: [] };
  const server = createServer((req, res) => {
    const path = req.url;
    let target = null;
    if (path === "/app") {
      res.writeHead(301, { Location: "/app/" }).end();
      return;
    }
    if (path.startsWith("/app/")) target = path.slice("/app".length);
    else if (path.startsWith("/mb/")) {
      target = path.slice("/mb".length);
      state.requests.push(`${req.method} ${path}`);
      if (state.holdPuts && req.method === "PUT") {
        req.resume();
        res.writeHead(503, { "Access-Control-Allow-Origin": "*", "Content-Type": "text/plain" }).end("held by the test");
        return;
      }
    }
    if (target === null) {
      req.resume();
      res.writeHead(404, { "Access-Control-Allow-Origin": "*", "Content-Type": "text/plain" }).end("not found");
      return;
    }
    const headers = { ...req.headers, host: `127.0.0.1:${upstream.port}` };
    // A connection of its own per request (`agent: false`): through Node's keep-alive agent a
    // request could go out on a connection the mailbox-server was just closing as idle, and
    // the reset came back as a 502 that no browser would have met (seen under load).
    const forward = request({ host: "127.0.0.1", port: upstream.port, method: req.method, path: target, headers, agent: false }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    forward.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(forward);
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    async stop() {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    },
  };
}
