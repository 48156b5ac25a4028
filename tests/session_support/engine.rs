//! hws's engine side for the session-driver tests: `driver::control` behind a loopback runner
//! WebSocket listener (`/runners/connect`, subprotocol `rivet`) that a test can cut
//! (`kill`) and close to new connections (`refuse`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hibernating_ws::Clock;
use hibernating_ws::control::{Action, ActorSpec, Control, ControlConfig};
use hibernating_ws::driver::control::{
    self, ClientEvent, ClientEvents, ClientSender, ControlHandle, ControlIo, RunnerOutput,
};
use hibernating_ws::gateway::{Gateway, GatewayConfig, OpenRequest, Phase};
use hibernating_ws::wire::{ActorConfig, GatewayId, KvRequestData, KvResponseData, RequestId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// The pool the test runners serve.
pub const POOL: &str = "pool";
/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(20);

/// Records the engine's events.
struct Io {
    events: Arc<Mutex<Vec<Action>>>,
}

impl ControlIo for Io {
    fn kv(&mut self, _actor_id: &str, _request: KvRequestData) -> KvResponseData {
        KvResponseData::Drop
    }

    fn event(&mut self, action: &Action) {
        self.events.lock().unwrap().push(action.clone());
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
    kill: Arc<Notify>,
    refuse: Arc<AtomicBool>,
    /// The runner keys of every accepted connection, in order.
    pub keys: Arc<Mutex<Vec<String>>>,
}

/// A client of the engine's gateway.
pub struct Client {
    /// Its request id.
    pub request_id: RequestId,
    /// What it sends.
    pub sender: ClientSender,
    events: ClientEvents,
}

impl Client {
    /// Sends a text message.
    pub async fn send(&self, text: &str) {
        self.sender
            .message(text.as_bytes().to_vec(), false)
            .await
            .expect("engine running");
    }

    /// The next event within [`WAIT`].
    pub async fn next(&mut self) -> ClientEvent {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("a client event in time")
            .expect("the request is alive")
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
        let clock = Clock::start();
        let gw = Gateway::new(gateway, GatewayId(*b"gw01"), clock.now()).unwrap();
        let engine = Control::new(config, gw, 1, clock.now()).unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let io = Io {
            events: events.clone(),
        };
        let (handle, _task) = control::spawn(engine, io, clock);
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
                .await
                .unwrap()
                .unwrap();
        }
        let engine = Self {
            handle,
            endpoint,
            events,
            kill: Arc::new(Notify::new()),
            refuse: Arc::new(AtomicBool::new(false)),
            keys: Arc::new(Mutex::new(Vec::new())),
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
        let (sender, events) = self.handle.open(request_id, open).await.unwrap();
        let mut client = Client {
            request_id,
            sender,
            events,
        };
        match client.next().await {
            ClientEvent::Opened { hibernatable } => assert!(hibernatable),
            other => panic!("expected the open, got {other:?}"),
        }
        client
    }

    /// The phase of a live request.
    pub async fn phase(&self, r: RequestId) -> Option<Phase> {
        self.handle
            .call(move |c, _| c.gateway().request(r).map(|i| i.phase))
            .await
            .unwrap()
    }

    /// Messages the gateway still holds unacknowledged.
    pub async fn pending(&self) -> u64 {
        self.handle
            .call(|c, _| c.gateway().stats().pending_messages)
            .await
            .unwrap()
    }

    /// One runner WebSocket.
    async fn connection(self, tcp: TcpStream) {
        let mut key = None;
        #[allow(clippy::result_large_err)] // tungstenite's callback signature
        let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, mut resp: Response| {
            let query = req.uri().query().unwrap_or_default();
            let offered = req
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|p| p.trim() == "rivet"));
            if req.uri().path() == "/runners/connect"
                && offered
                && query.split('&').any(|p| p == "protocol_version=7")
            {
                key = query
                    .split('&')
                    .find_map(|p| p.strip_prefix("runner_key="))
                    .map(str::to_string);
            }
            resp.headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static("rivet"));
            Ok(resp)
        })
        .await;
        let (Ok(ws), Some(key)) = (ws, key) else {
            return;
        };
        self.keys.lock().unwrap().push(key.clone());
        let Ok((sender, mut events)) = self.handle.runner_connected(key).await else {
            return;
        };
        let (mut sink, mut stream) = ws.split();
        let killed = self.kill.notified();
        tokio::pin!(killed);
        killed.as_mut().enable();
        loop {
            tokio::select! {
                () = &mut killed => break,
                out = events.recv() => match out {
                    Some(RunnerOutput::Frame(frame)) => {
                        let msg = Message::Binary(Bytes::from(frame.to_vec()));
                        if sink.send(msg).await.is_err() {
                            break;
                        }
                    }
                    Some(RunnerOutput::Close(reason)) => {
                        let frame = WsCloseFrame { code: 1000.into(), reason: reason.reason().into() };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        break;
                    }
                    _ => break,
                },
                msg = stream.next() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if sender.frame(b.to_vec()).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        drop((sink, stream));
        sender.disconnected().await;
    }
}

/// Waits (polling every 5 ms, at most [`WAIT`]) until `f` holds.
pub async fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
