//! [`Gateway::actor_starting`]: the control plane names the runner that restores a hibernating
//! request, so that runner's answers count before the wake routes the request there.

use alloc::boxed::Box;

use crate::time::Timestamp;
use crate::wire::RequestId;

use super::request::{PhaseState, RouteId};
use super::{Gateway, Phase, UnknownRequest};

impl Gateway {
    /// The actor of a hibernating request is starting on the runner behind `route` (upstream:
    /// the control plane sent that runner `CommandStartActor`, listing this request or not).
    ///
    /// While the request hibernates it accepts runner input from two routes only: the one it
    /// hibernated from (the stopping runner's last acks, an app close just before the stop) and
    /// the one declared here, the actor's next runner, which answers the restore before the
    /// wake routes the request to it (an ack of the persisted index, a close such as 1000
    /// `ws.meta_not_found_during_restore` or `ws.stale_metadata`, or a message from the restored
    /// actor). Any other connection is refused ([`ReceiveError::WrongRoute`](super::ReceiveError::WrongRoute)),
    /// however it learned the request's id. A later call replaces the route; [`wake`](Self::wake)
    /// ends it. In any other phase this does nothing.
    ///
    /// # Errors
    /// [`UnknownRequest`].
    pub fn actor_starting(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        route: RouteId,
    ) -> Result<(), UnknownRequest> {
        self.advance(now);
        let (_, req) = self.live_mut(request_id)?;
        if req.phase != Phase::Hibernating {
            return Ok(());
        }
        match req.phase_state.as_deref_mut() {
            Some(PhaseState::WakeRequested { next_route, .. }) => *next_route = Some(route),
            Some(PhaseState::Restoring { next_route }) => *next_route = route,
            _ => req.phase_state = Some(Box::new(PhaseState::Restoring { next_route: route })),
        }
        Ok(())
    }
}
