// bkend's webhook receiver (shared/seeds/bkend-webhooks.ko.md, "Node.js (Express) 예시"),
// copied as the page writes it: not one character below this comment is changed. The page
// labels it TypeScript but it has no type annotations, so Node runs it as an ES module.
// sendWelcomeEmail and notifySlack are the application's own functions, which the page does
// not define: ../seed-harness.cjs provides them as recorders. Run by
// crates/herald/tests/it/interop.rs: node --require ./seed-harness.cjs seeds/bkend-receiver.mjs
import express from 'express';

const app = express();
app.use(express.json());

app.post('/webhook', (req, res) => {
  const event = req.body;

  console.log(`�벤트 수신: ${event.eventType}`);
  console.log(`리소스: ${event.aggregateType} (${event.aggregateId})`);

  // �벤트 타�별 처리
  switch (event.eventType) {
    case 'user.created':
      // 새 사용� 환� �메� 발송
      sendWelcomeEmail(event.payload.email);
      break;
    case 'order.completed':
      // 주문 완료 슬� 알림
      notifySlack(`주문 완료: ${event.aggregateId}`);
      break;
    default:
      console.log(`처리하지 않는 �벤트: ${event.eventType}`);
  }

  // 빠르게 2xx �답 반환
  res.status(200).json({ received: true });
});

app.listen(3000, () => {
  console.log('웹훅 서버 시�: http://localhost:3000');
});
