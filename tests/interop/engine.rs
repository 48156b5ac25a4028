//! The engine side for the interop test: hws's control engine (and its gateway) behind
//! `hibernating_ws::driver::control`, a runner WebSocket listener on loopback
//! (`/runners/connect`, the `rivet` subprotocol), an in-memory actor KV, and in-process clients.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use hibernating_ws::control::{Action, ActorSpec, Control, ControlConfig, StopReason};
use hibernating_ws::driver::control::{ControlDriver, ControlHandle, ControlIo};
use hibernating_ws::driver::tokio::{ClientEvents, ClientSender, TokioClock};
use hibernating_ws::gateway::{CloseReason, Gateway, GatewayConfig, OpenRequest, Phase};
use hibernating_ws::wire::{
    ActorConfig, GatewayId, KvErrorResponse, KvGetResponse, KvListQuery, KvListResponse,
    KvMetadata, KvRequestData, KvResponseData, RequestId, StopCode,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

pub use crate::common::ClientEvent;
use crate::common::{Lifecycle, next_lifecycle, output, rivet_protocol, runner_key, write_batch};

/// The runner name the Node runner registers with (`runnerName`).
pub const RUNNER_NAME: &str = "hws-interop";
/// Most bytes of KV one actor may hold.
const MAX_KV_BYTES: usize = 64 << 20;

type Store = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// What the engine reported besides client traffic.
#[derive(Debug, Default, Clone)]
pub struct Events {
    /// Runner handshakes.
    pub runners_connected: u64,
    /// `ActorRunning`.
    pub running: u64,
    /// Stops reported by the runner, by code.
    pub stopped_ok: u64,
    /// Stops reported by the runner with `StopCode::Error`.
    pub stopped_error: u64,
    /// Stops for another reason (timeouts, runner lost).
    pub stopped_other: u64,
    /// KV requests answered with an error.
    pub kv_errors: u64,
}

/// The embedder's side: an in-memory KV per actor and a record of the engine's events.
struct Io {
    store: Arc<Mutex<Store>>,
    events: Arc<Mutex<Events>>,
    lifecycle: Arc<Mutex<Lifecycle>>,
}

impl Io {
    fn lifecycle(&self, request_id: RequestId, event: ClientEvent) {
        let mut l = self.lifecycle.lock().unwrap();
        l.entry(request_id).or_default().push_back(event);
    }
}

impl ControlIo for Io {
    fn kv(&mut self, actor_id: &str, request: KvRequestData) -> KvResponseData {
        let mut store = self.store.lock().unwrap();
        let response = apply(store.entry(actor_id.to_string()).or_default(), request);
        if matches!(response, KvResponseData::Error(_)) {
            self.events.lock().unwrap().kv_errors += 1;
        }
        response
    }

    fn event(&mut self, action: &Action) {
        let mut e = self.events.lock().unwrap();
        match action {
            Action::RunnerConnected { .. } => e.runners_connected += 1,
            Action::ActorRunning { .. } => e.running += 1,
            Action::ActorStopped {
                reason: StopReason::Stopped { code, .. },
                ..
            } => match code {
                StopCode::Ok => e.stopped_ok += 1,
                StopCode::Error => e.stopped_error += 1,
            },
            Action::ActorStopped { .. } => e.stopped_other += 1,
            _ => {}
        }
    }

    fn opened(&mut self, request_id: RequestId, hibernatable: bool) {
        self.lifecycle(request_id, ClientEvent::Opened { hibernatable });
    }

    fn hibernated(&mut self, request_id: RequestId) {
        self.lifecycle(request_id, ClientEvent::Hibernated);
    }

    fn closed(&mut self, request_id: RequestId, reason: &CloseReason) {
        self.lifecycle(request_id, ClientEvent::Closed(reason.clone()));
    }
}

fn entries(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<KvMetadata>) {
    let metadata = pairs
        .iter()
        .map(|_| KvMetadata {
            version: Vec::new(),
            update_ts: 0,
        })
        .collect();
    let (keys, values) = pairs.into_iter().unzip();
    (keys, values, metadata)
}

/// Applies one KV request to an actor's store.
fn apply(store: &mut BTreeMap<Vec<u8>, Vec<u8>>, request: KvRequestData) -> KvResponseData {
    let error = |message: &str| {
        KvResponseData::Error(KvErrorResponse {
            message: message.into(),
        })
    };
    match request {
        KvRequestData::Get(get) => {
            let found = get
                .keys
                .into_iter()
                .filter_map(|k| store.get(&k).map(|v| (k, v.clone())))
                .collect();
            let (keys, values, metadata) = entries(found);
            KvResponseData::Get(KvGetResponse {
                keys,
                values,
                metadata,
            })
        }
        KvRequestData::List(list) => {
            let mut found: Vec<_> = match list.query {
                KvListQuery::All => store.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                KvListQuery::Prefix(p) => store
                    .range(p.key.clone()..)
                    .take_while(|(k, _)| k.starts_with(&p.key))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                KvListQuery::Range(r) => store
                    .range(r.start.clone()..)
                    .take_while(|(k, _)| {
                        if r.exclusive {
                            **k < r.end
                        } else {
                            **k <= r.end
                        }
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            if list.reverse == Some(true) {
                found.reverse();
            }
            if let Some(limit) = list.limit {
                found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            }
            let (keys, values, metadata) = entries(found);
            KvResponseData::List(KvListResponse {
                keys,
                values,
                metadata,
            })
        }
        KvRequestData::Put(put) => {
            if put.keys.len() != put.values.len() {
                return error("keys and values differ in length");
            }
            let size = store.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
                + put
                    .keys
                    .iter()
                    .chain(&put.values)
                    .map(Vec::len)
                    .sum::<usize>();
            if size > MAX_KV_BYTES {
                return error("actor KV full");
            }
            store.extend(put.keys.into_iter().zip(put.values));
            KvResponseData::Put
        }
        KvRequestData::Delete(delete) => {
            for k in delete.keys {
                store.remove(&k);
            }
            KvResponseData::Delete
        }
        KvRequestData::DeleteRange(range) => {
            store.retain(|k, _| *k < range.start || *k >= range.end);
            KvResponseData::Delete
        }
        KvRequestData::Drop => {
            store.clear();
            KvResponseData::Drop
        }
    }
}

/// The running engine.
#[derive(Clone)]
pub struct Engine {
    /// The driver.
    pub handle: ControlHandle,
    /// Where runners connect: `http://ADDR`.
    pub endpoint: String,
    store: Arc<Mutex<Store>>,
    events: Arc<Mutex<Events>>,
    lifecycle: Arc<Mutex<Lifecycle>>,
}

/// An in-process client of the gateway.
pub struct Client {
    /// Its request id.
    pub request_id: RequestId,
    sender: ClientSender,
    events: ClientEvents,
    /// Its outputs ended.
    ended: bool,
    lifecycle: Arc<Mutex<Lifecycle>>,
}

impl Client {
    /// Sends a text message.
    pub async fn send(&mut self, text: &str) {
        self.sender
            .message(text.as_bytes(), false)
            .await
            .expect("engine gone");
    }

    /// Closes the client's WebSocket with `frame`.
    #[allow(dead_code)] // used by tests/e2e_control_hostile.rs, which includes this file
    pub fn close(self, frame: Option<hibernating_ws::CloseFrame>) {
        self.sender.close(frame).expect("engine gone");
    }

    /// The next event, or `None` after `timeout`: outputs already queued first (the driver queues
    /// them before it reports the life-cycle event that follows them), then life-cycle events.
    pub async fn next(&mut self, timeout: Duration) -> Option<ClientEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !self.ended {
                match self.events.next().now_or_never() {
                    Some(Some(out)) => return Some(output(out)),
                    Some(None) => self.ended = true,
                    None => {}
                }
            }
            let event = next_lifecycle(&self.lifecycle, self.request_id);
            if event.is_some() {
                return event;
            }
            let tick = tokio::time::sleep(Duration::from_millis(5));
            if self.ended {
                tick.await;
            } else {
                tokio::select! {
                    out = self.events.next() => match out {
                        Some(out) => return Some(output(out)),
                        None => self.ended = true,
                    },
                    () = tick => {}
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
        }
    }
}

impl Engine {
    /// Starts the engine and its runner listener; defines `actors` (each may run on the Node
    /// runner).
    pub async fn start(gateway: GatewayConfig, actors: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let clock = TokioClock::new();
        let gw = Gateway::new(gateway, GatewayId([0xa1, 0xb2, 0xc3, 0xd4]), clock.now())
            .expect("gateway config");
        let control =
            Control::new(ControlConfig::default(), gw, 1, clock.now()).expect("control config");
        let store = Arc::new(Mutex::new(Store::new()));
        let events = Arc::new(Mutex::new(Events::default()));
        let lifecycle = Arc::new(Mutex::new(Lifecycle::new()));
        let io = Io {
            store: Arc::clone(&store),
            events: Arc::clone(&events),
            lifecycle: Arc::clone(&lifecycle),
        };
        let (handle, _task) = ControlDriver::spawn(control, io, clock);
        for actor in actors {
            let actor = (*actor).to_string();
            handle
                .call(move |c, now| {
                    let config = ActorConfig {
                        name: actor.clone(),
                        key: None,
                        create_ts: 0,
                        input: None,
                    };
                    let spec = ActorSpec {
                        runner_name: RUNNER_NAME.into(),
                        config,
                    };
                    c.create_actor(now, &actor, spec)
                })
                .expect("engine")
                .expect("actor created");
        }
        let accept = handle.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(runner_connection(tcp, accept.clone()));
            }
        });
        Self {
            handle,
            endpoint: format!("http://{addr}"),
            store,
            events,
            lifecycle,
        }
    }

    /// Opens a client WebSocket on `actor` at `path`.
    pub fn connect(&self, actor: &str, path: &str, request_id: RequestId) -> Client {
        // The `emptypath` scenario sends, on purpose, a path `OpenRequest::new` refuses.
        let open = OpenRequest::new(actor, path)
            .unwrap_or_else(|_| OpenRequest::with_unchecked_path(actor, path));
        let (sender, events) = self.handle.open(request_id, open).expect("open accepted");
        Client {
            request_id,
            sender,
            events,
            ended: false,
            lifecycle: Arc::clone(&self.lifecycle),
        }
    }

    /// The phase of a live request.
    pub fn phase(&self, r: RequestId) -> Option<Phase> {
        self.handle
            .call(move |c, _| c.gateway().request(r).map(|i| i.phase))
            .expect("engine")
    }

    /// The actor's KV entries under `prefix`, keys as text.
    pub fn kv_prefix(&self, actor: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.store
            .lock()
            .unwrap()
            .get(actor)
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(prefix.as_bytes()))
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.clone()))
            .collect()
    }

    /// What the engine reported.
    pub fn events(&self) -> Events {
        self.events.lock().unwrap().clone()
    }
}

/// One runner WebSocket: checks the path, takes the runner key from the query and answers the
/// `rivet` subprotocol the official runner asks for (its WebSocket library refuses a handshake
/// that selects none).
async fn runner_connection(tcp: TcpStream, handle: ControlHandle) {
    let mut key = None;
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
        key = runner_key(req);
        Ok(rivet_protocol(resp))
    })
    .await;
    let (Ok(ws), Some(key)) = (ws, key) else {
        return;
    };
    let Ok((sender, mut events)) = handle.runner_connected(&key) else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    // Everything queued at once, one flush per batch; a close ends the connection.
    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        while events.recv_many(&mut batch).await > 0 {
            if !write_batch(&mut sink, &mut batch).await {
                return;
            }
        }
        // Dropped by the engine (or overflowed): close the socket.
        let _ = sink.send(Message::Close(None)).await;
    });
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Binary(b) if sender.frame(&b).is_err() => break,
            Message::Close(_) => break,
            _ => {}
        }
    }
    sender.disconnected();
    writer.abort();
}
