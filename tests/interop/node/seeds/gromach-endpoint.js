// GroMach's complete test endpoint (shared/seeds/gromach-webhook-integration.ko.txt,
// "테스트 엔드포인트에서 요청을 처리하는 전체 예제입니다"), copied as the page writes it, with
// one line added: `saveArticles(articles);`, the application's own work the page leaves as
// the comment "Save to your database", here a recorder. The page's snippet assumes an
// Express `app` (with express.json()) and YOUR_SECRET_KEY: ../seed-harness.cjs provides them.
// Run by crates/herald/tests/it/interop.rs:
// node --require ./seed-harness.cjs seeds/gromach-endpoint.js
const crypto = require('crypto');
app.post('/webhook', (req, res) => {
const signature = req.headers['x-webhook-signature'];
const payload = JSON.stringify(req.body);
// Step 1: Verify the signature
const computedSignature = crypto
.createHmac('sha256', YOUR_SECRET_KEY)
.update(payload)
.digest('hex');
const isValid = crypto.timingSafeEqual(
Buffer.from(signature, 'hex'),
Buffer.from(computedSignature, 'hex')
);
if (!isValid) {
return res.status(401).json({
success: false,
error: 'Invalid signature'
});
}
// Step 2: Process based on event type
if (req.body.event_type === 'test') {
// Test connection - just return success
return res.json({ success: true });
}
if (req.body.event_type === 'publish_articles') {
// Process articles...
const articles = req.body.data.articles;
saveArticles(articles);
// Save to your database, etc.
return res.json({ success: true });
}
res.json({ success: true });
});
