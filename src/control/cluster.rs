//! Cluster mode ([`ControlConfig::cluster`](super::ControlConfig::cluster)): one engine per node,
//! runners and clients on any node.
//!
//! Each node runs a [`Control`] with its own gateway (its own gateway id). A client's request
//! lives on the node it connected to; the actor's runner may be connected to another node. Three
//! concepts let the engines of different nodes cooperate, each an input or an action; the
//! transport (pub/sub) and the shared state (who runs which actor, at which generation, and the
//! hibernating records of every gateway) belong to the embedder:
//!
//! * **Remote routes.** [`Control::remote_route`] gives a gateway route to a runner connected to
//!   another node. The gateway's tunnel frames for it come out as [`Action::PublishRemote`]
//!   (versioned `ToRunner`, as the gateway encoded them); the runner's answers come back through
//!   [`Control::handle_remote_frame`] (versioned `ToGateway`). Gateway pings on a remote route
//!   are answered here while the route exists: the runner's connection is watched by its own
//!   node, and a lost runner stops its actors, which the shared state reports.
//! * **Forwarding.** A versioned `ToRunner` frame another node published for a local runner goes
//!   in through [`Control::handle_forwarded_frame`] and out on the runner's connection as a plain
//!   `ToClient`; a local runner's tunnel message naming another gateway goes out as
//!   [`Action::ForwardToGateway`] (versioned `ToGateway`) instead of being refused.
//! * **External placement.** An actor that must run is not placed by the engine: it goes
//!   `Pending` and [`Action::PlaceActor`] asks the embedder. The embedder claims the actor in the
//!   shared state (a compare-and-set, so one node wins) and then calls [`Control::place_here`]
//!   on the winning node (a local runner, the generation from the shared state, and the other
//!   gateways' hibernating records for `CommandStartActor`), or [`Control::running_elsewhere`] /
//!   [`Control::stopped_elsewhere`] on the other nodes as the shared state changes. Every
//!   hibernating record of the local gateway is reported as [`Action::HibernatingRecord`].
//!
//! The node hosting an actor runs its life cycle (commands, events, timeouts) as in single-node
//! mode and reports it with [`Action::ActorRunning`] and [`Action::ActorStopped`]; the other nodes
//! only mirror it, so [`Control::stop_actor`] on a node that does not host the actor changes
//! nothing there.

use alloc::string::String;
use alloc::vec::Vec;

use crate::gateway::RouteId;
use crate::time::Timestamp;
use crate::wire::{self, HibernatingRequest, ToGateway, ToServerTunnelMessage, VERSION_PREFIX_LEN};

use super::{Action, ActorPhase, ClusterError, Control, OutFrame, StopReason};

/// `ToRunner` tag of a tunnel message (the only kind forwarded to a runner).
const TAG_TUNNEL: u8 = 4;

/// A runner connected to another node: where a remote route leads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RemoteRunner {
    /// The node the runner is connected to.
    pub node: String,
    /// The runner's id (given by that node's engine).
    pub runner_id: String,
}

impl Control {
    /// The route to `runner_id`, connected to `node`: the same route for the same pair every
    /// time. Use it with [`running_elsewhere`](Self::running_elsewhere).
    ///
    /// # Errors
    /// [`ClusterError::NotClustered`], [`ClusterError::TooManyRoutes`] (at most
    /// [`ControlConfig::max_runners`](super::ControlConfig::max_runners) remote routes).
    pub fn remote_route(&mut self, node: &str, runner_id: &str) -> Result<RouteId, ClusterError> {
        self.clustered()?;
        let key = (String::from(node), String::from(runner_id));
        if let Some(&seq) = self.remote_index.get(&key) {
            return Ok(RouteId(seq));
        }
        if self.remote.len() >= self.config.max_runners {
            return Err(ClusterError::TooManyRoutes {
                runner_id: runner_id.into(),
            });
        }
        let seq = self.next_runner;
        self.next_runner += 1;
        self.remote.insert(
            seq,
            RemoteRunner {
                node: key.0.clone(),
                runner_id: key.1.clone(),
            },
        );
        self.remote_index.insert(key, seq);
        Ok(RouteId(seq))
    }

    /// Where a remote route leads (`None` for a local runner's route or an unknown one).
    pub fn remote_runner(&self, route: RouteId) -> Option<&RemoteRunner> {
        self.remote.get(&route.0)
    }

    /// A versioned `ToGateway` frame from the runner behind the remote `route` (published to
    /// this node's gateway by the runner's node).
    ///
    /// # Errors
    /// [`ClusterError::UnknownRoute`]; [`ClusterError::Tunnel`] with the gateway's refusal.
    pub fn handle_remote_frame(
        &mut self,
        now: Timestamp,
        route: RouteId,
        bytes: &[u8],
    ) -> Result<(), ClusterError> {
        let now = self.advance(now);
        if !self.remote.contains_key(&route.0) {
            self.stats.frames_dropped += 1;
            return Err(ClusterError::UnknownRoute { route: route.0 });
        }
        let result = self
            .gateway
            .handle_runner_frame(now, route, bytes)
            .map_err(|error| ClusterError::Tunnel {
                route: route.0,
                error,
            });
        if result.is_err() {
            self.stats.frames_dropped += 1;
        }
        self.pump(now);
        result
    }

    /// A versioned `ToRunner` tunnel frame another node's gateway published for the local runner
    /// `runner_id`: sent on the runner's connection as a plain `ToClient` (the same bytes
    /// without the version prefix).
    ///
    /// # Errors
    /// [`ClusterError::UnknownRunner`] (not connected here: the frame is dropped, the sender's
    /// gateway replays it after the actor moved); [`ClusterError::Malformed`] (not a tunnel
    /// frame of a supported version).
    pub fn handle_forwarded_frame(
        &mut self,
        now: Timestamp,
        runner_id: &str,
        bytes: &[u8],
    ) -> Result<(), ClusterError> {
        self.advance(now);
        let conn = self
            .runners
            .values()
            .find(|r| r.id == runner_id)
            .and_then(|r| r.conn);
        let Some(conn) = conn else {
            self.stats.frames_unroutable += 1;
            return Err(ClusterError::UnknownRunner {
                runner_id: runner_id.into(),
            });
        };
        let version = bytes
            .get(..VERSION_PREFIX_LEN)
            .map(|v| u16::from_le_bytes([v[0], v[1]]));
        let supported = version.is_some_and(|v| wire::TUNNEL_COMPATIBLE_VERSIONS.contains(&v));
        if !supported || bytes.get(VERSION_PREFIX_LEN) != Some(&TAG_TUNNEL) {
            self.stats.frames_dropped += 1;
            return Err(ClusterError::Malformed {
                runner_id: runner_id.into(),
            });
        }
        self.actions.push_back(Action::Send {
            conn,
            frame: OutFrame::owned(bytes.get(VERSION_PREFIX_LEN..).unwrap_or_default().to_vec()),
        });
        Ok(())
    }

    /// The embedder won the actor's placement for the local runner `runner_id` at `generation`
    /// (from the shared state): `CommandStartActor` goes to the runner, listing this gateway's
    /// hibernating records and `others` (the other gateways'). The actor must be
    /// [`Pending`](ActorPhase::Pending) or [`Sleeping`](ActorPhase::Sleeping).
    ///
    /// # Errors
    /// [`ClusterError::NotClustered`], [`ClusterError::UnknownActor`],
    /// [`ClusterError::NotPending`], [`ClusterError::RunnerUnavailable`].
    pub fn place_here(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        runner_id: &str,
        generation: u32,
        others: &[HibernatingRequest],
    ) -> Result<(), ClusterError> {
        self.clustered()?;
        let now = self.advance(now);
        let slot = self.cluster_slot(actor_id)?;
        let phase = self.actor_ref(slot).map(|a| a.phase);
        if !matches!(phase, Some(ActorPhase::Pending | ActorPhase::Sleeping)) {
            return Err(ClusterError::NotPending {
                actor_id: actor_id.into(),
            });
        }
        let seq = self.runners.iter().find_map(|(&seq, r)| {
            let free = (r.total_slots as usize) > r.actors.len();
            (r.id == runner_id && r.conn.is_some() && !r.draining && free).then_some(seq)
        });
        let Some(seq) = seq else {
            return Err(ClusterError::RunnerUnavailable {
                runner_id: runner_id.into(),
                actor_id: actor_id.into(),
            });
        };
        if let Some(actor) = self.actor_mut(slot) {
            actor.phase = ActorPhase::Pending;
        }
        self.start_placed(now, slot, seq, generation, others);
        self.pump(now);
        Ok(())
    }

    /// The shared state says the actor runs at `generation` on the runner behind the remote
    /// `route`: its hibernating requests here are woken there, and its waiting opens go there.
    /// Nothing happens if this node hosts the actor itself.
    ///
    /// # Errors
    /// [`ClusterError::NotClustered`], [`ClusterError::UnknownActor`],
    /// [`ClusterError::UnknownRoute`].
    pub fn running_elsewhere(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        route: RouteId,
        generation: u32,
    ) -> Result<(), ClusterError> {
        self.clustered()?;
        let now = self.advance(now);
        let slot = self.cluster_slot(actor_id)?;
        if !self.remote.contains_key(&route.0) {
            return Err(ClusterError::UnknownRoute { route: route.0 });
        }
        let current = self.actor_ref(slot).map(|a| (a.runner, a.generation));
        match current {
            None => return Ok(()),
            // Hosted here (starting, running or stopping on a local runner): this node's own
            // life cycle is the truth; the shared state catches up with its reports.
            Some((Some(seq), _)) if !self.remote.contains_key(&seq) => return Ok(()),
            Some((Some(seq), g)) if seq == route.0 && g == Some(generation) => return Ok(()),
            // It moved without this node seeing it stop: its requests here hibernate first.
            Some((Some(_), _)) => self.stopped(now, slot, StopReason::Elsewhere),
            Some((None, _)) => {}
        }
        let Some(actor) = self.actor_mut(slot) else {
            return Ok(());
        };
        actor.phase = ActorPhase::Running;
        actor.generation = Some(generation);
        actor.runner = Some(route.0);
        let records: Vec<_> = actor.records.iter().copied().collect();
        let waiting = core::mem::take(&mut actor.waiting);
        self.wake_requests(now, route.0, &records);
        self.open_waiting(now, slot, route.0, waiting);
        self.pump(now);
        Ok(())
    }

    /// The shared state says the actor stopped on another node (at `generation` or before): its
    /// hibernatable requests here hibernate, the others close, and it asks to run again
    /// ([`Action::PlaceActor`]) if a request or an open needs it. Nothing happens unless it ran
    /// elsewhere at that generation or an older one.
    ///
    /// # Errors
    /// [`ClusterError::NotClustered`], [`ClusterError::UnknownActor`].
    pub fn stopped_elsewhere(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        generation: u32,
    ) -> Result<(), ClusterError> {
        self.clustered()?;
        let now = self.advance(now);
        let slot = self.cluster_slot(actor_id)?;
        let remote = self.actor_ref(slot).is_some_and(|a| {
            a.runner.is_some_and(|seq| self.remote.contains_key(&seq))
                && a.generation.is_none_or(|g| g <= generation)
        });
        if remote {
            self.stopped(now, slot, StopReason::Elsewhere);
            self.pump(now);
        }
        Ok(())
    }

    /// Whether the actor's current placement is a remote route.
    pub(super) fn runs_elsewhere(&self, slot: u32) -> bool {
        self.actor_ref(slot)
            .and_then(|a| a.runner)
            .is_some_and(|seq| self.remote.contains_key(&seq))
    }

    /// A local runner's tunnel message for another gateway, as [`Action::ForwardToGateway`].
    pub(super) fn forward_to_gateway(&mut self, seq: u64, msg: ToServerTunnelMessage) {
        let gateway_id = msg.message_id.gateway_id;
        let runner_id = self
            .runners
            .get(&seq)
            .map(|r| r.id.clone())
            .unwrap_or_default();
        let frame = wire::encode_versioned(wire::PROTOCOL_VERSION, &ToGateway::TunnelMessage(msg));
        self.stats.frames_forwarded += 1;
        self.actions.push_back(Action::ForwardToGateway {
            gateway_id,
            runner_id,
            frame,
        });
    }

    fn clustered(&self) -> Result<(), ClusterError> {
        if self.config.cluster {
            Ok(())
        } else {
            Err(ClusterError::NotClustered)
        }
    }

    fn cluster_slot(&self, actor_id: &str) -> Result<u32, ClusterError> {
        self.slot_of(actor_id)
            .ok_or_else(|| ClusterError::UnknownActor {
                actor_id: actor_id.into(),
            })
    }
}
