//! The reference model: per socket, the last delivered / persisted / acked index, the persist in
//! flight, the debounce, retry and gap deadlines and the held buffer; the app's stored metadata
//! and the gateway's hibernating list; and the transitions drawn from it.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Absent,
    Open,
    Stopping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActorPhase {
    Running,
    Stopping,
    Stopped,
}

/// One socket of the model; its flags mirror the engine's persist state one for one.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone)]
pub(crate) struct Sock {
    pub(crate) phase: Phase,
    pub(crate) hib: bool,
    pub(crate) p: u16,
    pub(crate) seq: u64,
    /// Held messages: unwrapped position → arrival time.
    pub(crate) held: BTreeMap<u64, u64>,
    pub(crate) gap_deadline: Option<u64>,
    pub(crate) persisted: Option<u16>,
    pub(crate) acked: u16,
    pub(crate) last_ack_at: Option<u64>,
    pub(crate) next_client: u16,
    pub(crate) in_flight: Option<(u16, u16)>,
    pub(crate) dirty: bool,
    pub(crate) force: bool,
    pub(crate) bytes: u64,
    pub(crate) first_at: Option<u64>,
    pub(crate) deadline: Option<u64>,
    pub(crate) retry_at: Option<u64>,
    pub(crate) backoff: u64,
    pub(crate) flush_after: bool,
    /// Restored, nothing delivered in order since (the replay has not arrived).
    pub(crate) awaiting_replay: bool,
}

impl Sock {
    pub(crate) fn absent() -> Self {
        Self {
            phase: Phase::Absent,
            hib: false,
            p: 0,
            seq: 0,
            held: BTreeMap::new(),
            gap_deadline: None,
            persisted: None,
            acked: 0,
            last_ack_at: None,
            next_client: 0,
            in_flight: None,
            dirty: false,
            force: false,
            bytes: 0,
            first_at: None,
            deadline: None,
            retry_at: None,
            backoff: RETRY_INITIAL,
            flush_after: false,
            awaiting_replay: false,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub(crate) policy: GapPolicy,
    pub(crate) now: u64,
    pub(crate) actor: ActorPhase,
    pub(crate) socks: Vec<Sock>,
    /// The app's stored metadata: socket → (server index, client index).
    pub(crate) metas: BTreeMap<u8, (u16, u16)>,
    /// Sockets the gateway holds hibernating (settled silently on stop).
    pub(crate) listed: BTreeSet<u8>,
    /// When each socket was handed back, until a restore decides it: the runner drops an open
    /// of such an id within its hand-back memory as a stale copy (ids are never reused).
    pub(crate) handed_back: BTreeMap<u8, u64>,
}

/// `RunnerConfig::handed_back_memory` (the default), in microseconds.
pub(crate) const HANDED_BACK_MEMORY: u64 = 60_000_000;

impl Model {
    /// Whether `s` may be opened: absent, without metadata, not listed, not a recent hand-back.
    pub(crate) fn openable(&self, s: u8) -> bool {
        self.actor == ActorPhase::Running
            && self.socks[s as usize].phase == Phase::Absent
            && !self.metas.contains_key(&s)
            && !self.listed.contains(&s)
            && self
                .handed_back
                .get(&s)
                .is_none_or(|&at| at + HANDED_BACK_MEMORY <= self.now)
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Transition {
    Open { s: u8, hib: bool },
    Msg { s: u8, delta: u16, len: u8 },
    PersistOk { s: u8 },
    PersistFail { s: u8 },
    Advance { micros: u64 },
    GatewayClose { s: u8 },
    Send { s: u8 },
    Stop,
    Restart,
}

impl Model {
    pub(crate) fn emit(&mut self, s: usize) {
        let k = &mut self.socks[s];
        // The stored outgoing index covers the ack a successful persist sends.
        let acks = k.p != k.acked;
        k.in_flight = Some((k.p, k.next_client.wrapping_add(u16::from(acks))));
        k.dirty = false;
        k.force = false;
        k.bytes = 0;
        k.first_at = None;
        k.deadline = None;
        k.retry_at = None;
    }

    pub(crate) fn schedule(&mut self, s: usize) {
        let now = self.now;
        let k = &mut self.socks[s];
        if k.phase != Phase::Open
            || !k.hib
            || k.in_flight.is_some()
            || k.retry_at.is_some()
            || !k.dirty
        {
            return;
        }
        if k.force || k.bytes >= PERSIST_BYTES {
            self.emit(s);
            return;
        }
        let at = k.first_at.unwrap_or(now) + PERSIST_INTERVAL;
        if at <= now {
            self.emit(s);
        } else {
            k.deadline = Some(at);
        }
    }

    pub(crate) fn deliver(&mut self, s: usize, r: u16, len: u64) {
        let now = self.now;
        let k = &mut self.socks[s];
        k.p = r;
        k.seq += 1;
        if k.hib {
            k.dirty = true;
            k.bytes += len;
            k.first_at.get_or_insert(now);
        }
    }

    pub(crate) fn deliver_held(&mut self, s: usize) {
        loop {
            let k = &mut self.socks[s];
            let next = k.seq + 1;
            if k.held.remove(&next).is_none() {
                break;
            }
            let r = k.p.wrapping_add(1);
            // Held payloads in the model are all one byte.
            self.deliver(s, r, 1);
        }
        let k = &mut self.socks[s];
        k.gap_deadline = k.held.values().min().map(|t| t + GAP_TIMEOUT);
    }

    pub(crate) fn remove(&mut self, s: usize) {
        self.socks[s] = Sock::absent();
        if self.actor == ActorPhase::Stopping && self.socks.iter().all(|k| k.phase == Phase::Absent)
        {
            self.actor = ActorPhase::Stopped;
        }
    }

    pub(crate) fn close_skip(&mut self, s: usize) {
        if self.socks[s].hib {
            self.metas.remove(&idx(s));
        }
        self.socks[s].next_client = self.socks[s].next_client.wrapping_add(1);
        self.remove(s);
    }

    pub(crate) fn ack(&mut self, s: usize, index: u16) {
        let now = self.now;
        let k = &mut self.socks[s];
        k.acked = index;
        k.last_ack_at = Some(now);
        k.next_client = k.next_client.wrapping_add(1);
    }

    pub(crate) fn on_msg(&mut self, s: usize, delta: u16, len: u64) {
        let now = self.now;
        let k = &self.socks[s];
        if k.phase != Phase::Open {
            return;
        }
        let r = k.p.wrapping_add(delta);
        if !k.hib {
            self.deliver(s, r, len);
            return;
        }
        if delta == 0 || after(k.p, r) {
            if let Some(lp) = k.persisted {
                let at_or_before = r == lp || after(lp, r);
                if at_or_before && k.last_ack_at.is_none_or(|t| now >= t + REACK) {
                    self.ack(s, lp);
                }
            }
            return;
        }
        if delta == 1 {
            self.socks[s].awaiting_replay = false;
            self.deliver(s, r, len);
            self.deliver_held(s);
            self.schedule(s);
            return;
        }
        if k.awaiting_replay {
            // Before the replay, a restored socket drops a message past a gap.
            return;
        }
        match self.policy {
            GapPolicy::Close => self.close_skip(s),
            GapPolicy::Await => {
                let k = &mut self.socks[s];
                let seq = k.seq + u64::from(delta);
                if k.held.contains_key(&seq) {
                    return;
                }
                if k.held.len() >= MAX_HELD {
                    self.close_skip(s);
                    return;
                }
                k.held.insert(seq, now);
                if k.gap_deadline.is_none() {
                    k.gap_deadline = Some(now + GAP_TIMEOUT);
                }
            }
        }
    }

    pub(crate) fn settle_or_flush(&mut self, s: usize) {
        if self.socks[s].flush_after {
            self.socks[s].flush_after = false;
            self.emit(s);
        } else {
            self.listed.insert(idx(s));
            self.remove(s);
        }
    }

    pub(crate) fn stop(&mut self) {
        self.actor = ActorPhase::Stopping;
        // The runner remembers every socket of a stopping actor as handed back.
        for i in 0..self.socks.len() {
            if self.socks[i].phase != Phase::Absent {
                self.handed_back.insert(idx(i), self.now);
            }
        }
        for i in 0..self.socks.len() {
            let k = &mut self.socks[i];
            match k.phase {
                Phase::Open if k.hib => {
                    k.phase = Phase::Stopping;
                    k.deadline = None;
                    k.retry_at = None;
                    k.gap_deadline = None;
                    k.held.clear();
                    if k.in_flight.is_some() {
                        k.flush_after = true;
                    } else {
                        self.emit(i);
                    }
                }
                Phase::Open => self.remove(i),
                _ => {}
            }
        }
        if self.socks.iter().all(|k| k.phase == Phase::Absent) {
            self.actor = ActorPhase::Stopped;
        }
    }

    pub(crate) fn restart(&mut self) {
        let listed = core::mem::take(&mut self.listed);
        let metas = self.metas.clone();
        for (&s, &(server, client)) in &metas {
            self.handed_back.remove(&s);
            if listed.contains(&s) {
                let k = &mut self.socks[s as usize];
                *k = Sock::absent();
                k.phase = Phase::Open;
                k.hib = true;
                k.p = server;
                k.persisted = Some(server);
                k.acked = server;
                // The restore ack does not arm the duplicate re-ack rate limit.
                k.last_ack_at = None;
                k.awaiting_replay = true;
                k.next_client = client.wrapping_add(1);
            } else {
                self.metas.remove(&s);
            }
        }
        self.actor = ActorPhase::Running;
    }

    pub(crate) fn fire_timers(&mut self) {
        let now = self.now;
        for s in 0..self.socks.len() {
            loop {
                let k = &self.socks[s];
                // Same order as the engine's heap: deadline, then kind (persist, retry, gap).
                let due = [(k.deadline, 0u8), (k.retry_at, 1), (k.gap_deadline, 2)]
                    .into_iter()
                    .filter_map(|(at, kind)| at.filter(|&t| t <= now).map(|t| (t, kind)))
                    .min();
                let Some((_, kind)) = due else { break };
                match kind {
                    0 => {
                        self.socks[s].deadline = None;
                        self.schedule(s);
                    }
                    1 => {
                        self.socks[s].retry_at = None;
                        if self.socks[s].phase == Phase::Open {
                            self.emit(s);
                        }
                    }
                    _ => {
                        self.socks[s].gap_deadline = None;
                        self.close_skip(s);
                    }
                }
            }
        }
    }
}

pub(crate) struct RefMachine;

impl ReferenceStateMachine for RefMachine {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        prop_oneof![Just(GapPolicy::Close), Just(GapPolicy::Await)]
            .prop_map(|policy| Model {
                policy,
                now: 0,
                actor: ActorPhase::Running,
                socks: (0..SOCKETS).map(|_| Sock::absent()).collect(),
                metas: BTreeMap::new(),
                listed: BTreeSet::new(),
                handed_back: BTreeMap::new(),
            })
            .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Transition> {
        let sock = 0..SOCKETS;
        let delta = prop_oneof![
            8 => Just(1u16),
            1 => Just(0u16),
            2 => 2u16..5,
            1 => Just(32_767u16),
            1 => Just(32_768u16),
            1 => 32_769u16..=65_535,
        ];
        let mut options: Vec<(u32, BoxedStrategy<Transition>)> = vec![
            (
                10,
                (sock.clone(), delta, 0u8..12)
                    .prop_map(|(s, delta, len)| Transition::Msg { s, delta, len })
                    .boxed(),
            ),
            (
                3,
                prop_oneof![
                    Just(1u64),
                    Just(100_000),
                    Just(1_000_000),
                    Just(PERSIST_INTERVAL - 1),
                    Just(PERSIST_INTERVAL),
                    Just(6_000_000)
                ]
                .prop_map(|micros| Transition::Advance { micros })
                .boxed(),
            ),
            (
                1,
                sock.clone()
                    .prop_map(|s| Transition::GatewayClose { s })
                    .boxed(),
            ),
            (1, sock.clone().prop_map(|s| Transition::Send { s }).boxed()),
        ];
        let openable: Vec<u8> = (0..SOCKETS).filter(|&s| state.openable(s)).collect();
        if !openable.is_empty() {
            options.push((
                3,
                (proptest::sample::select(openable), any::<bool>())
                    .prop_map(|(s, hib)| Transition::Open { s, hib })
                    .boxed(),
            ));
        }
        let in_flight: Vec<u8> = (0..SOCKETS)
            .filter(|&s| state.socks[s as usize].in_flight.is_some())
            .collect();
        if !in_flight.is_empty() {
            options.push((
                4,
                proptest::sample::select(in_flight.clone())
                    .prop_map(|s| Transition::PersistOk { s })
                    .boxed(),
            ));
            options.push((
                1,
                proptest::sample::select(in_flight)
                    .prop_map(|s| Transition::PersistFail { s })
                    .boxed(),
            ));
        }
        match state.actor {
            ActorPhase::Running => options.push((1, Just(Transition::Stop).boxed())),
            ActorPhase::Stopped => options.push((3, Just(Transition::Restart).boxed())),
            ActorPhase::Stopping => {}
        }
        proptest::strategy::Union::new_weighted(options).boxed()
    }

    fn preconditions(state: &Model, t: &Transition) -> bool {
        match t {
            Transition::Open { s, .. } => state.openable(*s),
            Transition::PersistOk { s } | Transition::PersistFail { s } => {
                state.socks[*s as usize].in_flight.is_some()
            }
            Transition::Stop => state.actor == ActorPhase::Running,
            Transition::Restart => state.actor == ActorPhase::Stopped,
            _ => true,
        }
    }

    fn apply(mut m: Model, t: &Transition) -> Model {
        match *t {
            Transition::Open { s, hib } => {
                let k = &mut m.socks[s as usize];
                *k = Sock::absent();
                k.phase = Phase::Open;
                k.hib = hib;
                k.next_client = 1;
                if hib {
                    k.force = true;
                    k.dirty = true;
                    m.schedule(s as usize);
                }
            }
            Transition::Msg { s, delta, len } => m.on_msg(s as usize, delta, u64::from(len)),
            Transition::PersistOk { s } => {
                let i = s as usize;
                let (idx, client) = m.socks[i].in_flight.take().expect("precondition");
                m.metas.insert(s, (idx, client));
                m.socks[i].backoff = RETRY_INITIAL;
                m.socks[i].persisted = Some(idx);
                if idx != m.socks[i].acked {
                    m.ack(i, idx);
                }
                if m.socks[i].phase == Phase::Stopping {
                    m.settle_or_flush(i);
                } else {
                    m.schedule(i);
                }
            }
            Transition::PersistFail { s } => {
                let i = s as usize;
                m.socks[i].in_flight = None;
                if m.socks[i].phase == Phase::Stopping {
                    m.settle_or_flush(i);
                } else {
                    let now = m.now;
                    let k = &mut m.socks[i];
                    k.dirty = true;
                    k.first_at.get_or_insert(now);
                    k.retry_at = Some(now + k.backoff);
                    k.backoff = (k.backoff * 2).min(RETRY_MAX);
                }
            }
            Transition::Advance { micros } => {
                m.now += micros;
                m.fire_timers();
            }
            Transition::GatewayClose { s } => {
                let i = s as usize;
                // The client left: the gateway no longer lists the request as hibernating.
                m.listed.remove(&s);
                if m.socks[i].phase != Phase::Absent {
                    if m.socks[i].hib {
                        m.metas.remove(&s);
                    }
                    m.remove(i);
                }
            }
            Transition::Send { s } => {
                let k = &mut m.socks[s as usize];
                if k.phase == Phase::Open {
                    k.next_client = k.next_client.wrapping_add(1);
                }
            }
            Transition::Stop => m.stop(),
            Transition::Restart => m.restart(),
        }
        m
    }
}
