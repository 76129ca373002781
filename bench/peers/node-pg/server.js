// Node.js + node-pg peer for the TechEmpower tests in bench/run.
//
//   DATABASE_URL=postgresql://... POOL_SIZE=8 PORT=8000 node server.js
//
// Written the way Node's TechEmpower entries are: node's own http module, one
// pg.Pool, named (prepared) statements, the N queries of a request issued at
// once with Promise.all (the pool spreads them over its connections), one
// batched UPDATE per request, the fortunes page built as a string. Node
// sets the Date header itself; Server is ours to add.
'use strict';

const http = require('http');
const { Pool } = require('pg');

const port = Number(process.env.PORT || 8000);
const host = process.env.HOST || '127.0.0.1';
const pool = new Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.POOL_SIZE || 8),
});

const worldQuery = (id) => ({
  name: 'world',
  text: 'SELECT id, randomNumber AS "randomNumber" FROM World WHERE id = $1',
  values: [id],
});
const fortuneQuery = { name: 'fortunes', text: 'SELECT id, message FROM Fortune' };
const updateText = 'UPDATE World SET randomNumber = v.r FROM ' +
  '(SELECT unnest($1::int[]) AS id, unnest($2::int[]) AS r) AS v WHERE World.id = v.id';

const cache = new Map();

const randomId = () => 1 + Math.floor(Math.random() * 10000);

function count(url, name) {
  const q = url.indexOf('?');
  const n = q < 0 ? NaN : parseInt(new URLSearchParams(url.slice(q + 1)).get(name), 10);
  if (Number.isNaN(n) || n < 1) return 1;
  return n > 500 ? 500 : n;
}

function send(res, type, body) {
  res.writeHead(200, {
    Server: 'node',
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

const json = (res, obj) => send(res, 'application/json', JSON.stringify(obj));

const escapes = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (s) => s.replace(/[&<>"']/g, (c) => escapes[c]);

async function oneWorld() {
  return (await pool.query(worldQuery(randomId()))).rows[0];
}

const worlds = (n) => Promise.all(Array.from({ length: n }, oneWorld));

async function fortunes(res) {
  const rows = (await pool.query(fortuneQuery)).rows;
  rows.push({ id: 0, message: 'Additional fortune added at request time.' });
  rows.sort((a, b) => (a.message < b.message ? -1 : a.message > b.message ? 1 : 0));
  let html = '<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>' +
    '<tr><th>id</th><th>message</th></tr>';
  for (const f of rows) html += `<tr><td>${f.id}</td><td>${escape(f.message)}</td></tr>`;
  send(res, 'text/html; charset=utf-8', html + '</table></body></html>');
}

async function updates(res, n) {
  const rows = await worlds(n);
  for (const w of rows) w.randomNumber = randomId();
  // sorted ids: concurrent batches then lock rows in one order
  const sorted = [...rows].sort((a, b) => a.id - b.id);
  await pool.query(updateText, [sorted.map((w) => w.id), sorted.map((w) => w.randomNumber)]);
  json(res, rows);
}

function cached(res, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const id = randomId();
    out.push({ id, randomNumber: cache.get(id) });
  }
  json(res, out);
}

function route(req, res) {
  const url = req.url;
  const path = url.split('?', 1)[0];
  switch (path) {
    case '/plaintext': return send(res, 'text/plain', 'Hello, World!');
    case '/json': return json(res, { message: 'Hello, World!' });
    case '/db': return oneWorld().then((w) => json(res, w));
    case '/queries': return worlds(count(url, 'queries')).then((r) => json(res, r));
    case '/fortunes': return fortunes(res);
    case '/updates': return updates(res, count(url, 'queries'));
    case '/cached-queries': return cached(res, count(url, 'count'));
    default:
      res.writeHead(404, { Server: 'node', 'Content-Type': 'text/plain' });
      return res.end('Not Found');
  }
}

const server = http.createServer((req, res) => {
  Promise.resolve(route(req, res)).catch((e) => {
    res.writeHead(500, { Server: 'node', 'Content-Type': 'text/plain' });
    res.end(String(e.message));
  });
});

async function main() {
  const { rows } = await pool.query('SELECT id, randomNumber AS "randomNumber" FROM World');
  for (const w of rows) cache.set(w.id, w.randomNumber);
  server.keepAliveTimeout = 75000;
  server.listen(port, host);
}

process.on('SIGTERM', () => process.exit(0));
main().catch((e) => {
  console.error('node-pg peer:', e.message);
  process.exit(1);
});
