//! The adapters' `tracing` events (feature `tracing`): one event per action worth reporting,
//! with the ids as structured fields. Without the feature every function here is empty.
//!
//! The adapters have no task per client (a client is a pair of halves polled by the caller), so
//! instead of a span per client every event carries the client's ids as fields.

use crate::gateway;
use crate::runner;

/// Reports a gateway action: open, hibernate, wake request, close (with the close code and
/// reason the client gets, and the garbage-collection reason when it was collected).
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn gateway_action(action: &gateway::Action) {
    #[cfg(feature = "tracing")]
    {
        use gateway::{Action, CloseReason};
        match action {
            Action::Opened {
                request_id,
                hibernatable,
                ..
            } => tracing::debug!(?request_id, hibernatable, "hws: request opened"),
            Action::Hibernated { request_id } => {
                tracing::debug!(?request_id, "hws: request hibernated");
            }
            Action::RequestWake {
                request_id,
                actor_id,
            } => tracing::debug!(?request_id, %actor_id, "hws: wake requested"),
            Action::Closed { request_id, reason } => {
                let frame = reason.client_frame();
                let code = frame.as_ref().and_then(|f| f.code);
                let text = frame.as_ref().and_then(|f| f.reason.as_deref());
                match reason {
                    CloseReason::Collected(gc) => tracing::warn!(
                        ?request_id, ?code, reason = ?text, collected = ?gc,
                        "hws: request collected"
                    ),
                    CloseReason::PendingLimit(limit) => tracing::warn!(
                        ?request_id, ?code, reason = ?text, ?limit,
                        "hws: request closed by a limit"
                    ),
                    _ => tracing::debug!(
                        ?request_id, ?code, reason = ?text, close = ?reason,
                        "hws: request closed"
                    ),
                }
            }
            _ => {}
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = action;
}

/// Reports a runner action: open, restore (wake), close (with its reason), actor stop.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn runner_action(action: &runner::Action) {
    #[cfg(feature = "tracing")]
    {
        use runner::Action;
        match action {
            Action::Open {
                socket, actor_id, ..
            } => tracing::debug!(?socket, %actor_id, "hws: socket opened"),
            Action::Restored {
                socket, actor_id, ..
            } => tracing::debug!(?socket, %actor_id, "hws: socket restored (woken)"),
            Action::Closed { socket, reason } => {
                tracing::debug!(?socket, ?reason, "hws: socket closed");
            }
            Action::ActorStopped { actor_id } => {
                tracing::debug!(%actor_id, "hws: actor stopped");
            }
            _ => {}
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = action;
}

/// Reports a client whose outbound queue overflowed (the driver closes its request).
#[cfg(feature = "tokio")]
pub(crate) fn client_queue_full(request_id: crate::wire::RequestId) {
    #[cfg(feature = "tracing")]
    tracing::warn!(?request_id, "hws: client queue full, closing the request");
    #[cfg(not(feature = "tracing"))]
    let _ = request_id;
}
