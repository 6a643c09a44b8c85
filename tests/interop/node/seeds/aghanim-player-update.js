// A player.update consumer written from Aghanim's page (shared/seeds/aghanim-player-update-webhook.ko.txt).
// The page has no receiver code, only the request (User-Agent, X-Aghanim-Signature,
// X-Aghanim-Signature-Timestamp, the body's fields) and the answers ({"status": "ok"}, or
// 200 with {"status": "error", "code", "message"}). This is the smallest receiver that does
// what the page says, written the way a studio would: it reads the fields the page names and
// checks the signature as the hex HMAC-SHA256 of the raw body (the page does not say which
// bytes are signed; Herald signs the raw body: docs/WEBHOOKS.md). findPlayer and
// updatePlayer are the game's own functions: ../seed-harness.cjs provides them as recorders.
// Run by crates/herald/tests/it/interop.rs:
// AGHANIM_WEBHOOK_SECRET=... node --require ./seed-harness.cjs seeds/aghanim-player-update.js
'use strict';

const crypto = require('crypto');
const express = require('express');

const app = express();
app.use(express.json({ verify: (req, res, buf) => { req.rawBody = buf; } }));

function signatureValid(req) {
  const signature = req.headers['x-aghanim-signature'] || '';
  const expected = crypto
    .createHmac('sha256', process.env.AGHANIM_WEBHOOK_SECRET)
    .update(req.rawBody)
    .digest('hex');
  return signature.length === expected.length &&
    crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
}

app.post('/aghanim/webhook', (req, res) => {
  if (!signatureValid(req)) {
    return res.json({ status: 'error', code: 'invalid_signature', message: '서명이 유효하지 않았습니다' });
  }
  const { event_type, event_data, event_time, event_id, game_id } = req.body;
  if (event_type === 'player.update') {
    if (!event_data || !event_data.player_id) {
      return res.json({ status: 'error', code: 'validation_error', message: 'player_id is required' });
    }
    if (!findPlayer(event_data.player_id)) {
      return res.json({ status: 'error', code: 'not_found', message: '플레이어를 찾을 수 없습니다' });
    }
    updatePlayer(event_data.player_id, {
      name: event_data.name,
      email: event_data.email,
      avatarUrl: event_data.avatar_url,
      updatedAt: new Date(event_time * 1000).toISOString(),
      eventId: event_id,
      gameId: game_id,
      signedAt: Number(req.headers['x-aghanim-signature-timestamp']),
      userAgent: req.headers['user-agent'],
    });
  }
  res.json({ status: 'ok' });
});

app.listen(3000);
