// The client side of bench/performance.py's long streams: CONNS keep-alive connections, each
// sending requests back to back until SECONDS have passed, timing each answer's first byte.
//
// Why Node.js: at 5,000 concurrent streams of 50 events/s the Python client could not read the
// direct upstream as fast as it wrote, so the ratio measured the client. Node's HTTP parser is C
// and its loop cheap per read; bench/performance.py runs several of these processes at once.
//
// Usage: node long_client.js URL CONNS SECONDS BODY_FILE KEYS_FILE
//   KEYS_FILE: one API key a line (sent as x-api-key, spread over the connections)
// Prints one JSON line: {"first_ms": [...], "whole": N, "failed": N, "seconds": S}
"use strict";

const fs = require("fs");
const http = require("http");

const [url, connsArg, secondsArg, bodyFile, keysFile] = process.argv.slice(2);
const conns = Number(connsArg);
const seconds = Number(secondsArg);
const body = fs.readFileSync(bodyFile);
const keys = fs.readFileSync(keysFile, "utf8").split("\n").filter((k) => k);
const target = new URL(url + "/v1/messages");

const firstMs = [];
let whole = 0;
let failed = 0;
const started = process.hrtime.bigint();
const deadline = Date.now() + seconds * 1000;

function elapsedMs(since) {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

function connection(n) {
  // One agent per connection: each loop keeps its own socket, as the Python client did.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let i = n;
  return new Promise((done) => {
    const next = () => {
      if (Date.now() >= deadline) {
        agent.destroy();
        done();
        return;
      }
      const key = keys[i % keys.length];
      i += conns;
      const sent = process.hrtime.bigint();
      let settled = false;
      const finish = (first) => {
        if (settled) return; // an error after the end, or both sides' errors: counted once
        settled = true;
        if (first === null) {
          failed += 1;
          setTimeout(next, 10);
        } else {
          firstMs.push(first);
          whole += 1;
          next();
        }
      };
      const req = http.request(
        target,
        {
          method: "POST",
          agent,
          headers: {
            "content-type": "application/json",
            "anthropic-version": "2023-06-01",
            "x-api-key": key,
            "content-length": body.length,
          },
        },
        (res) => {
          const first = elapsedMs(sent);
          res.on("data", () => {});
          res.on("end", () => finish(res.statusCode === 200 ? first : null));
          res.on("error", () => finish(null));
        },
      );
      req.on("error", () => finish(null));
      req.end(body);
    };
    next();
  });
}

Promise.all(Array.from({ length: conns }, (_, n) => connection(n))).then(() => {
  const out = { first_ms: firstMs, whole, failed, seconds: elapsedMs(started) / 1000 };
  process.stdout.write(JSON.stringify(out) + "\n");
});
