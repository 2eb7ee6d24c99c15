// SPDX-License-Identifier: GPL-2.0

//! The owner side of one replicated write-back volume (`docs/replication.md` section 6)
//! as a pure state machine: its state, epoch, version counter, peer set and stale peers.
//!
//! [`Owner`] never reads a clock, never allocates and never blocks. The caller:
//!
//! - once per heartbeat gathers an [`Observation`] (lease, connections, majority fences,
//!   configuration, what placement would choose) and calls [`Owner::tick`];
//! - carries out each returned [`Step`]: a [`Step::Ask`] is a request to peers whose
//!   outcome it reports with [`Owner::answer`] (the kernel calls synchronously from its
//!   ticker; the simulator delivers the replies later), a [`Step::Do`] is an effect it
//!   performs before calling [`Owner::answer`] with [`Answer::Done`]; until
//!   [`Step::Idle`];
//! - on the write path asks [`Owner::writable`], takes versions with
//!   [`Owner::next_version`] and reports a peer's failed or refused request with
//!   [`Owner::peer_failed`].
//!
//! # Rules
//!
//! - **Lease.** Without the lease the volume is `suspended`: nothing is acknowledged or
//!   written. When the lease returns, before anything else, every host that may hold
//!   trusted replicas of it, the current peers and the stale hosts, is asked (VOLUME_OPEN
//!   of epoch 0, a probe that changes nothing) whether it took the volume over: yes, the
//!   volume is `fenced` for good; no answer, or a host that held a store of it (a peer,
//!   or a stale host dropped from the peers) holding none now (it restarted, and would
//!   not remember a takeover), it stays `suspended` until an answer comes or the
//!   operator resolves it ([`Owner::resolve`]). The stale hosts count: a peer dropped
//!   for a failed request just before the lease ended is stale, not a peer, and it may be
//!   the one that took the volume over (found by the guests' link cut). A VOLUME_CLOSE or
//!   VOLUME_OPEN answered ESTALE fences the volume too.
//! - **Healthy peer.** A current peer is healthy when its connection is up, no request
//!   to it failed or was refused since it was chosen, no majority fenced it (a fenced
//!   host untrusts every replica it holds, even with its connections alive) and it is
//!   still configured.
//! - **Lost peer, stale peer.** Every tick, in every state, an unhealthy current peer is
//!   dropped from the peer set and becomes *stale*: it may be alive with older replicas
//!   it could write over newer blocks at a takeover. A peer that re-protection leaves
//!   out of the new set becomes stale the same way, healthy or not, and so does a host
//!   asked to open a store whose answer is not applied (the lease ended meanwhile, or
//!   another host refused): it may hold a store all the same. A stale peer stops
//!   being one once a majority fenced it for the takeover wait (a fence seen at one
//!   instant may combine views of different times), once it
//!   confirmed a VOLUME_CLOSE (asked each tick while it is reachable and not chosen, but
//!   only when the volume is `protected` or has no dirty block: its replicas may be the
//!   only other copy of blocks still dirty), or once it confirmed the VOLUME_OPEN of a
//!   new epoch (chosen again). Leaving the configuration is not enough: a host removed
//!   from this host's list may still run on a list with this one, and take the volume
//!   over with its older replicas (found by the simulator's host list changes); the
//!   kernel removes a host only once it is neither a peer nor stale, and counts a host
//!   being removed as unconfigured meanwhile, so that it stops being a healthy peer.
//! - **Writes.** No write starts or completes while a peer is stale or the lease is
//!   missing. `protected` and `reprotecting` replicate (write-back), `degraded` writes
//!   through, `fenced` fails.
//! - **Re-protection.** With fewer healthy peers than the policy asks, the volume is
//!   `degraded`; each tick placement's choice is opened as a new epoch (VOLUME_OPEN,
//!   which empties the peers' stores: a stale host only once the volume is clean; a
//!   current healthy peer chosen again is kept as it is), then every dirty block is re-sent
//!   (`reprotecting`), then the volume is `protected`. A failure on the way makes the
//!   chosen peers stale and the volume `degraded` again.
//! - **Destage notices** go out on ticks that find the volume `protected` and healthy.

use super::abi;
use super::placement::host_bit;

/// Replication state of a volume, as `fvpctl` and the status line show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Every dirty block is held by `peers` peers.
    Protected,
    /// A new peer set is in place; the dirty blocks are being re-sent to it.
    Reprotecting,
    /// Fewer healthy peers than asked: write-through.
    Degraded,
    /// No lease: I/O waits.
    Suspended,
    /// A peer took the volume over: its blocks are discarded, I/O fails.
    Fenced,
}

impl State {
    /// The `abi::REPL_*` value.
    pub fn abi(self) -> u32 {
        match self {
            State::Protected => abi::REPL_PROTECTED,
            State::Reprotecting => abi::REPL_REPROTECTING,
            State::Degraded => abi::REPL_DEGRADED,
            State::Suspended => abi::REPL_SUSPENDED,
            State::Fenced => abi::REPL_FENCED,
        }
    }

    /// The state named by an `abi::REPL_*` value.
    pub fn from_abi(v: u32) -> Option<State> {
        [State::Protected, State::Reprotecting, State::Degraded, State::Suspended, State::Fenced]
            .into_iter()
            .find(|s| s.abi() == v)
    }

    /// Its name in status lines.
    pub fn name(self) -> &'static str {
        match self {
            State::Protected => "protected",
            State::Reprotecting => "reprotecting",
            State::Degraded => "degraded",
            State::Suspended => "suspended",
            State::Fenced => "fenced",
        }
    }
}

/// What a write may do now ([`writable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writable {
    /// Into the pool, replicated to the peers (write-back).
    Replicate,
    /// To the backing device (write-through).
    WriteThrough,
    /// Wait for the next change (lease, stale peers, re-protection).
    Wait,
    /// Fail: the volume was taken over.
    Fail,
}

/// The write rule, from the published state alone: the kernel evaluates it as a wait
/// condition, on atomics, without the lock that guards the [`Owner`].
pub fn writable(state: State, has_stale: bool, lease: bool) -> Writable {
    match state {
        State::Fenced => Writable::Fail,
        _ if !lease || has_stale => Writable::Wait,
        State::Protected | State::Reprotecting => Writable::Replicate,
        State::Degraded => Writable::WriteThrough,
        State::Suspended => Writable::Wait,
    }
}

/// What the caller sees at a tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Observation {
    /// This host holds its lease.
    pub lease: bool,
    /// Hosts a majority fenced, as this host sees it now (bit `h-1` for host `h`).
    pub fenced_by_majority: u64,
    /// Hosts a majority has fenced without interruption for the takeover wait
    /// (`Membership::takeover_ready`). A majority seen at one instant may combine a
    /// fence already lifted with a fresh one, while the host kept its lease throughout;
    /// one that lasted the takeover wait means every fencer's grant has expired.
    pub fence_settled: u64,
    /// Hosts in the cluster's configuration.
    pub configured: u64,
    /// Hosts this host has a working connection to.
    pub connected: u64,
    /// The peers placement chooses now (0: none), or `None` when fewer than the policy
    /// asks are eligible.
    pub placement: Option<[u32; 2]>,
    /// The volume has no dirty block.
    pub clean: bool,
}

/// A request to peers whose outcome the caller reports with [`Owner::answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// VOLUME_OPEN of epoch 0 (a probe: it changes no store) to each host of `hosts`
    /// (a mask): did one of them take the volume over (ESTALE)? Answer
    /// [`Answer::TakenOver`]: `None` also when a host of `holders` (those that held a
    /// store of this volume) answers that it holds none (ENOENT).
    TakenOver { hosts: u64, holders: u64 },
    /// VOLUME_CLOSE to `host`. Answer [`Answer::Closed`], or [`Answer::TakenOver`]`(Some(true))`
    /// if it answered ESTALE.
    Close { host: u32 },
    /// VOLUME_OPEN of the new `epoch` to each of `peers` (0: none): the peers placement
    /// chose that are not current healthy peers. Current healthy peers chosen again keep
    /// their store and epoch (emptying it would leave acknowledged writes in this
    /// host's RAM alone until the re-send ends). Answer [`Answer::Opened`], or
    /// [`Answer::TakenOver`]`(Some(true))` if one answered ESTALE.
    Open { peers: [u32; 2], epoch: u64 },
    /// Re-send every dirty block to the current peers with fresh versions, each chunk
    /// waiting for its ACKs. Answer [`Answer::Resent`].
    Resend,
}

/// An effect the caller carries out, then reports with [`Answer::Done`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The lease was lost (log it; writers wait).
    Suspended,
    /// A peer took the volume over: discard every cached block, fail I/O.
    Fence,
    /// Peers `lost` (host mask) were dropped: close their connections; writes go
    /// through until re-protected.
    LostPeers { lost: u64 },
    /// A new peer set is in place (the new ones at `epoch`); the dirty blocks are
    /// re-sent next.
    EpochOpened { peers: [u32; 2], epoch: u64 },
    /// Re-protection is complete.
    Protected { peers: [u32; 2], epoch: u64 },
    /// Flush the backing device and send the pending DESTAGED notices to the peers.
    NotifyDestaged,
}

/// The caller's report of a [`Step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An [`Effect`] was carried out.
    Done,
    /// `Some(true)`: a host answered ESTALE; `Some(false)`: every host answered;
    /// `None`: a host could not be reached.
    TakenOver(Option<bool>),
    /// The host confirmed the VOLUME_CLOSE.
    Closed(bool),
    /// Every chosen peer confirmed the VOLUME_OPEN.
    Opened(bool),
    /// The outcome of a re-send.
    Resent(Resent),
}

/// How a re-send ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resent {
    /// Every dirty block was sent and ACKed.
    Complete,
    /// Stopped without fault of the peers (the lease ended, the volume goes away).
    Interrupted,
    /// A peer failed, refused, or did not ACK in time.
    Failed,
}

/// What the caller does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing until the next tick.
    Idle,
    /// Send this request and report its outcome.
    Ask(Ask),
    /// Carry out this effect and report [`Answer::Done`].
    Do(Effect),
}

/// Where a tick stands, between [`Step`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Idle,
    AskedTakenOver,
    Fencing,
    AskedClose(u32),
    LostPeers,
    Notifying,
    Opening { chosen: [u32; 2], epoch: u64 },
    EpochOpened,
    Resending,
    Protected,
    Suspending,
}

/// Errors of [`Owner::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerError {
    /// `peers` is not 1 or 2.
    Peers,
}

/// One replicated volume's owner state.
///
/// # Invariants
///
/// - `peers` holds distinct host ids in `1..=64` or 0 (empty); at most `peers_wanted`
///   are non-zero, and `failed[i]` is false for an empty slot.
/// - `state` is `Protected` or `Reprotecting` only with `peers_wanted` peers.
/// - `version` only grows; `epoch` only grows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    peers_wanted: u32,
    state: State,
    epoch: u64,
    version: u64,
    peers: [u32; 2],
    /// The epoch each peer's store was opened with.
    peer_epochs: [u64; 2],
    failed: [bool; 2],
    stale: u64,
    /// The lease was lost: ask the peers whether one took over before writing again.
    was_suspended: bool,
    phase: Phase,
    obs: Observation,
    /// This pass already tried to open a new epoch (at most one try per heartbeat).
    opened_this_pass: bool,
    /// Counts changes of the peer set: a write sent under one generation and completed
    /// under another may count an ACK from a peer dropped (and emptied) meanwhile.
    peer_set_gen: u64,
    /// Hosts of `others` at creation still stale since: one may hold an orphan with
    /// newer blocks than the backing device, so reads wait too.
    initial: u64,
    /// Stale hosts asked to open a store of this volume that may hold one though they
    /// never confirmed it: a probe finding none there cannot tell whether they took
    /// the volume over and restarted.
    may_hold: u64,
}

impl Owner {
    /// A new volume with `peers` (1 or 2) peers: `degraded` until a first peer set holds
    /// it. Every host of `others` (the other configured hosts) starts stale: it may hold
    /// an orphan, the replicas of an earlier incarnation of this volume, which it must
    /// write out before this one writes anything (`logic/replica.rs`, orphans).
    pub fn new(peers: u32, others: u64) -> Result<Self, OwnerError> {
        if !(1..=2).contains(&peers) {
            return Err(OwnerError::Peers);
        }
        Ok(Owner {
            peers_wanted: peers,
            state: State::Degraded,
            epoch: 0,
            version: 0,
            peers: [0; 2],
            peer_epochs: [0; 2],
            failed: [false; 2],
            stale: others,
            was_suspended: false,
            phase: Phase::Idle,
            obs: Observation::default(),
            opened_this_pass: false,
            peer_set_gen: 0,
            initial: others,
            may_hold: 0,
        })
    }

    /// The policy's number of peers.
    pub fn peers_wanted(&self) -> u32 {
        self.peers_wanted
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The latest epoch opened (0: never protected).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The epoch each current peer's store was opened with.
    pub fn peer_epochs(&self) -> [u64; 2] {
        self.peer_epochs
    }

    /// The last version handed out.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The current peers (0: empty slot).
    pub fn peers(&self) -> [u32; 2] {
        self.peers
    }

    /// Stale peers (host mask).
    pub fn stale(&self) -> u64 {
        self.stale
    }

    /// Whether reads that miss the cache must wait: a host stale since the volume was
    /// created may hold an orphan of an earlier incarnation (acknowledged writes newer
    /// than the backing device) until it confirmed this one. Once every such host has
    /// stopped being stale this stays false: later stale hosts hold older replicas only.
    pub fn reads_held(&self) -> bool {
        self.initial != 0
    }

    /// The peer set's generation: it changes whenever a peer is dropped or added. A
    /// replicated write completes as such only if the generation it was sent under is
    /// still current; otherwise an ACK it counted may come from a peer that was dropped
    /// and emptied since, and the write must be protected again.
    pub fn peer_set_gen(&self) -> u64 {
        self.peer_set_gen
    }

    /// Whether a tick is in progress (a [`Step`] awaits its answer).
    pub fn busy(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// What a write may do now, given the lease.
    pub fn writable(&self, lease: bool) -> Writable {
        writable(self.state, self.stale != 0, lease)
    }

    /// Hands out the next version (REPLICATE, DESTAGED and DROP_RANGE each take one).
    /// Peers keep the larger version, so the caller sends a volume's versions to each
    /// peer in the order they were handed out. Saturates: 2^64 sends never happen.
    pub fn next_version(&mut self) -> u64 {
        self.version = self.version.saturating_add(1);
        self.version
    }

    /// A request to `host` failed, timed out or was refused (a REPLICATE refused with
    /// ENOENT: the peer no longer holds the volume's store). If `host` is a current
    /// peer, it is lost at the next tick and writes stop being replicated to it.
    pub fn peer_failed(&mut self, host: u32) {
        for i in 0..2 {
            if host != 0 && self.peers[i] == host {
                self.failed[i] = true;
            }
        }
    }

    /// Whether every current peer is healthy and they are as many as the policy asks,
    /// as of `obs`.
    pub fn healthy(&self, obs: &Observation) -> bool {
        (0..2).filter(|&i| self.peer_healthy(i, obs)).count() >= self.peers_wanted as usize
    }

    fn peer_healthy(&self, i: usize, obs: &Observation) -> bool {
        let bit = host_bit(self.peers[i]);
        bit != 0
            && !self.failed[i]
            && obs.connected & bit != 0
            && obs.fenced_by_majority & bit == 0
            && obs.configured & bit != 0
    }

    /// The operator's word on a volume `suspended` because a peer that held its
    /// replicas cannot be asked whether it took the volume over: `keep` resumes (the
    /// operator knows no takeover happened), otherwise the volume is fenced and its
    /// blocks discarded. Returns the effect to carry out, or `None` if the volume is
    /// not waiting for that answer.
    pub fn resolve(&mut self, keep: bool) -> Option<Effect> {
        if !self.was_suspended || self.state == State::Fenced || self.busy() {
            return None;
        }
        if keep {
            self.was_suspended = false;
            self.drop_peers_as_stale(self.peers_mask());
            None
        } else {
            self.state = State::Fenced;
            Some(Effect::Fence)
        }
    }

    /// Whether the volume waits for the peers' answer (or the operator's) after a lease loss.
    pub fn awaiting_takeover_answer(&self) -> bool {
        self.was_suspended && self.state != State::Fenced
    }

    /// This host learned it was fenced by a majority and a peer took over: fenced for good.
    pub fn fence(&mut self) {
        self.state = State::Fenced;
        self.phase = Phase::Idle;
    }

    fn peers_mask(&self) -> u64 {
        host_bit(self.peers[0]) | host_bit(self.peers[1])
    }

    /// Drops every current peer in `mask` from the peer set and makes it stale.
    fn drop_peers_as_stale(&mut self, mask: u64) {
        for i in 0..2 {
            let bit = host_bit(self.peers[i]);
            if bit != 0 && mask & bit != 0 {
                self.peer_set_gen = self.peer_set_gen.wrapping_add(1);
                self.stale |= bit;
                self.peers[i] = 0;
                self.peer_epochs[i] = 0;
                self.failed[i] = false;
            }
        }
    }

    /// Starts the heartbeat's pass. While an earlier pass awaits an answer, only a lost
    /// lease is applied (and [`Step::Idle`] returned).
    pub fn tick(&mut self, obs: Observation) -> Step {
        if self.busy() {
            if !obs.lease && !matches!(self.state, State::Suspended | State::Fenced) {
                self.state = State::Suspended;
                self.was_suspended = true;
            }
            return Step::Idle;
        }
        self.obs = obs;
        self.opened_this_pass = false;
        if self.state == State::Fenced {
            return Step::Idle;
        }
        if !obs.lease {
            if self.state == State::Suspended {
                return Step::Idle;
            }
            self.state = State::Suspended;
            self.was_suspended = true;
            return self.go(Phase::Suspending, Step::Do(Effect::Suspended));
        }
        if self.was_suspended {
            let hosts = self.peers_mask() | self.stale;
            if hosts == 0 {
                self.was_suspended = false;
            } else {
                // Hosts stale since creation never held a store of this volume.
                let holders = self.peers_mask() | (self.stale & (!self.initial | self.may_hold));
                return self.go(Phase::AskedTakenOver, Step::Ask(Ask::TakenOver { hosts, holders }));
            }
        }
        self.after_lease_check()
    }

    fn go(&mut self, phase: Phase, step: Step) -> Step {
        self.phase = phase;
        step
    }

    fn idle(&mut self) -> Step {
        self.phase = Phase::Idle;
        Step::Idle
    }

    /// Loses unhealthy peers, then clears stale peers.
    fn after_lease_check(&mut self) -> Step {
        let obs = self.obs;
        let mut lost = 0u64;
        for i in 0..2 {
            if self.peers[i] != 0 && !self.peer_healthy(i, &obs) {
                lost |= host_bit(self.peers[i]);
            }
        }
        // Coming back from a lease loss: writes go through until a new peer set holds
        // everything (the peers may have been fenced meanwhile).
        if self.state == State::Suspended {
            self.state = State::Degraded;
        }
        if lost != 0 {
            self.drop_peers_as_stale(lost);
            if self.state != State::Degraded {
                self.state = State::Degraded;
            }
            return self.go(Phase::LostPeers, Step::Do(Effect::LostPeers { lost }));
        }
        self.clear_stale(1)
    }

    /// Looks at stale hosts from id `from` on.
    fn clear_stale(&mut self, from: u32) -> Step {
        let obs = self.obs;
        for id in from..=64u32 {
            let bit = host_bit(id);
            if self.stale & bit == 0 {
                continue;
            }
            if obs.fence_settled & bit != 0 {
                self.stale &= !bit;
                self.initial &= !bit;
                self.may_hold &= !bit;
                continue;
            }
            // A stale peer may hold the only other copy of blocks still dirty here:
            // it is emptied only once a new peer set holds them all, or none is left.
            let safe = self.state == State::Protected || obs.clean;
            if safe && self.peers_mask() & bit == 0 && obs.connected & bit != 0 {
                return self.go(Phase::AskedClose(id), Step::Ask(Ask::Close { host: id }));
            }
        }
        self.decide()
    }

    /// Protected and healthy: destage notices; otherwise re-protection.
    fn decide(&mut self) -> Step {
        let obs = self.obs;
        if self.state == State::Protected && self.healthy(&obs) {
            return self.go(Phase::Notifying, Step::Do(Effect::NotifyDestaged));
        }
        if self.state == State::Reprotecting && self.healthy(&obs) {
            // An earlier re-send was interrupted (the lease ended, or the volume was
            // going away): the peers keep what they got; send the dirty blocks again.
            return self.go(Phase::Resending, Step::Ask(Ask::Resend));
        }
        if self.state != State::Degraded || self.opened_this_pass {
            return self.idle();
        }
        let Some(chosen) = obs.placement else { return self.idle() };
        let n = chosen.iter().filter(|&&id| id != 0).count();
        if n < self.peers_wanted as usize {
            return self.idle();
        }
        for &id in chosen.iter().filter(|&&id| id != 0) {
            if obs.connected & host_bit(id) == 0 || obs.fenced_by_majority & host_bit(id) != 0 {
                return self.idle();
            }
            // VOLUME_OPEN of a new epoch empties a stale host's store, which may hold
            // the only other copy of blocks still dirty: only once none is left.
            if self.stale & host_bit(id) != 0 && !obs.clean {
                return self.idle();
            }
        }
        self.opened_this_pass = true;
        // Current healthy peers chosen again keep their store; only the others are opened.
        let mut new = [0u32; 2];
        for (slot, &id) in new.iter_mut().zip(chosen.iter()) {
            let kept = (0..2).any(|i| id != 0 && self.peers[i] == id && self.peer_healthy(i, &obs));
            if !kept {
                *slot = id;
            }
        }
        let epoch = self.epoch.saturating_add(1);
        if new == [0, 0] {
            // The same healthy peers (the lease came back): re-send the dirty blocks.
            return self.answer_opened(chosen, epoch);
        }
        self.go(Phase::Opening { chosen, epoch }, Step::Ask(Ask::Open { peers: new, epoch }))
    }

    /// The peers of `chosen` that were not kept confirmed `epoch`: they become the peer
    /// set, each kept peer in its slot, and the dirty blocks are re-sent.
    fn answer_opened(&mut self, chosen: [u32; 2], epoch: u64) -> Step {
        let chosen_mask = host_bit(chosen[0]) | host_bit(chosen[1]);
        // Every previous peer left out of the new set may hold older replicas.
        self.drop_peers_as_stale(self.peers_mask() & !chosen_mask);
        let mut opened_any = false;
        for &id in chosen.iter().filter(|&&id| id != 0) {
            if self.peers.contains(&id) {
                continue;
            }
            let Some(i) = (0..2).find(|&i| self.peers[i] == 0) else { break };
            self.peers[i] = id;
            self.peer_epochs[i] = epoch;
            self.failed[i] = false;
            opened_any = true;
            self.peer_set_gen = self.peer_set_gen.wrapping_add(1);
        }
        if opened_any {
            self.epoch = epoch;
        }
        // Chosen again or emptied by the VOLUME_OPEN: no longer stale.
        self.stale &= !chosen_mask;
        self.initial &= !chosen_mask;
        self.may_hold &= !chosen_mask;
        self.state = State::Reprotecting;
        self.go(Phase::EpochOpened, Step::Do(Effect::EpochOpened { peers: self.peers, epoch: self.epoch }))
    }

    /// Reports the outcome of the last [`Step`]; returns the next.
    pub fn answer(&mut self, a: Answer) -> Step {
        match (self.phase, a) {
            (Phase::Suspending, Answer::Done) => self.idle(),
            (Phase::AskedTakenOver, Answer::TakenOver(t)) => match t {
                Some(true) => {
                    self.state = State::Fenced;
                    self.go(Phase::Fencing, Step::Do(Effect::Fence))
                }
                Some(false) => {
                    self.was_suspended = false;
                    self.after_lease_check()
                }
                None => self.idle(),
            },
            (Phase::Fencing, Answer::Done) => self.idle(),
            // A host that took the volume over answers any request for it with ESTALE.
            (Phase::AskedClose(_) | Phase::Opening { .. }, Answer::TakenOver(Some(true))) => {
                self.state = State::Fenced;
                self.go(Phase::Fencing, Step::Do(Effect::Fence))
            }
            (Phase::LostPeers, Answer::Done) => self.clear_stale(1),
            (Phase::AskedClose(id), Answer::Closed(ok)) => {
                if ok {
                    self.stale &= !host_bit(id);
                    self.initial &= !host_bit(id);
                    self.may_hold &= !host_bit(id);
                }
                self.clear_stale(id + 1)
            }
            (Phase::Notifying, Answer::Done) => self.idle(),
            (Phase::Opening { chosen, epoch }, Answer::Opened(ok)) => {
                if !ok || self.state != State::Degraded {
                    // Some of the hosts asked may have opened a store of this volume
                    // (the lease ended meanwhile, or another refused): they are not
                    // peers, and must not be forgotten, or one could take the volume
                    // over unasked (`make soak` seed 6629, peers=2).
                    let asked = (host_bit(chosen[0]) | host_bit(chosen[1])) & !self.peers_mask();
                    if asked != 0 {
                        self.stale |= asked;
                        self.may_hold |= asked;
                    }
                    return self.idle();
                }
                self.answer_opened(chosen, epoch)
            }
            (Phase::EpochOpened, Answer::Done) => self.go(Phase::Resending, Step::Ask(Ask::Resend)),
            (Phase::Resending, Answer::Resent(r)) => match r {
                Resent::Complete if self.state == State::Reprotecting && !self.failed.contains(&true) => {
                    self.state = State::Protected;
                    self.go(Phase::Protected, Step::Do(Effect::Protected { peers: self.peers, epoch: self.epoch }))
                }
                Resent::Complete | Resent::Interrupted => self.idle(),
                Resent::Failed => {
                    let lost = self.peers_mask();
                    self.drop_peers_as_stale(lost);
                    if self.state == State::Reprotecting {
                        self.state = State::Degraded;
                    }
                    self.go(Phase::LostPeers, Step::Do(Effect::LostPeers { lost }))
                }
            },
            (Phase::Protected, Answer::Done) => self.idle(),
            // An answer that does not match the step: a caller bug. Keep the state
            // safe: end the pass; the next tick starts over from observations.
            _ => self.idle(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn obs(connected: u64, placement: Option<[u32; 2]>) -> Observation {
        Observation {
            lease: true,
            fenced_by_majority: 0,
            fence_settled: 0,
            configured: 0b111,
            connected,
            placement,
            clean: false,
        }
    }

    /// Runs a pass to the end, answering every step with `reply`.
    fn run(o: &mut Owner, ob: Observation, mut reply: impl FnMut(Step) -> Answer) -> Vec<Step> {
        let mut steps = vec![];
        let mut s = o.tick(ob);
        while s != Step::Idle {
            steps.push(s);
            let a = reply(s);
            s = o.answer(a);
        }
        steps
    }

    fn ok(s: Step) -> Answer {
        match s {
            Step::Do(_) => Answer::Done,
            Step::Ask(Ask::TakenOver { .. }) => Answer::TakenOver(Some(false)),
            Step::Ask(Ask::Close { .. }) => Answer::Closed(true),
            Step::Ask(Ask::Open { .. }) => Answer::Opened(true),
            Step::Ask(Ask::Resend) => Answer::Resent(Resent::Complete),
            Step::Idle => unreachable!(),
        }
    }

    fn protected(peers: u32, chosen: [u32; 2]) -> Owner {
        let mut o = Owner::new(peers, 0).unwrap();
        run(&mut o, obs(0b110, Some(chosen)), ok);
        assert_eq!(o.state(), State::Protected);
        o
    }

    #[test]
    fn first_tick_protects() {
        let o = protected(1, [2, 0]);
        assert_eq!((o.peers(), o.epoch()), ([2, 0], 1));
        assert_eq!(o.writable(true), Writable::Replicate);
        assert_eq!(o.writable(false), Writable::Wait);
    }

    /// Orphans: a new volume writes nothing until every other host confirmed it holds no
    /// orphan waiting to be written (here host 3 answers EAGAIN once).
    #[test]
    fn new_volume_waits_for_every_other_host() {
        let mut o = Owner::new(1, 0b110).unwrap();
        assert_eq!(o.stale(), 0b110);
        assert_eq!(o.writable(true), Writable::Wait);
        let ob = Observation { clean: true, ..obs(0b110, Some([2, 0])) };
        let steps = run(&mut o, ob, |s| match s {
            Step::Ask(Ask::Close { host: 3 }) => Answer::Closed(false),
            s => ok(s),
        });
        assert!(steps.contains(&Step::Ask(Ask::Close { host: 3 })));
        assert_eq!(o.stale(), 0b100, "host 3 has not confirmed");
        assert_eq!(o.writable(true), Writable::Wait);
        run(&mut o, ob, ok);
        assert_eq!(o.stale(), 0);
        assert_eq!(o.state(), State::Protected);
        assert_eq!(o.writable(true), Writable::Replicate);
        // A host a majority fenced for the takeover wait is not waited for.
        let mut o = Owner::new(1, 0b110).unwrap();
        let ob = Observation { clean: true, fence_settled: 0b100, ..obs(0b010, Some([2, 0])) };
        run(&mut o, ob, ok);
        assert_eq!((o.stale(), o.state()), (0, State::Protected));
    }

    #[test]
    fn bad_policy_refused() {
        assert_eq!(Owner::new(0, 0), Err(OwnerError::Peers));
        assert_eq!(Owner::new(3, 0), Err(OwnerError::Peers));
    }

    #[test]
    fn protected_and_healthy_notifies() {
        let mut o = protected(1, [2, 0]);
        let steps = run(&mut o, obs(0b110, Some([2, 0])), ok);
        assert_eq!(steps, vec![Step::Do(Effect::NotifyDestaged)]);
    }

    #[test]
    fn broken_connection_makes_peer_stale_and_writes_wait() {
        let mut o = protected(1, [2, 0]);
        let steps = run(&mut o, obs(0b100, Some([3, 0])), |s| match s {
            Step::Ask(Ask::Open { .. }) => Answer::Opened(false),
            s => ok(s),
        });
        assert_eq!(steps[0], Step::Do(Effect::LostPeers { lost: 0b10 }));
        assert_eq!(o.state(), State::Degraded);
        // Host 3, asked to open and refusing (or timing out), may hold a store too.
        assert_eq!(o.stale(), 0b110);
        assert_eq!(o.writable(true), Writable::Wait);
    }

    /// Hole: re-protection replaced a healthy peer set without making the old peers stale.
    #[test]
    fn reprotection_makes_dropped_healthy_peer_stale() {
        let mut o = Owner::new(2, 0).unwrap();
        // Only one eligible host at first: degraded, but host 2 gets chosen later...
        run(&mut o, obs(0b110, Some([2, 3])), ok);
        assert_eq!(o.peers(), [2, 3]);
        // Host 3 is lost; placement now picks 2 and 4 (host 3 unreachable).
        let mut ob = obs(0b1010, Some([2, 4]));
        ob.configured = 0b1111;
        run(&mut o, ob, ok);
        assert_eq!(o.peers(), [2, 4]);
        assert_eq!(o.stale(), 0b100, "host 3 stays stale until fenced, removed or closed");
        // Now a new placement moves away from healthy host 2: it must become stale.
        let mut o2 = Owner::new(1, 0).unwrap();
        run(&mut o2, obs(0b110, Some([2, 0])), ok);
        // A lease blip; when it returns, placement prefers host 3.
        run(&mut o2, Observation { lease: false, ..obs(0b110, None) }, ok);
        let ob = obs(0b110, Some([3, 0]));
        run(&mut o2, ob, |s| match s {
            Step::Ask(Ask::Close { .. }) => Answer::Closed(false),
            s => ok(s),
        });
        assert_eq!(o2.peers(), [3, 0]);
        assert_eq!(o2.stale(), 0b10);
        assert_eq!(o2.writable(true), Writable::Wait);
        // Host 2 confirms a VOLUME_CLOSE at the next tick: writes resume.
        run(&mut o2, ob, ok);
        assert_eq!(o2.stale(), 0);
        assert_eq!(o2.writable(true), Writable::Replicate);
    }

    /// Hole: in `degraded` a peer whose connection broke was never made stale.
    #[test]
    fn degraded_peer_loss_is_stale() {
        let mut o = Owner::new(2, 0).unwrap();
        run(&mut o, obs(0b110, Some([2, 3])), ok);
        o.state = State::Degraded;
        run(&mut o, obs(0b10, None), ok);
        assert_eq!(o.stale(), 0b100);
        assert_eq!(o.peers(), [2, 0]);
    }

    /// Hole: a peer fenced by a majority discarded its replicas though its connection lives.
    #[test]
    fn peer_fenced_by_majority_is_lost_not_stale() {
        let mut o = protected(1, [2, 0]);
        let ob = Observation { fenced_by_majority: 0b10, ..obs(0b110, Some([3, 0])) };
        let steps = run(&mut o, ob, ok);
        assert_eq!(steps[0], Step::Do(Effect::LostPeers { lost: 0b10 }));
        assert_eq!(o.stale(), 0b10, "stale until the fence has lasted the takeover wait");
        let ob = Observation { fence_settled: 0b10, ..ob };
        run(&mut o, ob, ok);
        assert_eq!(o.stale(), 0, "fenced that long: it has no lease, its stores are untrusted");
        assert_eq!(o.peers(), [3, 0]);
    }

    #[test]
    fn stale_host_reopened_only_when_clean() {
        let mut o = protected(1, [2, 0]);
        o.peer_failed(2);
        let steps = run(&mut o, obs(0b110, Some([2, 0])), ok);
        assert!(!steps.iter().any(|s| matches!(s, Step::Ask(Ask::Open { .. }))), "{steps:?}");
        assert_eq!((o.state(), o.stale()), (State::Degraded, 0b10));
        let steps = run(&mut o, Observation { clean: true, ..obs(0b110, Some([2, 0])) }, ok);
        assert!(steps.iter().any(|s| matches!(s, Step::Ask(Ask::Close { host: 2 }))), "{steps:?}");
        assert_eq!((o.state(), o.stale(), o.epoch()), (State::Protected, 0, 2));
    }

    #[test]
    fn stale_peer_closed_only_when_safe() {
        let mut o = protected(1, [2, 0]);
        o.peer_failed(2);
        // Degraded, dirty blocks, no eligible peer: host 2 may hold their only copy.
        let steps = run(&mut o, obs(0b110, None), ok);
        assert!(!steps.iter().any(|s| matches!(s, Step::Ask(Ask::Close { .. }))), "{steps:?}");
        assert_eq!(o.stale(), 0b10);
        // Written back: now it may be emptied.
        let steps = run(&mut o, Observation { clean: true, ..obs(0b110, None) }, ok);
        assert!(steps.contains(&Step::Ask(Ask::Close { host: 2 })));
        assert_eq!(o.stale(), 0);
    }

    #[test]
    fn peer_set_generation_follows_changes() {
        let mut o = protected(1, [2, 0]);
        let g = o.peer_set_gen();
        run(&mut o, obs(0b110, None), ok);
        assert_eq!(o.peer_set_gen(), g, "no change");
        o.peer_failed(2);
        run(&mut o, obs(0b110, None), ok);
        assert_ne!(o.peer_set_gen(), g, "a peer dropped");
    }

    #[test]
    fn failed_request_loses_peer() {
        let mut o = protected(1, [2, 0]);
        o.peer_failed(2);
        o.peer_failed(9);
        let steps = run(&mut o, obs(0b110, None), ok);
        assert_eq!(steps[0], Step::Do(Effect::LostPeers { lost: 0b10 }));
        assert_eq!(o.state(), State::Degraded);
    }

    #[test]
    fn lease_loss_suspends_then_asks() {
        let mut o = protected(1, [2, 0]);
        let ob = Observation { lease: false, ..obs(0b110, None) };
        assert_eq!(run(&mut o, ob, ok), vec![Step::Do(Effect::Suspended)]);
        assert_eq!(o.writable(true), Writable::Wait);
        assert_eq!(run(&mut o, ob, ok), vec![]);
        // Lease back, peer unreachable: stays suspended.
        let steps = run(&mut o, obs(0b110, Some([2, 0])), |s| match s {
            Step::Ask(Ask::TakenOver { .. }) => Answer::TakenOver(None),
            s => ok(s),
        });
        assert_eq!(steps, vec![Step::Ask(Ask::TakenOver { hosts: 0b10, holders: 0b10 })]);
        assert_eq!(o.state(), State::Suspended);
        assert!(o.awaiting_takeover_answer());
        // A peer took over: fenced.
        let steps = run(&mut o, obs(0b110, Some([2, 0])), |s| match s {
            Step::Ask(Ask::TakenOver { .. }) => Answer::TakenOver(Some(true)),
            s => ok(s),
        });
        assert_eq!(steps.last(), Some(&Step::Do(Effect::Fence)));
        assert_eq!(o.writable(true), Writable::Fail);
        assert_eq!(run(&mut o, obs(0b110, Some([2, 0])), ok), vec![]);
    }

    /// The guests' link cut: the owner's peer failed a request and was dropped (stale)
    /// just before the lease ended; the peer then took the volume over. When the lease
    /// returned the owner asked only its peers (none), re-protected on another host, had
    /// the stale one "close" and wrote again over the new writer's blocks. The stale
    /// host is asked now, and a close or open answered ESTALE fences too.
    #[test]
    fn stale_hosts_are_asked_after_a_lease_loss() {
        let mut o = protected(1, [2, 0]);
        o.peer_failed(2);
        run(&mut o, obs(0b110, None), ok);
        assert_eq!((o.peers(), o.stale()), ([0, 0], 0b10));
        run(&mut o, Observation { lease: false, ..obs(0b110, None) }, ok);
        let steps = run(&mut o, obs(0b110, Some([3, 0])), |s| match s {
            Step::Ask(Ask::TakenOver { .. }) => Answer::TakenOver(Some(true)),
            s => ok(s),
        });
        assert_eq!(steps[0], Step::Ask(Ask::TakenOver { hosts: 0b10, holders: 0b10 }));
        assert_eq!(o.state(), State::Fenced);

        // Held a store, holds none now (restarted): nobody can say; suspended.
        let mut o = protected(1, [2, 0]);
        o.peer_failed(2);
        run(&mut o, obs(0b110, None), ok);
        run(&mut o, Observation { lease: false, ..obs(0b110, None) }, ok);
        run(&mut o, obs(0b110, Some([3, 0])), |s| match s {
            Step::Ask(Ask::TakenOver { .. }) => Answer::TakenOver(None),
            s => ok(s),
        });
        assert!(o.awaiting_takeover_answer());
        assert_eq!(o.writable(true), Writable::Wait);

        // A close answered ESTALE fences.
        let mut o = protected(1, [2, 0]);
        o.peer_failed(2);
        let steps = run(&mut o, Observation { clean: true, ..obs(0b110, None) }, |s| match s {
            Step::Ask(Ask::Close { host: 2 }) => Answer::TakenOver(Some(true)),
            s => ok(s),
        });
        assert!(steps.contains(&Step::Ask(Ask::Close { host: 2 })), "{steps:?}");
        assert_eq!(o.state(), State::Fenced);
        // And an open answered ESTALE.
        let mut o = Owner::new(1, 0).unwrap();
        run(&mut o, obs(0b110, Some([2, 0])), |s| match s {
            Step::Ask(Ask::Open { .. }) => Answer::TakenOver(Some(true)),
            s => ok(s),
        });
        assert_eq!(o.state(), State::Fenced);
    }

    /// `make soak` seed 6629: the lease ended while a new epoch was being opened; the
    /// answer was dropped and the host it opened was forgotten. It is stale now.
    #[test]
    fn hosts_asked_to_open_are_not_forgotten() {
        let mut o = Owner::new(2, 0).unwrap();
        let mut s = o.tick(obs(0b110, Some([2, 3])));
        assert_eq!(s, Step::Ask(Ask::Open { peers: [2, 3], epoch: 1 }));
        // The lease ends while the VOLUME_OPEN is out.
        o.tick(Observation { lease: false, ..obs(0b110, None) });
        s = o.answer(Answer::Opened(true));
        assert_eq!(s, Step::Idle);
        assert_eq!(o.peers(), [0, 0]);
        assert_eq!(o.stale(), 0b110, "both may hold a store");
        // Back with the lease, both are asked, as holders.
        let steps = run(&mut o, obs(0b110, Some([2, 3])), |s| match s {
            Step::Ask(Ask::TakenOver { .. }) => Answer::TakenOver(None),
            s => ok(s),
        });
        assert_eq!(steps, vec![Step::Ask(Ask::TakenOver { hosts: 0b110, holders: 0b110 })]);
    }

    #[test]
    fn lease_back_without_takeover_reprotects() {
        let mut o = protected(1, [2, 0]);
        run(&mut o, Observation { lease: false, ..obs(0b110, None) }, ok);
        let steps = run(&mut o, obs(0b110, Some([2, 0])), ok);
        // The same healthy peer keeps its store: no VOLUME_OPEN, only the re-send.
        assert!(!steps.iter().any(|s| matches!(s, Step::Ask(Ask::Open { .. }))));
        assert!(steps.contains(&Step::Ask(Ask::Resend)));
        assert_eq!((o.state(), o.epoch()), (State::Protected, 1));
    }

    #[test]
    fn reprotection_keeps_the_healthy_peer() {
        let mut o = Owner::new(2, 0).unwrap();
        run(&mut o, obs(0b110, Some([2, 3])), ok);
        let mut ob = obs(0b1010, Some([4, 2]));
        ob.configured = 0b1111;
        let steps = run(&mut o, ob, |s| match s {
            Step::Ask(Ask::Close { .. }) => Answer::Closed(false),
            s => ok(s),
        });
        assert!(steps.contains(&Step::Ask(Ask::Open { peers: [4, 0], epoch: 2 })), "{steps:?}");
        assert_eq!((o.peers(), o.peer_epochs(), o.state()), ([2, 4], [1, 2], State::Protected));
    }

    #[test]
    fn operator_resolves_suspension() {
        let mut o = protected(1, [2, 0]);
        run(&mut o, Observation { lease: false, ..obs(0b110, None) }, ok);
        assert_eq!(o.resolve(true), None);
        assert!(!o.awaiting_takeover_answer());
        assert_eq!(o.stale(), 0b10, "the unreachable peer still holds replicas");
        let mut o = protected(1, [2, 0]);
        assert_eq!(o.resolve(false), None, "not waiting: nothing to resolve");
        run(&mut o, Observation { lease: false, ..obs(0b110, None) }, ok);
        assert_eq!(o.resolve(false), Some(Effect::Fence));
        assert_eq!(o.state(), State::Fenced);
    }

    #[test]
    fn resend_failure_makes_new_peers_stale() {
        let mut o = Owner::new(1, 0).unwrap();
        run(&mut o, obs(0b110, Some([2, 0])), |s| match s {
            Step::Ask(Ask::Resend) => Answer::Resent(Resent::Failed),
            Step::Ask(Ask::Close { .. }) => Answer::Closed(false),
            s => ok(s),
        });
        assert_eq!((o.state(), o.stale(), o.peers()), (State::Degraded, 0b10, [0, 0]));
        // One try per heartbeat, even if every step keeps failing.
        let steps = run(&mut o, Observation { clean: true, ..obs(0b110, Some([2, 0])) }, |s| match s {
            Step::Ask(Ask::Resend) => Answer::Resent(Resent::Failed),
            s => ok(s),
        });
        assert_eq!(steps.iter().filter(|s| matches!(s, Step::Ask(Ask::Open { .. }))).count(), 1);
    }

    #[test]
    fn reads_wait_for_the_hosts_stale_since_creation() {
        let mut o = Owner::new(1, 0b110).unwrap();
        assert!(o.reads_held());
        run(&mut o, Observation { clean: true, ..obs(0b110, Some([2, 0])) }, ok);
        assert_eq!((o.state(), o.stale()), (State::Protected, 0));
        assert!(!o.reads_held());
        // A peer lost later is stale, but holds older replicas only.
        run(&mut o, obs(0b100, None), ok);
        assert_ne!(o.stale(), 0);
        assert!(!o.reads_held());
    }

    #[test]
    fn stale_cleared_by_fence_not_by_removal() {
        let mut o = protected(1, [2, 0]);
        run(&mut o, obs(0b100, None), ok);
        assert_eq!(o.stale(), 0b10);
        // Host 2 left the list here, but may still run on one with this host.
        run(&mut o, Observation { configured: 0b101, ..obs(0b100, None) }, ok);
        assert_eq!(o.stale(), 0b10);
        run(&mut o, Observation { configured: 0b101, fence_settled: 0b10, ..obs(0b100, None) }, ok);
        assert_eq!(o.stale(), 0);
    }

    #[test]
    fn tick_while_busy_only_suspends() {
        let mut o = Owner::new(1, 0).unwrap();
        assert!(matches!(o.tick(obs(0b110, Some([2, 0]))), Step::Ask(Ask::Open { .. })));
        assert_eq!(o.tick(Observation { lease: false, ..obs(0b110, None) }), Step::Idle);
        assert_eq!(o.state(), State::Suspended);
        // The late OPEN answer must not un-suspend the volume.
        assert_eq!(o.answer(Answer::Opened(true)), Step::Idle);
        assert_eq!(o.state(), State::Suspended);
    }

    #[test]
    fn interrupted_resend_resumes() {
        let mut o = Owner::new(1, 0).unwrap();
        run(&mut o, obs(0b110, Some([2, 0])), |s| match s {
            Step::Ask(Ask::Resend) => Answer::Resent(Resent::Interrupted),
            s => ok(s),
        });
        assert_eq!(o.state(), State::Reprotecting);
        let steps = run(&mut o, obs(0b110, Some([2, 0])), ok);
        assert_eq!(steps[0], Step::Ask(Ask::Resend));
        assert_eq!((o.state(), o.epoch()), (State::Protected, 1));
    }

    #[test]
    fn mismatched_answer_ends_pass() {
        let mut o = Owner::new(1, 0).unwrap();
        o.tick(obs(0b110, Some([2, 0])));
        assert_eq!(o.answer(Answer::Done), Step::Idle);
        assert!(!o.busy());
    }

    #[test]
    fn versions_grow() {
        let mut o = Owner::new(1, 0).unwrap();
        assert_eq!((o.next_version(), o.next_version()), (1, 2));
        o.version = u64::MAX;
        assert_eq!(o.next_version(), u64::MAX);
    }

    #[test]
    fn abi_round_trip() {
        for s in [State::Protected, State::Reprotecting, State::Degraded, State::Suspended, State::Fenced] {
            assert_eq!(State::from_abi(s.abi()), Some(s));
        }
        assert_eq!(State::from_abi(0), None);
    }
}
