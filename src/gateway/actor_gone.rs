//! [`Gateway::actor_destroyed`]: closing a request whose actor is gone for good.

use crate::time::Timestamp;
use crate::wire::RequestId;

use super::{CloseReason, Gateway, Phase, UnknownRequest};

impl Gateway {
    /// The actor behind the request was destroyed and will not run again: the request closes
    /// whatever its phase, hibernating included ([`CloseReason::ActorStopped`], 1000
    /// `actor.stopped` to the client; [`CloseReason::ActorStoppedBeforeOpen`] before the runner
    /// accepted it). Nothing is published to the runner.
    ///
    /// # Errors
    /// [`UnknownRequest`].
    pub fn actor_destroyed(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
    ) -> Result<(), UnknownRequest> {
        self.advance(now);
        let (slot, req) = self.live_mut(request_id)?;
        let phase = req.phase;
        let reason = match phase {
            Phase::AwaitingOpen => CloseReason::ActorStoppedBeforeOpen,
            Phase::Active | Phase::Hibernating => CloseReason::ActorStopped,
        };
        self.terminate(slot, reason);
        Ok(())
    }
}
