// The seeds' Express webhook receiver, run by Herald's interop tests
// (crates/herald/tests/it/interop.rs) to show that receivers written from the seeds accept
// Herald's deliveries as they are.
//
// The structure (a WebhookHandler class, express.json() then a signature middleware, routes
// /webhook/users and /webhook/worlds reading `const { event, data } = req.body`, the secret
// from WEBHOOK_SECRET) is the Gatrix guide's receiver
// (shared/seeds/gatrix-api-webhooks-guide.ko.md). Its signature check is GroMach's
// (shared/seeds/gromach-webhook-integration.ko.txt): `x-webhook-signature` is the hex
// HMAC-SHA256 of JSON.stringify(req.body) keyed by the secret, compared with
// crypto.timingSafeEqual, 401 on mismatch. verifySignature below is GroMach's, verbatim.
//
// Usage: WEBHOOK_SECRET=... node seed-receiver.js PORT   (PORT 0: any free port)
// Prints one JSON line per request to stdout, after a first line {"listening": PORT}:
//   {"verdict": "accepted" | "rejected", "path", "event", "id", "data"}
'use strict';

const express = require('express');
const crypto = require('crypto');

function verifySignature(payload, signature, secret) {
  const computedSignature = crypto
    .createHmac('sha256', secret)
    .update(payload)
    .digest('hex');
  return crypto.timingSafeEqual(
    Buffer.from(signature, 'hex'),
    Buffer.from(computedSignature, 'hex')
  );
}

// The test's record of each request (the seeds log with console.log instead).
function record(verdict, req) {
  const body = req.body || {};
  const line = { verdict, path: req.path, event: body.event, id: body.id, data: body.data };
  process.stdout.write(JSON.stringify(line) + '\n');
}

class WebhookHandler {
  constructor(secret) {
    this.secret = secret;
    this.app = express();
    this.setupMiddleware();
    this.setupRoutes();
  }

  setupMiddleware() {
    this.app.use(express.json());
    this.app.use(this.verifySignature.bind(this));
  }

  verifySignature(req, res, next) {
    const signature = req.headers['x-webhook-signature'];
    const payload = JSON.stringify(req.body);
    if (!verifySignature(payload, signature, this.secret)) {
      record('rejected', req);
      return res.status(401).json({ error: 'Invalid signature' });
    }
    next();
  }

  setupRoutes() {
    this.app.post('/webhook/users', (req, res) => {
      const { event } = req.body;
      switch (event) {
        case 'user.created':
        case 'user.updated':
        case 'user.deleted':
          break;
        default:
          console.error('unknown user event:', event);
      }
      record('accepted', req);
      res.status(200).json({ received: true });
    });

    this.app.post('/webhook/worlds', (req, res) => {
      const { event } = req.body;
      switch (event) {
        case 'world.maintenance_started':
        case 'world.maintenance_ended':
          break;
        default:
          console.error('unknown world event:', event);
      }
      record('accepted', req);
      res.status(200).json({ received: true });
    });
  }

  start(port) {
    const server = this.app.listen(port, '127.0.0.1', () => {
      process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n');
    });
  }
}

if (!process.env.WEBHOOK_SECRET) {
  console.error('set WEBHOOK_SECRET');
  process.exit(2);
}
const port = Number(process.argv[2] || 3000);
new WebhookHandler(process.env.WEBHOOK_SECRET).start(port);
