// SPDX-License-Identifier: GPL-2.0

//! The owner side of replication for one write-back volume with `peers>0`: carries out
//! what the owner state machine (`logic/owner.rs`, `docs/replication.md` section 6)
//! decides, sends the writes' replicas, and the DESTAGED notifications. Every protocol
//! decision is the state machine's; this file gathers observations, sends, and reports.
#![forbid(unsafe_code)]

use crate::cluster::Cluster;
use crate::conn::{BatchWait, Conn, Waiter};
use crate::fvp_kernel::errno::estale;
use crate::fvp_kernel::sync::{alloc_retry, WaitQueue};
use crate::fvp_kernel::vec;
use crate::logic::abi;
use crate::logic::owner::{self, Answer, Ask, Effect, Owner, Resent, State, Step, Writable};
use crate::logic::placement::{self, DomainRule};
use crate::logic::replica::DeviceIdentity;
use crate::logic::wire::{DestagedEntries, Message, DESTAGED_BUF_LEN, MAX_DESTAGED};
use core::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// Who holds the volume's replicas now, the owner state machine, and the buffer
/// blocks are copied into.
pub(crate) struct SendCtx {
    /// The connections to `owner.peers()`, slot by slot.
    pub(crate) peers: [Option<Arc<Conn>>; 2],
    pub(crate) peer_ids: [u32; 2],
    /// Every protocol decision (`logic/owner.rs`); this file only carries them out.
    pub(crate) owner: Owner,
    pub(crate) buf: KVec<u8>,
}

/// What replication needs of the volume it protects: its dirty blocks, and the few
/// actions the owner state machine asks of it. The volume layer implements it, so this
/// layer sits below it and knows no `Volume`.
pub(crate) trait ProtectedVolume {
    /// Blocks dirty now.
    fn dirty_count(&self) -> u64;
    /// Appends up to `max` dirty block numbers to `out`, resuming at `cursor`.
    fn dirty_blocks(&self, cursor: &mut (usize, u32), out: &mut KVec<u64>, max: usize);
    /// Copies `block`'s data into `buf` if it is cached and dirty.
    fn copy_dirty(&self, block: u64, buf: &mut [u8]) -> bool;
    /// A peer took the volume over: drop every cached block, fail I/O from now on.
    fn fence(&self);
    /// Flushes the backing device's volatile cache. Sleeps.
    fn flush_backing(&self) -> Result;
    /// Writes back what is dirty now, then flushes the backing device. Sleeps.
    fn flush_sync(&self) -> Result;
    /// Asks the pool's destager to write back without pacing.
    fn make_urgent(&self);
    /// The pool is going away.
    fn stopping(&self) -> bool;
}

/// Replication state of one volume.
#[pin_data]
pub(crate) struct Replication {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) name: [u8; abi::NAME_LEN],
    /// The shared device as this host sees it, sent in VOLUME_OPEN for the peers' check.
    device: DeviceIdentity,
    /// Unique among this host's volumes; names the volume on the wire.
    pub(crate) volume_id: u32,
    pub(crate) peers_wanted: u32,
    pub(crate) rule: DomainRule,
    /// `owner.state()` as `abi::REPL_*`, published after every change under `send`:
    /// the write path's wait condition and the status line read it without the lock.
    state: AtomicU32,
    /// `owner.stale() != 0`, published likewise.
    has_stale: AtomicBool,
    /// `owner.reads_held()`, published likewise: the read path's check.
    reads_held: AtomicBool,
    /// A probed host that held replicas of this volume held none (logged once).
    lost_holder_logged: AtomicBool,
    /// Hosts (bit `h-1`) whose refusal of a VOLUME_OPEN was logged since this volume's
    /// last successful open: a host that keeps refusing (a device it knows by another
    /// identity, say) is logged once, not every heartbeat.
    refusals_logged: AtomicU64,
    /// `owner.epoch()`, published likewise.
    pub(crate) epoch: AtomicU64,
    /// `owner.peer_set_gen()`, published likewise.
    peer_set_gen: AtomicU64,
    /// `owner.version()`, published after the block's data was copied (the destager
    /// relies on that order, see `destage_snapshot`).
    version: AtomicU64,
    #[pin]
    pub(crate) send: Mutex<SendCtx>,
    /// Blocks written back (and the version snapshot before their destage began),
    /// waiting for a backing flush and a DESTAGED.
    #[pin]
    destaged: Mutex<KVec<(u64, u64)>>,
    pub(crate) replicated_writes: AtomicU64,
    pub(crate) reprotections: AtomicU64,
    pub(crate) resent_blocks: AtomicU64,
    /// Passes of the ticker over this volume ([`Replication::reconcile`]).
    ticks: AtomicU64,
    /// Woken after each of the ticker's passes and when the volume is fenced: the state,
    /// the peers and the lease (whose settling is a matter of time) are what writers
    /// wait for, and the ticker is what changes or re-reads them.
    #[pin]
    changed: WaitQueue,
}

/// A volume id no earlier incarnation of this host used (peers remember the ids of
/// volumes they took over).
fn new_volume_id() -> u32 {
    let mut b = [0u8; 4];
    crate::fvp_kernel::net::random_bytes(&mut b);
    u32::from_ne_bytes(b).max(1)
}

/// The longest a waiting writer sleeps without a wake-up before it looks again; the
/// ticker wakes it every heartbeat, so this only bounds a missed wake-up.
const WAIT_BOUND_MS: u32 = 1000;

/// Blocks of one write.
pub(crate) const PROTECT_MAX_BLOCKS: usize = 64;

/// Dirty blocks re-sent to new peers per round trip. Client writes share the data
/// connection and wait behind a burst (when heartbeats shared it too, 256 blocks, 1 MiB,
/// on a loaded emulated link cost a lease), so each burst stays small.
const RESEND_CHUNK: usize = 16;

impl Replication {
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        name: [u8; abi::NAME_LEN],
        device: DeviceIdentity,
        peers_wanted: u32,
        rule: DomainRule,
    ) -> Result<Arc<Self>> {
        // Every other configured host may hold an orphan of this volume's name; this
        // volume's own handshake deals with them, not closes of earlier volume ids.
        cluster.cancel_pending_closes(&name);
        let owner = Owner::new(peers_wanted, cluster.other_hosts()).map_err(|_| EINVAL)?;
        let mut buf = KVec::new();
        buf.extend_with(crate::backing::BLOCK_BYTES as usize, 0u8, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Replication {
                cluster,
                name,
                device,
                volume_id: new_volume_id(),
                peers_wanted,
                rule,
                state: AtomicU32::new(owner.state().abi()),
                has_stale: AtomicBool::new(owner.stale() != 0),
                reads_held: AtomicBool::new(owner.reads_held()),
                lost_holder_logged: AtomicBool::new(false),
                refusals_logged: AtomicU64::new(0),
                epoch: AtomicU64::new(0),
                peer_set_gen: AtomicU64::new(0),
                version: AtomicU64::new(0),
                send <- new_mutex!(
                    SendCtx { peers: [None, None], peer_ids: [0, 0], owner, buf },
                    "fvp::Replication::send"
                ),
                destaged <- new_mutex!(KVec::new(), "fvp::Replication::destaged"),
                replicated_writes: AtomicU64::new(0),
                reprotections: AtomicU64::new(0),
                resent_blocks: AtomicU64::new(0),
                ticks: AtomicU64::new(0),
                changed <- WaitQueue::new(),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn state(&self) -> u32 {
        self.state.load(Relaxed)
    }

    pub(crate) fn state_name(&self) -> &'static str {
        State::from_abi(self.state()).map_or("none", State::name)
    }

    /// Publishes what the lock-free readers need after `ctx.owner` changed, and makes
    /// the connections follow the owner's peer set: a slot whose peer changed takes the
    /// connection from `opened` (the peers a VOLUME_OPEN just reached) or is emptied.
    fn publish(&self, ctx: &mut SendCtx, opened: &[Option<Arc<Conn>>; 2]) {
        let ids = ctx.owner.peers();
        for i in 0..2 {
            if ctx.peer_ids[i] != ids[i] {
                ctx.peers[i] = opened.iter().flatten().find(|c| c.peer_id == ids[i] && ids[i] != 0).cloned();
                ctx.peer_ids[i] = ids[i];
            }
        }
        self.has_stale.store(ctx.owner.stale() != 0, Relaxed);
        self.reads_held.store(ctx.owner.reads_held(), Release);
        self.epoch.store(ctx.owner.epoch(), Relaxed);
        self.peer_set_gen.store(ctx.owner.peer_set_gen(), Release);
        self.state.store(ctx.owner.state().abi(), Relaxed);
    }

    /// Runs `f` on the owner state machine under the send lock, then publishes.
    fn with_owner<R>(&self, opened: &[Option<Arc<Conn>>; 2], f: impl FnOnce(&mut Owner) -> R) -> R {
        let mut ctx = self.send.lock();
        let r = f(&mut ctx.owner);
        self.publish(&mut ctx, opened);
        r
    }

    /// Whether the destager may write this volume's blocks to the backing device.
    /// The lease is checked itself, not only the state the ticker derives from it
    /// (the owner rule of section 4 must hold between two ticks too).
    pub(crate) fn may_destage(&self) -> bool {
        !matches!(self.state(), abi::REPL_SUSPENDED | abi::REPL_FENCED) && self.cluster.holds_lease()
    }

    /// The peer set's generation (`Owner::peer_set_gen`): a write sent under another
    /// may have counted an ACK from a peer dropped and emptied since.
    pub(crate) fn peer_set_gen(&self) -> u64 {
        self.peer_set_gen.load(Acquire)
    }

    pub(crate) fn peer_ids(&self) -> [u32; 2] {
        self.send.lock().peer_ids
    }

    /// The version snapshot the destager takes before a batch: every replica with a
    /// version at most this holds data the batch will write (or older).
    pub(crate) fn destage_snapshot(&self) -> u64 {
        self.version.load(Acquire)
    }

    /// The destager wrote `block` back; `snapshot` was taken before it began.
    pub(crate) fn destaged(&self, block: u64, snapshot: u64) {
        // Best effort: a lost notice only delays freeing a replica until the epoch ends.
        let _ = self.destaged.lock().push((block, snapshot), GFP_KERNEL);
    }

    /// Waits until a write may proceed: `Ok(true)` replicated write-back, `Ok(false)`
    /// write-through, `Err` the volume was taken over. Without the lease nothing may
    /// be acknowledged or written, even before the ticker notices and suspends. Sleeps.
    pub(crate) fn wait_writable(&self) -> Result<bool> {
        let mut verdict = None;
        while !self.changed.wait_timeout_ms(WAIT_BOUND_MS, || {
            verdict = self.writable_now();
            verdict.is_some()
        }) {}
        verdict.unwrap_or(Err(EIO))
    }

    /// Whether a read that misses the cache must wait (`Owner::reads_held`): a host may
    /// still hold an orphan of an earlier incarnation of the volume, with acknowledged
    /// blocks newer than the backing device's.
    pub(crate) fn reads_held(&self) -> bool {
        self.reads_held.load(Acquire)
    }

    /// Sleeps until reads need not wait; `EIO` if the volume is fenced meanwhile.
    pub(crate) fn wait_readable(&self) -> Result {
        let mut verdict = None;
        while !self.changed.wait_timeout_ms(WAIT_BOUND_MS, || {
            verdict = if self.state() == abi::REPL_FENCED {
                Some(Err(EIO))
            } else if !self.reads_held() {
                Some(Ok(()))
            } else {
                None
            };
            verdict.is_some()
        }) {}
        verdict.unwrap_or(Err(EIO))
    }

    /// What [`Replication::wait_writable`] answers now, or `None` to wait. Reads only
    /// atomics and the clock: it runs as a wait condition.
    fn writable_now(&self) -> Option<Result<bool>> {
        let state = State::from_abi(self.state())?;
        match owner::writable(state, self.has_stale.load(Relaxed), self.cluster.holds_lease()) {
            Writable::Replicate => Some(Ok(true)),
            Writable::WriteThrough => Some(Ok(false)),
            Writable::Fail => Some(Err(EIO)),
            Writable::Wait => None,
        }
    }

    /// Sleeps until the ticker's next pass over this volume has ended, or at most
    /// `WAIT_BOUND_MS` (a volume the ticker no longer visits must not hold its caller).
    pub(crate) fn wait_next_tick(&self) {
        let seen = self.ticks.load(Acquire);
        self.changed.wait_timeout_ms(WAIT_BOUND_MS, || self.ticks.load(Acquire) != seen);
    }

    /// Sleeps until a pass that began after this call has ended: it has seen every
    /// failure reported before it.
    fn wait_full_tick(&self) {
        let seen = self.ticks.load(Acquire);
        self.changed.wait_timeout_ms(2 * WAIT_BOUND_MS, || self.ticks.load(Acquire) >= seen + 2);
    }

    /// Reports hosts in `mask` whose requests failed or were refused: the next pass
    /// drops them from the peer set (they become stale).
    pub(crate) fn peers_failed(&self, mask: u64) {
        if mask == 0 {
            return;
        }
        self.with_owner(&[None, None], |o| {
            for id in 1..=64u32 {
                if mask & placement::host_bit(id) != 0 {
                    o.peer_failed(id);
                }
            }
        });
    }

    /// Sends the blocks `blocks` (copied from the pool by `copy`) to every peer, the
    /// ACKs counted in `op`'s pending references (`retain` takes one per send). Blocks
    /// in `dropped` were written around the pool: their replicas are dropped instead.
    /// Returns the peer set's generation it was sent under, or `None` if a peer could
    /// not be sent to (the caller protects the write otherwise).
    pub(crate) fn send_write(
        &self,
        blocks: &[u64],
        dropped: &[u64],
        mut copy: impl FnMut(u64, &mut [u8]) -> bool,
        mut waiter: impl FnMut() -> Waiter,
    ) -> Option<u64> {
        let mut ctx = self.send.lock();
        let ctx = &mut *ctx;
        // The connected peers, first (no allocation on the write path).
        let mut peers: [Option<Arc<Conn>>; 2] = [None, None];
        let mut n = 0;
        for c in ctx.peers.iter().flatten() {
            peers[n] = Some(c.clone());
            n += 1;
        }
        let peers = &peers[..n];
        if n < self.peers_wanted as usize || peers.iter().flatten().any(|c| c.is_broken()) {
            return None;
        }
        for &block in blocks {
            if !copy(block, &mut ctx.buf)
                || !self.send_replica(&mut ctx.owner, peers.iter().flatten(), block, &ctx.buf, &mut waiter)
            {
                return None;
            }
        }
        if !dropped.is_empty() && !self.send_drops(&mut ctx.owner, peers, dropped, &mut waiter) {
            return None;
        }
        Some(ctx.owner.peer_set_gen())
    }

    /// Sends `buf` as `block`'s next version to every peer in `peers`, each ACK counted
    /// by `waiter()`. Called with the send lock held (`owner` and `buf` are its data),
    /// so that each peer receives a volume's versions in increasing order. False if a
    /// send failed.
    fn send_replica<'a>(
        &self,
        owner: &mut Owner,
        peers: impl IntoIterator<Item = &'a Arc<Conn>>,
        block: u64,
        buf: &[u8],
        waiter: &mut impl FnMut() -> Waiter,
    ) -> bool {
        let version = owner.next_version();
        self.version.store(version, Release);
        let msg = Message::Replicate { volume_id: self.volume_id, block, version, data: buf };
        peers.into_iter().all(|c| c.send(&msg, Some(waiter())).is_ok())
    }

    /// A write some peer never ACKed (connection lost) or refused (`failed`: those
    /// hosts), or whose peer set changed before it completed: waits until its blocks can
    /// be made safe again, and makes them so. Each current peer first gets the newest
    /// data of the blocks still dirty, and drops what it holds of the ones written back
    /// meanwhile (no current peer may keep an older replica than the disk will hold).
    /// Then, with as many peers as the policy asks, the write is protected (a backing
    /// flush covers the blocks written back); with fewer (degraded) the volume is written
    /// back. False if the volume was taken over or an I/O failed. Sleeps.
    pub(crate) fn protect_failed_write(&self, volume: &impl ProtectedVolume, blocks: &[u64], failed: u64) -> bool {
        self.peers_failed(failed);
        if failed != 0 {
            // Let the ticker drop the refusing peers first.
            self.wait_full_tick();
        }
        loop {
            let replicate = match self.wait_writable() {
                Err(_) => return false,
                Ok(r) => r,
            };
            // Waits for memory: giving up here would fail the write with EIO.
            let batch = alloc_retry(BatchWait::new);
            let mut written_back = false;
            let (enough, sent, sent_to, gen) = {
                let mut ctx = self.send.lock();
                let ctx = &mut *ctx;
                let gen = ctx.owner.peer_set_gen();
                let mut peers: [Option<Arc<Conn>>; 2] = [None, None];
                let mut n = 0;
                let mut sent_to = 0u64;
                for c in ctx.peers.iter().flatten().filter(|c| !c.is_broken()) {
                    sent_to |= placement::host_bit(c.peer_id);
                    peers[n] = Some(c.clone());
                    n += 1;
                }
                let enough = n >= self.peers_wanted as usize;
                let mut sent = true;
                if enough || !replicate {
                    let mut clean = [0u64; PROTECT_MAX_BLOCKS];
                    let mut nc = 0;
                    for &block in blocks {
                        if !volume.copy_dirty(block, &mut ctx.buf) {
                            written_back = true;
                            if let Some(slot) = clean.get_mut(nc) {
                                *slot = block;
                                nc += 1;
                            }
                            continue;
                        }
                        if !self.send_replica(&mut ctx.owner, peers.iter().flatten(), block, &ctx.buf, &mut || {
                            batch.waiter()
                        }) {
                            sent = false;
                            break;
                        }
                    }
                    if sent && nc > 0 {
                        sent = self.send_drops(&mut ctx.owner, &peers[..n], &clean[..nc], &mut || batch.waiter());
                    }
                }
                (enough, sent, sent_to, gen)
            };
            if replicate && !enough {
                // The ticker replaces the lost peer within a heartbeat: wait for it.
                self.wait_next_tick();
                continue;
            }
            if !sent || !batch.wait(self.cluster.timeout_ms()) {
                // A peer failed or refused: the next pass drops it (stale until fenced
                // or emptied); try again then.
                self.peers_failed(sent_to);
                self.wait_full_tick();
                continue;
            }
            if self.peer_set_gen() != gen {
                continue;
            }
            if replicate {
                return !written_back || volume.flush_backing().is_ok();
            }
            return volume.flush_sync().is_ok();
        }
    }

    /// DESTAGED with a fresh version for each block: peers drop what they hold of them.
    fn send_drops(
        &self,
        owner: &mut Owner,
        peers: &[Option<Arc<Conn>>],
        blocks: &[u64],
        waiter: &mut impl FnMut() -> Waiter,
    ) -> bool {
        let mut buf = [0u8; 64 * 16];
        for chunk in blocks.chunks(64) {
            let version = owner.next_version();
            self.version.store(version, Release);
            let Ok(entries) = DestagedEntries::encode_into(chunk.iter().map(|&b| (b, version)), &mut buf) else {
                return false;
            };
            let msg = Message::Destaged { volume_id: self.volume_id, entries };
            for c in peers.iter().flatten() {
                if c.send(&msg, Some(waiter())).is_err() {
                    return false;
                }
            }
        }
        true
    }

    /// Drops replicas of blocks `first .. first + count` at the current peers
    /// (write-through writes while degraded, discards, write-zeroes: a takeover must
    /// not write older data over them). One DROP_RANGE per peer, however large the
    /// range. Sleeps until they ACK; a peer that does not is reported failed, and the
    /// call returns only once the ticker made it stale and it was fenced or emptied
    /// (`Err`: the volume was taken over meanwhile).
    pub(crate) fn drop_range_at_peers(&self, first: u64, count: u64) -> Result {
        if count == 0 {
            return Ok(());
        }
        // Waits for memory for the waiter: the write that follows may reach the backing
        // device only once the peers dropped what they hold of the range.
        let batch = alloc_retry(BatchWait::new);
        let sent_to = {
            let mut ctx = self.send.lock();
            let ctx = &mut *ctx;
            let version = ctx.owner.next_version();
            self.version.store(version, Release);
            let msg = Message::DropRange { volume_id: self.volume_id, first, count, version };
            let mut sent_to = 0u64;
            for c in ctx.peers.iter().flatten() {
                sent_to |= placement::host_bit(c.peer_id);
                // A refused send fails its waiter: the batch reports it below.
                let _ = c.send(&msg, Some(batch.waiter()));
            }
            sent_to
        };
        if batch.wait(self.cluster.timeout_ms()) {
            return Ok(());
        }
        // Some peer may still hold older replicas of the range.
        self.peers_failed(sent_to);
        self.wait_full_tick();
        self.wait_writable().map(|_| ())
    }

    /// The ticker's step (every heartbeat): runs the owner state machine's pass and
    /// carries out its steps; then wakes the waiting writers. Sleeps.
    pub(crate) fn reconcile(&self, volume: &impl ProtectedVolume) {
        self.reconcile_once(volume);
        self.ticks.fetch_add(1, Release);
        self.changed.wake_all();
    }

    fn reconcile_once(&self, volume: &impl ProtectedVolume) {
        let Some(mut obs) = self.cluster.owner_observation(&self.name, self.peers_wanted, self.rule) else { return };
        obs.clean = volume.dirty_count() == 0;
        // The connections a VOLUME_OPEN reached in this pass, for `publish`.
        let mut opened: [Option<Arc<Conn>>; 2] = [None, None];
        let mut step = {
            let mut ctx = self.send.lock();
            let ctx = &mut *ctx;
            // A slot's connection broke (requests in flight on it were lost), even if
            // the link has reconnected since: that peer is lost.
            for i in 0..2 {
                if ctx.peer_ids[i] != 0 && ctx.peers[i].as_ref().is_none_or(|c| c.is_broken()) {
                    ctx.owner.peer_failed(ctx.peer_ids[i]);
                }
            }
            let step = ctx.owner.tick(obs);
            self.publish(ctx, &opened);
            step
        };
        loop {
            let answer = match step {
                Step::Idle => return,
                Step::Do(effect) => {
                    self.carry_out(effect, volume);
                    Answer::Done
                }
                Step::Ask(Ask::TakenOver { hosts, holders }) => Answer::TakenOver(self.taken_over(hosts, holders)),
                Step::Ask(Ask::Close { host }) => self.close_at(host),
                Step::Ask(Ask::Open { peers, epoch }) => self.open_epoch(peers, epoch, &mut opened),
                Step::Ask(Ask::Resend) => Answer::Resent(self.resend(volume)),
            };
            step = self.with_owner(&opened, |o| o.answer(answer));
        }
    }

    fn carry_out(&self, effect: Effect, volume: &impl ProtectedVolume) {
        let name = abi::name_str(&self.name);
        match effect {
            Effect::Suspended => pr_warn!("volume {}: no majority lease: I/O suspended\n", name),
            Effect::Fence => {
                pr_err!(
                    "volume {}: a peer took it over while this host had no lease: discarding its blocks; reload the table to use it again\n",
                    name
                );
                volume.fence();
            }
            Effect::LostPeers { lost } => {
                // Writes wait until the lost peer is fenced or emptied, and a reachable
                // one is emptied only once nothing is dirty: write back now.
                if volume.dirty_count() > 0 {
                    volume.make_urgent();
                }
                pr_warn!("volume {}: lost a peer: writing through until re-protected (host mask {:#x})\n", name, lost);
            }
            // Pending DESTAGED notices stay: a new peer drops nothing newer than listed.
            Effect::EpochOpened { .. } => {}
            Effect::Protected { peers, epoch } => {
                if epoch > 1 {
                    self.reprotections.fetch_add(1, Relaxed);
                }
                pr_info!("volume {}: protected by host(s) {} {} (epoch {})\n", name, peers[0], peers[1], epoch);
            }
            Effect::NotifyDestaged => self.notify_destaged(volume),
        }
    }

    /// Asks host `id`, if connected, to drop every replica of this volume (VOLUME_CLOSE).
    /// VOLUME_CLOSE at host `id`: [`Answer::Closed`], or [`Answer::TakenOver`] if the
    /// host took the volume over (ESTALE).
    fn close_at(&self, id: u32) -> Answer {
        let Some(conn) = self.cluster.link(id).and_then(|l| l.out_conn()) else { return Answer::Closed(false) };
        match conn.call(&self.volume_close(), self.cluster.timeout_ms()) {
            Ok(_) => {
                pr_info!("volume {}: host {} holds no replicas of it (closed)\n", abi::name_str(&self.name), id);
                Answer::Closed(true)
            }
            Err(e) if e == estale() => {
                pr_warn!("volume {}: host {} took it over (closing its replicas)\n", abi::name_str(&self.name), id);
                Answer::TakenOver(Some(true))
            }
            Err(_) => Answer::Closed(false),
        }
    }

    /// The volume's name without its NUL padding.
    fn wire_name(&self) -> &[u8] {
        abi::name_bytes(&self.name)
    }

    fn volume_open(&self, epoch: u64) -> Message<'_> {
        Message::VolumeOpen {
            volume_id: self.volume_id,
            block_size: crate::backing::BLOCK_BYTES as u32,
            epoch,
            sectors: self.device.sectors,
            device_uuid: self.device.uuid,
            name: self.wire_name(),
        }
    }

    fn volume_close(&self) -> Message<'_> {
        Message::VolumeClose { volume_id: self.volume_id, name: self.wire_name() }
    }

    /// Whether a host of `hosts` (mask) took this volume over: asks each with the
    /// VOLUME_OPEN probe (epoch 0: no store changes). `None`: one cannot be reached, or
    /// one of `holders` (hosts that held a store of it) holds none now: it restarted,
    /// and would not remember a takeover (the operator decides, `resolve`).
    fn taken_over(&self, hosts: u64, holders: u64) -> Option<bool> {
        let mut known = true;
        for id in (1..=64u32).filter(|&id| hosts & placement::host_bit(id) != 0) {
            let Some(conn) = self.cluster.link(id).and_then(|l| l.out_conn()) else {
                known = false;
                continue;
            };
            match conn.call(&self.volume_open(0), self.cluster.timeout_ms()) {
                Ok(_) => {}
                Err(e) if e == estale() => return Some(true),
                Err(e) if e == ENOENT && holders & placement::host_bit(id) == 0 => {}
                Err(e) => {
                    if e == ENOENT && !self.lost_holder_logged.swap(true, Relaxed) {
                        pr_warn!(
                            "volume {}: host {} lost its replicas (restarted?) and cannot say whether it took the volume over: suspended until `resolve keep|discard`\n",
                            abi::name_str(&self.name),
                            id
                        );
                    }
                    known = false;
                }
            }
        }
        known.then_some(false)
    }

    /// Opens `epoch` on `peers` (VOLUME_OPEN empties their stores); their connections
    /// go to `opened`. Peers kept from the previous set keep their slot and connection.
    /// [`Answer::TakenOver`] if one took the volume over (ESTALE).
    fn open_epoch(&self, peers: [u32; 2], epoch: u64, opened: &mut [Option<Arc<Conn>>; 2]) -> Answer {
        let msg = self.volume_open(epoch);
        for (i, &id) in peers.iter().enumerate() {
            if id == 0 {
                continue;
            }
            let Some(c) = self.cluster.link(id).and_then(|l| l.out_conn()) else { return Answer::Opened(false) };
            if let Err(e) = c.call(&msg, self.cluster.timeout_ms()) {
                if e == estale() {
                    pr_warn!("volume {}: host {} took it over\n", abi::name_str(&self.name), id);
                    return Answer::TakenOver(Some(true));
                }
                if self.refusals_logged.fetch_or(placement::host_bit(id), Relaxed) & placement::host_bit(id) == 0 {
                    pr_warn!(
                        "volume {}: host {} refused its replicas: error {} (not logged again until the volume is protected)\n",
                        abi::name_str(&self.name),
                        id,
                        e.to_errno()
                    );
                }
                return Answer::Opened(false);
            }
            opened[i] = Some(c);
        }
        self.refusals_logged.store(0, Relaxed);
        Answer::Opened(true)
    }

    /// Re-sends the dirty blocks to the new peers.
    fn resend(&self, volume: &impl ProtectedVolume) -> Resent {
        match self.resend_dirty(volume) {
            Ok(n) => {
                self.resent_blocks.fetch_add(n, Relaxed);
                Resent::Complete
            }
            // The lease ended (the next tick suspends the volume) or the volume is
            // going away: the connections are fine.
            Err(e) if e == EAGAIN => Resent::Interrupted,
            Err(e) => {
                pr_warn!(
                    "volume {}: re-sending its dirty blocks failed: error {}\n",
                    abi::name_str(&self.name),
                    e.to_errno()
                );
                Resent::Failed
            }
        }
    }

    /// Sends every dirty block of `volume` to the current peers, in chunks that each
    /// wait for their ACKs. Returns how many were sent.
    fn resend_dirty(&self, volume: &impl ProtectedVolume) -> Result<u64> {
        let mut blocks = KVec::with_capacity(RESEND_CHUNK, GFP_KERNEL)?;
        let mut cursor = (0usize, 0u32);
        let mut sent = 0u64;
        loop {
            vec::clear(&mut blocks);
            volume.dirty_blocks(&mut cursor, &mut blocks, RESEND_CHUNK);
            if blocks.is_empty() {
                return Ok(sent);
            }
            if volume.stopping() || !self.cluster.holds_lease() {
                return Err(EAGAIN);
            }
            let batch = BatchWait::new()?;
            {
                let mut ctx = self.send.lock();
                let ctx = &mut *ctx;
                let peers = ctx.peers.clone();
                if peers.iter().flatten().count() < self.peers_wanted as usize {
                    return Err(EPIPE);
                }
                for &block in blocks.iter() {
                    // Written back (or discarded) since the scan: nothing to protect.
                    if !volume.copy_dirty(block, &mut ctx.buf) {
                        continue;
                    }
                    // Like a write: each peer keeps the newest copy.
                    if !self
                        .send_replica(&mut ctx.owner, peers.iter().flatten(), block, &ctx.buf, &mut || batch.waiter())
                    {
                        return Err(EPIPE);
                    }
                    sent += 1;
                }
            }
            if !batch.wait(self.cluster.timeout_ms()) {
                return Err(crate::fvp_kernel::errno::etimedout());
            }
        }
    }

    /// Flushes the backing device, then tells the peers which blocks are on it.
    fn notify_destaged(&self, volume: &impl ProtectedVolume) {
        let list = core::mem::take(&mut *self.destaged.lock());
        if list.is_empty() {
            return;
        }
        if volume.flush_backing().is_err() {
            return;
        }
        let ctx = self.send.lock();
        let mut buf = [0u8; DESTAGED_BUF_LEN];
        for chunk in list.chunks(MAX_DESTAGED) {
            let Ok(entries) = DestagedEntries::encode_into(chunk.iter().copied(), &mut buf) else { return };
            let msg = Message::Destaged { volume_id: self.volume_id, entries };
            for c in ctx.peers.iter().flatten() {
                let _ = c.send(&msg, Some(Waiter::Nobody));
            }
        }
    }

    /// This host was fenced by a majority: a peer takes the volume over.
    pub(crate) fn fence(&self) {
        self.with_owner(&[None, None], Owner::fence);
        self.changed.wake_all();
    }

    /// The operator's answer for a volume suspended because a peer that held its
    /// replicas cannot be asked whether it took it over (`resolve keep|discard`).
    /// `EINVAL` if the volume is not waiting for that answer.
    pub(crate) fn resolve(&self, volume: &impl ProtectedVolume, keep: bool) -> Result {
        let (waiting, effect) = self.with_owner(&[None, None], |o| {
            let waiting = o.awaiting_takeover_answer() && !o.busy();
            (waiting, if waiting { o.resolve(keep) } else { None })
        });
        if !waiting {
            return Err(EINVAL);
        }
        let name = abi::name_str(&self.name);
        if effect == Some(Effect::Fence) {
            pr_warn!("volume {}: operator: discard (a peer may have taken it over)\n", name);
            volume.fence();
        } else {
            pr_warn!("volume {}: operator: keep (no peer took it over)\n", name);
        }
        self.changed.wake_all();
        Ok(())
    }

    /// Hosts that hold or may hold this volume's replicas: its peers and stale hosts.
    pub(crate) fn replica_hosts(&self) -> u64 {
        let ctx = self.send.lock();
        ctx.peer_ids.iter().filter(|&&id| id != 0).fold(ctx.owner.stale(), |m, &id| m | placement::host_bit(id))
    }

    /// The volume goes away after a drain: its peers, and the hosts it still counted
    /// stale, drop its replicas. Those that do not confirm are asked again by the
    /// cluster every heartbeat (`Cluster::add_pending_close`).
    pub(crate) fn close(&self) {
        let mut left = self.replica_hosts();
        for id in 1..=64u32 {
            // A host that took the volume over holds nothing of it either.
            if left & placement::host_bit(id) != 0
                && matches!(self.close_at(id), Answer::Closed(true) | Answer::TakenOver(Some(true)))
            {
                left &= !placement::host_bit(id);
            }
        }
        if left != 0 {
            pr_warn!(
                "volume {}: {} host(s) did not confirm closing its replicas; asking again every heartbeat\n",
                abi::name_str(&self.name),
                left.count_ones()
            );
            self.cluster.add_pending_close(self.volume_id, self.name, left);
        }
    }
}
