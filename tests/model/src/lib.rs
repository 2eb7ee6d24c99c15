// SPDX-License-Identifier: GPL-2.0

//! A model of fvp's replicated write-back (`docs/replication.md` sections 4 and 6),
//! checked with [stateright], over the code the kernel runs.
//!
//! Every protocol decision is taken by the kernel's own pure state machines:
//! [`Membership`] (heartbeats, fences, leases, takeover wait, rejoin), [`Owner`] (the
//! owner side of a replicated volume: lease checks, lost and stale peers, epochs,
//! re-protection, the "taken over?" probe, destage notices), the peer rules of
//! [`fvp_logic::replica`] (VOLUME_OPEN verdicts, trusted stores and [`LeaseWatch`],
//! versions, takeover) and [`place`] (peer choice). This crate holds no copy of their
//! rules: it models the environment — the network, the backing device, crashes,
//! restarts and time, the client's writes — and the glue that carries out the owner's
//! [`Step`]s and feeds it [`Answer`]s and [`Observation`]s the way the kernel
//! (`repl.rs`, `replica.rs`, `cluster.rs`) and the cluster simulator (`tests/sim`) do.
//!
//! # The model
//!
//! - Three hosts, ids 1, 2 and 3 (`A`, `B`, `C`), all in one fault domain. `A` owns one
//!   replicated write-back volume of [`BLOCKS`] blocks with `peers` = 1 or 2
//!   ([`Config::peers`]); `B` and `C` may hold its replicas and take it over. Every host
//!   is a voter for leases and fences.
//! - Time is discrete: a [`Action::Tick`] advances every host's clock by one unit
//!   ([`UNIT`] ns) — clocks run at the same rate, which the protocol's 20 % margin does
//!   not need. A tick is a heartbeat: the heartbeat interval is one unit, the timeout
//!   [`TIMEOUT_UNITS`] units, so the takeover wait `T + T/5` is 3.6 units, i.e. 4 ticks.
//!   The number of ticks is bounded ([`Config::max_ticks`]).
//! - At each tick, in order: every host's [`Membership::tick`]; requesters close the
//!   connections on which a request waits for its ACK since the timeout (only stalls
//!   make that happen); PINGs on every connection whose previous PING was answered; a
//!   network round; each host's heartbeat as the kernel's ticker runs it (a host a
//!   majority fences untrusts its replica stores, as [`LeaseWatch`] does after a
//!   lease interruption; the owner's [`Owner::tick`] and the steps it returns; a peer's
//!   takeover starts or stops); a network round; the owner's writes waiting on its
//!   state; a network round.
//! - The network: between every two hosts one connection made of two FIFO queues, one
//!   per direction. A network round delivers every queued message of every connected,
//!   flowing direction, replies included, until none is left: a request sent between
//!   two ticks (a client write) arrives at the next tick, and the owner's requests of a
//!   tick (its asks, each answered before the next, as the kernel's synchronous calls
//!   are) are all answered within it. A [`Action::Stall`] holds back one direction
//!   (nobody is told) until [`Action::Unstall`] (bounded by [`Config::max_stalls`]); a
//!   request not ACKed within the timeout makes its sender close the connection, as the
//!   kernel does. A [`Action::Cut`] partitions a link: both queues are lost, requests in
//!   flight fail, the connection is down until [`Action::Heal`] (bounded by
//!   [`Config::max_cuts`]). A connection that broke is a new one afterwards: the owner's
//!   peer slots remember the one they were opened on.
//! - The owner, as `repl.rs` drives [`Owner`]: each tick it reports the slots whose
//!   connection broke ([`Owner::peer_failed`]), builds the [`Observation`] (settled lease
//!   [`Membership::holds_lease_for`] the takeover wait, majority fences, settled fences
//!   [`Membership::takeover_ready`], connections, [`place`]'s choice over the hosts
//!   connected and not fenced, whether the volume is clean), calls [`Owner::tick`] and
//!   carries out each [`Step`]: VOLUME_OPEN of the peers' epochs for
//!   [`Ask::TakenOver`] and of the new epoch for [`Ask::Open`], one peer after the
//!   other; VOLUME_CLOSE; the re-send of every dirty block with fresh versions; the
//!   effects (discarding everything on [`Effect::Fence`], sending DESTAGED notices).
//! - The client writes a block ([`Action::Write`], one write in flight per block) when
//!   [`Owner::writable`] allows it: replicated writes go to the pool and, with a fresh
//!   [`Owner::next_version`], as REPLICATE to the current peers, and complete when every
//!   peer ACKed and [`Owner::peer_set_gen`] did not change; write-through writes first
//!   drop the block at the current peers (DROP_RANGE) then go to the backing device
//!   (the lease checked again). A write that failed or saw the peer set change is
//!   protected again as the simulator does it (re-sent to the current peers, or dropped
//!   there if already written back). No write is acknowledged without the lease. The
//!   destager ([`Action::Destage`]) writes a dirty block back when the volume is neither
//!   suspended nor fenced and the lease is held, and lists it for the next DESTAGED
//!   notice with the version counter read before.
//! - A peer keeps replica stores per owner volume (a restarted owner's volume has a new
//!   id) and applies [`fvp_logic::replica`]'s rules to VOLUME_OPEN, REPLICATE, DESTAGED,
//!   DROP_RANGE and VOLUME_CLOSE. It takes over ([`Action::Recover`], one block at a
//!   time, in any order) the trusted stores it holds once [`rules::may_take_over`] allows
//!   it (`takeover_ready`, or the owner was told `ESTALE` and it holds its lease),
//!   recording the volume as taken over first and announcing the owner in
//!   `recovering`; it stops at a tick where that no longer holds and gives the stores
//!   back, as `replica.rs` does.
//! - Crashes lose a host's RAM (pool, stores, membership), break its connections and may
//!   be followed by a restart ([`Action::Restart`]) if [`Config::restarts`]. A restarted
//!   host stays silent for [`Config::silence_ticks`] before it connects (the kernel: three
//!   timeouts after a load, `cluster.rs`). At most [`Config::max_crashes`].
//! - Not modeled: reads, the replica budget (ENOSPC), operator commands (`resolve`, and
//!   writing an untrusted store), configuration changes, the backing device's volatile
//!   cache and its write latency (a backing write is durable at once: I/O in flight never
//!   outlives the lease, section 6's timing assumption), VM pauses, clock rate
//!   differences, partial blocks, and the ACK deadline of a peer that answers late
//!   without a stall.
//!
//! # Properties
//!
//! A write is *acknowledged* when the owner completes it to the client. Writes are
//! numbered in the order the client issues them; for a block, the *latest acknowledged
//! write* is the largest acknowledged one of that block. A copy *holds* a write `w` when
//! it holds the data of `w` or of a later write of the block.
//!
//! - **P1, no acknowledged write is lost**: for every block the latest acknowledged
//!   write is held by the backing device, by the owner's pool (the owner alive and not
//!   fenced) or by a replica store of an alive peer (a store being recovered included).
//!   Assumed: at most `peers` crashes; the configurations that exceed it must fail.
//! - **P2, the backing device never goes backwards**: once the backing device held an
//!   acknowledged write of a block, no older write of that block reaches it; and when
//!   the owner holds its settled lease, is neither suspended nor fenced, and has
//!   nothing dirty and no write in progress, the backing device holds every block's
//!   latest acknowledged write, unless an untrusted store is its only other copy
//!   (waiting for the operator).
//! - **P3, enough replicas**: when a write is acknowledged, the backing device holds
//!   it, or `peers` peers confirmed storing it (since it was last sent) and each still
//!   holds it in a store or crashed since (the owner cannot know yet: P1 covers what
//!   crashes do to acknowledged writes). A store emptied meanwhile (a new epoch, a
//!   discard) does not count.
//! - **P4, one writer**: every backing write is made by a host that may write at that
//!   moment (the owner holding its settled lease, a recovering peer allowed by the
//!   takeover rule); and there is never a moment when both the owner and a recovering
//!   peer may write. The owner may while it holds its settled lease and its volume is
//!   neither suspended nor fenced (the destager, new write-throughs), or, suspended,
//!   while a write-through waits for its drop (it is submitted with the lease alone).
//!
//! `sometimes` properties check that the model reaches acknowledged writes, destages,
//! dropped replicas, re-protection, write-through, takeovers, completed recoveries and
//! an owner learning (ESTALE) that its volume was taken over.
//!
//! # Findings
//!
//! Over the real state machines, P1 to P4 hold in every configuration of
//! `tests/check.rs` within the assumptions. The model found one hole in them, with
//! `peers=2` and two failures: a host that a majority fenced discarded every replica
//! store it held (`cluster.rs`'s ticker), even an untrusted one, kept because it may be
//! the last copy of acknowledged writes; and a restarted host starts fencing every other
//! host. Two restarted hosts (the owner and one peer), or a restarted owner and a peer
//! that a partition made fence the other peer, were such a majority for the remaining
//! peer, which discarded the last copy (P1). A majority fence now untrusts the stores
//! and keeps them; the two tests that found it are regressions.
//!
//! A takeover that stops gives its stores back untrusted if the lease watch saw an
//! interruption while they were out ([`LeaseWatch::still_trusted`]), and a majority
//! fence puts a running takeover's stores back untrusted: with the fence untrusting
//! instead of discarding, the model found that the stores of a takeover stopped by a
//! fence were otherwise lost (P1, `crash_cut_restart_peers2_holds`).
//!
//! Earlier versions of this crate checked their own copy of the owner's and the peers'
//! rules, with switches for the fixes they led to (restart silence, discarding only on
//! ESTALE, settled leases and per-write takeover checks, stale peers); those rules are
//! now the kernel's and have no switches, so the counterexamples of the older rules are
//! gone from the tests (`docs/replication.md` section 8 tells their story). Where the
//! kernel's glue and the simulator's differ, the model follows the kernel: VOLUME_OPEN
//! asks go to the peers one after the other; a re-send that finds the lease lost
//! answers [`Resent::Interrupted`]; a takeover whose stores include one whose owner was
//! told ESTALE may finish with the lease alone; a stopped takeover gives its stores back
//! whole.

use fvp_logic::membership::{Membership, View};
use fvp_logic::owner::{self, Answer, Ask, Effect, Observation, Owner, Resent, Step, Writable};
use fvp_logic::placement::{host_bit, place, DomainRule, HostEntry};
use fvp_logic::replica::{self as rules, LeaseWatch, OpenVerdict, OrphanVerdict};
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
/// Ticks a (re)started host stays silent in the kernel: three timeouts (`cluster.rs`).
pub const SILENCE_TICKS: u8 = 3 * TIMEOUT_UNITS as u8;
/// The owner (host id 1).
pub const OWNER: usize = 0;
/// The volume's name, as placement hashes it.
pub const VOLUME: &[u8] = b"vol0";
/// Most ticks of heartbeats before the model starts: every fence lifted, the volume
/// protected.
pub const MAX_WARM_UP_TICKS: u64 = 40;

const NAMES: [char; HOSTS] = ['A', 'B', 'C'];
const ALL: u64 = 0b111;
const OWNER_ID: u32 = 1;
/// The hosts other than the owner.
const OTHER_HOSTS: u64 = ALL & !1;

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
    /// Ticks a restarted host stays silent before it connects: the kernel's
    /// [`SILENCE_TICKS`]; shorter values break an assumption of the protocol (a restarted
    /// owner must have been fenced and taken over before it comes back).
    pub silence_ticks: u8,
}

impl Config {
    /// `peers` with the kernel's restart silence and nothing else: no write, no tick,
    /// no fault.
    pub fn new(peers: u32) -> Config {
        Config {
            peers,
            max_writes: 0,
            max_ticks: 0,
            max_crashes: 0,
            max_cuts: 0,
            max_stalls: 0,
            restarts: false,
            silence_ticks: SILENCE_TICKS,
        }
    }
}

/// A request of the owner to a peer (`logic/wire.rs` messages, reduced to what the
/// model needs). `vid` is the owner's volume id: one per incarnation of the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Req {
    /// VOLUME_OPEN of an epoch.
    Open { vid: u8, epoch: u64 },
    /// REPLICATE the data of write `wid` of a block at a version.
    Replicate { vid: u8, block: u8, version: u64, wid: u8 },
    /// DESTAGED: per block, the version snapshot of its destage (0: not listed).
    Destaged { vid: u8, versions: [u64; BLOCKS] },
    /// DROP_RANGE of one block at a version.
    DropRange { vid: u8, block: u8, version: u64 },
    /// VOLUME_CLOSE.
    Close { vid: u8 },
}

/// Why the owner sent a request: where its ACK goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A client write's replicas.
    Write(u8),
    /// A failed write's protection.
    Protect(u8),
    /// A write-through's drop.
    Drop(u8),
    /// An [`Ask`] other than the re-send.
    Ask,
    /// [`Ask::Resend`].
    Resend,
    /// DESTAGED notices (nobody waits).
    Notice,
}

/// A peer's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Done.
    Ok,
    /// ESTALE: this host took the volume over.
    Stale,
    /// ENOENT: no (trusted) store.
    NoEnt,
    /// EAGAIN: an orphan of the volume must be written first.
    Again,
}

/// A message on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Msg {
    /// PING with the sender's send time and view.
    Ping { sent: u64, view: View },
    /// PONG echoing a PING's send time, with the sender's view.
    Pong { echo: u64, view: View },
    /// A request, sent at tick `sent`.
    Req { sent: u8, purpose: Purpose, req: Req },
    /// The ACK of a request sent at tick `sent`.
    Ack { sent: u8, purpose: Purpose, status: Status },
}

/// A peer's replica store of one of the owner's volumes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Store {
    /// The owner's volume id.
    pub vid: u8,
    /// The epoch it was opened with.
    pub epoch: u64,
    /// Per block: the version and the write whose data it holds.
    pub blocks: [Option<(u64, u8)>; BLOCKS],
    /// The host held its lease without interruption since the store was opened.
    pub trusted: bool,
    /// The owner was told (ESTALE) that this host took the volume over.
    pub yielded: bool,
    /// An orphan (a store of an earlier incarnation of the owner's volume) to write
    /// before the new incarnation's VOLUME_OPEN or VOLUME_CLOSE is confirmed.
    pub orphan: bool,
}

/// A takeover in progress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Recovery {
    /// The trusted stores taken out for it.
    pub stores: Vec<Store>,
    /// Replicas not written yet: bit `store * BLOCKS + block`.
    pub left: u8,
    /// Some store's owner was told ESTALE when it began: the lease alone suffices.
    pub yielded: bool,
    /// Writes orphans for their waiting owner with the lease held since this start;
    /// not a takeover.
    pub orphans_since: Option<u64>,
    /// The lease watch's lease start when the stores were taken out: they go back
    /// untrusted if it saw an interruption since ([`LeaseWatch::still_trusted`]).
    pub taken: Option<u64>,
}

/// One host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Host {
    /// Running (false: crashed).
    pub alive: bool,
    /// Ticks of silence left after a restart.
    pub quiet: u8,
    /// Section 4 state.
    pub mem: Membership<HOSTS>,
    /// Hosts with an unanswered PING from this host.
    pub ping_out: u8,
    /// Lease interruptions untrust the stores.
    pub lease_watch: LeaseWatch,
    /// Learnt it is fenced by a majority (its stores were untrusted).
    pub self_fenced: bool,
    /// Replica stores of the owner's volumes (peers only).
    pub stores: Vec<Store>,
    /// Owner volume ids this host took over (bit `vid`).
    pub recovered: u8,
    /// A takeover in progress.
    pub recovery: Option<Recovery>,
}

/// Where a client write stands (as in the simulator).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Replicated: waiting for the peers' ACKs.
    Replicating,
    /// A peer failed or the peer set changed: make it durable again.
    Protect,
    /// Re-sent to the current peers: waiting for their ACKs.
    Protecting,
    /// Degraded: the remaining peers get the block's newest data before the disk does.
    ProtectingThrough,
    /// Durable once the backing device holds it.
    UntilOnDisk,
    /// Write-through: waiting for the peers to drop their replicas of the block.
    Dropping,
    /// Write-through: a peer did not confirm the drop (or the lease was missing).
    DropFailed,
}

/// A client write in progress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PWrite {
    /// Its number.
    pub wid: u8,
    /// Its block.
    pub block: u8,
    /// Where it stands.
    pub stage: Stage,
    /// Requests without an ACK yet.
    pub outstanding: u8,
    /// A request failed.
    pub failed: bool,
    /// Written through.
    pub through: bool,
    /// The owner's peer-set generation when it was (re-)sent.
    pub gen: u64,
    /// Peers whose ACK confirmed they stored it (since it was last sent), host mask.
    pub holders: u8,
    /// Each confirming peer's [`State::lives`] at its confirmation.
    pub holder_lives: [u8; HOSTS],
}

/// An [`Ask`] being carried out ([`Ask`] has no `Hash`: the same data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AskKind {
    /// [`Ask::TakenOver`].
    TakenOver { hosts: u64, holders: u64 },
    /// [`Ask::Open`].
    Open { peers: [u32; 2], epoch: u64 },
    /// [`Ask::Close`].
    Close { host: u32 },
    /// [`Ask::Resend`].
    Resend,
}

/// The owner's request in flight for its current [`Step::Ask`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AskRec {
    /// What is asked.
    pub ask: AskKind,
    /// The slot of the peer asked now (asks to several peers go one after the other).
    pub at: u8,
    /// Re-send requests without an ACK yet.
    pub outstanding: u8,
    /// A re-send request failed.
    pub failed: bool,
    /// The peers a VOLUME_OPEN reached, with their connection.
    pub opened: [(u32, u8); 2],
}

/// The owner's volume (on host A).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vol {
    /// Every decision (`logic/owner.rs`).
    pub m: Owner,
    /// Its id (one per incarnation of the owner).
    pub vid: u8,
    /// Dirty write per block, 0 for clean.
    pub dirty: [u8; BLOCKS],
    /// Client writes in progress.
    pub writes: Vec<PWrite>,
    /// Blocks written back and their version snapshot, for the next DESTAGED (0: none).
    pub destaged: [u64; BLOCKS],
    /// The owner's peers, each with the connection it was opened on.
    pub slots: [(u32, u8); 2],
    /// The ask in flight.
    pub ask: Option<AskRec>,
}

/// Reachability markers.
pub mod ev {
    /// A write was acknowledged.
    pub const ACKED: u16 = 1 << 0;
    /// The owner destaged a block.
    pub const DESTAGED: u16 = 1 << 1;
    /// A peer dropped a replica (DESTAGED or DROP_RANGE).
    pub const DROPPED: u16 = 1 << 2;
    /// The owner opened a new epoch after its first.
    pub const REPROTECTED: u16 = 1 << 3;
    /// A write went through to the backing device (degraded).
    pub const WRITE_THROUGH: u16 = 1 << 4;
    /// A peer started a takeover.
    pub const TAKEOVER_STARTED: u16 = 1 << 5;
    /// A peer wrote a recovered block.
    pub const RECOVERY_WRITE: u16 = 1 << 6;
    /// A peer finished a takeover.
    pub const RECOVERED: u16 = 1 << 7;
    /// The owner learnt (ESTALE) that its volume was taken over.
    pub const FENCED: u16 = 1 << 8;
    /// A stopped takeover gave its stores back.
    pub const RECOVERY_STOPPED: u16 = 1 << 9;
    /// A fence was lifted (rejoin).
    pub const REJOINED: u16 = 1 << 10;
    /// A peer's stores became untrusted.
    pub const UNTRUSTED: u16 = 1 << 11;
}

/// Violations of event properties (P2a, P3, P4a), recorded when they happen.
pub mod bad {
    /// A write acknowledged with too few replicas.
    pub const UNDER_REPLICATED: u8 = 1 << 0;
    /// A backing write by a host not allowed to write.
    pub const WRITE_WITHOUT_RIGHT: u8 = 1 << 1;
    /// A backing write older than an acknowledged write the device held.
    pub const BACKWARDS: u8 = 1 << 2;
}

/// The whole system.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct State {
    /// Every host's clock (ns); all run at the same rate.
    pub clock: u64,
    /// Hosts A, B, C.
    pub hosts: [Host; HOSTS],
    /// The owner's volume on A (none while A is down).
    pub vol: Option<Vol>,
    /// Volumes the owner created (the current one's id).
    pub vids: u8,
    /// Network state per link (A-B, A-C, B-C): up or cut.
    pub net_up: [bool; 3],
    /// Connection incarnation per link: bumped when the connection breaks.
    pub inc: [u8; 3],
    /// Stalled directions, `stalled[from][to]`.
    pub stalled: [[bool; HOSTS]; HOSTS],
    /// Stalls so far.
    pub stalls: u8,
    /// Queues, `queues[from][to]`.
    pub queues: [[Vec<Msg>; HOSTS]; HOSTS],
    /// The backing device: write per block (0: never written).
    pub backing: [u8; BLOCKS],
    /// Largest acknowledged write the backing device has held, per block.
    pub floor: [u8; BLOCKS],
    /// Acknowledged writes (bit `wid`).
    pub acked: u8,
    /// Block of each write.
    pub write_block: [u8; MAX_WRITES + 1],
    /// Writes issued.
    pub writes: u8,
    /// Ticks so far.
    pub ticks: u8,
    /// Crashes so far.
    pub crashes: u8,
    /// Crashes so far per host.
    pub lives: [u8; HOSTS],
    /// Cuts so far.
    pub cuts: u8,
    /// Reachability markers ([`ev`]).
    pub events: u16,
    /// Recorded violations ([`bad`]).
    pub violations: u8,
}

/// A nondeterministic step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Every clock advances one unit: a heartbeat of every host.
    Tick,
    /// Messages from `from` to `to` stop arriving (TCP stalls; nobody is told).
    Stall(usize, usize),
    /// A stalled direction flows again.
    Unstall(usize, usize),
    /// A client writes a block.
    Write(usize),
    /// The owner destages a dirty block.
    Destage(usize),
    /// A recovering peer writes a replica: (peer, store, block).
    Recover(usize, usize, usize),
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
    Host {
        alive: true,
        quiet: 0,
        mem: new_mem(h),
        ping_out: 0,
        lease_watch: LeaseWatch::new(),
        self_fenced: false,
        stores: vec![],
        recovered: 0,
        recovery: None,
    }
}

fn new_vol(peers: u32, vid: u8) -> Vol {
    Vol {
        // Every other host may hold an orphan of the owner's earlier incarnation.
        m: Owner::new(peers, OTHER_HOSTS).expect("valid policy"),
        vid,
        dirty: [0; BLOCKS],
        writes: vec![],
        destaged: [0; BLOCKS],
        slots: [(0, 0); 2],
        ask: None,
    }
}

impl AskKind {
    fn of(ask: Ask) -> AskKind {
        match ask {
            Ask::TakenOver { hosts, holders } => AskKind::TakenOver { hosts, holders },
            Ask::Open { peers, epoch } => AskKind::Open { peers, epoch },
            Ask::Close { host } => AskKind::Close { host },
            Ask::Resend => AskKind::Resend,
        }
    }
}

impl State {
    fn vol(&mut self) -> &mut Vol {
        self.vol.as_mut().expect("the owner has its volume")
    }

    fn connected(&self, x: usize, y: usize) -> bool {
        x != y
            && self.net_up[pair(x, y)]
            && self.hosts[x].alive
            && self.hosts[y].alive
            && self.hosts[x].quiet == 0
            && self.hosts[y].quiet == 0
    }

    /// Queues `msg` from `x` to `y` if connected.
    fn send(&mut self, x: usize, y: usize, msg: Msg) -> bool {
        if !self.connected(x, y) {
            return false;
        }
        self.queues[x][y].push(msg);
        true
    }

    fn request(&mut self, x: usize, y: usize, purpose: Purpose, req: Req) -> bool {
        let sent = self.ticks;
        self.send(x, y, Msg::Req { sent, purpose, req })
    }

    /// Delivers every queued message of every connected, flowing direction, replies
    /// included, in FIFO order per direction, until none is left.
    fn network_round(&mut self, cfg: &Config) {
        loop {
            let mut progress = false;
            for x in 0..HOSTS {
                for y in 0..HOSTS {
                    if !self.queues[x][y].is_empty() && !self.stalled[x][y] && self.connected(x, y) {
                        let m = self.queues[x][y].remove(0);
                        self.receive(x, y, m, cfg);
                        progress = true;
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    /// Breaks the connection between `x` and `y`: both queues are lost, requests in
    /// flight on it fail (the link itself stays as it is).
    fn break_conn(&mut self, x: usize, y: usize, cfg: &Config) {
        let mut failed = vec![];
        for (r, o) in [(x, y), (y, x)] {
            // Oldest first: ACKs on their way back, then requests not delivered yet.
            for m in &self.queues[o][r] {
                if let Msg::Ack { purpose, .. } = m {
                    failed.push((r, o, *purpose));
                }
            }
            for m in &self.queues[r][o] {
                if let Msg::Req { purpose, .. } = m {
                    failed.push((r, o, *purpose));
                }
            }
        }
        self.queues[x][y].clear();
        self.queues[y][x].clear();
        let p = pair(x, y);
        self.inc[p] = self.inc[p].wrapping_add(1);
        self.hosts[x].ping_out &= !hbit(y);
        self.hosts[y].ping_out &= !hbit(x);
        for (r, o, purpose) in failed {
            self.req_done(r, o, purpose, Status::NoEnt, false, cfg);
        }
    }

    /// Processes `msg` from `x` at `y`.
    fn receive(&mut self, x: usize, y: usize, msg: Msg, cfg: &Config) {
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
            Msg::Req { sent, purpose, req } => {
                self.hosts[y].mem.on_message(from, now);
                let status = self.serve(y, req);
                self.send(y, x, Msg::Ack { sent, purpose, status });
            }
            Msg::Ack { purpose, status, .. } => {
                self.hosts[y].mem.on_message(from, now);
                self.req_done(y, x, purpose, status, true, cfg);
            }
        }
    }

    /// Peer `y` serves a request of the owner (`replica.rs`, every decision
    /// [`fvp_logic::replica`]'s).
    fn serve(&mut self, y: usize, req: Req) -> Status {
        let h = &mut self.hosts[y];
        let trusted =
            |h: &Host, vid: u8| h.stores.iter().position(|s| s.vid == vid && rules::accepts_changes(s.trusted));
        // VOLUME_OPEN and VOLUME_CLOSE deal with the orphans of the volume first (the
        // owner has one volume: every store under another id is one).
        // A probe (VOLUME_OPEN of epoch 0) changes nothing, orphans included.
        let probe = matches!(req, Req::Open { epoch: 0, .. });
        if let Req::Open { vid, .. } | Req::Close { vid } = req {
            if !probe && h.recovered & (1 << vid) == 0 {
                let mut to_write = 0;
                h.stores.retain_mut(|st| {
                    if st.vid == vid {
                        return true;
                    }
                    match rules::on_orphan(st.trusted, st.blocks.iter().flatten().count() as u64) {
                        OrphanVerdict::Drop => false,
                        OrphanVerdict::WriteFirst => {
                            st.orphan = true;
                            to_write += 1;
                            true
                        }
                        OrphanVerdict::Keep => true,
                    }
                });
                if !rules::may_confirm(to_write, h.recovery.is_some()) {
                    return Status::Again;
                }
            }
        }
        match req {
            Req::Open { vid, epoch } => {
                let found = h.stores.iter().position(|s| s.vid == vid);
                let taken_over = h.recovered & (1 << vid) != 0;
                match rules::on_open(found.map(|i| h.stores[i].epoch), taken_over, epoch) {
                    OpenVerdict::TakenOver => {
                        if let Some(i) = found {
                            h.stores[i].yielded = true;
                        }
                        return Status::Stale;
                    }
                    OpenVerdict::Unchanged => {}
                    OpenVerdict::NotHeld => return Status::NoEnt,
                    OpenVerdict::Reset => {
                        let s = &mut h.stores[found.expect("held")];
                        s.blocks = [None; BLOCKS];
                        s.epoch = epoch;
                        s.trusted = true;
                    }
                    OpenVerdict::Create => h.stores.push(Store {
                        vid,
                        epoch,
                        blocks: [None; BLOCKS],
                        trusted: true,
                        yielded: false,
                        orphan: false,
                    }),
                }
                Status::Ok
            }
            Req::Replicate { vid, block, version, wid } => {
                let Some(i) = trusted(h, vid) else { return Status::NoEnt };
                let slot = &mut h.stores[i].blocks[usize::from(block)];
                if rules::keeps_incoming(slot.map(|r| r.0), version) {
                    *slot = Some((version, wid));
                }
                Status::Ok
            }
            Req::Destaged { vid, versions } => {
                let Some(i) = trusted(h, vid) else { return Status::NoEnt };
                let mut dropped = false;
                for (b, &v) in versions.iter().enumerate() {
                    let slot = &mut h.stores[i].blocks[b];
                    if v != 0 && slot.is_some_and(|r| rules::drops(r.0, v)) {
                        *slot = None;
                        dropped = true;
                    }
                }
                if dropped {
                    self.events |= ev::DROPPED;
                }
                Status::Ok
            }
            Req::DropRange { vid, block, version } => {
                let Some(i) = trusted(h, vid) else { return Status::NoEnt };
                let slot = &mut h.stores[i].blocks[usize::from(block)];
                if slot.is_some_and(|r| rules::drops(r.0, version)) {
                    *slot = None;
                    self.events |= ev::DROPPED;
                }
                Status::Ok
            }
            Req::Close { vid } => {
                if h.recovered & (1 << vid) != 0 {
                    return Status::Stale;
                }
                h.stores.retain(|s| s.vid != vid);
                Status::Ok
            }
        }
    }

    // ---- the owner ----

    /// Whether the owner may act on its lease (acknowledge, write the backing device):
    /// held without interruption for the takeover wait (`Cluster::holds_lease`).
    pub fn owner_lease(&self) -> bool {
        let a = &self.hosts[OWNER];
        a.alive && a.mem.holds_lease_for(self.clock, a.mem.takeover_wait_ns())
    }

    /// What the owner's state machine looks at (`Cluster::owner_observation`).
    fn observation(&self, cfg: &Config) -> Observation {
        let host = &self.hosts[OWNER];
        let now = self.clock;
        let mut fenced_by_majority = 0;
        let mut fence_settled = 0;
        let mut connected = 0;
        let mut entries = [HostEntry { id: 0, domain: 0, up: false }; HOSTS];
        for (y, e) in entries.iter_mut().enumerate() {
            let hid = id(y);
            if host.mem.majority_fences(hid, now) {
                fenced_by_majority |= host_bit(hid);
            }
            if host.mem.takeover_ready(hid, now) {
                fence_settled |= host_bit(hid);
            }
            let conn = self.connected(OWNER, y);
            if conn {
                connected |= host_bit(hid);
            }
            let up = y == OWNER || (host.mem.fenced() & host_bit(hid) == 0 && conn);
            *e = HostEntry { id: hid, domain: 0, up };
        }
        let placement = match place(VOLUME, OWNER_ID, &entries, cfg.peers, DomainRule::Same) {
            Ok(p) if p.len() >= cfg.peers as usize => {
                let mut ids = [0u32; 2];
                for (slot, &pid) in ids.iter_mut().zip(p.as_slice()) {
                    *slot = pid;
                }
                Some(ids)
            }
            _ => None,
        };
        Observation {
            lease: self.owner_lease(),
            fenced_by_majority,
            fence_settled,
            configured: host.mem.configured(),
            connected,
            placement,
            clean: self.vol.as_ref().is_none_or(|v| v.dirty == [0; BLOCKS]),
        }
    }

    fn slot_ok(&self, i: usize) -> bool {
        let Some(v) = &self.vol else { return false };
        let (pid, inc) = v.slots[i];
        pid != 0 && self.connected(OWNER, pid as usize - 1) && self.inc[pair(OWNER, pid as usize - 1)] == inc
    }

    fn ok_slots(&self) -> u32 {
        (0..2).filter(|&i| self.slot_ok(i)).count() as u32
    }

    /// Makes the slots follow the state machine's peers: a new peer takes the
    /// connection its VOLUME_OPEN went over (`opened`), or none.
    fn sync_slots(&mut self, opened: [(u32, u8); 2]) {
        let v = self.vol();
        let ids = v.m.peers();
        for (slot, &pid) in v.slots.iter_mut().zip(ids.iter()) {
            if slot.0 != pid {
                *slot = if pid == 0 {
                    (0, 0)
                } else {
                    opened.iter().copied().find(|o| o.0 == pid).unwrap_or((pid, u8::MAX))
                };
            }
        }
    }

    /// The owner's heartbeat (`Replication::reconcile`).
    fn owner_tick(&mut self, cfg: &Config) {
        if self.vol.is_none() {
            return;
        }
        for i in 0..2 {
            let pid = self.vol().slots[i].0;
            if pid != 0 && !self.slot_ok(i) {
                self.vol().m.peer_failed(pid);
            }
        }
        let obs = self.observation(cfg);
        let step = self.vol().m.tick(obs);
        self.sync_slots([(0, 0); 2]);
        self.drive(step, cfg);
    }

    /// Carries out the owner's steps until one waits for the network.
    fn drive(&mut self, mut step: Step, cfg: &Config) {
        loop {
            match step {
                Step::Idle => return,
                Step::Do(e) => {
                    self.effect(e);
                    step = self.vol().m.answer(Answer::Done);
                    self.sync_slots([(0, 0); 2]);
                }
                Step::Ask(ask) => {
                    let mut rec =
                        AskRec { ask: AskKind::of(ask), at: 0, outstanding: 0, failed: false, opened: [(0, 0); 2] };
                    let answer = match rec.ask {
                        AskKind::Resend => self.start_resend(&mut rec, cfg),
                        AskKind::Close { host } => {
                            let vid = self.vol().vid;
                            if self.request(OWNER, host as usize - 1, Purpose::Ask, Req::Close { vid }) {
                                None
                            } else {
                                Some(Answer::Closed(false))
                            }
                        }
                        _ => self.ask_next(&mut rec),
                    };
                    match answer {
                        Some(a) => {
                            step = self.vol().m.answer(a);
                            self.sync_slots(rec.opened);
                        }
                        None => {
                            self.vol().ask = Some(rec);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// An ask answered: the owner's next steps.
    fn finish_ask(&mut self, rec: &AskRec, a: Answer, cfg: &Config) {
        let step = self.vol().m.answer(a);
        self.sync_slots(rec.opened);
        self.drive(step, cfg);
    }

    /// VOLUME_OPEN to the next peer of a [`Ask::TakenOver`] (host `rec.at + 1` on, the
    /// probe of epoch 0) or [`Ask::Open`] (slot `rec.at` on), as the kernel's calls go:
    /// one after the other. `None`: sent, wait for its ACK; else the answer.
    fn ask_next(&mut self, rec: &mut AskRec) -> Option<Answer> {
        let vid = self.vol().vid;
        if let AskKind::TakenOver { hosts, .. } = rec.ask {
            while usize::from(rec.at) < HOSTS {
                let y = usize::from(rec.at);
                if hosts & (1 << y) == 0 {
                    rec.at += 1;
                    continue;
                }
                if !self.request(OWNER, y, Purpose::Ask, Req::Open { vid, epoch: 0 }) {
                    return Some(Answer::TakenOver(None));
                }
                return None;
            }
            return Some(Answer::TakenOver(Some(false)));
        }
        let (peers, taken_over) = match rec.ask {
            AskKind::Open { peers, .. } => (peers, false),
            _ => unreachable!("not a VOLUME_OPEN ask"),
        };
        while usize::from(rec.at) < 2 {
            let i = usize::from(rec.at);
            let pid = peers[i];
            if pid == 0 {
                rec.at += 1;
                continue;
            }
            let AskKind::Open { epoch, .. } = rec.ask else { unreachable!() };
            let y = pid as usize - 1;
            if !self.request(OWNER, y, Purpose::Ask, Req::Open { vid, epoch }) {
                return Some(if taken_over { Answer::TakenOver(None) } else { Answer::Opened(false) });
            }
            rec.opened[i] = (pid, self.inc[pair(OWNER, y)]);
            return None;
        }
        Some(if taken_over { Answer::TakenOver(Some(false)) } else { Answer::Opened(true) })
    }

    /// The re-send of every dirty block (`Replication::resend_dirty`).
    fn start_resend(&mut self, rec: &mut AskRec, cfg: &Config) -> Option<Answer> {
        let dirty = self.vol().dirty;
        if dirty == [0; BLOCKS] {
            return Some(Answer::Resent(Resent::Complete));
        }
        if !self.owner_lease() {
            return Some(Answer::Resent(Resent::Interrupted));
        }
        if self.ok_slots() < cfg.peers {
            return Some(Answer::Resent(Resent::Failed));
        }
        let (vid, slots) = (self.vol().vid, self.vol().slots);
        for (b, &wid) in dirty.iter().enumerate() {
            if wid == 0 {
                continue;
            }
            let version = self.vol().m.next_version();
            for &(pid, _) in slots.iter().filter(|s| s.0 != 0) {
                let req = Req::Replicate { vid, block: b as u8, version, wid };
                if !self.request(OWNER, pid as usize - 1, Purpose::Resend, req) {
                    return Some(Answer::Resent(Resent::Failed));
                }
                rec.outstanding += 1;
            }
        }
        None
    }

    fn effect(&mut self, e: Effect) {
        match e {
            Effect::Suspended | Effect::LostPeers { .. } | Effect::Protected { .. } => {}
            Effect::Fence => {
                let v = self.vol();
                v.dirty = [0; BLOCKS];
                v.writes.clear();
                self.events |= ev::FENCED;
            }
            Effect::EpochOpened { epoch, .. } => {
                if epoch > 1 {
                    self.events |= ev::REPROTECTED;
                }
            }
            Effect::NotifyDestaged => {
                let v = self.vol();
                let versions = std::mem::take(&mut v.destaged);
                let (vid, slots) = (v.vid, v.slots);
                if versions != [0; BLOCKS] {
                    for &(pid, _) in slots.iter().filter(|s| s.0 != 0) {
                        self.request(OWNER, pid as usize - 1, Purpose::Notice, Req::Destaged { vid, versions });
                    }
                }
            }
        }
    }

    /// A request from `x` to `y` ended (`acked`: an ACK came; else the connection broke).
    fn req_done(&mut self, x: usize, y: usize, purpose: Purpose, status: Status, acked: bool, cfg: &Config) {
        if x != OWNER || self.vol.is_none() {
            return;
        }
        let ok = acked && status == Status::Ok;
        match purpose {
            Purpose::Notice => {}
            Purpose::Ask => {
                let Some(mut rec) = self.vol().ask.take() else { return };
                let answer = match rec.ask {
                    AskKind::TakenOver { .. } if acked && status == Status::Stale => {
                        Some(Answer::TakenOver(Some(true)))
                    }
                    // A host that took the volume over answers ESTALE to anything about it.
                    AskKind::Open { .. } | AskKind::Close { .. } if acked && status == Status::Stale => {
                        Some(Answer::TakenOver(Some(true)))
                    }
                    // A probed host that never held a store answers ENOENT: a "no".
                    AskKind::TakenOver { holders, .. }
                        if acked && status == Status::NoEnt && holders & (1 << usize::from(rec.at)) == 0 =>
                    {
                        rec.at += 1;
                        self.ask_next(&mut rec)
                    }
                    AskKind::TakenOver { .. } if !ok => Some(Answer::TakenOver(None)),
                    AskKind::Open { .. } if !ok => Some(Answer::Opened(false)),
                    AskKind::TakenOver { .. } | AskKind::Open { .. } => {
                        rec.at += 1;
                        self.ask_next(&mut rec)
                    }
                    AskKind::Close { .. } => Some(Answer::Closed(ok)),
                    AskKind::Resend => Some(Answer::Resent(Resent::Failed)),
                };
                match answer {
                    Some(a) => self.finish_ask(&rec, a, cfg),
                    None => self.vol().ask = Some(rec),
                }
            }
            Purpose::Resend => {
                let Some(mut rec) = self.vol().ask.take() else { return };
                rec.outstanding = rec.outstanding.saturating_sub(1);
                rec.failed |= !ok;
                if rec.outstanding > 0 {
                    self.vol().ask = Some(rec);
                    return;
                }
                let r = if rec.failed { Resent::Failed } else { Resent::Complete };
                self.finish_ask(&rec, Answer::Resent(r), cfg);
            }
            Purpose::Write(wid) | Purpose::Protect(wid) | Purpose::Drop(wid) => {
                if (acked && status == Status::NoEnt) || (!ok && matches!(purpose, Purpose::Protect(_))) {
                    // The peer holds no store for the volume (fenced, untrusted), or
                    // did not take a block that must not stay older there.
                    self.vol().m.peer_failed(id(y));
                }
                let lives = self.lives[y];
                let Some(w) = self.vol().writes.iter_mut().find(|w| w.wid == wid) else { return };
                if ok && !matches!(purpose, Purpose::Drop(_)) {
                    w.holders |= hbit(y);
                    w.holder_lives[y] = lives;
                }
                w.outstanding = w.outstanding.saturating_sub(1);
                w.failed |= !ok;
                if w.outstanding == 0 {
                    self.write_settled(wid, cfg);
                }
            }
        }
    }

    fn write_mut(&mut self, wid: u8) -> &mut PWrite {
        self.vol().writes.iter_mut().find(|w| w.wid == wid).expect("write")
    }

    /// A client write of block `b` (`Volume`'s write paths, as the simulator has them).
    fn client_write(&mut self, b: usize, cfg: &Config) {
        let lease = self.owner_lease();
        let mode = self.vol().m.writable(lease);
        self.writes += 1;
        let wid = self.writes;
        self.write_block[usize::from(wid)] = b as u8;
        let mut w = PWrite {
            wid,
            block: b as u8,
            stage: Stage::Replicating,
            outstanding: 0,
            failed: false,
            through: false,
            gen: 0,
            holders: 0,
            holder_lives: [0; HOSTS],
        };
        match mode {
            Writable::Replicate => {
                let v = self.vol();
                v.dirty[b] = wid;
                let version = v.m.next_version();
                let (vid, slots) = (v.vid, v.slots);
                let mut sent = 0;
                let mut failed = self.ok_slots() < cfg.peers;
                if !failed {
                    for &(pid, _) in slots.iter().filter(|s| s.0 != 0) {
                        let req = Req::Replicate { vid, block: b as u8, version, wid };
                        if self.request(OWNER, pid as usize - 1, Purpose::Write(wid), req) {
                            sent += 1;
                        } else {
                            failed = true;
                        }
                    }
                }
                w.gen = self.vol().m.peer_set_gen();
                w.outstanding = sent;
                w.failed = failed;
                self.vol().writes.push(w);
                if sent == 0 {
                    self.write_settled(wid, cfg);
                }
            }
            Writable::WriteThrough => {
                w.stage = Stage::Dropping;
                w.through = true;
                self.vol().writes.push(w);
                self.drop_at_peers(wid, Purpose::Drop(wid), Stage::Dropping, cfg);
            }
            Writable::Wait | Writable::Fail => unreachable!("the client writes only when writable"),
        }
    }

    /// DROP_RANGE of write `wid`'s block (fresh version) to every current peer; the
    /// write waits in `stage` for the ACKs.
    fn drop_at_peers(&mut self, wid: u8, purpose: Purpose, stage: Stage, cfg: &Config) {
        let v = self.vol();
        let version = v.m.next_version();
        let (vid, slots) = (v.vid, v.slots);
        let block = self.write_mut(wid).block;
        let mut sent = 0;
        let mut failed = false;
        for &(pid, _) in slots.iter().filter(|s| s.0 != 0) {
            if self.request(OWNER, pid as usize - 1, purpose, Req::DropRange { vid, block, version }) {
                sent += 1;
            } else {
                // Lost at the next tick and stale until fenced or emptied.
                self.vol().m.peer_failed(pid);
                failed = true;
            }
        }
        let w = self.write_mut(wid);
        w.stage = stage;
        w.outstanding = sent;
        w.failed = failed;
        if sent == 0 {
            self.write_settled(wid, cfg);
        }
    }

    /// Every request of write `wid` ended.
    fn write_settled(&mut self, wid: u8, cfg: &Config) {
        let gen = self.vol().m.peer_set_gen();
        let w = self.write_mut(wid);
        match w.stage {
            Stage::Replicating | Stage::Protecting => {
                // A peer dropped since the send may have been emptied: protect again.
                let moved = w.gen != gen;
                if w.failed || moved {
                    w.stage = if w.stage == Stage::Protecting && !moved { Stage::UntilOnDisk } else { Stage::Protect };
                    w.failed = false;
                    return;
                }
                self.complete(wid, cfg);
            }
            Stage::ProtectingThrough => {
                w.stage = if w.failed { Stage::Protect } else { Stage::UntilOnDisk };
                w.failed = false;
            }
            Stage::Dropping => {
                if w.failed {
                    w.stage = Stage::DropFailed;
                    w.failed = false;
                    return;
                }
                self.submit_through(wid, cfg);
            }
            _ => {}
        }
    }

    /// The write-through of `wid` after its drop (the lease checked again).
    fn submit_through(&mut self, wid: u8, cfg: &Config) {
        if !self.owner_lease() {
            self.write_mut(wid).stage = Stage::DropFailed;
            return;
        }
        let b = usize::from(self.write_mut(wid).block);
        // A dirty copy in the pool takes the new data and stays dirty.
        let v = self.vol();
        if v.dirty[b] != 0 {
            v.dirty[b] = wid;
        }
        self.write_backing(OWNER, b, wid);
        self.events |= ev::WRITE_THROUGH;
        self.complete(wid, cfg);
    }

    /// Writes waiting on the owner's state, each tick.
    fn progress_writes(&mut self, cfg: &Config) {
        if self.vol.is_none() {
            return;
        }
        let lease = self.owner_lease();
        let waiting: Vec<PWrite> = self
            .vol()
            .writes
            .iter()
            .filter(|w| matches!(w.stage, Stage::Protect | Stage::UntilOnDisk | Stage::DropFailed))
            .cloned()
            .collect();
        for w in waiting {
            if self.vol.as_ref().is_none_or(|v| !v.writes.iter().any(|x| x.wid == w.wid)) {
                continue;
            }
            let b = usize::from(w.block);
            let mode = self.vol().m.writable(lease);
            match (w.stage, mode) {
                (_, Writable::Fail) => self.vol().writes.retain(|x| x.wid != w.wid),
                (_, Writable::Wait) => {}
                (Stage::DropFailed, _) => self.drop_at_peers(w.wid, Purpose::Drop(w.wid), Stage::Dropping, cfg),
                (Stage::UntilOnDisk, _) if self.backing[b] >= w.wid => self.complete(w.wid, cfg),
                (Stage::Protect, mode) => {
                    let replicate = mode == Writable::Replicate;
                    if replicate && self.ok_slots() < cfg.peers {
                        continue;
                    }
                    let dw = self.vol().dirty[b];
                    if dw == 0 {
                        // Written back already: a current peer that missed the write
                        // drops what it holds of the block first.
                        self.drop_at_peers(w.wid, Purpose::Protect(w.wid), Stage::ProtectingThrough, cfg);
                        continue;
                    }
                    let v = self.vol();
                    let version = v.m.next_version();
                    let (vid, slots) = (v.vid, v.slots);
                    let mut sent = 0;
                    let mut failed = false;
                    for &(pid, _) in slots.iter().filter(|s| s.0 != 0) {
                        let req = Req::Replicate { vid, block: w.block, version, wid: dw };
                        if self.request(OWNER, pid as usize - 1, Purpose::Protect(w.wid), req) {
                            sent += 1;
                        } else {
                            failed = true;
                        }
                    }
                    let gen = self.vol().m.peer_set_gen();
                    let x = self.write_mut(w.wid);
                    x.stage = if replicate { Stage::Protecting } else { Stage::ProtectingThrough };
                    x.gen = gen;
                    x.holders = 0;
                    x.outstanding = sent;
                    x.failed = failed;
                    if sent == 0 {
                        self.write_settled(w.wid, cfg);
                    }
                }
                _ => {}
            }
        }
    }

    /// Acknowledges write `wid` if the lease is held (else it waits for the backing
    /// device), checking P3.
    fn complete(&mut self, wid: u8, cfg: &Config) {
        if !self.owner_lease() {
            self.write_mut(wid).stage = Stage::UntilOnDisk;
            return;
        }
        let w = self.write_mut(wid).clone();
        self.vol().writes.retain(|x| x.wid != wid);
        let b = usize::from(w.block);
        let on_disk = self.backing[b] >= wid;
        // Peers that confirmed storing it and still hold it, or crashed since (the
        // owner cannot know yet; P1 covers what crashes do to acknowledged writes).
        let copies = (0..HOSTS)
            .filter(|&p| w.holders & hbit(p) != 0 && (self.lives[p] != w.holder_lives[p] || self.holds(p, b, wid)))
            .count() as u32;
        if !on_disk && copies < cfg.peers {
            self.violations |= bad::UNDER_REPLICATED;
        }
        self.acked |= 1 << wid;
        self.events |= ev::ACKED;
        if on_disk {
            self.floor[b] = self.floor[b].max(wid);
        }
    }

    /// Whether alive peer `p` holds write `wid` of block `b` (or a later one) in a store.
    fn holds(&self, p: usize, b: usize, wid: u8) -> bool {
        let h = &self.hosts[p];
        h.alive
            && h.stores
                .iter()
                .chain(h.recovery.iter().flat_map(|r| r.stores.iter()))
                .any(|s| s.blocks[b].is_some_and(|r| r.1 >= wid))
    }

    /// The destager writes `b` back (`may_destage`, the version snapshot first).
    fn destage(&mut self, b: usize) {
        let v = self.vol();
        let snap = v.m.version();
        let wid = v.dirty[b];
        v.dirty[b] = 0;
        if snap != 0 {
            v.destaged[b] = v.destaged[b].max(snap);
        }
        self.write_backing(OWNER, b, wid);
        self.events |= ev::DESTAGED;
    }

    /// Whether the destager may run: neither suspended nor fenced, the lease held.
    fn may_destage(&self) -> bool {
        self.vol.as_ref().is_some_and(|v| !matches!(v.m.state(), owner::State::Suspended | owner::State::Fenced))
            && self.owner_lease()
    }

    fn write_backing(&mut self, writer: usize, b: usize, wid: u8) {
        let may = if writer == OWNER { self.owner_lease() } else { self.peer_may_write(writer) };
        if !may {
            self.violations |= bad::WRITE_WITHOUT_RIGHT;
        }
        if wid < self.floor[b] {
            self.violations |= bad::BACKWARDS;
        }
        self.backing[b] = wid;
        if self.acked & (1 << wid) != 0 {
            self.floor[b] = self.floor[b].max(wid);
        }
    }

    // ---- the peers ----

    /// Whether the owner may write the backing device now: its settled lease held, and
    /// the volume neither suspended nor fenced (the destager, a new write-through) or a
    /// write-through waits for its drop (submitted with the lease alone).
    pub fn owner_may_write(&self) -> bool {
        self.owner_lease()
            && self.vol.as_ref().is_some_and(|v| match v.m.state() {
                owner::State::Fenced => false,
                owner::State::Suspended => v.writes.iter().any(|w| w.stage == Stage::Dropping),
                _ => true,
            })
    }

    /// Whether peer `p` may write recovered blocks now (`Cluster::may_recover`).
    pub fn peer_may_write(&self, p: usize) -> bool {
        let h = &self.hosts[p];
        let now = self.clock;
        h.alive
            && h.recovery.as_ref().is_some_and(|r| match r.orphans_since {
                Some(since) => h.mem.holds_lease(now) && h.mem.lease_held_since() == Some(since),
                None => h.mem.takeover_ready(OWNER_ID, now) || (r.yielded && h.mem.holds_lease(now)),
            })
    }

    /// A peer's takeover starts (`Cluster::recover_lost_owners`): its trusted stores
    /// are taken out and recorded as taken over.
    fn start_recovery(&mut self, p: usize) {
        let now = self.clock;
        let h = &mut self.hosts[p];
        if h.recovery.is_some() {
            return;
        }
        // Orphans a new incarnation waits for: the lease alone (`cluster.rs`).
        let since = h.mem.lease_held_since();
        if since.is_some() && h.mem.holds_lease(now) && h.stores.iter().any(|s| s.orphan && s.trusted) {
            let stores: Vec<Store> = h.stores.iter().filter(|s| s.orphan && s.trusted).cloned().collect();
            h.stores.retain(|s| !(s.orphan && s.trusted));
            let mut left = 0u8;
            for (i, s) in stores.iter().enumerate() {
                for (b, r) in s.blocks.iter().enumerate() {
                    if r.is_some() {
                        left |= 1 << (i * BLOCKS + b);
                    }
                }
            }
            let taken = h.lease_watch.since();
            h.recovery = Some(Recovery { stores, left, yielded: false, orphans_since: since, taken });
            self.finish_recovery(p);
            return;
        }
        let ready = h.mem.takeover_ready(OWNER_ID, now);
        let lease = h.mem.holds_lease(now);
        if !h.stores.iter().any(|s| rules::may_take_over(s.trusted, ready || (s.yielded && lease))) {
            return;
        }
        let yielded = h.stores.iter().any(|s| s.trusted && s.yielded);
        h.mem.set_recovering(OWNER_ID, true);
        let stores: Vec<Store> = h.stores.iter().filter(|s| s.trusted).cloned().collect();
        h.stores.retain(|s| !s.trusted);
        let mut left = 0u8;
        for (i, s) in stores.iter().enumerate() {
            h.recovered |= 1 << s.vid;
            for (b, r) in s.blocks.iter().enumerate() {
                if r.is_some() {
                    left |= 1 << (i * BLOCKS + b);
                }
            }
        }
        let taken = h.lease_watch.since();
        h.recovery = Some(Recovery { stores, left, yielded, orphans_since: None, taken });
        self.events |= ev::TAKEOVER_STARTED;
        self.finish_recovery(p);
    }

    /// Ends a takeover with nothing left to write.
    fn finish_recovery(&mut self, p: usize) {
        let h = &mut self.hosts[p];
        if h.recovery.as_ref().is_some_and(|r| r.left == 0) {
            let r = h.recovery.take().expect("recovering");
            h.mem.set_recovering(OWNER_ID, false);
            if r.orphans_since.is_none() {
                self.events |= ev::RECOVERED;
            }
        }
    }

    /// A takeover whose rule no longer holds stops; its stores go back, as they are.
    fn check_recovery(&mut self, p: usize) {
        if self.hosts[p].recovery.is_none() || self.peer_may_write(p) {
            return;
        }
        let h = &mut self.hosts[p];
        let r = h.recovery.take().expect("recovering");
        let trusted = h.lease_watch.still_trusted(r.taken);
        h.stores.extend(r.stores.into_iter().map(|s| Store { trusted: s.trusted && trusted, ..s }));
        h.mem.set_recovering(OWNER_ID, false);
        self.events |= ev::RECOVERY_STOPPED;
    }

    /// Peer `p` writes replica `block` of its recovery's store `si`.
    fn recover(&mut self, p: usize, si: usize, b: usize) {
        let wid = self.hosts[p].recovery.as_ref().and_then(|r| r.stores[si].blocks[b]).expect("replica").1;
        self.write_backing(p, b, wid);
        self.events |= ev::RECOVERY_WRITE;
        if let Some(r) = &mut self.hosts[p].recovery {
            r.left &= !(1 << (si * BLOCKS + b));
        }
        self.finish_recovery(p);
    }

    // ---- every host ----

    /// A host's heartbeat after the network round (the kernel's ticker).
    fn host_tick(&mut self, h: usize, cfg: &Config) {
        let now = self.clock;
        let host = &mut self.hosts[h];
        // Fenced by a majority: every store is untrusted (kept: one may be the last
        // copy; a fence implies a lost lease, which the lease watch below sees too); a
        // recovery in progress stops.
        let fenced = host.mem.fenced_by_majority(now);
        if fenced && !host.self_fenced {
            host.self_fenced = true;
            // A recovery in progress stops; its stores go back, untrusted too.
            if let Some(r) = host.recovery.take() {
                host.stores.extend(r.stores);
                host.mem.set_recovering(OWNER_ID, false);
            }
            for s in host.stores.iter_mut() {
                s.trusted = false;
            }
        } else if !fenced {
            host.self_fenced = false;
        }
        // A lease interruption untrusts every store.
        let since = host.mem.lease_held_since();
        if host.lease_watch.observe(since) && host.stores.iter().any(|s| s.trusted) {
            for s in host.stores.iter_mut() {
                s.trusted = false;
            }
            self.events |= ev::UNTRUSTED;
        }
        if h == OWNER {
            self.owner_tick(cfg);
        } else {
            self.check_recovery(h);
            self.start_recovery(h);
        }
    }

    /// A requester closes a connection on which a request waits for its ACK since the
    /// timeout.
    fn close_late(&mut self, cfg: &Config) {
        let late = |sent: u8, ticks: u8| u64::from(ticks.saturating_sub(sent)) >= TIMEOUT_UNITS;
        for x in 0..HOSTS {
            for y in 0..HOSTS {
                if x == y {
                    continue;
                }
                let req_late =
                    self.queues[x][y].iter().any(|m| matches!(m, Msg::Req { sent, .. } if late(*sent, self.ticks)));
                let ack_late =
                    self.queues[y][x].iter().any(|m| matches!(m, Msg::Ack { sent, .. } if late(*sent, self.ticks)));
                if req_late || ack_late {
                    self.break_conn(x, y, cfg);
                }
            }
        }
    }

    fn tick(&mut self, cfg: &Config) {
        self.clock += UNIT;
        self.ticks += 1;
        let now = self.clock;
        for h in 0..HOSTS {
            let host = &mut self.hosts[h];
            if host.alive {
                host.quiet = host.quiet.saturating_sub(1);
                let before = host.mem.fenced();
                host.mem.tick(now);
                if before & !host.mem.fenced() != 0 {
                    self.events |= ev::REJOINED;
                }
            }
        }
        self.close_late(cfg);
        for x in 0..HOSTS {
            for y in 0..HOSTS {
                if x != y && self.connected(x, y) && self.hosts[x].ping_out & hbit(y) == 0 {
                    self.hosts[x].ping_out |= hbit(y);
                    let view = self.hosts[x].mem.outgoing(now);
                    self.send(x, y, Msg::Ping { sent: now, view });
                }
            }
        }
        self.network_round(cfg);
        for h in 0..HOSTS {
            if self.hosts[h].alive {
                self.host_tick(h, cfg);
            }
        }
        self.network_round(cfg);
        self.progress_writes(cfg);
        self.network_round(cfg);
    }

    fn crash(&mut self, h: usize, cfg: &Config) {
        self.hosts[h].alive = false;
        if h == OWNER {
            self.vol = None;
        }
        for o in 0..HOSTS {
            if o != h {
                self.break_conn(h, o, cfg);
                self.stalled[h][o] = false;
                self.stalled[o][h] = false;
            }
        }
        self.hosts[h] = Host { alive: false, ..fresh_host(h) };
    }

    fn restart(&mut self, h: usize, cfg: &Config) {
        self.hosts[h] = Host { quiet: cfg.silence_ticks, ..fresh_host(h) };
        if h == OWNER {
            self.vids += 1;
            self.vol = Some(new_vol(cfg.peers, self.vids));
        }
    }

    /// The latest acknowledged write of block `b` (0: none).
    pub fn latest_acked(&self, b: usize) -> u8 {
        (1..=MAX_WRITES as u8)
            .filter(|&w| self.acked & (1 << w) != 0 && usize::from(self.write_block[usize::from(w)]) == b)
            .max()
            .unwrap_or(0)
    }
}

impl FvpModel {
    /// The model of `cfg`.
    pub fn new(cfg: Config) -> Self {
        assert!(cfg.peers == 1 || cfg.peers == 2);
        assert!(usize::from(cfg.max_writes) <= MAX_WRITES);
        FvpModel { cfg }
    }

    /// The start: heartbeats with everybody up until the owner's volume is protected
    /// (at most [`MAX_WARM_UP_TICKS`]).
    pub fn initial(&self) -> State {
        let mut s = State {
            clock: 0,
            hosts: core::array::from_fn(fresh_host),
            vol: Some(new_vol(self.cfg.peers, 1)),
            vids: 1,
            net_up: [true; 3],
            inc: [0; 3],
            stalled: [[false; HOSTS]; HOSTS],
            stalls: 0,
            queues: Default::default(),
            backing: [0; BLOCKS],
            floor: [0; BLOCKS],
            acked: 0,
            write_block: [0; MAX_WRITES + 1],
            writes: 0,
            ticks: 0,
            crashes: 0,
            lives: [0; HOSTS],
            cuts: 0,
            events: 0,
            violations: 0,
        };
        for _ in 0..MAX_WARM_UP_TICKS {
            s.tick(&self.cfg);
            if s.vol.as_ref().is_some_and(|v| v.m.state() == owner::State::Protected) {
                break;
            }
        }
        let v = s.vol.as_ref().expect("volume");
        assert_eq!(v.m.state(), owner::State::Protected, "warm-up did not protect the volume");
        assert_eq!(v.m.peers().iter().filter(|&&p| p != 0).count() as u32, self.cfg.peers);
        assert!(s.queues.iter().flatten().all(Vec::is_empty));
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
        if let Some(v) = &s.vol {
            if s.writes < self.cfg.max_writes
                && matches!(v.m.writable(s.owner_lease()), Writable::Replicate | Writable::WriteThrough)
            {
                for b in 0..BLOCKS {
                    if !v.writes.iter().any(|w| usize::from(w.block) == b) {
                        out.push(Action::Write(b));
                    }
                }
            }
            if s.may_destage() {
                for b in 0..BLOCKS {
                    if v.dirty[b] != 0 {
                        out.push(Action::Destage(b));
                    }
                }
            }
        }
        for p in 1..HOSTS {
            if s.peer_may_write(p) {
                let r = s.hosts[p].recovery.as_ref().expect("recovering");
                for si in 0..r.stores.len() {
                    for b in 0..BLOCKS {
                        if r.left & (1 << (si * BLOCKS + b)) != 0 {
                            out.push(Action::Recover(p, si, b));
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
            } else if self.cfg.restarts {
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
        let cfg = &self.cfg;
        let mut s = s.clone();
        match action {
            Action::Tick => s.tick(cfg),
            Action::Stall(x, y) => {
                s.stalls += 1;
                s.stalled[x][y] = true;
            }
            Action::Unstall(x, y) => s.stalled[x][y] = false,
            Action::Write(b) => s.client_write(b, cfg),
            Action::Destage(b) => s.destage(b),
            Action::Recover(p, si, b) => s.recover(p, si, b),
            Action::Crash(h) => {
                s.crashes += 1;
                s.lives[h] += 1;
                s.crash(h, cfg);
            }
            Action::Restart(h) => s.restart(h, cfg),
            Action::Cut(l) => {
                s.cuts += 1;
                s.net_up[l] = false;
                let (x, y) = pair_hosts(l);
                s.stalled[x][y] = false;
                s.stalled[y][x] = false;
                s.break_conn(x, y, cfg);
            }
            Action::Heal(l) => s.net_up[l] = true,
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("P1 no acknowledged write is lost", |_, s: &State| p1(s)),
            Property::always("P2 backing never goes backwards", |_, s: &State| s.violations & bad::BACKWARDS == 0),
            Property::always("P2 destaged blocks are on the backing device", |_, s: &State| p2_destaged(s)),
            Property::always("P3 acknowledged with enough replicas", |_, s: &State| {
                s.violations & bad::UNDER_REPLICATED == 0
            }),
            Property::always("P4 backing writes only with the right to", |_, s: &State| {
                s.violations & bad::WRITE_WITHOUT_RIGHT == 0
            }),
            Property::always("P4 never two writers", |_, s: &State| p4_one_writer(s)),
            Property::sometimes("write acknowledged", |_, s: &State| s.events & ev::ACKED != 0),
            Property::sometimes("owner destaged", |_, s: &State| s.events & ev::DESTAGED != 0),
            Property::sometimes("peer dropped a replica", |_, s: &State| s.events & ev::DROPPED != 0),
            Property::sometimes("reprotected", |_, s: &State| s.events & ev::REPROTECTED != 0),
            Property::sometimes("degraded write-through", |_, s: &State| s.events & ev::WRITE_THROUGH != 0),
            Property::sometimes("takeover started", |_, s: &State| s.events & ev::TAKEOVER_STARTED != 0),
            Property::sometimes("recovery wrote a block", |_, s: &State| s.events & ev::RECOVERY_WRITE != 0),
            Property::sometimes("recovery completed", |_, s: &State| s.events & ev::RECOVERED != 0),
            Property::sometimes("owner learnt it was taken over", |_, s: &State| s.events & ev::FENCED != 0),
        ]
    }
}

/// P1: every block's latest acknowledged write is held by a live copy.
pub fn p1(s: &State) -> bool {
    (0..BLOCKS).all(|b| {
        let w = s.latest_acked(b);
        w == 0
            || s.backing[b] >= w
            || (s.hosts[OWNER].alive
                && s.vol.as_ref().is_some_and(|v| v.m.state() != owner::State::Fenced && v.dirty[b] >= w))
            || (1..HOSTS).any(|p| s.holds(p, b, w))
    })
}

/// P2, second half: an idle owner's blocks (its settled lease held, neither suspended
/// nor fenced, nothing dirty, no write in progress) are all on the backing device,
/// except those whose only other copy is an untrusted store.
pub fn p2_destaged(s: &State) -> bool {
    let Some(v) = &s.vol else { return true };
    let idle = s.owner_lease()
        && !matches!(v.m.state(), owner::State::Suspended | owner::State::Fenced)
        && v.writes.is_empty()
        && v.dirty == [0; BLOCKS];
    !idle
        || (0..BLOCKS).all(|b| {
            let w = s.latest_acked(b);
            s.backing[b] >= w || awaiting_operator(s, b, w)
        })
}

/// Whether write `w` of block `b` is held only by untrusted stores of alive peers.
fn awaiting_operator(s: &State, b: usize, w: u8) -> bool {
    let held = |trusted: bool| {
        (1..HOSTS).any(|p| {
            let h = &s.hosts[p];
            h.alive
                && h.stores
                    .iter()
                    .chain(h.recovery.iter().flat_map(|r| r.stores.iter()))
                    .any(|st| st.trusted == trusted && st.blocks[b].is_some_and(|r| r.1 >= w))
        })
    };
    held(false) && !held(true)
}

/// P4, second half: never the owner and a recovering peer both allowed to write.
pub fn p4_one_writer(s: &State) -> bool {
    let peer_may = (1..HOSTS).any(|p| s.peer_may_write(p));
    !(s.owner_may_write() && peer_may)
}

fn mask(m: u64) -> String {
    (0..HOSTS).filter(|&i| m & (1 << i) != 0).map(|i| NAMES[i]).collect()
}

fn fmt_store(f: &mut fmt::Formatter<'_>, st: &Store) -> fmt::Result {
    write!(f, "v{}e{}[", st.vid, st.epoch)?;
    for (b, r) in st.blocks.iter().enumerate() {
        if b > 0 {
            write!(f, ",")?;
        }
        match r {
            Some((version, wid)) => write!(f, "w{wid}@{version}")?,
            None => write!(f, "-")?,
        }
    }
    write!(f, "]{}{}", if st.trusted { "" } else { " untrusted" }, if st.yielded { " yielded" } else { "" })
}

fn fmt_msg(m: &Msg) -> String {
    match m {
        Msg::Ping { .. } => "PING".into(),
        Msg::Pong { .. } => "PONG".into(),
        Msg::Req { req, .. } => match req {
            Req::Open { vid, epoch } => format!("OPEN(v{vid},e{epoch})"),
            Req::Replicate { block, version, wid, .. } => format!("REPL(b{block},w{wid}@{version})"),
            Req::Destaged { versions, .. } => format!("DESTAGED{versions:?}"),
            Req::DropRange { block, version, .. } => format!("DROP(b{block}@{version})"),
            Req::Close { vid } => format!("CLOSE(v{vid})"),
        },
        Msg::Ack { status, .. } => format!("ACK({status:?})"),
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.clock / UNIT;
        write!(f, "t={t} backing={:?} floor={:?} acked=", self.backing, self.floor)?;
        for b in 0..BLOCKS {
            write!(f, "{}{}", if b > 0 { "," } else { "" }, self.latest_acked(b))?;
        }
        for (h, x) in self.hosts.iter().enumerate() {
            write!(f, " | {}:", NAMES[h])?;
            if !x.alive {
                write!(f, "down")?;
                continue;
            }
            if x.quiet > 0 {
                write!(f, "silent({}) ", x.quiet)?;
            }
            write!(
                f,
                "fenced={{{}}} lease={}{} grants={{{}}}",
                mask(x.mem.fenced()),
                x.mem.holds_lease(self.clock) as u8,
                if h == OWNER && self.owner_lease() { "(settled)" } else { "" },
                mask(x.mem.grants(self.clock))
            )?;
            if x.mem.recovering() != 0 {
                write!(f, " recovering={{{}}}", mask(x.mem.recovering()))?;
            }
            if h == OWNER {
                if let Some(v) = &self.vol {
                    write!(
                        f,
                        " vol{} {} epoch={} peers={:?} stale={{{}}} dirty={:?}",
                        v.vid,
                        v.m.state().name(),
                        v.m.epoch(),
                        v.m.peers(),
                        mask(v.m.stale()),
                        v.dirty
                    )?;
                    for w in &v.writes {
                        write!(f, " w{}:b{}:{:?}", w.wid, w.block, w.stage)?;
                    }
                    if let Some(a) = &v.ask {
                        write!(f, " asking={:?}", a.ask)?;
                    }
                }
            } else {
                for st in &x.stores {
                    write!(f, " ")?;
                    fmt_store(f, st)?;
                }
                if let Some(r) = &x.recovery {
                    write!(f, " RECOVERING{}:", if r.yielded { "(yielded)" } else { "" })?;
                    for st in &r.stores {
                        write!(f, " ")?;
                        fmt_store(f, st)?;
                    }
                }
                if x.recovered != 0 {
                    write!(f, " took-over={:#b}", x.recovered)?;
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
                    let items: Vec<String> = q.iter().map(fmt_msg).collect();
                    let stall = if self.stalled[x][y] { " (stalled)" } else { "" };
                    write!(f, " | {}->{}{stall}: {}", NAMES[x], NAMES[y], items.join(" "))?;
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
        Action::Recover(p, si, b) => format!("{} recovers s{si}b{b}", NAMES[p]),
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
