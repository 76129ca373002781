// Node.js peer for bench/run: the bench endpoints on node's own http module,
// one process, no npm dependencies.
//
//   PORT=8000 UPSTREAM=http://127.0.0.1:9000 node server.js
//
// Node has one event loop and no thread pool for handlers, so:
//   /sleep/{ms}          setTimeout (the async wait)
//   /sync-sleep/{ms}     not served (404): a blocking wait in Node is the trap
//   /trap/blocking/{ms}  Atomics.wait on the loop thread (time.sleep in async)
//   /cpu/{n}             the sum runs on the loop thread (there is no pool)
'use strict';

const http = require('http');

const port = Number(process.env.PORT || 8000);
const host = process.env.HOST || '127.0.0.1';
const upstream = process.env.UPSTREAM || '';
const blocker = new Int32Array(new SharedArrayBuffer(4));
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function json(res, status, obj) {
  send(res, status, 'application/json', JSON.stringify(obj));
}

function msParam(res, s) {
  const ms = Number(s);
  if (!Number.isInteger(ms) || ms < 0 || ms > 60000) {
    json(res, 422, { detail: 'ms must be between 0 and 60000' });
    return -1;
  }
  return ms;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function getJson(url) {
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (r) => {
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => {
        if (r.statusCode !== 200) return reject(new Error('upstream ' + r.statusCode));
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString()));
        } catch (e) {
          reject(e);
        }
      });
    }).on('error', reject);
  });
}

async function scenario(res) {
  const t0 = Date.now();
  const step = async (name, ms) => {
    const s = Date.now();
    await sleep(ms);
    return { name, wait_ms: ms, took_ms: Date.now() - s };
  };
  const steps = await Promise.all([step('database', 200), step('compute', 1),
    step('external_api', 1000)]);
  json(res, 200, { steps, total_ms: Date.now() - t0 });
}

async function fetchMultiple(res) {
  if (!upstream) return json(res, 404, { detail: 'Not Found' });
  try {
    const users = await Promise.all([getJson(upstream + '/users/octocat'),
      getJson(upstream + '/users/torvalds')]);
    json(res, 200, users);
  } catch (e) {
    json(res, 502, { detail: String(e.message) });
  }
}

const server = http.createServer((req, res) => {
  const url = req.url;
  let m;
  if (req.method !== 'GET') return json(res, 405, { detail: 'Method Not Allowed' });
  if (url === '/plaintext') return send(res, 200, 'text/plain', 'Hello, World!');
  if (url === '/json') return json(res, 200, { message: 'Hello, World!' });
  if (url === '/health') return json(res, 200, { status: 'ok' });
  if ((m = /^\/sleep\/(\d+)$/.exec(url))) {
    const ms = msParam(res, m[1]);
    if (ms >= 0) setTimeout(() => json(res, 200, { slept_ms: ms }), ms);
    return;
  }
  if ((m = /^\/trap\/blocking\/(\d+)$/.exec(url))) {
    const ms = msParam(res, m[1]);
    if (ms < 0) return;
    Atomics.wait(blocker, 0, 0, ms); // blocks the event loop on purpose
    return json(res, 200, { slept_ms: ms });
  }
  if ((m = /^\/cpu\/(\d+)$/.exec(url))) {
    const n = Number(m[1]);
    let s = 0;
    for (let i = 0; i < n; i++) s += i;
    return json(res, 200, { source: 'sync', n, result: s });
  }
  if (url === '/scenario') return void scenario(res);
  if (url === '/fetch-multiple') return void fetchMultiple(res);
  json(res, 404, { detail: 'Not Found' });
});

server.keepAliveTimeout = 75000;
server.listen(port, host);
process.on('SIGTERM', () => process.exit(0));
