//! # hws — reliable hibernatable WebSockets
//!
//! A client keeps a WebSocket open to a *gateway*; the gateway tunnels it to a *runner* that hosts
//! an *actor*; the actor may go to sleep (hibernate) and wake later, possibly on another runner.
//! `hws` guarantees that no client message is lost or delivered twice across that, while speaking
//! the tunnel part of Rivet's runner protocol (v7) byte for byte.
//!
//! It is a sans-IO library: the engines consume events and emit actions, never do I/O and never
//! read a clock. Time is a [`Timestamp`] passed in by the caller.
//!
//! * [`MessageIndex`] — wrapping `u16` indices with one serial-number arithmetic (RFC 1982).
//! * [`wire`] — the BARE codec, byte-compatible with the official TypeScript codec.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

pub mod close;
pub mod config;
#[cfg(feature = "std")]
pub mod driver;
#[cfg(feature = "sim")]
#[doc(hidden)]
pub mod fuzz;
pub mod gateway;
pub mod index;
pub mod runner;
#[cfg(feature = "sim")]
pub mod sim;
pub mod time;
pub mod wire;

pub use close::{CloseFrame, KnownClose};
pub use config::ConfigError;
pub use index::MessageIndex;
#[cfg(feature = "std")]
pub use time::Clock;
pub use time::Timestamp;
