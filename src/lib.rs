//! # hibernating-ws — reliable hibernatable WebSockets
//!
//! A client keeps a WebSocket open to a *gateway*; the gateway tunnels it to a *runner* that hosts
//! an *actor*; the actor may go to sleep (hibernate) and wake later, possibly on another runner.
//! `hibernating-ws` (hws for short) guarantees that no client message is lost or delivered twice across that, while speaking
//! the tunnel part of Rivet's runner protocol (v7) byte for byte.
//!
//! It is a sans-IO library in the style of quinn-proto and str0m: the engines consume events and
//! emit actions, never do I/O and never read a clock. Time is a [`Timestamp`] passed in by the
//! caller, so the same code runs under tokio, in a thread, in a simulator or in a fuzzer.
//!
//! * [`gateway::Gateway`] — every client WebSocket of a gateway process: numbers messages with a
//!   wrapping [`MessageIndex`], buffers what the runner has not acknowledged, replays it verbatim on
//!   wake, enforces per-request and gateway-wide limits, and collects dead requests with exact
//!   timers.
//! * [`runner::Runner`] — every actor and socket of a runner process: drops duplicates, detects
//!   gaps, delivers in order, asks the app to persist the last delivered index and acknowledges
//!   only what is persisted, restores sockets when an actor wakes.
//! * [`wire`] — the BARE codec, byte-compatible with the official TypeScript codec.
//! * [`driver`] — thin `tokio` and blocking adapters that own the I/O and the clock.
//!
//! # Driving an engine
//!
//! Both engines follow one contract: `now` never decreases; after **every** call drain
//! `poll_action()` until `None` and carry out the actions in order; then read `poll_timeout()` and
//! call `handle_timeout(now)` when that instant arrives.
//!
//! # Example: two engines in memory, across a sleep and a wake
//!
//! The gateway's frames go straight to the runner and back; the "app" accepts sockets as
//! hibernatable and persists every index it is asked to. The actor goes to sleep while the client
//! keeps talking; on wake the gateway replays what was not acknowledged and the runner delivers
//! each message exactly once.
//!
//! ```
//! use std::collections::BTreeMap;
//! use hibernating_ws::gateway::{self, Gateway, GatewayConfig, OpenRequest, RouteId};
//! use hibernating_ws::runner::{self, PersistedSocket, Runner, RunnerConfig, SocketId};
//! use hibernating_ws::wire::{GatewayId, HibernatingRequest, RequestId};
//! use hibernating_ws::Timestamp;
//!
//! /// Everything outside the two engines: the network, the app and its storage.
//! #[derive(Default)]
//! struct World {
//!     storage: BTreeMap<SocketId, PersistedSocket>,
//!     delivered: Vec<Vec<u8>>,
//!     wake_requested: bool,
//! }
//!
//! /// Moves frames between the engines and plays the app until both are idle.
//! fn pump(now: Timestamp, gw: &mut Gateway, rn: &mut Runner, world: &mut World) {
//!     loop {
//!         let mut idle = true;
//!         while let Some(action) = gw.poll_action() {
//!             idle = false;
//!             match action {
//!                 gateway::Action::Publish { frame, .. } => {
//!                     rn.handle_frame(now, &frame).expect("valid frame");
//!                 }
//!                 gateway::Action::RequestWake { .. } => world.wake_requested = true,
//!                 gateway::Action::UpsertHibernatingRecord { request_id, .. } => {
//!                     gw.hibernating_record_upserted(now, request_id).unwrap();
//!                 }
//!                 _ => {}
//!             }
//!         }
//!         while let Some(action) = rn.poll_action() {
//!             idle = false;
//!             match action {
//!                 runner::Action::Publish { frame, .. } => {
//!                     gw.handle_runner_frame(now, RouteId(1), &frame).expect("valid frame");
//!                 }
//!                 runner::Action::Open { socket, path, headers, .. } => {
//!                     let meta = PersistedSocket {
//!                         socket,
//!                         server_index: Default::default(),
//!                         client_index: Default::default(),
//!                         path,
//!                         headers,
//!                     };
//!                     world.storage.insert(socket, meta);
//!                     rn.accept(now, socket, true).unwrap();
//!                 }
//!                 runner::Action::Message { data, .. } => world.delivered.push(data),
//!                 runner::Action::Persist { socket, server_index, client_index, .. } => {
//!                     let meta = world.storage.get_mut(&socket).unwrap();
//!                     meta.server_index = server_index;
//!                     meta.client_index = client_index;
//!                     rn.persisted(now, socket, server_index).unwrap();
//!                 }
//!                 _ => {}
//!             }
//!         }
//!         if idle {
//!             return;
//!         }
//!     }
//! }
//!
//! let now = Timestamp::from_secs(1);
//! let (gateway_id, request_id) = (GatewayId([1, 2, 3, 4]), RequestId([5, 6, 7, 8]));
//! let mut gw = Gateway::new(GatewayConfig::default(), gateway_id, now)?;
//! let mut rn = Runner::new(RunnerConfig::default(), now)?;
//! let mut world = World::default();
//!
//! // The actor starts on the runner, and a client connects to it through the gateway.
//! rn.actor_starting(now, "chat", vec![])?;
//! rn.restore(now, "chat", vec![])?;
//! gw.open(now, request_id, RouteId(1), OpenRequest::new("chat", "/")?)?;
//! pump(now, &mut gw, &mut rn, &mut world);
//!
//! for text in ["one", "two", "three"] {
//!     gw.client_message(now, request_id, text.as_bytes(), false)?;
//! }
//! pump(now, &mut gw, &mut rn, &mut world);
//! assert_eq!(world.delivered.len(), 3);
//! // Delivered, but not yet persisted (the runner debounces): the gateway still holds all three.
//! assert_eq!(gw.request(request_id).unwrap().pending_messages, 3);
//!
//! // The actor goes to sleep: the runner flushes the index, the gateway hibernates the socket.
//! rn.actor_stopping(now, "chat")?;
//! gw.actor_stopped(now, request_id)?;
//! pump(now, &mut gw, &mut rn, &mut world);
//! assert_eq!(gw.request(request_id).unwrap().phase, gateway::Phase::Hibernating);
//! assert_eq!(gw.request(request_id).unwrap().pending_messages, 0); // acked after the flush
//!
//! // The client keeps talking while the actor sleeps: the gateway buffers and asks for a wake.
//! gw.client_message(now, request_id, b"four", false)?;
//! pump(now, &mut gw, &mut rn, &mut world);
//! assert!(world.wake_requested);
//!
//! // Wake: the actor starts again with the gateway's list and its own metadata, then the
//! // gateway replays what the runner has not acknowledged.
//! let listed = vec![HibernatingRequest { gateway_id, request_id }];
//! rn.actor_starting(now, "chat", listed)?;
//! rn.restore(now, "chat", world.storage.values().cloned().collect())?;
//! gw.wake(now, request_id, RouteId(1))?;
//! pump(now, &mut gw, &mut rn, &mut world);
//!
//! let texts: Vec<&[u8]> = world.delivered.iter().map(Vec::as_slice).collect();
//! assert_eq!(texts, [&b"one"[..], b"two", b"three", b"four"]); // each exactly once, in order
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

pub mod close;
#[cfg(feature = "nats")]
pub mod cluster;
pub mod config;
pub mod control;
#[cfg(feature = "std")]
pub mod driver;
pub mod gateway;
pub mod index;
pub mod runner;
pub mod session;
mod stats_fmt;
#[cfg(feature = "std")]
pub mod storage;
#[cfg(any(test, feature = "sim"))]
#[doc(hidden)]
pub mod testing;
pub mod time;
mod trace;
pub mod wire;

#[cfg(feature = "sim")]
#[doc(hidden)]
pub use testing::{fuzz, sim};

pub use close::{CloseFrame, KnownClose};
pub use config::ConfigError;
pub use index::MessageIndex;
#[cfg(feature = "std")]
pub use time::Clock;
pub use time::Timestamp;
