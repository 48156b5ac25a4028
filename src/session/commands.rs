//! The engine's messages: handshake, commands (carried out once per checkpoint, then
//! acknowledged), event acknowledgements, pings and the tunnel.

use alloc::string::String;
use alloc::vec::Vec;

use crate::time::Timestamp;
use crate::wire::{
    ActorCheckpoint, ActorState, Command, CommandStartActor, CommandWrapper, Event, ToClient,
    ToClientInit, ToServer, ToServerAckCommands, ToServerEvents, ToServerPong,
};

use super::{Action, Link, Session, SessionActor, SessionReceiveError};

impl Session {
    pub(super) fn dispatch(
        &mut self,
        now: Timestamp,
        msg: ToClient,
    ) -> Result<(), SessionReceiveError> {
        match msg {
            ToClient::Init(init) => {
                self.on_init(now, init);
                Ok(())
            }
            ToClient::Ping(ping) => {
                self.send(&ToServer::Pong(ToServerPong { ts: ping.ts }));
                Ok(())
            }
            other if self.link != Link::Ready => Err(SessionReceiveError::NotConnected {
                message: match other {
                    ToClient::Commands(_) => "ToClientCommands",
                    ToClient::AckEvents(_) => "ToClientAckEvents",
                    ToClient::KvResponse(_) => "ToClientKvResponse",
                    _ => "ToClientTunnelMessage",
                },
            }),
            ToClient::Commands(commands) => self.on_commands(now, commands.0),
            ToClient::AckEvents(ack) => {
                self.on_ack_events(&ack.last_event_checkpoints);
                Ok(())
            }
            ToClient::KvResponse(response) => {
                self.actions.push_back(Action::KvResponse(response));
                Ok(())
            }
            ToClient::TunnelMessage(msg) => self
                .runner
                .handle_tunnel_message(now, msg)
                .map_err(SessionReceiveError::Tunnel),
        }
    }

    /// `ToClientInit`: a new runner id stops every actor of the old one (and drops the tunnel
    /// frames kept for it); otherwise the kept tunnel frames go out; then every event the engine
    /// has not acknowledged is sent again, oldest first per actor.
    fn on_init(&mut self, now: Timestamp, init: ToClientInit) {
        let new_id = self.runner_id.as_deref() != Some(init.runner_id.as_str());
        if new_id {
            self.orphan_all(now);
            self.drop_offline();
        }
        self.runner_id = Some(init.runner_id.clone());
        self.metadata = Some(init.metadata);
        self.link = Link::Ready;
        self.lost_at = Timestamp::MAX;
        self.actions.push_back(Action::Connected {
            runner_id: init.runner_id,
            metadata: init.metadata,
            new_id,
        });
        if self.draining {
            self.send(&ToServer::Stopping);
        }
        self.flush_offline();
        let events: Vec<_> = self
            .actors
            .values()
            .flat_map(|a| a.events.iter().cloned())
            .collect();
        if !events.is_empty() {
            self.send(&ToServer::Events(ToServerEvents(events)));
        }
    }

    /// `ToClientCommands`: each new command is carried out in order, then the last checkpoint
    /// per actor is acknowledged.
    fn on_commands(
        &mut self,
        now: Timestamp,
        commands: Vec<CommandWrapper>,
    ) -> Result<(), SessionReceiveError> {
        let mut first_error = None;
        for CommandWrapper { checkpoint, inner } in commands {
            let ActorCheckpoint {
                actor_id,
                generation,
                index,
            } = checkpoint;
            if let Err(e) = self.command(now, &actor_id, generation, index, inner) {
                first_error.get_or_insert(e);
            }
        }
        let last_command_checkpoints = self
            .actors
            .iter()
            .filter(|(_, a)| a.last_command >= 0 && !a.orphaned)
            .map(|(id, a)| ActorCheckpoint {
                actor_id: id.clone(),
                generation: a.generation,
                index: a.last_command,
            })
            .collect();
        self.send(&ToServer::AckCommands(ToServerAckCommands {
            last_command_checkpoints,
        }));
        first_error.map_or(Ok(()), Err)
    }

    pub(super) fn command(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        generation: u32,
        index: i64,
        inner: Command,
    ) -> Result<(), SessionReceiveError> {
        let known = self
            .actors
            .get(actor_id)
            .map(|a| (a.generation, a.last_command, a.gone, a.orphaned));
        match (inner, known) {
            // Older generation, or a command already carried out: nothing to do.
            (_, Some((g, _, _, false))) if generation < g => Ok(()),
            (_, Some((g, last, _, false))) if generation == g && index <= last => Ok(()),
            (Command::StartActor(start), None) => {
                self.start(now, actor_id, generation, index, start);
                Ok(())
            }
            (Command::StartActor(start), Some((_, _, gone, _))) => {
                if gone
                    && self
                        .actors
                        .get(actor_id)
                        .is_some_and(|a| a.queued_start.is_none())
                {
                    self.start(now, actor_id, generation, index, start);
                } else if let Some(actor) = self.actors.get_mut(actor_id) {
                    // The previous generation is still stopping here: start once it stopped.
                    actor.queued_start = Some((generation, index, start));
                    actor.queued_stop = None;
                    if !actor.stopping {
                        actor.stopping = true;
                        let _ = self.runner.actor_stopping(now, actor_id);
                    }
                }
                Ok(())
            }
            (Command::StopActor, Some((g, _, gone, false))) if generation == g => {
                let actor = self.actors.get_mut(actor_id);
                if let Some(actor) = actor {
                    actor.last_command = index;
                    if !gone && !actor.stopping {
                        actor.stopping = true;
                        return self.runner.actor_stopping(now, actor_id).map_err(|error| {
                            SessionReceiveError::Runner {
                                actor_id: actor_id.into(),
                                error,
                            }
                        });
                    }
                }
                Ok(())
            }
            // A stop for the generation whose start waits for the previous one to stop: carried
            // out right after that start (dropping it would leave the generation running after
            // the engine gave up on it).
            (Command::StopActor, Some(_)) => {
                if let Some(actor) = self.actors.get_mut(actor_id)
                    && actor
                        .queued_start
                        .as_ref()
                        .is_some_and(|(g, i, _)| *g == generation && index > *i)
                {
                    actor.queued_stop = Some(index);
                }
                Ok(())
            }
            // A stop for a generation this session never started, or for an orphan.
            (Command::StopActor, None) => Ok(()),
        }
    }

    /// Starts a generation of the actor: the tunnel engine learns it with the gateway's list,
    /// the app is told to restore it, and `Running` is reported at once.
    pub(super) fn start(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        generation: u32,
        index: i64,
        start: CommandStartActor,
    ) {
        let hosted = self.actors.values().filter(|a| !a.gone).count();
        if hosted >= self.config.total_slots as usize {
            // The engine never places more than the slots announced; refuse quietly by
            // reporting the actor stopped with an error.
            self.insert_actor(actor_id, generation, index);
            self.on_start_refused(actor_id);
            return;
        }
        let CommandStartActor {
            config,
            hibernating_requests,
        } = start;
        if let Err(error) = self
            .runner
            .actor_starting(now, actor_id, hibernating_requests.clone())
        {
            let _ = error;
            self.insert_actor(actor_id, generation, index);
            self.on_start_refused(actor_id);
            return;
        }
        self.insert_actor(actor_id, generation, index);
        self.emit_state(actor_id, ActorState::Running);
        self.actions.push_back(Action::StartActor {
            actor_id: actor_id.into(),
            generation,
            config,
            hibernating_requests,
        });
    }

    fn insert_actor(&mut self, actor_id: &str, generation: u32, index: i64) {
        let events = self
            .actors
            .remove(actor_id)
            .map(|a| a.events)
            .unwrap_or_default();
        self.actors.insert(
            String::from(actor_id),
            SessionActor {
                generation,
                last_command: index,
                next_event: 0,
                events,
                stop_code: crate::wire::StopCode::Ok,
                stop_message: None,
                stopping: false,
                gone: false,
                orphaned: false,
                queued_start: None,
                queued_stop: None,
            },
        );
    }

    /// A start the session could not carry out: reported as stopped with an error.
    fn on_start_refused(&mut self, actor_id: &str) {
        if let Some(actor) = self.actors.get_mut(actor_id) {
            actor.stop_code = crate::wire::StopCode::Error;
            actor.stop_message = Some("start refused by the runner".into());
            actor.stopping = true;
        }
        self.on_stopped(actor_id);
    }

    /// `ToClientAckEvents`: drops every event up to each checkpoint.
    fn on_ack_events(&mut self, checkpoints: &[ActorCheckpoint]) {
        for cp in checkpoints {
            let Some(actor) = self.actors.get_mut(&cp.actor_id) else {
                continue;
            };
            let before = actor.events.len();
            let mut intents = 0;
            actor.events.retain(|e| {
                let keep =
                    (e.checkpoint.generation, e.checkpoint.index) > (cp.generation, cp.index);
                if !keep && !matches!(e.inner, Event::ActorStateUpdate(_)) {
                    intents += 1;
                }
                keep
            });
            if actor.events.len() != before {
                self.unacked_intents = self.unacked_intents.saturating_sub(intents);
            }
            let id = cp.actor_id.clone();
            self.forget_if_done(&id);
        }
    }
}
