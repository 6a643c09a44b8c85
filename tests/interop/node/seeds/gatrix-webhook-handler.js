// The Gatrix guide's webhook receiver (shared/seeds/gatrix-api-webhooks-guide.ko.md,
// "웹훅 엔드포인트 생성"), copied as the guide writes it: not one character below this
// comment is changed (the guide's own text carries U+FFFD where its Korean was damaged).
// Its handlers only log, so the interop tests read its console.log calls, which
// ../seed-harness.cjs records with the method that made them. Run by
// crates/herald/tests/it/interop.rs: node --require ./seed-harness.cjs seeds/gatrix-webhook-handler.js
const express = require('express');
const crypto = require('crypto');

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
  
  // 웹훅 서명 검�
  verifySignature(req, res, next) {
    const signature = req.headers['x-gatrix-signature'];
    const payload = JSON.stringify(req.body);
    const expectedSignature = crypto
      .createHmac('sha256', this.secret)
      .update(payload)
      .digest('hex');
    
    if (signature !== expectedSignature) {
      return res.status(401).json({ error: 'Invalid signature' });
    }
    
    next();
  }
  
  setupRoutes() {
    // 사용� 관련 웹훅
    this.app.post('/webhook/users', (req, res) => {
      const { event, data } = req.body;
      
      switch (event) {
        case 'user.created':
          this.handleUserCreated(data);
          break;
        case 'user.updated':
          this.handleUserUpdated(data);
          break;
        case 'user.deleted':
          this.handleUserDeleted(data);
          break;
        default:
          console.log('알 수 없는 사용� �벤트:', event);
      }
      
      res.status(200).json({ received: true });
    });
    
    // 게� 월드 관련 웹훅
    this.app.post('/webhook/worlds', (req, res) => {
      const { event, data } = req.body;
      
      switch (event) {
        case 'world.maintenance_started':
          this.handleWorldMaintenanceStarted(data);
          break;
        case 'world.maintenance_ended':
          this.handleWorldMaintenanceEnded(data);
          break;
        default:
          console.log('알 수 없는 월드 �벤트:', event);
      }
      
      res.status(200).json({ received: true });
    });
  }
  
  // �벤트 핸들러들
  handleUserCreated(data) {
    console.log('새 사용� �성:', data);
    // 사용� �성 후처리 로�
  }
  
  handleUserUpdated(data) {
    console.log('사용� 정보 업��트:', data);
    // 사용� 업��트 후처리 로�
  }
  
  handleUserDeleted(data) {
    console.log('사용� �제:', data);
    // 사용� �제 후처리 로�
  }
  
  handleWorldMaintenanceStarted(data) {
    console.log('월드 �검 시�:', data);
    // �검 시� 후처리 로�
  }
  
  handleWorldMaintenanceEnded(data) {
    console.log('월드 �검 종료:', data);
    // �검 종료 후처리 로�
  }
  
  start(port = 3000) {
    this.app.listen(port, () => {
      console.log(`웹훅 서버가 ��트 ${port}�서 실행 중�니다.`);
    });
  }
}

// 웹훅 서버 시�
const webhookHandler = new WebhookHandler(process.env.WEBHOOK_SECRET);
webhookHandler.start(3000);
