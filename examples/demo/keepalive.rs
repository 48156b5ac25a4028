//! Liveness and protocol errors of the gateway's WebSockets (both hops).
//!
//! * A peer that stops reading and writing without closing (a half-open connection: its host
//!   vanished, or it froze) is found by [`Keepalive`]: the writer pings every `interval`, and a
//!   reader that hears nothing (no frame, no pong) for `timeout` gives up on the connection.
//!   A reader that is paused on purpose (backpressure) is not timed: the queue bounds cover it.
//! * A frame that breaks the WebSocket protocol, text that is not UTF-8 or a message past the
//!   size limit ends the connection with the matching close code ([`error_close`]), not a silent
//!   drop.
//!
//! The close frame the reader decides on is handed to the writer through a [`CloseSlot`], which
//! sends it when the engine's events for the connection end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// How often a connection is pinged and how long a silent one is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// A ping is sent this often.
    pub interval: Duration,
    /// A reader that hears nothing for this long closes the connection
    /// ([`IDLE_TIMEOUT_REASON`]). At least two intervals.
    pub timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(45),
        }
    }
}

/// Close reason (code 1001) of a connection that answered nothing for [`Keepalive::timeout`].
pub const IDLE_TIMEOUT_REASON: &str = "hws.idle_timeout";

/// The close frame the reader decided on, for the writer to send last.
pub type CloseSlot = Arc<Mutex<Option<WsCloseFrame>>>;

/// Puts `frame` into `slot` (the first decision wins).
pub fn decide(slot: &CloseSlot, frame: WsCloseFrame) {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert(frame);
}

/// Takes the decided close frame, if any.
pub fn decided(slot: &CloseSlot) -> Option<WsCloseFrame> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

/// The close frame for a silent connection: 1001 [`IDLE_TIMEOUT_REASON`].
pub fn idle_close() -> WsCloseFrame {
    WsCloseFrame {
        code: CloseCode::Away,
        reason: IDLE_TIMEOUT_REASON.into(),
    }
}

/// The close frame that answers a read error, if the connection can still carry one: 1002 for a
/// protocol violation, 1007 for text that is not UTF-8, 1009 for a message or frame past the
/// size limits. `None` when the connection itself is gone (I/O errors, already closed).
pub fn error_close(e: &WsError) -> Option<WsCloseFrame> {
    let (code, reason) = match e {
        WsError::Protocol(_) => (CloseCode::Protocol, "hws.protocol_error"),
        WsError::Utf8(_) => (CloseCode::Invalid, "hws.invalid_utf8"),
        WsError::Capacity(_) => (CloseCode::Size, "hws.message_too_big"),
        _ => return None,
    };
    Some(WsCloseFrame {
        code,
        reason: reason.into(),
    })
}

/// The engine's view of a close frame.
pub fn engine_frame(f: &WsCloseFrame) -> hibernating_ws::CloseFrame {
    hibernating_ws::CloseFrame {
        code: Some(u16::from(f.code)),
        reason: (!f.reason.is_empty()).then(|| f.reason.as_str().to_string()),
    }
}
