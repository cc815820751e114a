// The fast fake upstream of bench/performance.py: canned Anthropic Messages answers, nothing else.
//
// Why not the product's simulator: it is Python and serves a few thousand requests/s on this
// machine, below what the gateway in front of it can pass, so it would measure itself. Node's
// http module on one core serves ~20k requests/s here, with timers cheap enough for thousands of
// concurrent slow streams. The product never runs this; only the benchmark does.
//
// Usage: node fake_upstream.js PORT
//   POST /v1/messages           JSON answer (usage: 12 in, 1 out)
//   ... with [[delay:N]] in body the first byte N ms after the request
//   ... with "stream":true      26 SSE events (message_start, block start, ping, 20 deltas,
//                               block stop, message_delta, message_stop), written at once
//   ... with [[long]] in body   200 deltas 20 ms apart (a realistic long stream)
//   GET /count                  how many /v1/messages answers were started (the books' check)
"use strict";

const http = require("http");

const port = Number(process.argv[2]);
const LONG_EVENTS = 200;
const LONG_GAP_MS = 20;

const DELAY = /\[\[delay:(\d+)\]\]/;
let started = 0;
let nextId = 0;

const JSON_HEADERS = { "content-type": "application/json" };
const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" };

function messageJson(id) {
  return JSON.stringify({
    id,
    type: "message",
    role: "assistant",
    model: "claude-haiku-4-5",
    content: [{ type: "text", text: "ok" }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: 12, output_tokens: 1 },
  });
}

function event(name, data) {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

const DELTA = event("content_block_delta", {
  type: "content_block_delta",
  index: 0,
  delta: { type: "text_delta", text: "tok " },
});

function head(id) {
  const start = {
    type: "message_start",
    message: {
      id,
      type: "message",
      role: "assistant",
      model: "claude-haiku-4-5",
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 12, output_tokens: 1 },
    },
  };
  return (
    event("message_start", start) +
    event("content_block_start", {
      type: "content_block_start",
      index: 0,
      content_block: { type: "text", text: "" },
    }) +
    event("ping", { type: "ping" })
  );
}

function tail(outputTokens) {
  return (
    event("content_block_stop", { type: "content_block_stop", index: 0 }) +
    event("message_delta", {
      type: "message_delta",
      delta: { stop_reason: "end_turn", stop_sequence: null },
      usage: { output_tokens: outputTokens },
    }) +
    event("message_stop", { type: "message_stop" })
  );
}

const SHORT_DELTAS = DELTA.repeat(20);

// Long streams: one timer for all of them, so 5,000 open streams cost one wake-up per 20 ms.
const longStreams = new Set();
setInterval(() => {
  for (const stream of longStreams) {
    if (stream.res.destroyed) {
      longStreams.delete(stream);
      continue;
    }
    stream.left -= 1;
    if (stream.left > 0) {
      stream.res.write(DELTA);
    } else {
      longStreams.delete(stream);
      stream.res.end(DELTA + tail(LONG_EVENTS));
    }
  }
}, LONG_GAP_MS).unref();

function answer(res, body) {
  started += 1;
  nextId += 1;
  const id = `msg_bench${nextId}`;
  if (!body.includes('"stream":true')) {
    res.writeHead(200, JSON_HEADERS);
    res.end(messageJson(id));
    return;
  }
  res.writeHead(200, SSE_HEADERS);
  if (body.includes("[[long]]")) {
    res.write(head(id));
    longStreams.add({ res, left: LONG_EVENTS });
    return;
  }
  res.end(head(id) + SHORT_DELTAS + tail(20));
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/count") {
    res.writeHead(200, JSON_HEADERS);
    res.end(JSON.stringify({ started }));
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString();
    const delay = DELAY.exec(body);
    const delayMs = delay ? Number(delay[1]) : 0;
    if (delayMs > 0) {
      setTimeout(() => answer(res, body), delayMs);
    } else {
      answer(res, body);
    }
  });
});
server.keepAliveTimeout = 120000;
server.headersTimeout = 121000;
// A deep accept queue: thousands of long streams connect at once (the default 511 dropped some).
server.listen(port, "127.0.0.1", 8192, () => process.stdout.write("ready\n"));
