//! When the demo puts an actor to sleep and kills its runner ([`Schedule`]), and the task that
//! does it ([`Scheduler`]).
//!
//! The control engine runs the actors' life cycle; the scheduler only asks it to stop an actor
//! (a sleep) and, after a start that failed on storage, to start it again later. It learns what
//! happened from the engine's events ([`Scheduler::running`], [`Scheduler::stopped`]), which
//! are called inside the driver's critical section: they only update this state and wake the
//! scheduler's task, which calls the engine from outside.
//!
//! A sleep is a real stop and wake: a sleep asked for while the actor is not running waits for
//! its next start (one per start). A kill that is due when the actor starts goes first.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hibernating_ws::control::{ActorPhase, StopReason};
use hibernating_ws::driver::control::ControlHandle;
use hibernating_ws::wire::StopCode;
use tokio::sync::{Notify, mpsc, oneshot};

/// When the demo puts the actor to sleep and when the runner is killed, counted in client
/// messages read by the gateway.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// The actor the schedule applies to.
    pub actor: String,
    /// Put the actor to sleep after this many messages (each entry once).
    pub sleep_at: Vec<u64>,
    /// Kill the runner after this many messages.
    pub kill_at: Option<u64>,
}

impl Schedule {
    /// `sleeps` sleeps evenly spread over `messages`, and a kill halfway between two of them.
    pub fn spread(actor: &str, messages: u64, sleeps: u32, kill: bool) -> Self {
        let parts = u64::from(sleeps) + 1;
        let sleep_at = (1..parts)
            .map(|k| k * messages / parts)
            .filter(|&n| n > 0)
            .collect();
        // Halfway between two sleeps, near the middle of the stream.
        let k = parts / 2;
        let kill_at =
            kill.then(|| ((2 * k + 1) * messages / (2 * parts)).clamp(1, messages.max(1)));
        Self {
            actor: actor.into(),
            sleep_at,
            kill_at,
        }
    }
}

/// Where the scheduler believes an actor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Not running (sleeping, pending or starting).
    #[default]
    Away,
    Running,
    /// The scheduler asked the engine to stop it.
    Stopping,
}

#[derive(Default)]
struct ActorSlot {
    phase: Phase,
    /// Sleeps asked for while the actor was not running, each done after a later start.
    deferred: VecDeque<Option<oneshot::Sender<()>>>,
    /// Waiting for the stop in progress.
    sleepers: Vec<oneshot::Sender<()>>,
    /// Starts in a row that failed on storage: the next one waits longer.
    failures: u32,
}

/// What the scheduler's task has to do, queued by the event hooks.
#[derive(Default)]
struct Work {
    /// Actors to stop now (a sleep).
    stops: Vec<String>,
    /// Actors to start again after a failed start, with the delay.
    retries: Vec<(String, Duration)>,
}

#[derive(Default)]
struct State {
    actors: BTreeMap<String, ActorSlot>,
    work: Work,
    /// Sleeps completed (a stop the runner reported as clean).
    sleeps: u32,
    /// Starts stopped because the actor's storage did not load, and the last error.
    start_failures: u32,
    last_start_error: Option<String>,
}

/// The demo's sleeps, kills and start retries. See the [module docs](self).
pub struct Scheduler {
    state: Mutex<State>,
    wake: Notify,
    schedule: Schedule,
    /// Client messages read by the gateway (every actor).
    pub client_messages: AtomicU64,
    /// Whether the scheduled actor runs.
    running: AtomicBool,
    killed: AtomicBool,
    kill: mpsc::Sender<()>,
}

impl Scheduler {
    /// A scheduler for `schedule`; the receiver fires once when the runner is to be killed.
    pub fn new(schedule: Schedule) -> (Arc<Self>, mpsc::Receiver<()>) {
        let (kill, kill_rx) = mpsc::channel(1);
        let s = Self {
            state: Mutex::default(),
            wake: Notify::new(),
            schedule,
            client_messages: AtomicU64::new(0),
            running: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill,
        };
        (Arc::new(s), kill_rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sleeps completed, starts that failed on storage and the last such error.
    pub fn counts(&self) -> (u32, u32, Option<String>) {
        let s = self.lock();
        (s.sleeps, s.start_failures, s.last_start_error.clone())
    }

    /// A client message was read on `actor`: sleeps and the kill that come due.
    pub fn client_message(&self, actor: &str) {
        let n = self.client_messages.fetch_add(1, Ordering::Relaxed) + 1;
        if actor != self.schedule.actor {
            return;
        }
        if self.schedule.sleep_at.contains(&n) {
            self.sleep(actor, None);
        }
        // Kill while the actor runs (so it holds delivered, unpersisted messages): at the
        // scheduled message, or at the first message after it that finds the actor running.
        if self.kill_due() && self.running.load(Ordering::Relaxed) {
            self.fire_kill();
        }
    }

    fn kill_due(&self) -> bool {
        self.schedule
            .kill_at
            .is_some_and(|k| self.client_messages.load(Ordering::Relaxed) >= k)
            && !self.killed.load(Ordering::Relaxed)
    }

    fn fire_kill(&self) {
        if !self.killed.swap(true, Ordering::Relaxed) {
            let _ = self.kill.try_send(());
        }
    }

    /// Asks for a sleep of `actor`: now if it runs, else after its next start. `done` is told
    /// when the actor stopped.
    pub fn sleep(&self, actor: &str, done: Option<oneshot::Sender<()>>) {
        let mut s = self.lock();
        let slot = s.actors.entry(actor.into()).or_default();
        match slot.phase {
            Phase::Running => {
                slot.phase = Phase::Stopping;
                slot.sleepers.extend(done);
                s.work.stops.push(actor.into());
                drop(s);
                self.set_running(actor, false);
                self.wake.notify_one();
            }
            Phase::Away | Phase::Stopping => slot.deferred.push_back(done),
        }
    }

    fn set_running(&self, actor: &str, running: bool) {
        if actor == self.schedule.actor {
            self.running.store(running, Ordering::Relaxed);
        }
    }

    /// Event hook: the actor runs. A kill that is due goes first; otherwise one deferred sleep.
    pub fn running(&self, actor: &str) {
        let kill_due = actor == self.schedule.actor && self.kill_due();
        let mut s = self.lock();
        let slot = s.actors.entry(actor.into()).or_default();
        slot.failures = 0;
        let deferred = if kill_due {
            None
        } else {
            slot.deferred.pop_front()
        };
        if let Some(done) = deferred {
            slot.phase = Phase::Stopping;
            slot.sleepers.extend(done);
            s.work.stops.push(actor.into());
        } else {
            slot.phase = Phase::Running;
            self.set_running(actor, true);
        }
        drop(s);
        if kill_due {
            self.fire_kill();
        }
        self.wake.notify_one();
    }

    /// Event hook: the actor stopped. A sleep in progress that did not end in a clean stop (its
    /// runner was lost) is done again after the next start; a start that failed on storage is
    /// retried later (10 ms doubling, at most 2 s) if the engine does not start it again itself.
    pub fn stopped(&self, actor: &str, reason: &StopReason) {
        self.set_running(actor, false);
        let mut s = self.lock();
        let clean = matches!(
            reason,
            StopReason::Stopped {
                code: StopCode::Ok,
                ..
            }
        );
        let failed = match reason {
            StopReason::Stopped {
                code: StopCode::Error,
                message,
            } => Some(message.clone().unwrap_or_default()),
            _ => None,
        };
        let slot = s.actors.entry(actor.into()).or_default();
        let was_stopping = slot.phase == Phase::Stopping;
        slot.phase = Phase::Away;
        for done in slot.sleepers.drain(..) {
            let _ = done.send(());
        }
        if was_stopping && !clean {
            slot.deferred.push_front(None);
        }
        let retry = failed.is_some().then(|| {
            slot.failures = slot.failures.saturating_add(1);
            Duration::from_millis(10 << slot.failures.min(8)).min(Duration::from_secs(2))
        });
        if clean {
            s.sleeps += 1;
        }
        if let Some(error) = failed {
            s.start_failures += 1;
            s.last_start_error = Some(error);
        }
        if let Some(delay) = retry {
            s.work.retries.push((actor.into(), delay));
        }
        drop(s);
        self.wake.notify_one();
    }

    /// The scheduler's task: performs the queued work on the engine.
    pub async fn run(self: Arc<Self>, engine: ControlHandle) {
        loop {
            self.wake.notified().await;
            let work = std::mem::take(&mut self.lock().work);
            for actor in work.stops {
                let _ = engine.call(|c, now| c.stop_actor(now, &actor));
            }
            for (actor, delay) in work.retries {
                let engine = engine.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    // Only an actor that still has requests (hibernating, waiting for it) and
                    // that nothing started meanwhile.
                    let _ = engine.call(|c, now| {
                        let info = c.actor(&actor)?;
                        (info.phase == ActorPhase::Sleeping && info.requests > 0)
                            .then(|| c.start_actor(now, &actor))
                    });
                });
            }
        }
    }
}
