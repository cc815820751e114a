// The client side of bench/performance.py's long streams: CONNS keep-alive connections, each
// sending requests back to back until SECONDS have passed, timing each answer's first byte.
//
// Why Node.js: at 5,000 concurrent streams of 50 events/s the Python client could not read the
// direct upstream as fast as it wrote, so the ratio measured the client. Node's HTTP parser is C
// and its loop cheap per read; bench/performance.py runs several of these processes at once.
//
// Two ways to start, because a long stream lives for seconds. Without RAMP every connection asks
// at once: the opening burst, whose first requests are timed apart (burst_first_ms). With RAMP
// the connections start spread evenly over RAMP seconds (a stream's life), so that the streams'
// ends, and with them the next starts, stay spread: with every stream the same length, streams
// started together would end together and the load would be a burst every life, never a steady
// state. The steady window runs from STEADY_FROM seconds to SECONDS: the streams that ended in it
// (the rate) and the first bytes of the requests sent in it.
//
// Usage: node long_client.js URL CONNS SECONDS BODY_FILE KEYS_FILE [RAMP STEADY_FROM]
//   KEYS_FILE: one API key a line (sent as x-api-key, spread over the connections)
// Prints one JSON line: {"first_ms": [...], "whole": N, "failed": N, "seconds": S,
//   "burst_first_ms": [...], "steady_first_ms": [...], "steady_whole": N, "steady_seconds": S}
"use strict";

const fs = require("fs");
const http = require("http");

const [url, connsArg, secondsArg, bodyFile, keysFile, rampArg, steadyArg] = process.argv.slice(2);
const conns = Number(connsArg);
const seconds = Number(secondsArg);
const ramp = Number(rampArg || 0);
const steadyFrom = Number(steadyArg || 0);
const body = fs.readFileSync(bodyFile);
const keys = fs.readFileSync(keysFile, "utf8").split("\n").filter((k) => k);
const target = new URL(url + "/v1/messages");

const firstMs = [];
const burstFirstMs = [];
const steadyFirstMs = [];
let whole = 0;
let steadyWhole = 0;
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
  let opening = true;
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
      const sentAt = elapsedMs(started) / 1000;
      const burst = opening;
      opening = false;
      let settled = false;
      const finish = (first) => {
        if (settled) return; // an error after the end, or both sides' errors: counted once
        settled = true;
        if (first === null) {
          failed += 1;
          setTimeout(next, 10);
        } else {
          const endedAt = elapsedMs(started) / 1000;
          firstMs.push(first);
          whole += 1;
          if (burst && !ramp) burstFirstMs.push(first);
          if (steadyArg && sentAt >= steadyFrom && sentAt < seconds) steadyFirstMs.push(first);
          if (steadyArg && endedAt >= steadyFrom && endedAt < seconds) steadyWhole += 1;
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
    setTimeout(next, (n / conns) * ramp * 1000);
  });
}

Promise.all(Array.from({ length: conns }, (_, n) => connection(n))).then(() => {
  const out = {
    first_ms: firstMs,
    whole,
    failed,
    seconds: elapsedMs(started) / 1000,
    burst_first_ms: burstFirstMs,
    steady_first_ms: steadyFirstMs,
    steady_whole: steadyWhole,
    steady_seconds: Math.max(0, seconds - steadyFrom),
  };
  process.stdout.write(JSON.stringify(out) + "\n");
});
