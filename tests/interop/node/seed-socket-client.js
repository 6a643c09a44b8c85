// The seeds' socket.io client (gatrix-api-webhooks-guide, "WebSocket 통합"), run by Herald's
// interop tests (crates/herald/tests/it/interop.rs) against a real Herald server.
//
// The class is the seed's, unchanged but for comments translated and the log lines dropped;
// the seed leaves the methods its handlers call (sendWelcomeEmail, ...) to the reader, so they
// are defined below to print what they were given, one JSON line each, for the test to read.
//
// Usage: node seed-socket-client.js <serverUrl> <token>
const io = require('socket.io-client');

class GatrixWebSocketClient {
  constructor(serverUrl, token) {
    this.socket = io(serverUrl, {
      auth: { token },
      transports: ['websocket', 'polling']
    });

    this.setupEventHandlers();
  }

  setupEventHandlers() {
    // Connection events
    this.socket.on('connect', () => {
      report({ event: 'connect' });
    });

    this.socket.on('disconnect', (reason) => {
      report({ event: 'disconnect', reason });
    });

    // User events
    this.socket.on('user_registered', (data) => {
      this.handleUserRegistration(data);
    });

    this.socket.on('user_login', (data) => {
      this.handleUserLogin(data);
    });

    // Game world events
    this.socket.on('world_maintenance_started', (data) => {
      this.handleMaintenanceStart(data);
    });

    this.socket.on('world_maintenance_ended', (data) => {
      this.handleMaintenanceEnd(data);
    });
  }

  // Event handlers
  handleUserRegistration(data) {
    this.sendWelcomeEmail(data.user);
    this.updateAnalytics('user_registered', data);
  }

  handleUserLogin(data) {
    this.updateUserActivity(data.userId);
    this.logSecurityEvent('user_login', data);
  }

  handleMaintenanceStart(data) {
    this.notifyUsers(data.worldId, 'maintenance_started');
    this.updateWorldStatus(data.worldId, 'maintenance');
  }

  handleMaintenanceEnd(data) {
    this.notifyUsers(data.worldId, 'maintenance_ended');
    this.updateWorldStatus(data.worldId, 'active');
  }
}

// What the seed leaves to the reader: here, each reports its arguments.
function report(line) {
  process.stdout.write(JSON.stringify(line) + '\n');
}
Object.assign(GatrixWebSocketClient.prototype, {
  sendWelcomeEmail(user) { report({ call: 'sendWelcomeEmail', args: [user] }); },
  updateAnalytics(name, data) { report({ call: 'updateAnalytics', args: [name, data] }); },
  updateUserActivity(userId) { report({ call: 'updateUserActivity', args: [userId] }); },
  logSecurityEvent(name, data) { report({ call: 'logSecurityEvent', args: [name, data] }); },
  notifyUsers(worldId, what) { report({ call: 'notifyUsers', args: [worldId, what] }); },
  updateWorldStatus(worldId, status) { report({ call: 'updateWorldStatus', args: [worldId, status] }); },
});

const [serverUrl, token] = process.argv.slice(2);
const client = new GatrixWebSocketClient(serverUrl, token);
// Not in the seed: a refused handshake, reported so the test can see it.
client.socket.on('connect_error', (err) => {
  report({ event: 'connect_error', message: err.message });
  client.socket.close();
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
