//! hws's engine side for the session-driver tests: `driver::control` behind a loopback runner
//! WebSocket listener (`/runners/connect`, subprotocol `rivet`) that a test can cut
//! (`kill`) and close to new connections (`refuse`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hibernating_ws::MessageIndex;
use hibernating_ws::control::{Action, ActorSpec, Control, ControlConfig};
use hibernating_ws::driver::control::{
    ClientEvents, ClientSender, ControlDriver, ControlHandle, ControlIo, TokioClock,
};
use hibernating_ws::gateway::{Gateway, GatewayConfig, OpenRequest, Phase};
use hibernating_ws::wire::{
    self, ActorConfig, GatewayId, KvRequestData, KvResponseData, RequestId, ToServer,
    ToServerTunnelMessageKind,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

pub use super::common::ClientEvent;
use super::common::{next_lifecycle, output, rivet_protocol, runner_key, until, write_batch};

/// The pool the test runners serve.
pub const POOL: &str = "pool";
/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(20);

/// Each request's life-cycle events, in order.
type Lifecycle = Arc<Mutex<super::common::Lifecycle>>;

/// Records the engine's events.
struct Io {
    events: Arc<Mutex<Vec<Action>>>,
    lifecycle: Lifecycle,
}

impl ControlIo for Io {
    fn kv(&mut self, _actor_id: &str, _request: KvRequestData) -> KvResponseData {
        KvResponseData::Drop
    }

    fn event(&mut self, action: &Action) {
        self.events.lock().unwrap().push(action.clone());
    }

    fn opened(&mut self, request_id: RequestId, hibernatable: bool) {
        let mut l = self.lifecycle.lock().unwrap();
        let events = l.entry(request_id).or_default();
        events.push_back(ClientEvent::Opened { hibernatable });
    }

    fn hibernated(&mut self, request_id: RequestId) {
        let mut l = self.lifecycle.lock().unwrap();
        l.entry(request_id)
            .or_default()
            .push_back(ClientEvent::Hibernated);
    }
}

/// The engine and its runner listener.
#[derive(Clone)]
pub struct Engine {
    /// The control driver.
    pub handle: ControlHandle,
    /// Where runners connect (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    events: Arc<Mutex<Vec<Action>>>,
    lifecycle: Lifecycle,
    kill: Arc<Notify>,
    freeze: Arc<Notify>,
    refuse: Arc<AtomicBool>,
    /// The token runners must offer (`rivet_token.<token>`), if any: others get HTTP 401.
    token: Arc<Mutex<Option<String>>>,
    /// The subprotocols every upgrade offered, in order.
    pub offered: Arc<Mutex<Vec<String>>>,
    /// The runner keys of every accepted connection, in order.
    pub keys: Arc<Mutex<Vec<String>>>,
    /// The runner's tunnel messages (index and kind), in arrival order.
    pub outgoing: Arc<Mutex<Vec<(MessageIndex, ToServerTunnelMessageKind)>>>,
}

/// A client of the engine's gateway.
pub struct Client {
    /// Its request id.
    pub request_id: RequestId,
    /// What it sends.
    pub sender: ClientSender,
    events: ClientEvents,
    lifecycle: Lifecycle,
}

impl Client {
    /// Sends a text message.
    pub async fn send(&mut self, text: &str) {
        self.sender
            .message(text.as_bytes(), false)
            .await
            .expect("engine running");
    }

    /// The next event within [`WAIT`]: outputs already queued first (the driver queues them
    /// before it reports the life-cycle event that follows them), then life-cycle events.
    pub async fn next(&mut self) -> ClientEvent {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let out = tokio::time::timeout(Duration::from_millis(5), self.events.recv()).await;
            match out {
                Ok(Some(out)) => return output(out),
                Ok(None) => panic!("the request is gone"),
                Err(_) => {}
            }
            if let Some(event) = next_lifecycle(&self.lifecycle, self.request_id) {
                return event;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a client event in time"
            );
        }
    }

    /// The next message's text, skipping hibernations.
    pub async fn next_message(&mut self) -> String {
        loop {
            match self.next().await {
                ClientEvent::Message { data, .. } => return String::from_utf8(data).unwrap(),
                ClientEvent::Hibernated => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }
}

impl Engine {
    /// An engine with `actors` defined for [`POOL`].
    pub async fn start(gateway: GatewayConfig, config: ControlConfig, actors: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let clock = TokioClock::new();
        let gw = Gateway::new(gateway, GatewayId(*b"gw01"), clock.now()).unwrap();
        let engine = Control::new(config, gw, 1, clock.now()).unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let lifecycle = Lifecycle::default();
        let io = Io {
            events: events.clone(),
            lifecycle: lifecycle.clone(),
        };
        let (handle, _task) = ControlDriver::spawn(engine, io, clock);
        for actor in actors {
            let actor = (*actor).to_string();
            let spec = ActorSpec {
                runner_name: POOL.into(),
                config: ActorConfig {
                    name: actor.clone(),
                    key: None,
                    create_ts: 0,
                    input: None,
                },
            };
            handle
                .call(move |c, now| c.create_actor(now, &actor, spec))
                .unwrap()
                .unwrap();
        }
        let engine = Self {
            handle,
            endpoint,
            events,
            lifecycle,
            kill: Arc::new(Notify::new()),
            freeze: Arc::new(Notify::new()),
            refuse: Arc::new(AtomicBool::new(false)),
            token: Arc::new(Mutex::new(None)),
            offered: Arc::new(Mutex::new(Vec::new())),
            keys: Arc::new(Mutex::new(Vec::new())),
            outgoing: Arc::new(Mutex::new(Vec::new())),
        };
        let accept = engine.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if accept.refuse.load(Ordering::SeqCst) {
                    drop(tcp);
                    continue;
                }
                tokio::spawn(accept.clone().connection(tcp));
            }
        });
        engine
    }

    /// Cuts every runner connection (as a network failure: no close frame).
    pub fn kill(&self) {
        self.kill.notify_waiters();
    }

    /// Stops every runner connection silently: frames are neither forwarded nor sent, the
    /// socket stays open until the runner closes it.
    pub fn freeze(&self) {
        self.freeze.notify_waiters();
    }

    /// Requires `token` from runners from now on.
    pub fn require_token(&self, token: &str) {
        *self.token.lock().unwrap() = Some(token.into());
    }

    /// Refuses (`true`) or accepts new runner connections.
    pub fn refuse(&self, refuse: bool) {
        self.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Every event the engine reported so far.
    pub fn events(&self) -> Vec<Action> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until `f` holds for the engine's events.
    pub async fn wait_event(&self, what: &str, f: impl Fn(&[Action]) -> bool) {
        wait(what, || f(&self.events.lock().unwrap())).await;
    }

    /// Opens a client WebSocket on `actor` and waits until the runner accepted it.
    pub async fn open(&self, actor: &str, request_id: RequestId) -> Client {
        let open = OpenRequest::new(actor, "/").unwrap();
        let (sender, events) = self.handle.open(request_id, open).unwrap();
        let mut client = Client {
            request_id,
            sender,
            events,
            lifecycle: self.lifecycle.clone(),
        };
        match client.next().await {
            ClientEvent::Opened { hibernatable } => assert!(hibernatable),
            other => panic!("expected the open, got {other:?}"),
        }
        client
    }

    /// The phase of a live request.
    pub fn phase(&self, r: RequestId) -> Option<Phase> {
        self.handle
            .call(move |c, _| c.gateway().request(r).map(|i| i.phase))
            .unwrap()
    }

    /// Messages the gateway still holds unacknowledged.
    pub fn pending(&self) -> u64 {
        self.handle
            .call(|c, _| c.gateway().stats().pending_messages)
            .unwrap()
    }

    /// Open runner connections.
    pub fn connections(&self) -> u64 {
        self.handle.call(|c, _| c.stats().connections).unwrap()
    }

    /// One runner WebSocket.
    async fn connection(self, tcp: TcpStream) {
        let mut key = None;
        let token = self.token.lock().unwrap().clone();
        #[allow(clippy::result_large_err)] // tungstenite's callback signature
        let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
            let protocols = req
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            self.offered.lock().unwrap().push(protocols.clone());
            let offered = protocols.split(',').any(|p| p.trim() == "rivet");
            if let Some(token) = &token
                && !protocols
                    .split(',')
                    .any(|p| p.trim().strip_prefix("rivet_token.") == Some(token))
            {
                let mut refused = ErrorResponse::new(None);
                *refused.status_mut() = StatusCode::UNAUTHORIZED;
                return Err(refused);
            }
            if offered {
                key = runner_key(req);
            }
            Ok(rivet_protocol(resp))
        })
        .await;
        let (Ok(ws), Some(key)) = (ws, key) else {
            return;
        };
        self.keys.lock().unwrap().push(key.clone());
        let Ok((sender, mut events)) = self.handle.runner_connected(&key) else {
            return;
        };
        let mut batch = Vec::new();
        let (mut sink, mut stream) = ws.split();
        let killed = self.kill.notified();
        tokio::pin!(killed);
        killed.as_mut().enable();
        let frozen = self.freeze.notified();
        tokio::pin!(frozen);
        frozen.as_mut().enable();
        loop {
            tokio::select! {
                () = &mut killed => break,
                () = &mut frozen => {
                    // Silent: read and drop until the runner gives up on the socket.
                    while let Some(Ok(msg)) = stream.next().await {
                        if msg.is_close() {
                            break;
                        }
                    }
                    break;
                }
                n = events.recv_many(&mut batch) => {
                    if n == 0 || !write_batch(&mut sink, &mut batch).await {
                        break;
                    }
                },
                msg = stream.next() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if let Ok(ToServer::TunnelMessage(m)) = wire::decode::<ToServer>(&b) {
                            self.outgoing.lock().unwrap().push((m.message_id.message_index, m.kind));
                        }
                        if sender.frame(&b).is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        drop((sink, stream));
        sender.disconnected();
    }
}

/// Waits (polling every 5 ms, at most [`WAIT`]) until `f` holds.
pub async fn wait(what: &str, f: impl FnMut() -> bool) {
    until(what, WAIT, f).await;
}
