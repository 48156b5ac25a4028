//! Close codes and reasons shared by both engines (`docs/protocol.md#close-codes`).
//!
//! Upstream closes carry bare `(code, reason)` pairs. hws reports every close as a typed enum
//! ([`gateway::CloseReason`](crate::gateway::CloseReason),
//! `runner::CloseReason`) and maps it to the exact upstream pair
//! here, so a Rivet client or runner sees the same bytes it would see from Rivet itself.
//! [`KnownClose::classify`] maps a received pair back to its typed meaning, so both sides of the
//! tunnel can agree on why a socket closed.

use alloc::string::String;
use core::fmt;

/// Normal closure.
pub const CODE_NORMAL: u16 = 1000;
/// Abnormal closure (never sent in a close frame by a compliant peer; used by `terminate()`).
pub const CODE_ABNORMAL: u16 = 1006;
/// Policy violation (upstream: index gap).
pub const CODE_POLICY_VIOLATION: u16 = 1008;
/// Internal error.
pub const CODE_INTERNAL_ERROR: u16 = 1011;

/// The longest close reason a WebSocket close frame can carry (125 − 2 bytes of code).
pub const MAX_CLOSE_REASON_LEN: usize = 123;

/// A close code and reason as they travel in a close frame or a tunnel close message.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct CloseFrame {
    /// Close code; `None` when the peer sent none.
    pub code: Option<u16>,
    /// Close reason; `None` when the peer sent none.
    pub reason: Option<String>,
}

impl CloseFrame {
    /// A frame with both a code and a reason.
    #[must_use]
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            reason: Some(reason.into()),
        }
    }

    /// A frame with a code only.
    #[must_use]
    pub const fn code(code: u16) -> Self {
        Self {
            code: Some(code),
            reason: None,
        }
    }

    /// What a known upstream pair means, if this is one.
    #[must_use]
    pub fn known(&self) -> Option<KnownClose> {
        KnownClose::classify(self.code, self.reason.as_deref())
    }
}

impl fmt::Debug for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.reason) {
            (Some(c), Some(r)) => write!(f, "Close({c}, {r:?})"),
            (Some(c), None) => write!(f, "Close({c})"),
            (None, Some(r)) => write!(f, "Close(-, {r:?})"),
            (None, None) => write!(f, "Close(-)"),
        }
    }
}

/// Every `(code, reason)` pair with a fixed meaning: upstream's, and two of hws's own (`docs/protocol.md#close-codes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KnownClose {
    /// 1000 `ws.meta_not_found_during_restore` — runner → gateway: the gateway listed the request
    /// but the actor had no metadata for it (restore case 2).
    MetaNotFoundDuringRestore,
    /// 1011 `ws.restore_error` — runner → gateway: restoring the socket failed.
    RestoreError,
    /// 1000 `ws.stale_metadata` — runner-local: the actor had metadata the gateway no longer
    /// lists (restore case 3).
    StaleMetadata,
    /// 1008 `ws.message_index_skip` — runner → gateway: a gap in the gateway's indices.
    MessageIndexSkip,
    /// 1000 `ws.duplicate_open` — runner-local, upstream \[TIP\] only.
    DuplicateOpen,
    /// 1000 `ws.tunnel_shutdown` — runner-local: the runner shut down (non-hibernatable sockets).
    TunnelShutdown,
    /// 1000 `actor.stopped` — the actor stopped (non-hibernatable sockets).
    ActorStopped,
    /// 1011 `Actor not found` — runner → gateway: an open for an actor the runner does not host.
    ActorNotFound,
    /// 1011 `Server Error` — runner → gateway: the app failed while opening.
    ServerError,
    /// 1006 `Abnormal Closure` — runner → gateway: the socket was terminated.
    AbnormalClosure,
    /// 1011 `ws.downstream_closed` — gateway → runner: the gateway ended the request with an
    /// error (limit, timeout, collection).
    DownstreamClosed,
    /// 1011 `guard.websocket_pending_limit_reached` — gateway → client.
    PendingLimitReached,
    /// 1011 `guard.websocket_open_timeout` — gateway → client.
    OpenTimeout,
    /// 1011 `guard.websocket_closed_before_open` — gateway → client.
    ClosedBeforeOpen,
    /// 1011 `guard.websocket_tunnel_ping_timeout` — gateway → client.
    PingTimeout,
    /// 1011 `guard.websocket_garbage_collected` — gateway → client.
    GarbageCollected,
    /// 1011 `guard.actor_stopped_while_waiting_for_websocket_open` — gateway → client.
    ActorStoppedWhileWaitingForOpen,
    /// 1011 `ws.socket_not_found` — runner → gateway, hws only (upstream answers nothing): a
    /// tunnel message or ping named a socket the runner neither holds nor handed back recently.
    SocketNotFound,
    /// 1011 `ws.request_not_found` — gateway → runner, hws only (upstream drops the frame): a
    /// runner message named a request the gateway no longer has.
    RequestNotFound,
}

impl KnownClose {
    /// Every known pair, for exhaustive tests and lookups.
    pub const ALL: [Self; 19] = [
        Self::MetaNotFoundDuringRestore,
        Self::RestoreError,
        Self::StaleMetadata,
        Self::MessageIndexSkip,
        Self::DuplicateOpen,
        Self::TunnelShutdown,
        Self::ActorStopped,
        Self::ActorNotFound,
        Self::ServerError,
        Self::AbnormalClosure,
        Self::DownstreamClosed,
        Self::PendingLimitReached,
        Self::OpenTimeout,
        Self::ClosedBeforeOpen,
        Self::PingTimeout,
        Self::GarbageCollected,
        Self::ActorStoppedWhileWaitingForOpen,
        Self::SocketNotFound,
        Self::RequestNotFound,
    ];

    /// The upstream close code.
    #[must_use]
    pub const fn code(self) -> u16 {
        match self {
            Self::MetaNotFoundDuringRestore
            | Self::StaleMetadata
            | Self::DuplicateOpen
            | Self::TunnelShutdown
            | Self::ActorStopped => CODE_NORMAL,
            Self::MessageIndexSkip => CODE_POLICY_VIOLATION,
            Self::AbnormalClosure => CODE_ABNORMAL,
            Self::RestoreError
            | Self::ActorNotFound
            | Self::ServerError
            | Self::DownstreamClosed
            | Self::PendingLimitReached
            | Self::OpenTimeout
            | Self::ClosedBeforeOpen
            | Self::PingTimeout
            | Self::GarbageCollected
            | Self::ActorStoppedWhileWaitingForOpen
            | Self::SocketNotFound
            | Self::RequestNotFound => CODE_INTERNAL_ERROR,
        }
    }

    /// The upstream close reason.
    #[must_use]
    pub const fn reason(self) -> &'static str {
        match self {
            Self::MetaNotFoundDuringRestore => "ws.meta_not_found_during_restore",
            Self::RestoreError => "ws.restore_error",
            Self::StaleMetadata => "ws.stale_metadata",
            Self::MessageIndexSkip => "ws.message_index_skip",
            Self::DuplicateOpen => "ws.duplicate_open",
            Self::TunnelShutdown => "ws.tunnel_shutdown",
            Self::ActorStopped => "actor.stopped",
            Self::ActorNotFound => "Actor not found",
            Self::ServerError => "Server Error",
            Self::AbnormalClosure => "Abnormal Closure",
            Self::DownstreamClosed => "ws.downstream_closed",
            Self::PendingLimitReached => "guard.websocket_pending_limit_reached",
            Self::OpenTimeout => "guard.websocket_open_timeout",
            Self::ClosedBeforeOpen => "guard.websocket_closed_before_open",
            Self::PingTimeout => "guard.websocket_tunnel_ping_timeout",
            Self::GarbageCollected => "guard.websocket_garbage_collected",
            Self::ActorStoppedWhileWaitingForOpen => {
                "guard.actor_stopped_while_waiting_for_websocket_open"
            }
            Self::SocketNotFound => "ws.socket_not_found",
            Self::RequestNotFound => "ws.request_not_found",
        }
    }

    /// The pair as a [`CloseFrame`].
    #[must_use]
    pub fn frame(self) -> CloseFrame {
        CloseFrame::new(self.code(), self.reason())
    }

    /// The typed meaning of a received pair. Guard reasons may carry a `#<ray id>` suffix
    /// upstream; it is ignored.
    #[must_use]
    pub fn classify(code: Option<u16>, reason: Option<&str>) -> Option<Self> {
        let code = code?;
        let reason = reason?;
        let reason = reason.split_once('#').map_or(reason, |(r, _)| r);
        Self::ALL
            .into_iter()
            .find(|k| k.code() == code && k.reason() == reason)
    }
}

impl fmt::Display for KnownClose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_pair_classifies_back_to_itself() {
        for k in KnownClose::ALL {
            assert_eq!(
                KnownClose::classify(Some(k.code()), Some(k.reason())),
                Some(k)
            );
            assert_eq!(k.frame().known(), Some(k));
            assert!(k.reason().len() <= MAX_CLOSE_REASON_LEN);
        }
    }

    #[test]
    fn ray_suffix_ignored_and_mismatches_rejected() {
        assert_eq!(
            KnownClose::classify(Some(1011), Some("guard.websocket_open_timeout#abc123")),
            Some(KnownClose::OpenTimeout)
        );
        assert_eq!(
            KnownClose::classify(Some(1000), Some("ws.message_index_skip")),
            None
        );
        assert_eq!(
            KnownClose::classify(None, Some("ws.message_index_skip")),
            None
        );
        assert_eq!(KnownClose::classify(Some(1008), None), None);
    }

    #[test]
    fn upstream_codes() {
        assert_eq!(
            KnownClose::MessageIndexSkip.frame(),
            CloseFrame::new(1008, "ws.message_index_skip")
        );
        assert_eq!(
            KnownClose::DownstreamClosed.frame(),
            CloseFrame::new(1011, "ws.downstream_closed")
        );
        assert_eq!(
            KnownClose::MetaNotFoundDuringRestore.frame(),
            CloseFrame::new(1000, "ws.meta_not_found_during_restore")
        );
        assert_eq!(
            KnownClose::ActorNotFound.frame(),
            CloseFrame::new(1011, "Actor not found")
        );
    }
}
