// SPDX-License-Identifier: GPL-2.0

//! The owner side of replication for one write-back volume with `peers>0`: its peer
//! set, the version counter, the state machine of `docs/replication.md` section 6, and
//! the DESTAGED notifications.
#![forbid(unsafe_code)]

use crate::cluster::Cluster;
use crate::conn::{BatchWait, Conn, Waiter};
use crate::fvp_kernel::errno::estale;
use crate::fvp_kernel::sync::{alloc_retry, WaitQueue};
use crate::fvp_kernel::vec;
use crate::logic::abi;
use crate::logic::placement::{self, DomainRule};
use crate::logic::wire::{DestagedEntries, Message, DESTAGED_BUF_LEN, MAX_DESTAGED};
use crate::volume::Volume;
use core::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// Who holds the volume's replicas now, and the buffer blocks are copied into.
pub(crate) struct SendCtx {
    pub(crate) peers: [Option<Arc<Conn>>; 2],
    pub(crate) peer_ids: [u32; 2],
    pub(crate) buf: KVec<u8>,
}

/// Replication state of one volume.
#[pin_data]
pub(crate) struct Replication {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) name: [u8; abi::NAME_LEN],
    /// Unique among this host's volumes; names the volume on the wire.
    pub(crate) volume_id: u32,
    pub(crate) peers_wanted: u32,
    pub(crate) rule: DomainRule,
    /// `abi::REPL_*`.
    pub(crate) state: AtomicU32,
    pub(crate) epoch: AtomicU64,
    /// The last version handed out; only advanced under `send`, after the block's
    /// data was copied (the destager relies on that order, see `destage_snapshot`).
    pub(crate) version: AtomicU64,
    /// Peers that held replicas and must be fenced by a majority (or reconnect and
    /// drop them) before a write may bypass them: bit `h-1` for host `h`.
    pub(crate) stale_peers: AtomicU64,
    /// The lease was lost: before writing anything when it returns, ask the peers
    /// whether one of them took the volume over meanwhile.
    was_suspended: core::sync::atomic::AtomicBool,
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

/// Dirty blocks re-sent to new peers per round trip. Heartbeats share the connection:
/// a PING queued behind a large burst can miss the timeout and cost the lease (seen
/// with 256 blocks, 1 MiB, on a loaded emulated link), so each burst stays small.
const RESEND_CHUNK: usize = 16;

impl Replication {
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        name: [u8; abi::NAME_LEN],
        peers_wanted: u32,
        rule: DomainRule,
    ) -> Result<Arc<Self>> {
        let mut buf = KVec::new();
        buf.extend_with(crate::pool::PAGE as usize, 0u8, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Replication {
                cluster,
                name,
                volume_id: new_volume_id(),
                peers_wanted,
                rule,
                state: AtomicU32::new(abi::REPL_DEGRADED),
                epoch: AtomicU64::new(0),
                version: AtomicU64::new(0),
                stale_peers: AtomicU64::new(0),
                was_suspended: core::sync::atomic::AtomicBool::new(false),
                send <- new_mutex!(SendCtx { peers: [None, None], peer_ids: [0, 0], buf }, "fvp::Replication::send"),
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
        match self.state() {
            abi::REPL_PROTECTED => "protected",
            abi::REPL_REPROTECTING => "reprotecting",
            abi::REPL_DEGRADED => "degraded",
            abi::REPL_SUSPENDED => "suspended",
            abi::REPL_FENCED => "fenced",
            _ => "none",
        }
    }

    /// Whether the destager may write this volume's blocks to the backing device.
    /// The lease is checked itself, not only the state the ticker derives from it
    /// (the owner rule of section 4 must hold between two ticks too).
    pub(crate) fn may_destage(&self) -> bool {
        !matches!(self.state(), abi::REPL_SUSPENDED | abi::REPL_FENCED) && self.cluster.holds_lease()
    }

    pub(crate) fn peer_ids(&self) -> [u32; 2] {
        self.send.lock().peer_ids
    }

    /// The version snapshot the destager takes before a batch: every replica with a
    /// version at most this holds data the batch will write (or older).
    pub(crate) fn destage_snapshot(&self) -> u64 {
        self.version.load(Relaxed)
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

    /// What [`Replication::wait_writable`] answers now, or `None` to wait. Reads only
    /// atomics and the clock: it runs as a wait condition.
    fn writable_now(&self) -> Option<Result<bool>> {
        let lease = self.cluster.holds_lease();
        match self.state() {
            abi::REPL_FENCED => Some(Err(EIO)),
            // A peer dropped while it may be alive could replay older replicas after
            // a takeover: no write is acknowledged until it is fenced or emptied.
            _ if !lease || self.stale_peers.load(Relaxed) != 0 => None,
            abi::REPL_PROTECTED | abi::REPL_REPROTECTING => Some(Ok(true)),
            abi::REPL_DEGRADED => Some(Ok(false)),
            _ => None,
        }
    }

    /// Sleeps until the ticker's next pass over this volume has ended, or at most
    /// `WAIT_BOUND_MS` (a volume the ticker no longer visits must not hold its caller).
    pub(crate) fn wait_next_tick(&self) {
        let seen = self.ticks.load(Acquire);
        self.changed.wait_timeout_ms(WAIT_BOUND_MS, || self.ticks.load(Acquire) != seen);
    }

    /// Sends the blocks `blocks` (copied from the pool by `copy`) to every peer, the
    /// ACKs counted in `op`'s pending references (`retain` takes one per send). Blocks
    /// in `dropped` were written around the pool: their replicas are dropped instead.
    /// Returns false if a peer could not be sent to (the caller writes through).
    pub(crate) fn send_write(
        &self,
        blocks: &[u64],
        dropped: &[u64],
        mut copy: impl FnMut(u64, &mut [u8]) -> bool,
        mut waiter: impl FnMut() -> Waiter,
    ) -> bool {
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
            return false;
        }
        for &block in blocks {
            if !copy(block, &mut ctx.buf) || !self.send_replica(peers.iter().flatten(), block, &ctx.buf, &mut waiter) {
                return false;
            }
        }
        if !dropped.is_empty() && !self.send_drops(peers, dropped, &mut waiter) {
            return false;
        }
        true
    }

    /// Sends `buf` as `block`'s next version to every peer in `peers`, each ACK counted
    /// by `waiter()`. Called with the send lock held (`buf` is its buffer), so that each
    /// peer receives a volume's versions in increasing order. False if a send failed.
    fn send_replica<'a>(
        &self,
        peers: impl IntoIterator<Item = &'a Arc<Conn>>,
        block: u64,
        buf: &[u8],
        waiter: &mut impl FnMut() -> Waiter,
    ) -> bool {
        let version = self.version.load(Relaxed) + 1;
        self.version.store(version, Relaxed);
        let msg = Message::Replicate { volume_id: self.volume_id, block, version, data: buf };
        peers.into_iter().all(|c| c.send(&msg, Some(waiter())).is_ok())
    }

    /// A write some peer never ACKed (connection lost): waits until its blocks can be
    /// made safe again, and makes them so. Protected again (re-protection chose a new
    /// peer set): the blocks still dirty are sent to it, the others were written back
    /// and the backing device is flushed. Degraded: the volume is written back. False
    /// if the volume was taken over or an I/O failed. Sleeps.
    pub(crate) fn protect_failed_write(&self, volume: &Arc<Volume>, blocks: &[u64]) -> bool {
        loop {
            match self.wait_writable() {
                Err(_) => return false,
                Ok(false) => return volume.flush_sync().is_ok(),
                Ok(true) => {}
            }
            // Waits for memory: giving up here would fail the write with EIO.
            let batch = alloc_retry(BatchWait::new);
            let mut written_back = false;
            let (healthy, sent) = {
                let mut ctx = self.send.lock();
                let ctx = &mut *ctx;
                let healthy =
                    ctx.peers.iter().flatten().filter(|c| !c.is_broken()).count() >= self.peers_wanted as usize;
                let sent = healthy
                    && blocks.iter().all(|&block| {
                        if !volume.copy_cached(block, &mut ctx.buf, true) {
                            written_back = true;
                            return true;
                        }
                        self.send_replica(ctx.peers.iter().flatten(), block, &ctx.buf, &mut || batch.waiter())
                    });
                (healthy, sent)
            };
            if !healthy {
                // The ticker replaces the lost peer within a heartbeat: wait for it.
                self.wait_next_tick();
                continue;
            }
            if sent && batch.wait(self.cluster.timeout_ms()) {
                return !written_back || volume.flush_backing().is_ok();
            }
            // Refused, or the new peer set failed too: write the volume back instead.
            return volume.flush_sync().is_ok();
        }
    }

    /// DESTAGED with a fresh version for each block: peers drop what they hold of them.
    fn send_drops(&self, peers: &[Option<Arc<Conn>>], blocks: &[u64], waiter: &mut impl FnMut() -> Waiter) -> bool {
        let mut buf = [0u8; 64 * 16];
        for chunk in blocks.chunks(64) {
            let version = self.version.load(Relaxed) + 1;
            self.version.store(version, Relaxed);
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

    /// Drops replicas of blocks `first .. first + count` at whichever peers are
    /// connected (write-through writes while degraded, discards, write-zeroes: a
    /// takeover must not write older data over them). One DROP_RANGE per peer, however
    /// large the range. Sleeps until they ACK.
    pub(crate) fn drop_range_at_connected(&self, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        // Waits for memory for the waiter: the write that follows may reach the backing
        // device only once the peers dropped what they hold of the range.
        let batch = alloc_retry(BatchWait::new);
        {
            let ctx = self.send.lock();
            let version = self.version.load(Relaxed) + 1;
            self.version.store(version, Relaxed);
            let msg = Message::DropRange { volume_id: self.volume_id, first, count, version };
            for c in ctx.peers.iter().flatten().filter(|c| !c.is_broken()) {
                let _ = c.send(&msg, Some(batch.waiter()));
            }
        }
        let _ = batch.wait(self.cluster.timeout_ms());
    }

    /// The ticker's step (every heartbeat): follows the lease and the peers' health,
    /// chooses peers, and sends DESTAGED notices; then wakes the waiting writers. Sleeps.
    pub(crate) fn reconcile(&self, volume: &Arc<Volume>) {
        self.reconcile_once(volume);
        self.ticks.fetch_add(1, Release);
        self.changed.wake_all();
    }

    fn reconcile_once(&self, volume: &Arc<Volume>) {
        let cluster = &self.cluster;
        let state = self.state();
        if state == abi::REPL_FENCED {
            return;
        }
        if !cluster.holds_lease() {
            if state != abi::REPL_SUSPENDED {
                pr_warn!("volume {}: no majority lease: I/O suspended\n", abi::name_str(&self.name));
                self.was_suspended.store(true, Relaxed);
                self.state.store(abi::REPL_SUSPENDED, Relaxed);
            }
            return;
        }
        if self.was_suspended.load(Relaxed) {
            match self.taken_over() {
                Some(true) => {
                    pr_err!(
                        "volume {}: a peer took it over while this host had no lease: discarding its blocks; reload the table to use it again\n",
                        abi::name_str(&self.name)
                    );
                    volume.fence();
                    return;
                }
                Some(false) => self.was_suspended.store(false, Relaxed),
                // A peer that held replicas cannot be asked yet: keep waiting.
                None => return,
            }
        }
        // Peers we stopped using: clear once a majority fenced them (a fenced host
        // discards its replicas and cannot take over), once they left the cluster's
        // configuration, or once they dropped this volume's replicas (reachable again,
        // e.g. after an ACK timeout).
        let stale = self.stale_peers.load(Relaxed);
        let current = self.peer_ids();
        for id in 1..=64u32 {
            if stale & placement::host_bit(id) == 0 {
                continue;
            }
            if cluster.is_fenced_by_majority(id)
                || !cluster.is_configured(id)
                || (!current.contains(&id) && self.close_at(id))
            {
                self.stale_peers.fetch_and(!placement::host_bit(id), Relaxed);
            }
        }
        let healthy = {
            let ctx = self.send.lock();
            let n = ctx.peers.iter().flatten().filter(|c| !c.is_broken()).count();
            n >= self.peers_wanted as usize
        };
        if state == abi::REPL_PROTECTED && healthy {
            self.notify_destaged(volume);
            return;
        }
        if state == abi::REPL_PROTECTED || state == abi::REPL_SUSPENDED {
            // A peer was lost (or the lease came back): writes go through until a
            // new peer set holds everything.
            let lost = {
                let mut ctx = self.send.lock();
                let mut lost = 0u64;
                for i in 0..2 {
                    if ctx.peers[i].as_ref().is_some_and(|c| c.is_broken())
                        || (ctx.peers[i].is_none() && ctx.peer_ids[i] != 0)
                    {
                        lost |= placement::host_bit(ctx.peer_ids[i]);
                        ctx.peers[i] = None;
                    }
                }
                lost
            };
            self.stale_peers.fetch_or(lost, Relaxed);
            if lost != 0 {
                pr_warn!("volume {}: lost a peer: writing through until re-protected\n", abi::name_str(&self.name));
            }
            self.state.store(abi::REPL_DEGRADED, Relaxed);
        }
        self.reprotect(volume);
    }

    /// Asks host `id`, if connected, to drop every replica of this volume (VOLUME_CLOSE).
    fn close_at(&self, id: u32) -> bool {
        let Some(conn) = self.cluster.link(id).and_then(|l| l.out_conn()) else { return false };
        if conn.is_broken() {
            return false;
        }
        let closed = conn.call(&Message::VolumeClose { volume_id: self.volume_id }, self.cluster.timeout_ms()).is_ok();
        if closed {
            pr_info!("volume {}: host {} dropped the replicas it held\n", abi::name_str(&self.name), id);
        }
        closed
    }

    /// Whether a peer that held this volume's replicas took it over: asks each with
    /// VOLUME_OPEN of the current epoch (a no-op for a peer that still holds them).
    /// `None`: one of them cannot be reached.
    fn taken_over(&self) -> Option<bool> {
        let (ids, epoch) = (self.peer_ids(), self.epoch.load(Relaxed));
        if epoch == 0 {
            return Some(false);
        }
        let name_len = self.name.iter().position(|&b| b == 0).unwrap_or(abi::NAME_LEN);
        let msg = Message::VolumeOpen {
            volume_id: self.volume_id,
            block_size: crate::pool::PAGE as u32,
            epoch,
            name: &self.name[..name_len],
        };
        for id in ids.iter().copied().filter(|&id| id != 0) {
            let conn = self.cluster.link(id).and_then(|l| l.out_conn())?;
            match conn.call(&msg, self.cluster.timeout_ms()) {
                Ok(_) => {}
                Err(e) if e == estale() => return Some(true),
                Err(_) => return None,
            }
        }
        Some(false)
    }

    /// Degraded: opens a new epoch on the peers placement chooses, then sends them every
    /// dirty block (`reprotecting`: new writes are replicated to them meanwhile), and
    /// goes back to `protected` once they hold all of it.
    fn reprotect(&self, volume: &Arc<Volume>) {
        let cluster = &self.cluster;
        let mut hosts = KVec::new();
        if cluster.placement_hosts(&mut hosts).is_err() {
            return;
        }
        let local = cluster.local_id();
        let name_len = self.name.iter().position(|&b| b == 0).unwrap_or(abi::NAME_LEN);
        let Ok(chosen) = placement::place(&self.name[..name_len], local, &hosts, self.peers_wanted, self.rule) else {
            return;
        };
        if chosen.len() < self.peers_wanted as usize {
            return;
        }
        let mut conns: [Option<Arc<Conn>>; 2] = [None, None];
        let mut ids = [0u32; 2];
        for (i, &id) in chosen.as_slice().iter().enumerate() {
            let Some(c) = cluster.link(id).and_then(|l| l.out_conn()) else { return };
            conns[i] = Some(c);
            ids[i] = id;
        }
        let epoch = self.epoch.load(Relaxed) + 1;
        let msg = Message::VolumeOpen {
            volume_id: self.volume_id,
            block_size: crate::pool::PAGE as u32,
            epoch,
            name: &self.name[..name_len],
        };
        for c in conns.iter().flatten() {
            if let Err(e) = c.call(&msg, cluster.timeout_ms()) {
                pr_warn!(
                    "volume {}: host {} refused its replicas: error {}\n",
                    abi::name_str(&self.name),
                    c.peer_id,
                    e.to_errno()
                );
                return;
            }
        }
        {
            // From here on every write is replicated to the new peers too.
            let mut ctx = self.send.lock();
            ctx.peers = conns;
            ctx.peer_ids = ids;
            self.epoch.store(epoch, Relaxed);
            self.state.store(abi::REPL_REPROTECTING, Relaxed);
        }
        // Peers we chose again were emptied by VOLUME_OPEN; ones we no longer use but
        // that still hold replicas are dropped when fenced.
        self.stale_peers.fetch_and(!(placement::host_bit(ids[0]) | placement::host_bit(ids[1])), Relaxed);
        vec::clear(&mut self.destaged.lock());
        let sent = match self.resend_dirty(volume) {
            Ok(n) => n,
            // The lease ended (the next tick suspends the volume and re-protects when it
            // returns) or the volume is going away: the connections are fine.
            Err(e) if e == EAGAIN => return,
            Err(e) => {
                pr_warn!(
                    "volume {}: re-sending its dirty blocks failed: error {}\n",
                    abi::name_str(&self.name),
                    e.to_errno()
                );
                self.abandon_peers();
                return;
            }
        };
        self.resent_blocks.fetch_add(sent, Relaxed);
        if epoch > 1 {
            self.reprotections.fetch_add(1, Relaxed);
        }
        if self.state.compare_exchange(abi::REPL_REPROTECTING, abi::REPL_PROTECTED, Relaxed, Relaxed).is_ok() {
            pr_info!(
                "volume {}: protected by host(s) {} {} (epoch {}, {} dirty block(s) re-sent)\n",
                abi::name_str(&self.name),
                ids[0],
                ids[1],
                epoch,
                sent
            );
        }
    }

    /// Sends every dirty block of `volume` to the current peers, in chunks that each
    /// wait for their ACKs. Returns how many were sent.
    fn resend_dirty(&self, volume: &Arc<Volume>) -> Result<u64> {
        let mut blocks = KVec::with_capacity(RESEND_CHUNK, GFP_KERNEL)?;
        let mut cursor = (0usize, 0u32);
        let mut sent = 0u64;
        loop {
            vec::clear(&mut blocks);
            volume.dirty_blocks(&mut cursor, &mut blocks, RESEND_CHUNK);
            if blocks.is_empty() {
                return Ok(sent);
            }
            if volume.pool.stopping() || !self.cluster.holds_lease() {
                return Err(EAGAIN);
            }
            let batch = BatchWait::new()?;
            {
                let mut ctx = self.send.lock();
                let ctx = &mut *ctx;
                let mut peers = KVec::with_capacity(2, GFP_KERNEL)?;
                for c in ctx.peers.iter().flatten() {
                    peers.push(c.clone(), GFP_KERNEL)?;
                }
                for &block in blocks.iter() {
                    // Written back (or discarded) since the scan: nothing to protect.
                    if !volume.copy_cached(block, &mut ctx.buf, true) {
                        continue;
                    }
                    // Like a write: each peer keeps the newest copy.
                    if !self.send_replica(&peers, block, &ctx.buf, &mut || batch.waiter()) {
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

    /// Re-protection failed: the peers just chosen hold part of the dirty blocks. Their
    /// connections are closed; they stay stale until fenced or chosen again.
    fn abandon_peers(&self) {
        let mut ctx = self.send.lock();
        let mut lost = 0u64;
        for i in 0..2 {
            if let Some(c) = ctx.peers[i].take() {
                c.close();
                lost |= placement::host_bit(ctx.peer_ids[i]);
            }
        }
        self.stale_peers.fetch_or(lost, Relaxed);
        let _ = self.state.compare_exchange(abi::REPL_REPROTECTING, abi::REPL_DEGRADED, Relaxed, Relaxed);
    }

    /// Flushes the backing device, then tells the peers which blocks are on it.
    fn notify_destaged(&self, volume: &Arc<Volume>) {
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
        self.state.store(abi::REPL_FENCED, Relaxed);
        self.changed.wake_all();
    }

    /// The volume goes away after a drain: peers drop its replicas.
    pub(crate) fn close(&self) {
        let ctx = self.send.lock();
        for c in ctx.peers.iter().flatten() {
            let _ = c.call(&Message::VolumeClose { volume_id: self.volume_id }, self.cluster.timeout_ms());
        }
    }
}
