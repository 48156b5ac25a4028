//! Control-plane event builders (runner → engine), shared by `tests/control_scenarios.rs` and
//! `benches/control.rs`, which include this file with `#[path]`: it needs no feature and no
//! other file of `tests/common/`.

#![allow(dead_code, unreachable_pub)] // each includer uses a part

use hibernating_ws::wire::{
    ActorCheckpoint, ActorIntent, ActorState, ActorStateStopped, Event, EventActorIntent,
    EventActorStateUpdate, EventWrapper, StopCode,
};

/// `inner` as event `index` of `actor`'s generation `generation`.
pub fn event(actor: &str, generation: u32, index: i64, inner: Event) -> EventWrapper {
    EventWrapper {
        checkpoint: ActorCheckpoint {
            actor_id: actor.into(),
            generation,
            index,
        },
        inner,
    }
}

/// The actor is running.
pub fn running() -> Event {
    Event::ActorStateUpdate(EventActorStateUpdate {
        state: ActorState::Running,
    })
}

/// The actor stopped with `code` and no message.
pub fn stopped(code: StopCode) -> Event {
    Event::ActorStateUpdate(EventActorStateUpdate {
        state: ActorState::Stopped(ActorStateStopped {
            code,
            message: None,
        }),
    })
}

/// The actor asks to sleep or to stop.
pub fn intent(intent: ActorIntent) -> Event {
    Event::ActorIntent(EventActorIntent { intent })
}
