// SPDX-License-Identifier: GPL-2.0

//! A model of fvp's replicated write-back (`docs/replication.md` sections 4 and 6),
//! checked with [stateright].
//!
//! The decisions of section 4 (heard, fences, leases, majority fences, takeover wait,
//! rejoin) are taken by the kernel's own [`fvp_logic::membership::Membership`], and the
//! owner picks its peers with [`fvp_logic::placement::place`]; this crate models
//! everything around them: the owner, the peers, the network, the backing device, crashes
//! and time.
//!
//! # The model
//!
//! - Three hosts, ids 1, 2 and 3 (`A`, `B`, `C`), all in one fault domain. `A` owns one
//!   replicated write-back volume of [`BLOCKS`] blocks with `peers` = 1 or 2
//!   ([`Config::peers`]); `B` and `C` are its candidate peers. Every host is also a
//!   voter for leases and fences.
//! - Time is discrete: a [`Action::Tick`] advances every host's clock by one unit
//!   ([`UNIT`] ns) — clocks run at the same rate, which the protocol's 20 % margin does
//!   not need. The heartbeat interval is one unit, the timeout [`TIMEOUT_UNITS`] units,
//!   so the takeover wait `T + T/5` is 3.6 units, i.e. 4 ticks. The number of ticks is
//!   bounded ([`Config::max_ticks`]).
//! - The network: between every two hosts one link made of two FIFO queues, one per
//!   direction (TCP keeps the order of one connection; the requests and replies of the
//!   two connections between two hosts share the queue of their direction, which only
//!   removes reorderings). Messages are delivered in rounds: at each tick, every queue
//!   of a connected link is delivered in order, replies included, so a message sent
//!   between two ticks arrives at the next one and events (writes, crashes, cuts…)
//!   interleave with deliveries only at that granularity. A [`Action::Stall`] holds
//!   back one direction for any number of ticks (a TCP stall; nobody is told) until
//!   [`Action::Unstall`] (bounded by [`Config::max_stalls`]). A [`Action::Cut`]
//!   partitions a link: both queues are lost and both ends see the connections close
//!   (bounded by [`Config::max_cuts`]); a [`Action::Heal`] reconnects it.
//! - Heartbeats: at each tick every host sends a PING on every connected link on which
//!   its previous PING was answered; the PONG comes back in the same round.
//! - The owner follows section 6: writes are inserted dirty with a new version, sent as
//!   REPLICATE to every current peer and acknowledged when every peer has ACKed the
//!   block at that version or newer; a lost peer (its connection closed, or fenced by
//!   the owner) is replaced through placement (VOLUME_OPEN, then the dirty blocks);
//!   with fewer than `peers` peers the owner is degraded and writes through. Destaging
//!   a dirty block writes it to the backing device and sends DESTAGED to the peers.
//!   Backing writes and acknowledgements need the lease; an owner that learns it is
//!   fenced by a majority discards its blocks (`recovered-elsewhere`). A restarted owner
//!   opens its volume again (empty pool, new VOLUME_OPEN) once it holds its lease.
//! - A peer keeps a replica store `block -> version`; VOLUME_OPEN empties it (a new
//!   epoch), REPLICATE keeps the larger version, DESTAGED drops a block whose version is
//!   not larger. A peer with a store starts recovering when it holds its lease and a
//!   majority fences the owner (announcing it in `recovering`), writes its blocks once
//!   `takeover_ready` (and, like the owner, only while holding its lease), then drops
//!   the store and stops announcing.
//! - Crashes lose a host's RAM (pool, replica stores, membership), close its
//!   connections and may be followed by a restart. At most [`Config::max_crashes`].
//! - Not modeled: reads, the replica budget (ENOSPC), REPLICATE ACK deadlines (a silent
//!   peer is fenced after the same timeout), the backing device's volatile cache (a
//!   backing write is durable when it completes, and completes at once: I/O in flight
//!   never outlives the lease), clock rate differences, moving volumes back to a peer
//!   that returns, and versions: they are global and increase across restarts.
//!
//! # Properties
//!
//! A write is *acknowledged* when the owner completes it to the client. For a block,
//! the *latest acknowledged version* is the largest acknowledged version written to it.
//!
//! - **P1, no acknowledged write is lost**: with at most `peers` crashes, for every
//!   block the latest acknowledged version `v` (or a newer one) is held by a live copy:
//!   the backing device holds a version `>= v`, or the owner is alive, not
//!   recovered-elsewhere and holds `>= v` dirty, or an alive peer's replica store holds
//!   `>= v`. "Lost" is the negation: no such copy exists.
//! - **P2, the backing device never goes backwards**: once the backing device has held
//!   an acknowledged version `v` of a block, it never holds an older version of that
//!   block again; and when the owner is alive, active and has nothing dirty or pending,
//!   the backing device holds at least every block's latest acknowledged version.
//! - **P3, enough replicas**: when a write of version `v` is acknowledged, at least
//!   `peers` alive peers' stores hold `>= v`, or (degraded, write-through) the backing
//!   device does.
//! - **P4, one writer**: every backing write is made by a host that holds its lease at
//!   that moment; and there is never a moment when both the owner may write (alive,
//!   active, lease held) and a peer may write (recovering past its takeover wait, lease
//!   held).
//!
//! `sometimes` properties check that the model reaches acknowledged writes, destages,
//! reprotection, degraded write-through, takeovers and completed recoveries.
//!
//! # Findings
//!
//! The protocol as written holds P1 to P4 for host crashes without restarts (peers=1
//! with one crash, peers=2 with two) and for a partition without crash. It fails in
//! these cases (each a `counterexample_*` test in `tests/check.rs`, with its trace):
//!
//! 1. A quick restart of an owner (within the timeout) goes unseen: nobody fences it,
//!    it reopens its volume empty and its VOLUME_OPEN empties the replicas of its
//!    acknowledged writes. Fix [`fix::RESTART_SILENCE`].
//! 2. "Fenced by a majority" does not mean "taken over": when the only peer crashed and
//!    the new peer was cut off before it got the blocks, the owner discards the only
//!    copy. Fix [`fix::KEEP_UNTIL_RECOVERING`].
//! 3. The rejoin rule races a recovery: the recovering peer's `recovering` reaches
//!    nobody once it is cut from the others, its fence views and lease (granted by the
//!    rejoining owner itself) stay valid, and the owner gets its lease back from the
//!    host that lifted its fence. Fixes [`fix::RECOVERY_CHECKS_EACH_WRITE`] and
//!    [`fix::LEASE_SETTLES`] (perfect clocks and no stalls here: with unbounded message
//!    delay, fence views must also expire from the PING they answer, as grants do).
//! 4. Stale replicas: a peer that the owner stopped replicating to (its connection
//!    closed: partition) keeps its store, and nothing stops it from recovering it later
//!    over newer blocks — after the owner wrote through (degraded) within its lease and
//!    got isolated, or after the owner replaced it, acknowledged and destaged newer
//!    versions and crashed. Fix [`fix::STALE_PEERS`]: the owner starts and completes no
//!    write while a peer it dropped is neither fenced by a majority nor emptied.
//! 5. An orphaned store: the owner crashed and no peer could take over (the peers did
//!    not hear each other); the owner restarts, gets its lease back and its VOLUME_OPEN
//!    empties the store. Not fixed here: VOLUME_OPEN needs an epoch, and a store of an
//!    older epoch must be recovered (or handed to the new epoch) before it is dropped.
//!
//! Modeling choices of section 6 the document leaves open: a write completes once every
//! current peer has ACKed its block at its version or newer *and* either the peers are
//! as many as the policy asks or the block is on the backing device (a write-through
//! or destage alone does not complete it: a peer may still hold an older version);
//! degraded writes are still replicated to the remaining peers; VOLUME_OPEN empties the
//! peer's store; a restarted owner opens its volume only once it holds its lease.

use fvp_logic::membership::{Membership, View};
use fvp_logic::placement::{place, DomainRule, HostEntry};
use stateright::{Model, Property};
use std::fmt;

/// Hosts in the model.
pub const HOSTS: usize = 3;
/// Blocks of the volume.
pub const BLOCKS: usize = 2;
/// Largest number of client writes a configuration may ask for.
pub const MAX_WRITES: usize = 4;
/// Nanoseconds per tick.
pub const UNIT: u64 = 1_000;
/// Host timeout in ticks.
pub const TIMEOUT_UNITS: u64 = 3;
/// The takeover wait `T + T/5` in ns.
pub const TAKEOVER_WAIT: u64 = TIMEOUT_UNITS * UNIT + TIMEOUT_UNITS * UNIT / 5;
/// The owner (host id 1).
pub const OWNER: usize = 0;
/// The volume's name, as placement hashes it.
pub const VOLUME: &[u8] = b"vol0";
/// Ticks of heartbeats before the model starts: every fence lifted, every lease held.
pub const WARM_UP_TICKS: u64 = 2 * TIMEOUT_UNITS + 4;

const NAMES: [char; HOSTS] = ['A', 'B', 'C'];
const ALL: u64 = 0b111;

fn id(h: usize) -> u32 {
    h as u32 + 1
}

fn hbit(h: usize) -> u8 {
    1 << h
}

/// Index of the link between two distinct hosts.
fn pair(x: usize, y: usize) -> usize {
    match (x.min(y), x.max(y)) {
        (0, 1) => 0,
        (0, 2) => 1,
        _ => 2,
    }
}

fn pair_hosts(p: usize) -> (usize, usize) {
    match p {
        0 => (0, 1),
        1 => (0, 2),
        _ => (1, 2),
    }
}

/// What a model run explores.
#[derive(Clone, Debug)]
pub struct Config {
    /// The volume's `peers` (1 or 2).
    pub peers: u32,
    /// Client writes.
    pub max_writes: u8,
    /// Ticks after warm-up.
    pub max_ticks: u8,
    /// Host crashes.
    pub max_crashes: u8,
    /// Link cuts.
    pub max_cuts: u8,
    /// Stalls of one direction of a link.
    pub max_stalls: u8,
    /// Whether crashed hosts may restart.
    pub restarts: bool,
    /// Protocol changes to apply ([`fix`]); 0 for the protocol as documented.
    pub fixes: u32,
}

/// Protocol changes proposed after counterexamples of the documented protocol.
pub mod fix {
    /// A host that starts stays silent for `T + T/5` before its first connection, so
    /// every other host has fenced it (a quick restart of an owner is otherwise unseen:
    /// the others keep granting it, it reopens its volume empty and its VOLUME_OPEN wipes
    /// the replicas of its acknowledged writes).
    pub const RESTART_SILENCE: u32 = 1 << 0;
    /// An owner fenced by a majority keeps its dirty blocks (suspended: it writes and
    /// acknowledges nothing without its lease anyway) and discards them only once a view
    /// announces it in `recovering`; without one, it resumes when its lease returns.
    /// (A majority may fence an owner that nobody can take over — its only peer
    /// crashed, its new peer was cut off before receiving the blocks — and discarding
    /// then loses the only copy of acknowledged writes.)
    pub const KEEP_UNTIL_RECOVERING: u32 = 1 << 1;
    /// A recovering peer writes each block only while `takeover_ready` holds (lease and
    /// a standing majority fence), not only before its first write. (Otherwise a peer
    /// whose announcements no longer reach the others keeps writing after the owner
    /// rejoined: C lifts A's fence once B's `recovering` is older than the timeout,
    /// and B still holds a lease — granted by A.)
    pub const RECOVERY_CHECKS_EACH_WRITE: u32 = 1 << 2;
    /// An owner acts on its lease (acknowledges, writes the backing device, reopens
    /// its volume) only after holding it without interruption for `T + T/5`, so that
    /// fences attested before a host lifted its fence of the owner have expired at
    /// every recovering peer.
    pub const LEASE_SETTLES: u32 = 1 << 3;
    /// A peer the owner stopped using while it may be alive (connection lost, not
    /// fenced by a majority) is *stale*: it may still hold older replicas. The owner
    /// starts no write and completes none while it has a stale peer, until a majority
    /// fenced it (a fenced host cannot take over) or it confirmed a VOLUME_OPEN that
    /// emptied its store. (Otherwise the stale peer can recover its older replicas over
    /// newer acknowledged blocks: finding 4.) The kernel also clears a stale peer that
    /// confirmed a VOLUME_CLOSE; the model has only the OPEN of a re-chosen peer.
    pub const STALE_PEERS: u32 = 1 << 4;
    /// Every fix.
    pub const ALL: u32 = (1 << 5) - 1;
}

/// A message on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Msg {
    /// PING with the sender's send time and view.
    Ping { sent: u64, view: View },
    /// PONG echoing a PING's send time, with the sender's view.
    Pong { echo: u64, view: View },
    /// VOLUME_OPEN: start a new (empty) replica store.
    Open,
    /// ACK of a VOLUME_OPEN.
    OpenAck,
    /// REPLICATE a block at a version.
    Replicate { block: u8, version: u8 },
    /// DESTAGED: the block is on the backing device at this version.
    Destaged { block: u8, version: u8 },
    /// ACK of a REPLICATE (`ok`: stored; else the peer has no store).
    Ack { block: u8, version: u8, ok: bool },
}

/// A peer's recovery of the owner's volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Recovery {
    /// Not recovering.
    Idle,
    /// Takeover conditions met, announcing, waiting for `takeover_ready`.
    Waiting,
    /// Writing the replica store to the backing device.
    Writing,
}

/// The owner's volume state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Volume {
    /// Restarted: waits for the lease to open the volume.
    Starting,
    /// Serving I/O (protected, reprotecting or degraded; suspended without lease).
    Active,
    /// Fenced by a majority: blocks discarded, I/O suspended for good.
    RecoveredElsewhere,
}

/// One host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Host {
    /// Running (false: crashed).
    pub alive: bool,
    /// Section 4 state.
    pub mem: Membership<HOSTS>,
    /// Hosts with an unanswered PING from this host.
    pub ping_out: u8,
    /// Replica store of the owner's volume (peers only): version per block, 0 for none.
    pub store: Option<[u8; BLOCKS]>,
    /// Recovery of the owner's volume (peers only).
    pub recovery: Recovery,
}

/// The owner's volume (on host A).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    /// Volume state.
    pub volume: Volume,
    /// Dirty version per block, 0 for clean.
    pub dirty: [u8; BLOCKS],
    /// Current peers (host bit mask).
    pub peers: u8,
    /// Per host: the largest version it ACKed per block since it became a peer.
    pub acked_by: [[u8; BLOCKS]; HOSTS],
    /// Versions written but not acknowledged yet (bit v).
    pub pending: u8,
    /// Stale peers ([`fix::STALE_PEERS`]), host bit mask.
    pub stale: u8,
}

/// Reachability markers.
pub mod ev {
    /// A write was acknowledged.
    pub const ACKED: u16 = 1 << 0;
    /// The owner destaged a block.
    pub const DESTAGED: u16 = 1 << 1;
    /// A peer processed DESTAGED and dropped a block.
    pub const DROPPED: u16 = 1 << 2;
    /// The owner replaced a lost peer.
    pub const REPROTECTED: u16 = 1 << 3;
    /// A write went through to the backing device (degraded).
    pub const WRITE_THROUGH: u16 = 1 << 4;
    /// A peer started recovering (announcing).
    pub const TAKEOVER_STARTED: u16 = 1 << 5;
    /// A peer wrote a recovered block.
    pub const RECOVERY_WRITE: u16 = 1 << 6;
    /// A peer finished a recovery.
    pub const RECOVERED: u16 = 1 << 7;
    /// The owner learned it was fenced by a majority.
    pub const RECOVERED_ELSEWHERE: u16 = 1 << 8;
    /// A restarted owner reopened its volume.
    pub const REOPENED: u16 = 1 << 9;
    /// A fence was lifted (rejoin).
    pub const REJOINED: u16 = 1 << 10;
}

/// Violations of event properties (P3, P4a), recorded when they happen.
pub mod bad {
    /// A write acknowledged with too few replicas.
    pub const UNDER_REPLICATED: u8 = 1 << 0;
    /// A backing write by a host without lease.
    pub const WRITE_WITHOUT_LEASE: u8 = 1 << 1;
}

/// The whole system.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct State {
    /// Every host's clock (ns); all run at the same rate.
    pub clock: u64,
    /// Hosts A, B, C.
    pub hosts: [Host; HOSTS],
    /// The owner's volume on A.
    pub owner: Owner,
    /// Network state per link (A-B, A-C, B-C): up or cut.
    pub net_up: [bool; 3],
    /// Stalled directions, `stalled[from][to]`.
    pub stalled: [[bool; HOSTS]; HOSTS],
    /// Stalls so far.
    pub stalls: u8,
    /// Queues, `queues[from][to]`.
    pub queues: [[Vec<Msg>; HOSTS]; HOSTS],
    /// The backing device: version per block (0: never written).
    pub backing: [u8; BLOCKS],
    /// Largest acknowledged version the backing device has held, per block.
    pub floor: [u8; BLOCKS],
    /// Acknowledged versions (bit v).
    pub acked: u8,
    /// Block of each version.
    pub version_block: [u8; MAX_WRITES + 1],
    /// Versions issued.
    pub writes: u8,
    /// Ticks, crashes, cuts so far.
    pub ticks: u8,
    /// Crashes so far.
    pub crashes: u8,
    /// Cuts so far.
    pub cuts: u8,
    /// Tick at which each host last crashed.
    pub down_at: [u8; HOSTS],
    /// The protocol changes in force ([`fix`]), constant.
    pub fixes: u32,
    /// Reachability markers ([`ev`]).
    pub events: u16,
    /// Recorded violations ([`bad`]).
    pub violations: u8,
}

/// A nondeterministic step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Every clock advances one unit; heartbeats go out.
    Tick,
    /// Messages from `from` to `to` stop arriving (TCP stalls; nobody is told).
    Stall(usize, usize),
    /// A stalled direction flows again.
    Unstall(usize, usize),
    /// A client writes a block (new version).
    Write(usize),
    /// The owner destages a dirty block.
    Destage(usize),
    /// A recovering peer writes a block of its store.
    Recover(usize, usize),
    /// A host crashes.
    Crash(usize),
    /// A crashed host restarts.
    Restart(usize),
    /// A link is cut.
    Cut(usize),
    /// A cut link is reconnected.
    Heal(usize),
}

/// The checked model.
pub struct FvpModel {
    /// Its configuration.
    pub cfg: Config,
}

fn new_mem(h: usize) -> Membership<HOSTS> {
    Membership::new(id(h), ALL, TIMEOUT_UNITS * UNIT).expect("valid membership")
}

fn fresh_host(h: usize) -> Host {
    Host { alive: true, mem: new_mem(h), ping_out: 0, store: None, recovery: Recovery::Idle }
}

impl State {
    fn connected(&self, x: usize, y: usize) -> bool {
        x != y && self.net_up[pair(x, y)] && self.hosts[x].alive && self.hosts[y].alive
    }

    /// Queues `msg` from `x` to `y` if connected.
    fn send(&mut self, x: usize, y: usize, msg: Msg) {
        if self.connected(x, y) {
            self.queues[x][y].push(msg);
        }
    }

    /// Delivers every queued message of every connected, flowing direction, replies
    /// included, in FIFO order per direction.
    fn network_round(&mut self) {
        loop {
            let mut progress = false;
            for x in 0..HOSTS {
                for y in 0..HOSTS {
                    if !self.queues[x][y].is_empty() && !self.stalled[x][y] && self.connected(x, y) {
                        let m = self.queues[x][y].remove(0);
                        self.receive(x, y, m);
                        progress = true;
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn latest_acked(&self, b: usize) -> u8 {
        (1..=MAX_WRITES as u8)
            .filter(|&v| self.acked & (1 << v) != 0 && usize::from(self.version_block[usize::from(v)]) == b)
            .max()
            .unwrap_or(0)
    }

    /// Whether the owner may act on its lease now (acknowledge, write the backing device).
    pub fn owner_may_act(&self) -> bool {
        let a = &self.hosts[OWNER];
        a.alive
            && if self.fixes & fix::LEASE_SETTLES != 0 {
                a.mem.holds_lease_for(self.clock, TAKEOVER_WAIT)
            } else {
                a.mem.holds_lease(self.clock)
            }
    }

    /// Whether peer `p` may write recovered blocks now.
    pub fn peer_may_write(&self, p: usize) -> bool {
        let h = &self.hosts[p];
        h.alive
            && h.recovery == Recovery::Writing
            && if self.fixes & fix::RECOVERY_CHECKS_EACH_WRITE != 0 {
                h.mem.takeover_ready(id(OWNER), self.clock)
            } else {
                h.mem.holds_lease(self.clock)
            }
    }

    fn write_backing(&mut self, writer: usize, b: usize, v: u8) {
        if !self.hosts[writer].mem.holds_lease(self.clock) {
            self.violations |= bad::WRITE_WITHOUT_LEASE;
        }
        self.backing[b] = v;
    }

    /// Processes `msg` from `x` at `y`.
    fn receive(&mut self, x: usize, y: usize, msg: Msg) {
        let now = self.clock;
        let from = id(x);
        match msg {
            Msg::Ping { sent, view } => {
                self.hosts[y].mem.on_ping(from, now, view);
                let view = self.hosts[y].mem.outgoing(now);
                self.send(y, x, Msg::Pong { echo: sent, view });
            }
            Msg::Pong { echo, view } => {
                self.hosts[y].mem.on_pong(from, now, echo, view);
                self.hosts[y].ping_out &= !hbit(x);
            }
            Msg::Open => {
                self.hosts[y].mem.on_message(from, now);
                self.hosts[y].store = Some([0; BLOCKS]);
                if self.fixes & fix::STALE_PEERS != 0 {
                    self.send(y, x, Msg::OpenAck);
                }
            }
            Msg::OpenAck => {
                self.hosts[y].mem.on_message(from, now);
                if y == OWNER && self.owner.peers & hbit(x) != 0 {
                    self.owner.stale &= !hbit(x);
                }
            }
            Msg::Replicate { block, version } => {
                self.hosts[y].mem.on_message(from, now);
                let ok = match &mut self.hosts[y].store {
                    Some(s) => {
                        let slot = &mut s[usize::from(block)];
                        if *slot < version {
                            *slot = version;
                        }
                        true
                    }
                    None => false,
                };
                self.send(y, x, Msg::Ack { block, version, ok });
            }
            Msg::Destaged { block, version } => {
                self.hosts[y].mem.on_message(from, now);
                if let Some(s) = &mut self.hosts[y].store {
                    let slot = &mut s[usize::from(block)];
                    if *slot != 0 && *slot <= version {
                        *slot = 0;
                        self.events |= ev::DROPPED;
                    }
                }
            }
            Msg::Ack { block, version, ok } => {
                self.hosts[y].mem.on_message(from, now);
                if y == OWNER && self.owner.peers & hbit(x) != 0 {
                    if ok {
                        let a = &mut self.owner.acked_by[x][usize::from(block)];
                        *a = (*a).max(version);
                    } else {
                        self.owner.peers &= !hbit(x);
                    }
                }
            }
        }
    }

    /// Acknowledges the pending writes that may be (lease held, enough copies).
    fn complete_writes(&mut self, peers: u32) {
        if !self.owner_may_act() {
            return;
        }
        for v in 1..=MAX_WRITES as u8 {
            if self.owner.pending & (1 << v) == 0 {
                continue;
            }
            // Every current peer holds it, and either they are enough or the block is
            // on the backing device (degraded).
            let b = usize::from(self.version_block[usize::from(v)]);
            let held = (0..HOSTS).filter(|&p| self.owner.peers & hbit(p) != 0).all(|p| self.owner.acked_by[p][b] >= v);
            if held && self.owner.stale == 0 && (self.owner.peers.count_ones() >= peers || self.backing[b] >= v) {
                self.owner.pending &= !(1 << v);
                self.acknowledge(v, peers);
            }
        }
    }

    fn acknowledge(&mut self, v: u8, peers: u32) {
        let b = usize::from(self.version_block[usize::from(v)]);
        let copies = (0..HOSTS)
            .filter(|&p| p != OWNER && self.hosts[p].alive)
            .filter(|&p| matches!(self.hosts[p].store, Some(s) if s[b] >= v))
            .count() as u32;
        if copies < peers && self.backing[b] < v {
            self.violations |= bad::UNDER_REPLICATED;
        }
        self.acked |= 1 << v;
        self.events |= ev::ACKED;
    }

    /// The owner's automatic reactions: learn a majority fence, replace lost peers,
    /// open a restarted volume, complete writes.
    fn settle_owner(&mut self, cfg: &Config) {
        if !self.hosts[OWNER].alive {
            return;
        }
        let now = self.clock;
        match self.owner.volume {
            Volume::RecoveredElsewhere => return,
            Volume::Active
                if self.hosts[OWNER].mem.fenced_by_majority(now)
                    && (cfg.fixes & fix::KEEP_UNTIL_RECOVERING == 0
                        || self.hosts[OWNER].mem.announced_recovering(now) & 1 != 0) =>
            {
                self.owner = Owner {
                    volume: Volume::RecoveredElsewhere,
                    dirty: [0; BLOCKS],
                    peers: 0,
                    acked_by: [[0; BLOCKS]; HOSTS],
                    pending: 0,
                    stale: 0,
                };
                self.events |= ev::RECOVERED_ELSEWHERE;
                return;
            }
            Volume::Starting => {
                if !self.owner_may_act() {
                    return;
                }
                self.owner.volume = Volume::Active;
                self.events |= ev::REOPENED;
            }
            Volume::Active => {}
        }
        // Drop lost peers: connection closed or fenced.
        let fenced = self.hosts[OWNER].mem.fenced();
        for p in 0..HOSTS {
            if self.owner.peers & hbit(p) != 0 && (!self.connected(OWNER, p) || fenced & u64::from(hbit(p)) != 0) {
                self.owner.peers &= !hbit(p);
                self.owner.acked_by[p] = [0; BLOCKS];
                if self.fixes & fix::STALE_PEERS != 0 {
                    self.owner.stale |= hbit(p);
                }
            }
        }
        // A stale peer is harmless once a majority fenced it.
        for p in 0..HOSTS {
            if self.owner.stale & hbit(p) != 0 && self.hosts[OWNER].mem.majority_fences(id(p), now) {
                self.owner.stale &= !hbit(p);
            }
        }
        // Fill up to `peers` from placement over the eligible hosts.
        if self.owner.peers.count_ones() < cfg.peers {
            let up = self.hosts[OWNER].mem.up(now);
            let hosts: Vec<HostEntry> = (0..HOSTS)
                .map(|h| HostEntry {
                    id: id(h),
                    domain: 0,
                    up: h != OWNER
                        && (self.owner.peers & hbit(h) != 0
                            || (self.connected(OWNER, h) && up & u64::from(hbit(h)) != 0)),
                })
                .collect();
            let chosen = place(VOLUME, id(OWNER), &hosts, cfg.peers, DomainRule::Same).expect("valid placement input");
            for &pid in chosen.as_slice() {
                let p = pid as usize - 1;
                if self.owner.peers & hbit(p) != 0 || self.owner.peers.count_ones() >= cfg.peers {
                    continue;
                }
                self.owner.peers |= hbit(p);
                self.owner.acked_by[p] = [0; BLOCKS];
                if self.writes > 0 || self.events & ev::REOPENED != 0 {
                    self.events |= ev::REPROTECTED;
                }
                self.send(OWNER, p, Msg::Open);
                for b in 0..BLOCKS {
                    let v = self.owner.dirty[b];
                    if v != 0 {
                        self.send(OWNER, p, Msg::Replicate { block: b as u8, version: v });
                    }
                }
            }
        }
        self.complete_writes(cfg.peers);
    }

    /// A peer's automatic reactions: start, abandon or finish a recovery.
    fn settle_peer(&mut self, p: usize) {
        if !self.hosts[p].alive {
            return;
        }
        let now = self.clock;
        let owner = id(OWNER);
        let h = &mut self.hosts[p];
        match h.recovery {
            Recovery::Idle => {
                if h.store.is_some() && h.mem.majority_fences(owner, now) && h.mem.holds_lease(now) {
                    h.recovery = Recovery::Waiting;
                    h.mem.set_recovering(owner, true);
                    self.events |= ev::TAKEOVER_STARTED;
                }
            }
            Recovery::Waiting => {
                if !h.mem.majority_fences(owner, now) {
                    h.recovery = Recovery::Idle;
                    h.mem.set_recovering(owner, false);
                } else if h.mem.takeover_ready(owner, now) {
                    h.recovery = Recovery::Writing;
                }
            }
            Recovery::Writing => {}
        }
        if h.recovery == Recovery::Writing && h.store.is_none_or(|s| s.iter().all(|&v| v == 0)) {
            h.store = None;
            h.recovery = Recovery::Idle;
            h.mem.set_recovering(owner, false);
            self.events |= ev::RECOVERED;
        }
    }

    fn settle(&mut self, cfg: &Config) {
        // Twice: a reaction of one host (a message sent) may enable one of another.
        for _ in 0..2 {
            self.settle_owner(cfg);
            for p in 1..HOSTS {
                self.settle_peer(p);
            }
        }
        // The floor of P2: the backing device holds an acknowledged version.
        for b in 0..BLOCKS {
            let v = self.backing[b];
            if v != 0 && self.acked & (1 << v) != 0 && v > self.floor[b] {
                self.floor[b] = v;
            }
        }
    }

    fn crash(&mut self, h: usize) {
        self.hosts[h] = Host { alive: false, ..fresh_host(h) };
        for o in 0..HOSTS {
            self.queues[h][o].clear();
            self.queues[o][h].clear();
            self.stalled[h][o] = false;
            self.stalled[o][h] = false;
            self.hosts[o].ping_out &= !hbit(h);
        }
        if h == OWNER {
            self.owner = Owner {
                volume: Volume::Starting,
                dirty: [0; BLOCKS],
                peers: 0,
                acked_by: [[0; BLOCKS]; HOSTS],
                pending: 0,
                stale: 0,
            };
        }
    }

    fn tick(&mut self) {
        self.clock += UNIT;
        self.ticks += 1;
        let now = self.clock;
        for h in 0..HOSTS {
            if self.hosts[h].alive {
                let before = self.hosts[h].mem.fenced();
                self.hosts[h].mem.tick(now);
                if before & !self.hosts[h].mem.fenced() != 0 {
                    self.events |= ev::REJOINED;
                }
            }
        }
        for x in 0..HOSTS {
            for y in 0..HOSTS {
                if x != y && self.connected(x, y) && self.hosts[x].ping_out & hbit(y) == 0 {
                    self.hosts[x].ping_out |= hbit(y);
                    let view = self.hosts[x].mem.outgoing(now);
                    self.send(x, y, Msg::Ping { sent: now, view });
                }
            }
        }
        self.network_round();
    }
}

impl FvpModel {
    /// The model of `cfg`.
    pub fn new(cfg: Config) -> Self {
        assert!(cfg.peers == 1 || cfg.peers == 2);
        assert!(usize::from(cfg.max_writes) <= MAX_WRITES);
        FvpModel { cfg }
    }

    /// The start: [`WARM_UP_TICKS`] of heartbeats with everybody up, then the owner opens
    /// its volume on the peers placement gives.
    pub fn initial(&self) -> State {
        let mut s = State {
            clock: 0,
            hosts: core::array::from_fn(fresh_host),
            owner: Owner {
                volume: Volume::Starting,
                dirty: [0; BLOCKS],
                peers: 0,
                acked_by: [[0; BLOCKS]; HOSTS],
                pending: 0,
                stale: 0,
            },
            net_up: [true; 3],
            queues: Default::default(),
            stalled: [[false; HOSTS]; HOSTS],
            stalls: 0,
            backing: [0; BLOCKS],
            floor: [0; BLOCKS],
            acked: 0,
            version_block: [0; MAX_WRITES + 1],
            writes: 0,
            ticks: 0,
            crashes: 0,
            cuts: 0,
            down_at: [0; HOSTS],
            fixes: self.cfg.fixes,
            events: 0,
            violations: 0,
        };
        for _ in 0..WARM_UP_TICKS {
            s.tick();
        }
        s.settle(&self.cfg);
        // Deliver the VOLUME_OPENs.
        s.network_round();
        s.settle(&self.cfg);
        assert_eq!(s.owner.volume, Volume::Active);
        assert_eq!(s.owner.peers.count_ones(), self.cfg.peers);
        s.ticks = 0;
        s.events = 0;
        s
    }
}

impl Model for FvpModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial()]
    }

    fn actions(&self, s: &State, out: &mut Vec<Action>) {
        if s.ticks < self.cfg.max_ticks {
            out.push(Action::Tick);
        }
        for x in 0..HOSTS {
            for y in 0..HOSTS {
                if x == y || !s.connected(x, y) {
                    continue;
                }
                if s.stalled[x][y] {
                    out.push(Action::Unstall(x, y));
                } else if s.stalls < self.cfg.max_stalls {
                    out.push(Action::Stall(x, y));
                }
            }
        }
        if s.owner.volume == Volume::Active && s.owner_may_act() {
            if s.writes < self.cfg.max_writes && s.owner.stale == 0 {
                for b in 0..BLOCKS {
                    out.push(Action::Write(b));
                }
            }
            for b in 0..BLOCKS {
                if s.owner.dirty[b] != 0 {
                    out.push(Action::Destage(b));
                }
            }
        }
        for p in 1..HOSTS {
            let h = &s.hosts[p];
            if s.peer_may_write(p) {
                if let Some(st) = h.store {
                    for (b, &v) in st.iter().enumerate() {
                        if v != 0 {
                            out.push(Action::Recover(p, b));
                        }
                    }
                }
            }
        }
        for h in 0..HOSTS {
            if s.hosts[h].alive {
                if s.crashes < self.cfg.max_crashes {
                    out.push(Action::Crash(h));
                }
            } else if self.cfg.restarts
                && (self.cfg.fixes & fix::RESTART_SILENCE == 0
                    || u64::from(s.ticks - s.down_at[h]) * UNIT >= TAKEOVER_WAIT)
            {
                out.push(Action::Restart(h));
            }
        }
        for l in 0..3 {
            if s.net_up[l] {
                if s.cuts < self.cfg.max_cuts {
                    out.push(Action::Cut(l));
                }
            } else {
                out.push(Action::Heal(l));
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut s = s.clone();
        match action {
            Action::Tick => s.tick(),
            Action::Stall(x, y) => {
                s.stalls += 1;
                s.stalled[x][y] = true;
            }
            Action::Unstall(x, y) => s.stalled[x][y] = false,
            Action::Write(b) => {
                s.writes += 1;
                let v = s.writes;
                s.version_block[usize::from(v)] = b as u8;
                // Into the pool, replicated to every current peer (even degraded: a
                // remaining peer must not keep an older version).
                s.owner.dirty[b] = v;
                s.owner.pending |= 1 << v;
                for p in 0..HOSTS {
                    if s.owner.peers & hbit(p) != 0 {
                        s.send(OWNER, p, Msg::Replicate { block: b as u8, version: v });
                    }
                }
                if s.owner.peers.count_ones() < self.cfg.peers {
                    // Degraded: write through.
                    s.write_backing(OWNER, b, v);
                    s.owner.dirty[b] = 0;
                    s.events |= ev::WRITE_THROUGH;
                    for p in 0..HOSTS {
                        if s.owner.peers & hbit(p) != 0 {
                            s.send(OWNER, p, Msg::Destaged { block: b as u8, version: v });
                        }
                    }
                }
            }
            Action::Destage(b) => {
                let v = s.owner.dirty[b];
                s.write_backing(OWNER, b, v);
                s.owner.dirty[b] = 0;
                s.events |= ev::DESTAGED;
                for p in 0..HOSTS {
                    if s.owner.peers & hbit(p) != 0 {
                        s.send(OWNER, p, Msg::Destaged { block: b as u8, version: v });
                    }
                }
            }
            Action::Recover(p, b) => {
                let v = s.hosts[p].store.map_or(0, |st| st[b]);
                s.write_backing(p, b, v);
                if let Some(st) = &mut s.hosts[p].store {
                    st[b] = 0;
                }
                s.events |= ev::RECOVERY_WRITE;
            }
            Action::Crash(h) => {
                s.crashes += 1;
                s.down_at[h] = s.ticks;
                s.crash(h);
            }
            Action::Restart(h) => {
                s.hosts[h] = fresh_host(h);
            }
            Action::Cut(l) => {
                s.cuts += 1;
                s.net_up[l] = false;
                let (x, y) = pair_hosts(l);
                s.queues[x][y].clear();
                s.queues[y][x].clear();
                s.stalled[x][y] = false;
                s.stalled[y][x] = false;
                s.hosts[x].ping_out &= !hbit(y);
                s.hosts[y].ping_out &= !hbit(x);
            }
            Action::Heal(l) => s.net_up[l] = true,
        }
        s.settle(&self.cfg);
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("P1 no acknowledged write is lost", |_, s: &State| p1(s)),
            Property::always("P2 backing never goes backwards", |_, s: &State| {
                (0..BLOCKS).all(|b| s.backing[b] >= s.floor[b])
            }),
            Property::always("P2 destaged blocks are on the backing device", |_, s: &State| p2_destaged(s)),
            Property::always("P3 acknowledged with enough replicas", |_, s: &State| {
                s.violations & bad::UNDER_REPLICATED == 0
            }),
            Property::always("P4 backing writes only under lease", |_, s: &State| {
                s.violations & bad::WRITE_WITHOUT_LEASE == 0
            }),
            Property::always("P4 never two writers", |_, s: &State| p4_one_writer(s)),
            Property::sometimes("write acknowledged", |_, s: &State| s.events & ev::ACKED != 0),
            Property::sometimes("owner destaged", |_, s: &State| s.events & ev::DESTAGED != 0),
            Property::sometimes("peer dropped a destaged block", |_, s: &State| s.events & ev::DROPPED != 0),
            Property::sometimes("reprotected", |_, s: &State| s.events & ev::REPROTECTED != 0),
            Property::sometimes("degraded write-through", |_, s: &State| s.events & ev::WRITE_THROUGH != 0),
            Property::sometimes("takeover started", |_, s: &State| s.events & ev::TAKEOVER_STARTED != 0),
            Property::sometimes("recovery wrote a block", |_, s: &State| s.events & ev::RECOVERY_WRITE != 0),
            Property::sometimes("recovery completed", |_, s: &State| s.events & ev::RECOVERED != 0),
        ]
    }
}

/// P1: every block's latest acknowledged version is held by a live copy.
pub fn p1(s: &State) -> bool {
    (0..BLOCKS).all(|b| {
        let v = s.latest_acked(b);
        v == 0
            || s.backing[b] >= v
            || (s.hosts[OWNER].alive && s.owner.volume == Volume::Active && s.owner.dirty[b] >= v)
            || (1..HOSTS).any(|p| s.hosts[p].alive && matches!(s.hosts[p].store, Some(st) if st[b] >= v))
    })
}

/// P2, second half: an idle owner's blocks are all on the backing device.
pub fn p2_destaged(s: &State) -> bool {
    let idle = s.hosts[OWNER].alive
        && s.owner.volume == Volume::Active
        && s.owner.pending == 0
        && s.owner.dirty == [0; BLOCKS];
    !idle || (0..BLOCKS).all(|b| s.backing[b] >= s.latest_acked(b))
}

/// P4, second half: never the owner and a recovering peer both allowed to write.
pub fn p4_one_writer(s: &State) -> bool {
    let owner_may = s.owner.volume == Volume::Active && s.owner_may_act();
    let peer_may = (1..HOSTS).any(|p| s.peer_may_write(p));
    !(owner_may && peer_may)
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.clock / UNIT;
        write!(f, "t={t} backing={:?} floor={:?} acked=", self.backing, self.floor)?;
        for b in 0..BLOCKS {
            write!(f, "{}", self.latest_acked(b))?;
            if b + 1 < BLOCKS {
                write!(f, ",")?;
            }
        }
        write!(f, " | A:")?;
        for (h, x) in self.hosts.iter().enumerate() {
            if h > 0 {
                write!(f, " | {}:", NAMES[h])?;
            }
            if !x.alive {
                write!(f, "down")?;
                continue;
            }
            let mask = |m: u64| -> String { (0..HOSTS).filter(|&i| m & (1 << i) != 0).map(|i| NAMES[i]).collect() };
            write!(
                f,
                "fenced={{{}}} lease={} grants={{{}}}",
                mask(x.mem.fenced()),
                x.mem.holds_lease(self.clock) as u8,
                mask(x.mem.grants(self.clock))
            )?;
            if h == OWNER {
                write!(
                    f,
                    " {:?} dirty={:?} peers={{{}}} pending={:#b}",
                    self.owner.volume,
                    self.owner.dirty,
                    mask(u64::from(self.owner.peers)),
                    self.owner.pending
                )?;
            } else {
                write!(f, " store={:?} {:?}", x.store, x.recovery)?;
                if x.mem.recovering() != 0 {
                    write!(f, " recovering={{{}}}", mask(x.mem.recovering()))?;
                }
            }
        }
        let down: Vec<String> = (0..3)
            .filter(|&l| !self.net_up[l])
            .map(|l| {
                let (x, y) = pair_hosts(l);
                format!("{}-{}", NAMES[x], NAMES[y])
            })
            .collect();
        if !down.is_empty() {
            write!(f, " | cut: {}", down.join(","))?;
        }
        for (x, row) in self.queues.iter().enumerate() {
            for (y, q) in row.iter().enumerate() {
                if !q.is_empty() {
                    let items: Vec<String> = q
                        .iter()
                        .map(|m| match m {
                            Msg::Ping { .. } => "PING".into(),
                            Msg::Pong { .. } => "PONG".into(),
                            Msg::Open => "OPEN".into(),
                            Msg::OpenAck => "OPEN-ACK".into(),
                            Msg::Replicate { block, version } => {
                                format!("REPL(b{block},v{version})")
                            }
                            Msg::Destaged { block, version } => {
                                format!("DESTAGED(b{block},v{version})")
                            }
                            Msg::Ack { block, version, ok } => {
                                format!("ACK(b{block},v{version}{})", if *ok { "" } else { ",err" })
                            }
                        })
                        .collect();
                    write!(f, " | {}->{}: {}", NAMES[x], NAMES[y], items.join(" "))?;
                }
            }
        }
        if self.violations != 0 {
            write!(f, " | VIOLATIONS={:#b}", self.violations)?;
        }
        Ok(())
    }
}

/// Formats a path of the checker: the start, then each action and the state after it.
pub fn format_path(path: &stateright::Path<State, Action>) -> String {
    let states: Vec<State> = path.clone().into_states();
    let actions: Vec<Action> = path.clone().into_actions();
    let mut text = format!("  start: {:?}\n", states[0]);
    for (i, a) in actions.iter().enumerate() {
        text.push_str(&format!("  {:<14} -> {:?}\n", format_action_name(*a), states[i + 1]));
    }
    text
}

/// A short name of an action.
pub fn format_action_name(a: Action) -> String {
    match a {
        Action::Tick => "tick".into(),
        Action::Stall(x, y) => format!("stall {}->{}", NAMES[x], NAMES[y]),
        Action::Unstall(x, y) => format!("unstall {}->{}", NAMES[x], NAMES[y]),
        Action::Write(b) => format!("write b{b}"),
        Action::Destage(b) => format!("destage b{b}"),
        Action::Recover(p, b) => format!("{} recovers b{b}", NAMES[p]),
        Action::Crash(h) => format!("crash {}", NAMES[h]),
        Action::Restart(h) => format!("restart {}", NAMES[h]),
        Action::Cut(l) => {
            let (x, y) = pair_hosts(l);
            format!("cut {}-{}", NAMES[x], NAMES[y])
        }
        Action::Heal(l) => {
            let (x, y) = pair_hosts(l);
            format!("heal {}-{}", NAMES[x], NAMES[y])
        }
    }
}
