//! A minimal socket.io v5 client for the tests: engine.io v4 over a WebSocket, the default
//! namespace, events, acknowledgements and heartbeats. Written here because the tests need
//! to see the protocol's edges (refusals, server disconnects, what did *not* arrive), which a
//! full client library hides behind reconnection; the npm `socket.io-client` runs against
//! the same server in the interop tests.
#![allow(dead_code)]

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct SocketClient {
    out: mpsc::UnboundedSender<String>,
    /// Events received and not yet taken: `(name, data)`; `("disconnect", ..)` when the
    /// server disconnected the socket or closed the connection.
    inbox: Arc<Mutex<VecDeque<(String, Value)>>>,
    arrived: Arc<Notify>,
    acks: Acks,
    next_ack: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for SocketClient {
    /// Closes the connection (both halves of the WebSocket go).
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// How long a test waits for something that should come.
pub const WAIT: Duration = Duration::from_secs(10);

impl SocketClient {
    /// Connects to `base` (`http://host:port`) with `auth`; `Err(message)` when the server
    /// refuses the handshake (the client's `connect_error`).
    pub async fn connect(base: &str, auth: Value) -> Result<SocketClient, String> {
        Self::connect_forwarded(base, auth, None).await
    }

    /// [`SocketClient::connect`] with an `X-Forwarded-For` header, as a proxy would send.
    pub async fn connect_forwarded(
        base: &str,
        auth: Value,
        forwarded_for: Option<&str>,
    ) -> Result<SocketClient, String> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}/socket.io/?EIO=4&transport=websocket", base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().map_err(|e| format!("websocket: {e}"))?;
        if let Some(addr) = forwarded_for {
            request.headers_mut().insert("x-forwarded-for", addr.parse().map_err(|_| "bad header".to_string())?);
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| format!("websocket: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        // engine.io open packet.
        match stream.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
            other => return Err(format!("no engine.io open packet: {other:?}")),
        }
        sink.send(Message::text(format!("40{auth}"))).await.map_err(|e| e.to_string())?;
        let answer = loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    sink.send(Message::text("3")).await.map_err(|e| e.to_string())?;
                }
                Some(Ok(Message::Text(t))) => break t.to_string(),
                other => return Err(format!("connection closed during the handshake: {other:?}")),
            }
        };
        if let Some(err) = answer.strip_prefix("44") {
            let v: Value = serde_json::from_str(err).unwrap_or(Value::Null);
            return Err(v["message"].as_str().unwrap_or(err).to_owned());
        }
        assert!(answer.starts_with("40"), "unexpected handshake answer {answer}");

        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let inbox: Arc<Mutex<VecDeque<(String, Value)>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let acks: Acks = Arc::default();
        let (inbox2, arrived2, acks2, out2) = (inbox.clone(), arrived.clone(), acks.clone(), out.clone());
        let reader = tokio::spawn(async move {
            let push = |name: &str, data: Value| {
                inbox2.lock().expect("inbox").push_back((name.to_owned(), data));
                arrived2.notify_waiters();
            };
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let text = text.as_str();
                if text == "2" {
                    let _ = out2.send("3".into());
                } else if let Some(rest) = text.strip_prefix("42") {
                    if let Ok(Value::Array(mut parts)) = serde_json::from_str::<Value>(rest) {
                        let name = parts.first().and_then(Value::as_str).unwrap_or_default().to_owned();
                        let data = if parts.len() > 1 { parts.swap_remove(1) } else { Value::Null };
                        push(&name, data);
                    }
                } else if let Some(rest) = text.strip_prefix("43") {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let data: Value = serde_json::from_str(&rest[digits.len()..]).unwrap_or(Value::Null);
                    if let Ok(id) = digits.parse::<u64>()
                        && let Some(tx) = acks2.lock().expect("acks").remove(&id)
                    {
                        let _ = tx.send(data.get(0).cloned().unwrap_or(Value::Null));
                    }
                } else if text.starts_with("41") || text.starts_with('1') {
                    push("disconnect", json!(text));
                }
            }
            push("disconnect", json!("closed"));
        });
        Ok(SocketClient { out, inbox, arrived, acks, next_ack: AtomicU64::new(1), reader })
    }

    /// Emits `name` without asking for an acknowledgement.
    pub fn emit(&self, name: &str, data: Value) {
        let _ = self.out.send(format!("42{}", json!([name, data])));
    }

    /// Emits `name` and waits for the server's acknowledgement.
    pub async fn request(&self, name: &str, data: Value) -> Value {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.acks.lock().expect("acks").insert(id, tx);
        let _ = self.out.send(format!("42{id}{}", json!([name, data])));
        tokio::time::timeout(WAIT, rx).await.expect("acknowledged in time").expect("acknowledged")
    }

    /// Sends a raw engine.io text frame (for protocol-level tests).
    pub fn send_raw(&self, text: String) {
        let _ = self.out.send(text);
    }

    fn take(&self, name: &str) -> Option<Value> {
        let mut inbox = self.inbox.lock().expect("inbox");
        let at = inbox.iter().position(|(n, _)| n == name)?;
        inbox.remove(at).map(|(_, v)| v)
    }

    /// Waits for the next `name` event (earlier events of other names stay in the inbox).
    pub async fn expect(&self, name: &str) -> Value {
        self.expect_within(name, WAIT).await.unwrap_or_else(|| panic!("no `{name}` within {WAIT:?}"))
    }

    pub async fn expect_within(&self, name: &str, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            if let Some(v) = self.take(name) {
                return Some(v);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.take(name);
            }
        }
    }

    /// Asserts that no `name` event arrives within `wait` (and none is waiting).
    pub async fn expect_none(&self, name: &str, wait: Duration) {
        if let Some(v) = self.expect_within(name, wait).await {
            panic!("unexpected `{name}`: {v}");
        }
    }

    /// Names of the events waiting in the inbox.
    pub fn pending(&self) -> Vec<String> {
        self.inbox.lock().expect("inbox").iter().map(|(n, _)| n.clone()).collect()
    }
}

/// A client that completes the handshake and then never reads again, with a tiny receive
/// buffer: what a frozen game client looks like to the server.
pub struct StalledSocket {
    _ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
}

impl StalledSocket {
    pub async fn connect(base: &str, auth: Value) -> StalledSocket {
        let addr = base.trim_start_matches("http://");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("small receive buffer");
        let tcp = socket.connect(addr.parse().expect("addr")).await.expect("connect");
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.expect("websocket");
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
            other => panic!("no engine.io open packet: {other:?}"),
        }
        ws.send(Message::text(format!("40{auth}"))).await.expect("connect packet");
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.starts_with("40") => break,
                // A heartbeat may come first: answered, as a live client would.
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    ws.send(Message::text("3")).await.expect("pong");
                }
                other => panic!("not connected: {other:?}"),
            }
        }
        StalledSocket { _ws: ws }
    }
}
