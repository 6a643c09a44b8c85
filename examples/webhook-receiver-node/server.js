// A complete Herald webhook receiver on Node.js's built-ins (http, crypto): no npm install.
//
// For every POST it verifies the Standard Webhooks signature Herald sends (headers
// webhook-id, webhook-timestamp, webhook-signature) over the raw body, refuses a timestamp
// more than 5 minutes away from this machine's clock (a captured request replayed later), and
// acknowledges each event once: Herald delivers at least once, so a retry or a replay of an
// event already handled is answered 200 again but not handled twice.
//
//   verified, new event        200 {"received":true}               one line on stdout
//   verified, already handled  200 {"received":true,"duplicate":true}
//   anything else              401 {"error":"<why>"}                (405 for other methods,
//                                                                   413 above MAX_BODY_BYTES)
//
// Usage: WEBHOOK_SECRET=whsec_... [PORT=3000] [HOST=127.0.0.1] node server.js
//
// Standard output, one JSON object a line: first {"listening":<port>} (useful with PORT=0,
// any free port), then {"event":<the envelope Herald sent>} for each verified new event.
// Rejections and repeats are logged on standard error. See README.md.
'use strict';

const crypto = require('crypto');
const http = require('http');

const MAX_BODY_BYTES = 5 * 1024 * 1024;
const MAX_REMEMBERED_IDS = 100000;

const TOLERANCE_SECS = 5 * 60; // how far webhook-timestamp may be from this machine's clock

// The HMAC key of a secret, as Herald signs: the base64 after `whsec_`, or the UTF-8 bytes of a
// secret without that prefix (one you chose when registering the endpoint).
function standardKey(secret) {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
}

// Why the request is not a genuine Herald delivery, or null when it is one.
function verifyStandard(key, headers, rawBody, nowSecs) {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (!id || !timestamp || !signatures) return 'missing webhook-id, webhook-timestamp or webhook-signature';
  if (!/^[0-9]{1,15}$/.test(timestamp)) return 'webhook-timestamp is not unix seconds';
  if (Math.abs(nowSecs - Number(timestamp)) > TOLERANCE_SECS) return 'webhook-timestamp is more than 5 minutes away';
  const signed = crypto.createHmac('sha256', key).update(`${id}.${timestamp}.`).update(rawBody).digest('base64');
  const expected = Buffer.from(`v1,${signed}`);
  // One signature per secret during a secret rotation, space-separated: one match is enough.
  for (const candidate of signatures.split(' ')) {
    const given = Buffer.from(candidate);
    // timingSafeEqual throws a RangeError on buffers of different lengths: compare them first.
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) return null;
  }
  return 'no signature matches';
}

// The webhook-ids handled so far (the event's id: the same on every retry and replay). In
// memory for the example, so a restart forgets them; a real receiver records the id in its
// database, in the same transaction as what the event changes.
const handled = new Set();
function firstTime(id) {
  if (handled.has(id)) return false;
  handled.add(id);
  if (handled.size > MAX_REMEMBERED_IDS) handled.delete(handled.values().next().value);
  return true;
}

// What this receiver does with an event: here, print it.
function handle(event) {
  process.stdout.write(JSON.stringify({ event }) + '\n');
}

function answer(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function serve(key) {
  return http.createServer((req, res) => {
    if (req.method !== 'POST') return answer(res, 405, { error: 'send webhooks with POST' });
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) return answer(res, 413, { error: `body over ${MAX_BODY_BYTES} bytes` });
      const body = Buffer.concat(chunks);
      const problem = verifyStandard(key, req.headers, body, Math.floor(Date.now() / 1000));
      if (problem) {
        console.error(`refused ${req.headers['webhook-id'] || '(no webhook-id)'}: ${problem}`);
        return answer(res, 401, { error: problem });
      }
      let event;
      try {
        event = JSON.parse(body.toString('utf8'));
      } catch (e) {
        return answer(res, 400, { error: `the body is not JSON: ${e.message}` });
      }
      const id = req.headers['webhook-id'];
      if (!firstTime(id)) {
        console.error(`repeat of ${id}: already handled`);
        return answer(res, 200, { received: true, duplicate: true });
      }
      handle(event);
      answer(res, 200, { received: true });
    });
    req.on('error', (e) => console.error(`request error: ${e.message}`));
  });
}

const secret = process.env.WEBHOOK_SECRET || '';
if (!secret || (secret.startsWith('whsec_') && standardKey(secret).length === 0)) {
  console.error('set WEBHOOK_SECRET to the endpoint\'s secret (whsec_... or the secret you registered)');
  process.exit(2);
}
const port = Number(process.env.PORT || 3000);
const server = serve(standardKey(secret));
server.listen(port, process.env.HOST || '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n');
});
