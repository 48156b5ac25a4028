//! Model-based test of the control engine (proptest-state-machine): random sequences of runner
//! connects and disconnects, time steps past the lost threshold, engine starts and stops, and the
//! actors' own sleep intents, run against an engine with real runner sessions (the `World`
//! harness) and checked against a small reference model of runners, slots and actor phases.
//!
//! The model places actors as the engine promises to: a pending actor goes to the connected,
//! non-lost runner of its name with the most free slots (the runner that first connected on
//! ties), pending actors are served first come first served, a stop of an actor whose runner is
//! away waits for it (or for its loss) and a start meanwhile runs it again once stopped, a runner away longer than the lost threshold is lost with
//! its actors and comes back with a new id. After every step each actor's phase and host must be
//! the model's, and the engine's invariant check must pass.

#![cfg(feature = "sim")]

use core::time::Duration;

use hibernating_ws::control::{ActorPhase, ControlConfig};
use hibernating_ws::fuzz::World;
use hibernating_ws::gateway::GatewayConfig;
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

const RUNNERS: usize = 2;
const SLOTS: usize = 2;
const ACTORS: [&str; 4] = ["a", "b", "c", "d"];
const LOST_SECS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MPhase {
    Sleeping,
    Pending,
    Running,
    /// Stop sent while the runner is away.
    Stopping,
}

#[derive(Debug, Clone)]
struct MRunner {
    connected: bool,
    /// Sequence number while known to the engine.
    seq: Option<u64>,
    /// Seconds when it disconnected.
    away_since: u64,
}

#[derive(Debug, Clone)]
struct Model {
    now: u64,
    runners: Vec<MRunner>,
    /// Phase and host runner index per actor.
    actors: Vec<(MPhase, Option<usize>)>,
    pending: Vec<usize>,
    /// Actors asked to start while stopping: they start again once stopped.
    restart: Vec<bool>,
    next_seq: u64,
}

#[derive(Debug, Clone)]
enum Transition {
    Connect(usize),
    Disconnect(usize),
    Start(usize),
    Stop(usize),
    SleepIntent(usize),
    Advance(u64),
}

impl Model {
    fn load(&self, r: usize) -> usize {
        self.actors.iter().filter(|(_, h)| *h == Some(r)).count()
    }

    fn pick(&self) -> Option<usize> {
        let mut best: Option<(usize, u64, usize)> = None;
        for (i, r) in self.runners.iter().enumerate() {
            let (true, Some(seq)) = (r.connected, r.seq) else {
                continue;
            };
            let free = SLOTS - self.load(i);
            if free == 0 {
                continue;
            }
            let better = match best {
                None => true,
                Some((_, bseq, bfree)) => free > bfree || (free == bfree && seq < bseq),
            };
            if better {
                best = Some((i, seq, free));
            }
        }
        best.map(|(i, _, _)| i)
    }

    fn place_pending(&mut self) {
        let queue = core::mem::take(&mut self.pending);
        for a in queue {
            if self.actors[a].0 != MPhase::Pending {
                continue;
            }
            match self.pick() {
                Some(r) => self.actors[a] = (MPhase::Running, Some(r)),
                None => self.pending.push(a),
            }
        }
    }

    fn stopped(&mut self, a: usize) {
        self.actors[a] = (MPhase::Sleeping, None);
        if core::mem::take(&mut self.restart[a]) {
            self.actors[a].0 = MPhase::Pending;
            self.pending.push(a);
        }
        self.place_pending();
    }

    fn step(&mut self, t: &Transition) {
        match *t {
            Transition::Connect(i) => {
                if self.runners[i].connected {
                    return;
                }
                self.runners[i].connected = true;
                if self.runners[i].seq.is_none() {
                    self.runners[i].seq = Some(self.next_seq);
                    self.next_seq += 1;
                }
                // Stops that waited for this runner are delivered now.
                for a in 0..self.actors.len() {
                    if self.actors[a] == (MPhase::Stopping, Some(i)) {
                        self.stopped(a);
                    }
                }
                self.place_pending();
            }
            Transition::Disconnect(i) => {
                if self.runners[i].connected {
                    self.runners[i].connected = false;
                    self.runners[i].away_since = self.now;
                }
            }
            Transition::Start(a) => {
                if self.actors[a].0 == MPhase::Stopping {
                    self.restart[a] = true;
                }
                if self.actors[a].0 == MPhase::Sleeping {
                    self.actors[a].0 = MPhase::Pending;
                    self.pending.push(a);
                    self.place_pending();
                }
            }
            Transition::Stop(a) => {
                self.restart[a] = false;
                match self.actors[a] {
                    (MPhase::Running, Some(h)) if self.runners[h].connected => self.stopped(a),
                    (MPhase::Running, h) => self.actors[a] = (MPhase::Stopping, h),
                    (MPhase::Pending, _) => self.actors[a] = (MPhase::Sleeping, None),
                    _ => {}
                }
            }
            Transition::SleepIntent(a) => {
                if let (MPhase::Running, Some(h)) = self.actors[a]
                    && self.runners[h].connected
                {
                    self.stopped(a);
                }
            }
            Transition::Advance(secs) => {
                self.now += secs;
                for i in 0..self.runners.len() {
                    let r = &self.runners[i];
                    if r.connected || r.seq.is_none() || self.now < r.away_since + LOST_SECS {
                        continue;
                    }
                    self.runners[i].seq = None;
                    for a in 0..self.actors.len() {
                        if self.actors[a].1 == Some(i) {
                            self.stopped(a);
                        }
                    }
                }
            }
        }
    }
}

struct ControlModel;

impl ReferenceStateMachine for ControlModel {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model {
            now: 0,
            runners: vec![
                MRunner {
                    connected: false,
                    seq: None,
                    away_since: 0,
                };
                RUNNERS
            ],
            actors: vec![(MPhase::Sleeping, None); ACTORS.len()],
            pending: Vec::new(),
            restart: vec![false; ACTORS.len()],
            next_seq: 1,
        })
        .boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Transition> {
        let r = 0..RUNNERS;
        let a = 0..ACTORS.len();
        prop_oneof![
            3 => r.clone().prop_map(Transition::Connect),
            2 => r.prop_map(Transition::Disconnect),
            4 => a.clone().prop_map(Transition::Start),
            2 => a.clone().prop_map(Transition::Stop),
            2 => a.prop_map(Transition::SleepIntent),
            1 => Just(Transition::Advance(1)),
            1 => Just(Transition::Advance(LOST_SECS)),
        ]
        .boxed()
    }

    fn apply(mut state: Model, t: &Transition) -> Model {
        state.step(t);
        state
    }
}

struct ControlModelTest;

impl StateMachineTest for ControlModelTest {
    type SystemUnderTest = World;
    type Reference = ControlModel;

    fn init_test(_: &Model) -> World {
        let mut config = ControlConfig::default();
        config.runner_lost_threshold = Duration::from_secs(LOST_SECS);
        // Longer than any sequence: the only way to stop a stopping actor is its runner.
        config.actor_stop_threshold = Duration::from_secs(100_000);
        config.ping_timeout = Duration::from_secs(100_000);
        let slots = u32::try_from(SLOTS).expect("small");
        let mut w = World::new(config, GatewayConfig::default(), RUNNERS, slots);
        for a in ACTORS {
            w.control
                .create_actor(w.now, a, World::spec(a))
                .expect("fresh actor");
        }
        w
    }

    fn apply(mut w: World, _: &Model, t: Transition) -> World {
        let now = w.now;
        match t {
            Transition::Connect(i) => w.connect(i),
            Transition::Disconnect(i) => w.disconnect(i),
            Transition::Start(a) => {
                w.control.start_actor(now, ACTORS[a]).expect("known actor");
                w.pump();
            }
            Transition::Stop(a) => {
                w.control.stop_actor(now, ACTORS[a]).expect("known actor");
                w.pump();
            }
            Transition::SleepIntent(a) => {
                let actor = ACTORS[a];
                if let Some(h) = w.host_of(actor)
                    && w.runners[h].conn.is_some()
                    && w.control.actor(actor).map(|i| i.phase) == Some(ActorPhase::Running)
                {
                    w.runners[h]
                        .session
                        .sleep_actor(now, actor)
                        .expect("hosted actor");
                    w.pump();
                }
            }
            Transition::Advance(secs) => w.advance(Duration::from_secs(secs)),
        }
        w
    }

    fn check_invariants(w: &World, model: &Model) {
        if let Err(e) = w.control.check_invariants() {
            panic!("engine invariant: {e}");
        }
        for (i, actor) in ACTORS.iter().enumerate() {
            let info = w
                .control
                .actor(actor)
                .expect("actors are never destroyed here");
            let (phase, host) = model.actors[i];
            let expected = match phase {
                MPhase::Sleeping => ActorPhase::Sleeping,
                MPhase::Pending => ActorPhase::Pending,
                MPhase::Running => ActorPhase::Running,
                MPhase::Stopping => ActorPhase::Stopping,
            };
            assert_eq!(info.phase, expected, "actor {actor}: {model:?}");
            if phase == MPhase::Running {
                let runner_id = w.runners[host.expect("a running actor has a host")]
                    .session
                    .runner_id()
                    .map(str::to_owned);
                assert_eq!(info.runner_id, runner_id, "actor {actor}'s host");
                assert!(
                    w.host_of(actor).is_some(),
                    "actor {actor} runs on no session"
                );
            }
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn control_matches_the_reference_model(sequential 1..60 => ControlModelTest);
}
