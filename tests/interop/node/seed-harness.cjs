// Runs a seed's webhook receiver unchanged under Herald's interop tests
// (crates/herald/tests/it/interop.rs): `node --require ./seed-harness.cjs seeds/<file>`.
//
// The seeds' receivers listen on port 3000, log with console.log and call application
// functions they do not define (sendWelcomeEmail, notifySlack, ...). So that they run as
// written, this file, loaded before them:
// - makes every server listen on a free loopback port instead, and prints {"listening": PORT};
// - records console.log/console.error calls as {"log": [args], "in": "<calling function>"};
// - records every request and its answer as {"request": {method, path, status, answer}};
// - defines the application functions as recorders, {"call": NAME, "args": [...]};
//   findPlayer answers true for the ids in KNOWN_PLAYERS (comma-separated);
// - for snippets that assume an Express `app` (GroMach's), provides one with express.json()
//   when SEED_APP=1, and YOUR_SECRET_KEY from WEBHOOK_SECRET.
// Every record is one JSON line on stdout.
'use strict';

const http = require('http');
const util = require('util');

function emit(record) {
  process.stdout.write(JSON.stringify(record) + '\n');
}

// The function that called console.log: the second "at" line of a fresh stack.
function caller() {
  const line = (new Error().stack || '').split('\n')[3] || '';
  const match = line.match(/at (?:new )?([\w$.<>]+) \(/);
  return match ? match[1] : null;
}

for (const level of ['log', 'error', 'warn', 'info']) {
  console[level] = (...args) => {
    const values = args.map((a) => (typeof a === 'object' && a !== null ? a : typeof a === 'string' ? a : util.inspect(a)));
    emit({ log: values, level, in: caller() });
  };
}

const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  const callback = args.find((a) => typeof a === 'function');
  this.on('request', (req, res) => {
    const chunks = [];
    const write = res.write.bind(res);
    const end = res.end.bind(res);
    res.write = (chunk, ...rest) => { if (chunk) chunks.push(Buffer.from(chunk)); return write(chunk, ...rest); };
    res.end = (chunk, ...rest) => { if (chunk && typeof chunk !== 'function') chunks.push(Buffer.from(chunk)); return end(chunk, ...rest); };
    res.on('finish', () => {
      emit({ request: { method: req.method, path: req.url, status: res.statusCode, answer: Buffer.concat(chunks).toString() } });
    });
  });
  this.once('listening', () => emit({ listening: this.address().port }));
  return listen.call(this, 0, '127.0.0.1', callback);
};

function recorder(name) {
  return (...args) => emit({ call: name, args });
}
global.sendWelcomeEmail = recorder('sendWelcomeEmail');
global.notifySlack = recorder('notifySlack');
global.saveArticles = recorder('saveArticles');
global.updatePlayer = recorder('updatePlayer');
const known = new Set((process.env.KNOWN_PLAYERS || '').split(',').filter(Boolean));
global.findPlayer = (id) => {
  emit({ call: 'findPlayer', args: [id] });
  return known.has(id);
};

if (process.env.SEED_APP === '1') {
  const express = require('express');
  global.YOUR_SECRET_KEY = process.env.WEBHOOK_SECRET;
  global.app = express();
  global.app.use(express.json());
  // After the snippet has registered its routes (it runs right after this file).
  setImmediate(() => global.app.listen(3000));
}
