//! The connection task: connects, hands every frame to the session in place, writes the
//! session's frames a batch at a time, and reconnects with backoff under the same runner key.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::pin::Pin;
use core::task::Poll;

use ::tokio::sync::watch;
use futures_core::Stream;
use futures_sink::Sink;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::SessionOptions;
use super::connect::{ConnectOptions, Protocol, WireVersion, seed_of};
use super::envoy;
use super::events::{Disconnect, SessionEvent};
use super::state::SessionState;
use crate::driver::tokio::outbox;
use crate::driver::tokio::run::Shared;
use crate::session::Link as SessionLink;
use crate::wire::DecodeLimits;

type Ws = WebSocketStream<MaybeTlsStream<::tokio::net::TcpStream>>;

/// The close reason the driver sends when it shuts down (the official runner's).
const SHUTDOWN_REASON: &str = "pegboard.runner_shutdown";
/// The close reason of an engine that evicted this connection.
const EVICTION_REASON: &str = "ws.eviction";

/// Connects, runs each connection, and reconnects until `stop` turns true.
pub(super) async fn connection_loop(
    shared: Arc<Shared<SessionState>>,
    connect: ConnectOptions,
    options: SessionOptions,
    mut stop: watch::Receiver<bool>,
) {
    let seed = seed_of(&connect.runner_key);
    let mut failures = 0u32;
    let mut version = connect.first_version();
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        let outcome = match connect.request_for(version) {
            Err(e) => Outcome::Ended(Disconnect::Request(e), false),
            Ok(request) => {
                let connecting = tokio_tungstenite::connect_async_with_config(
                    request,
                    Some(options.websocket),
                    true,
                );
                let connected = ::tokio::select! {
                    r = connecting => r,
                    _ = stop.changed() => return,
                };
                match connected {
                    Ok((ws, _response)) => {
                        let link = Link {
                            version,
                            key: &connect.runner_key,
                        };
                        run_connection(&shared, ws, link, &options, &mut stop).await
                    }
                    Err(tungstenite::Error::Http(response))
                        if version == WireVersion::V8
                            && matches!(connect.protocol, Protocol::Negotiate(_)) =>
                    {
                        // The engine does not offer envoy v8: runner v7 from now on, at once.
                        let _ = response;
                        version = WireVersion::V7;
                        continue;
                    }
                    Err(tungstenite::Error::Http(response)) => {
                        let status = response.status().as_u16();
                        Outcome::Ended(Disconnect::Refused { status }, false)
                    }
                    Err(e) => Outcome::Ended(Disconnect::ConnectFailed(Arc::new(e)), false),
                }
            }
        };
        let (reason, ready) = match outcome {
            Outcome::Stopped => return,
            Outcome::Ended(reason, ready) => (reason, ready),
        };
        if ready {
            failures = 0;
        }
        let retry = match reason {
            Disconnect::Evicted | Disconnect::Request(_) => None,
            _ => options.backoff.delay(failures, seed),
        };
        failures = failures.saturating_add(1);
        let reported = shared.with(|s, _| {
            s.stats.disconnects += 1;
            s.app.push(SessionEvent::Disconnected {
                reason,
                reconnect_in: retry,
            });
        });
        let (Ok(()), Some(delay)) = (reported, retry) else {
            return;
        };
        ::tokio::select! {
            () = ::tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How a connection ended.
enum Outcome {
    /// The driver is shutting down.
    Stopped,
    /// The connection ended for this reason; whether the engine had answered the handshake.
    Ended(Disconnect, bool),
}

/// What a connection speaks, and the key the engine knows the session by.
#[derive(Clone, Copy)]
struct Link<'a> {
    version: WireVersion,
    key: &'a str,
}

/// Runs one connection until it ends: the session's frames out, the engine's frames in.
async fn run_connection(
    shared: &Arc<Shared<SessionState>>,
    mut ws: Ws,
    link: Link<'_>,
    options: &SessionOptions,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    let (tx, mut rx) = outbox::<Vec<u8>>(options.outbox);
    let opened = shared.with(|s, now| {
        s.stats.connections += 1;
        s.outbox = Some(tx);
        s.wire = link.version;
        if let Some(session) = s.engine.as_mut() {
            session.connected(now);
        }
    });
    if opened.is_err() {
        return Outcome::Stopped;
    }
    let mut batch = Vec::new();
    let mut held: Option<Bytes> = None;
    let mut ready = false;
    let idle = options
        .idle_timeout
        .map(|d| Box::pin(::tokio::time::sleep(d)));
    let mut idle = idle;
    let reason = loop {
        ::tokio::select! {
            _ = stop.changed() => {
                let frame = WsCloseFrame { code: CloseCode::Normal, reason: SHUTDOWN_REASON.into() };
                let _ = send(&mut ws, Message::Close(Some(frame))).await;
                finish(shared);
                return Outcome::Stopped;
            }
            n = rx.recv_many(&mut batch) => {
                if n == 0 {
                    break rx.overflowed().map_or(Disconnect::Ended, Disconnect::OutboxFull);
                }
                let written = write_batch(&mut ws, &mut batch).await;
                // Room in the outbox for apps waiting in `writable`.
                shared.room.notify_waiters();
                if let Err(e) = written {
                    break Disconnect::Socket(Arc::new(e));
                }
            }
            () = wait_room(shared), if held.is_some() => {
                if let Some(frame) = held.take() {
                    match hand(shared, link, frame) {
                        Handed::Done(r) => ready |= r,
                        Handed::Full(frame) => held = Some(frame),
                        Handed::Stopped => return Outcome::Stopped,
                    }
                }
            }
            () = async { if let Some(s) = idle.as_mut() { s.await } }, if idle.is_some() => {
                break Disconnect::Idle;
            }
            msg = next(&mut ws), if held.is_none() => {
                if let (Some(sleep), Some(d)) = (idle.as_mut(), options.idle_timeout) {
                    sleep.as_mut().reset(::tokio::time::Instant::now() + d);
                }
                match msg {
                    None => break Disconnect::Ended,
                    Some(Err(e)) => break Disconnect::Socket(Arc::new(e)),
                    Some(Ok(Message::Binary(frame))) => match hand(shared, link, frame) {
                        Handed::Done(r) => ready |= r,
                        Handed::Full(frame) => {
                            let _ = shared.with(|s, _| s.stats.paused_reads += 1);
                            held = Some(frame);
                        }
                        Handed::Stopped => return Outcome::Stopped,
                    },
                    Some(Ok(Message::Close(frame))) => break closed(frame),
                    // Tungstenite queued the pong: write it now.
                    Some(Ok(Message::Ping(_))) => {
                        if let Err(e) = flush(&mut ws).await {
                            break Disconnect::Socket(Arc::new(e));
                        }
                    }
                    Some(Ok(Message::Text(_))) => {
                        let _ = shared.with(|s, _| s.stats.frames_rejected += 1);
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
    };
    finish(shared);
    Outcome::Ended(reason, ready)
}

/// The connection is gone: the session learns it, and frames from now on are dropped.
fn finish(shared: &Arc<Shared<SessionState>>) {
    let _ = shared.with(|s, now| {
        s.outbox = None;
        if let Some(session) = s.engine.as_mut() {
            session.disconnected(now);
        }
    });
}

/// The reason of an engine's close frame. The official engine appends `#<ray id>` to its
/// reasons (`ws.eviction#9ibf…`).
fn closed(frame: Option<WsCloseFrame>) -> Disconnect {
    match frame {
        Some(f) if f.reason.as_str().split('#').next() == Some(EVICTION_REASON) => {
            Disconnect::Evicted
        }
        Some(f) => Disconnect::Closed {
            code: f.code.into(),
            reason: String::from(f.reason.as_str()),
        },
        None => Disconnect::Closed {
            code: 1005,
            reason: String::new(),
        },
    }
}

/// What became of a frame handed to the session.
enum Handed {
    /// Handled; whether the session is ready (handshake answered) now.
    Done(bool),
    /// The app's queue is at half its limits: hand it again once there is room.
    Full(Bytes),
    /// The driver stopped.
    Stopped,
}

/// Hands `frame` to the session in place (translated from v8 on an envoy connection), unless
/// the app's queue is at half its limits.
fn hand(shared: &Arc<Shared<SessionState>>, link: Link<'_>, frame: Bytes) -> Handed {
    let mut slot = shared.lock();
    if slot.state.app.is_full() && slot.state.engine.is_some() {
        return Handed::Full(frame);
    }
    let result = shared.with_locked(&mut slot, |s, now| {
        s.stats.frames_in += 1;
        let Some(session) = s.engine.as_mut() else {
            return false;
        };
        let handled = match link.version {
            WireVersion::V7 => session.handle_frame(now, &frame).map_err(|e| e.to_string()),
            WireVersion::V8 => envoy::to_client(&frame, &DecodeLimits::default(), link.key)
                .map_err(|e| e.to_string())
                .and_then(|msg| session.handle_message(now, msg).map_err(|e| e.to_string())),
        };
        if let Err(error) = handled {
            s.stats.frames_rejected += 1;
            #[cfg(feature = "tracing")]
            ::tracing::warn!(%error, "hws: engine frame dropped");
            let _ = error;
        }
        session.link() == SessionLink::Ready
    });
    match result {
        Ok(ready) => Handed::Done(ready),
        Err(_) => Handed::Stopped,
    }
}

/// Returns once the app's queue is below its push-back point (or the driver stopped).
async fn wait_room(shared: &Arc<Shared<SessionState>>) {
    loop {
        let room = shared.room.notified();
        let mut room = core::pin::pin!(room);
        room.as_mut().enable();
        {
            let slot = shared.lock();
            if !slot.state.app.is_full() || slot.state.engine.is_none() {
                return;
            }
        }
        room.await;
    }
}

/// Writes every frame of `batch`, then flushes once.
async fn write_batch(ws: &mut Ws, batch: &mut Vec<Vec<u8>>) -> Result<(), tungstenite::Error> {
    for frame in batch.drain(..) {
        feed(ws, Message::Binary(Bytes::from(frame))).await?;
    }
    flush(ws).await
}

async fn next(ws: &mut Ws) -> Option<Result<Message, tungstenite::Error>> {
    core::future::poll_fn(|cx| Pin::new(&mut *ws).poll_next(cx)).await
}

async fn feed(ws: &mut Ws, msg: Message) -> Result<(), tungstenite::Error> {
    core::future::poll_fn(|cx| Pin::new(&mut *ws).poll_ready(cx)).await?;
    Pin::new(&mut *ws).start_send(msg)
}

async fn flush(ws: &mut Ws) -> Result<(), tungstenite::Error> {
    core::future::poll_fn(|cx| match Pin::new(&mut *ws).poll_flush(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => Poll::Pending,
    })
    .await
}

async fn send(ws: &mut Ws, msg: Message) -> Result<(), tungstenite::Error> {
    feed(ws, msg).await?;
    flush(ws).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eviction_is_recognised_with_or_without_the_engines_ray_id() {
        let frame = |reason: &str| {
            Some(WsCloseFrame {
                code: CloseCode::Normal,
                reason: reason.into(),
            })
        };
        assert!(matches!(closed(frame("ws.eviction")), Disconnect::Evicted));
        assert!(matches!(
            closed(frame("ws.eviction#9ibf4agetbbficrpkmkk564k36cl00")),
            Disconnect::Evicted
        ));
        assert!(matches!(
            closed(frame("ws.evictions")),
            Disconnect::Closed { code: 1000, .. }
        ));
    }
}
