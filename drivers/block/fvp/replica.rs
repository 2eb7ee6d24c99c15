// SPDX-License-Identifier: GPL-2.0

//! The peer side: replicas of other owners' dirty blocks, kept apart from this host's
//! own cache (pool pressure never evicts them), and written to the shared backing
//! device when their owner is fenced by a majority. See `docs/replication.md`, section
//! 6. Every decision (which requests change a store, trust, where a block goes) is
//! `logic/replica.rs`'s; this file keeps the pages.
#![forbid(unsafe_code)]

use crate::backing::{flush_bdev, BioWaiter as IoWaiter, BLOCK_BYTES};
use crate::fvp_kernel::bio::BioSet;
use crate::fvp_kernel::bio::OwnedBio;
use crate::fvp_kernel::block::{self, OpenedBdev};
use crate::fvp_kernel::errno::{emediumtype, estale};
use crate::fvp_kernel::pages::{self, CountedPage};
use crate::fvp_kernel::vec;
use crate::logic::abi;
use crate::logic::replica::{self as rules, DeviceIdentity, DeviceMismatch, LeaseWatch, OpenVerdict, OrphanVerdict};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::sync::{Arc, Mutex};

/// One replicated block: the newest version received and its data.
struct Replica {
    version: u64,
    page: CountedPage,
}

/// The replicas of one volume of one owner.
struct Namespace {
    owner: u32,
    volume_id: u32,
    name: [u8; abi::NAME_LEN],
    epoch: u64,
    /// The owner's incarnation (HELLO) when it opened the store.
    incarnation: u64,
    /// Blocks `0..device_blocks` fit the shared device (`rules::check_device`).
    device_blocks: u64,
    blocks: RBTree<u64, Replica>,
    /// This host held its lease without interruption since the store was opened.
    trusted: bool,
    /// The owner was told (ESTALE) that this host took the volume over, while the
    /// store was still being written: the owner writes nothing more, so the rest may
    /// be written with the lease alone.
    owner_yielded: bool,
    /// An orphan to write before the owner's new incarnation of the volume is answered
    /// (`logic/replica.rs`, orphans).
    orphan: bool,
}

/// Every replica this host holds.
#[pin_data]
pub(crate) struct ReplicaStore {
    #[pin]
    spaces: Mutex<KVec<Namespace>>,
    /// Volumes this host took over: their owner must learn it (VOLUME_OPEN answers
    /// ESTALE) and discard what it holds instead of writing it.
    #[pin]
    recovered: Mutex<KVec<TakeoverRecord>>,
    count: BlockCounts,
    /// The blocks one owner may hold here (`logic/replica.rs`, `owner_quota`), set by
    /// the cluster from the host list.
    quota: AtomicU64,
    /// Owners whose stores a takeover (or an orphan's write) has taken out of `spaces`
    /// to write them (bit `h-1` for host `h`).
    recovering: AtomicU64,
    /// Lease interruptions make every store untrusted (`logic/replica.rs`).
    #[pin]
    lease: Mutex<LeaseWatch>,
}

/// A volume this host took over (`logic/replica.rs`, takeover records).
#[derive(Clone, Copy)]
struct TakeoverRecord {
    owner: u32,
    volume_id: u32,
    /// The owner's incarnation when it opened the store: a later one forgets the record.
    incarnation: u64,
}

impl TakeoverRecord {
    fn is(&self, owner: u32, volume_id: u32) -> bool {
        self.owner == owner && self.volume_id == volume_id
    }
}

/// A VOLUME_OPEN from `owner`, connected as `incarnation`.
pub(crate) struct OpenRequest<'a> {
    pub(crate) owner: u32,
    pub(crate) incarnation: u64,
    pub(crate) volume_id: u32,
    pub(crate) block_size: u32,
    pub(crate) epoch: u64,
    /// The shared device as the owner sees it.
    pub(crate) device: DeviceIdentity,
    pub(crate) name: &'a [u8],
}

/// Why a VOLUME_OPEN was refused.
pub(crate) enum OpenRefusal {
    Errno(Error),
    /// This host's path to the device would not write the owner's device.
    Device(DeviceMismatch),
}

impl OpenRefusal {
    pub(crate) fn to_errno(&self) -> i32 {
        match self {
            OpenRefusal::Errno(e) => e.to_errno(),
            OpenRefusal::Device(DeviceMismatch::NoDevice) => ENODEV.to_errno(),
            OpenRefusal::Device(_) => emediumtype().to_errno(),
        }
    }
}

impl From<Error> for OpenRefusal {
    fn from(e: Error) -> Self {
        OpenRefusal::Errno(e)
    }
}

/// Replica blocks held, in all and per owner (bit `h-1`'s owner at index `h-1`).
struct BlockCounts {
    total: AtomicU64,
    per_owner: [AtomicU64; MAX_HOSTS],
}

const MAX_HOSTS: usize = abi::MAX_HOSTS as usize;

impl BlockCounts {
    fn new() -> Self {
        Self { total: AtomicU64::new(0), per_owner: [const { AtomicU64::new(0) }; MAX_HOSTS] }
    }

    fn slot(&self, owner: u32) -> Option<&AtomicU64> {
        self.per_owner.get((owner as usize).checked_sub(1)?)
    }

    fn add(&self, owner: u32, n: u64) {
        self.total.fetch_add(n, Relaxed);
        if let Some(c) = self.slot(owner) {
            c.fetch_add(n, Relaxed);
        }
    }

    fn sub(&self, owner: u32, n: u64) {
        self.total.fetch_sub(n, Relaxed);
        if let Some(c) = self.slot(owner) {
            c.fetch_sub(n, Relaxed);
        }
    }

    fn of(&self, owner: u32) -> u64 {
        self.slot(owner).map_or(0, |c| c.load(Relaxed))
    }
}

/// Replicas are refused (ENOSPC) once free memory falls below this fraction of RAM, as
/// pools leave it (the owner then writes through for that write; see docs/replication.md).
const RESERVE_DIVISOR: u64 = 8;

impl ReplicaStore {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            spaces <- new_mutex!(KVec::new(), "fvp::ReplicaStore::spaces"),
            recovered <- new_mutex!(KVec::new(), "fvp::ReplicaStore::recovered"),
            count: BlockCounts::new(),
            quota: AtomicU64::new(u64::MAX),
            recovering: AtomicU64::new(0),
            lease <- new_mutex!(LeaseWatch::new(), "fvp::ReplicaStore::lease"),
        })
    }

    /// Sets the blocks one owner may hold here (`logic/replica.rs`, `owner_quota`).
    pub(crate) fn set_quota(&self, blocks: u64) {
        self.quota.store(blocks, Relaxed);
    }

    /// Replicated blocks held, for one owner or all.
    pub(crate) fn blocks(&self, owner: Option<u32>) -> u64 {
        match owner {
            None => self.count.total.load(Relaxed),
            Some(o) => self.spaces.lock().iter().filter(|n| n.owner == o).map(|n| n.blocks.iter().count() as u64).sum(),
        }
    }

    /// Owners we hold trusted replicas for (the ones a takeover may write), as a
    /// bitmask (bit `h-1` for host `h`).
    pub(crate) fn owners(&self) -> u64 {
        self.spaces.lock().iter().filter(|n| n.trusted).fold(0, |m, n| m | crate::logic::placement::host_bit(n.owner))
    }

    /// Owners whose volume this host began taking over and was asked about since (the
    /// owner then writes nothing more): the rest of the takeover needs only the lease.
    pub(crate) fn yielded_owners(&self) -> u64 {
        self.spaces
            .lock()
            .iter()
            .filter(|n| n.trusted && n.owner_yielded)
            .fold(0, |m, n| m | crate::logic::placement::host_bit(n.owner))
    }

    /// Every heartbeat, with `Membership::lease_held_since`: a lease interruption makes
    /// every store untrusted (it may hide a majority fence this host never heard of).
    pub(crate) fn observe_lease(&self, since: Option<u64>) {
        if self.lease.lock().observe(since) {
            self.untrust_all("lease interrupted");
        }
    }

    /// Makes every store untrusted (kept: one may be the last copy of acknowledged
    /// writes; their owners open new ones, no takeover writes them).
    pub(crate) fn untrust_all(&self, why: &str) {
        let mut n = 0;
        for space in self.spaces.lock().iter_mut().filter(|s| s.trusted) {
            space.trusted = false;
            n += 1;
        }
        if n > 0 {
            pr_warn!(
                "{}: {} replica store(s) untrusted (kept; their owners open new ones, no takeover writes them)\n",
                why,
                n
            );
        }
    }

    /// The owner connected as `incarnation`: the takeover records of its earlier
    /// incarnations are forgotten (`logic/replica.rs`, takeover records).
    pub(crate) fn owner_connected(&self, owner: u32, incarnation: u64) {
        let mut recovered = self.recovered.lock();
        let mut i = 0;
        while i < recovered.len() {
            let r = recovered[i];
            if r.owner == owner && rules::record_outlived(r.incarnation, incarnation) {
                vec::remove(&mut recovered, i);
            } else {
                i += 1;
            }
        }
    }

    /// VOLUME_OPEN: a new epoch starts empty (the owner wrote back everything before);
    /// the same epoch, or epoch 0, is a probe (`logic/replica.rs`). A store is created
    /// or reset only if `local` (this host's view of the volume's shared device, `None`
    /// without one) matches the owner's.
    pub(crate) fn open(
        &self,
        req: &OpenRequest<'_>,
        local: Option<DeviceIdentity>,
    ) -> core::result::Result<(), OpenRefusal> {
        let (owner, volume_id, epoch) = (req.owner, req.volume_id, req.epoch);
        if req.block_size != BLOCK_BYTES as u32 {
            return Err(EINVAL.into());
        }
        let name = abi::pool_name(req.name).ok_or(EINVAL)?;
        // Takeover records keep their stores' slots (`rules::admits_store`).
        let (taken_over, owner_records, all_records) = {
            let recovered = self.recovered.lock();
            let taken_over = recovered.iter().any(|r| r.is(owner, volume_id));
            (taken_over, recovered.iter().filter(|r| r.owner == owner).count(), recovered.len())
        };
        let mut spaces = self.spaces.lock();
        if !taken_over && epoch != 0 {
            self.resolve_orphans(&mut spaces, owner, volume_id, &name)?;
        }
        let found = spaces.iter_mut().find(|n| n.owner == owner && n.volume_id == volume_id);
        match rules::on_open(found.as_ref().map(|n| n.epoch), taken_over, epoch) {
            OpenVerdict::TakenOver => {
                if let Some(n) = found {
                    // Still being written: the owner learns it now and stops.
                    n.owner_yielded = true;
                }
                Err(estale().into())
            }
            OpenVerdict::Unchanged => Ok(()),
            OpenVerdict::NotHeld => Err(ENOENT.into()),
            OpenVerdict::Reset => {
                let device_blocks =
                    rules::check_device(local, req.device, req.block_size).map_err(OpenRefusal::Device)?;
                let Some(n) = found else { return Err(EINVAL.into()) };
                let dropped = n.blocks.iter().count() as u64;
                n.blocks = RBTree::new();
                self.count.sub(owner, dropped);
                n.epoch = epoch;
                n.incarnation = req.incarnation;
                n.device_blocks = device_blocks;
                n.name = name;
                n.trusted = true;
                // The owner's live volume again: neither an orphan nor a takeover's.
                n.orphan = false;
                n.owner_yielded = false;
                Ok(())
            }
            OpenVerdict::Create => {
                let device_blocks =
                    rules::check_device(local, req.device, req.block_size).map_err(OpenRefusal::Device)?;
                let mine = spaces.iter().filter(|n| n.owner == owner).count();
                if !rules::admits_store(mine + owner_records, spaces.len() + all_records) {
                    return Err(ENOSPC.into());
                }
                let space = Namespace {
                    owner,
                    volume_id,
                    name,
                    epoch,
                    incarnation: req.incarnation,
                    device_blocks,
                    blocks: RBTree::new(),
                    trusted: true,
                    owner_yielded: false,
                    orphan: false,
                };
                spaces.push(space, GFP_KERNEL).map_err(|_| ENOMEM)?;
                Ok(())
            }
        }
    }

    /// REPLICATE: keeps `data` as `block`'s replica unless a newer version is held.
    pub(crate) fn store(&self, owner: u32, volume_id: u32, block: u64, version: u64, data: &[u8]) -> Result {
        if data.len() != BLOCK_BYTES as usize {
            return Err(EINVAL);
        }
        if pages::available_pages() < pages::total_ram_pages() / RESERVE_DIVISOR {
            return Err(ENOSPC);
        }
        // Allocate outside the lock; most stores are new blocks.
        let page = CountedPage::alloc()?;
        page.write(0, data);
        let node = kernel::rbtree::RBTreeNode::new(block, Replica { version, page }, GFP_KERNEL)?;
        let mut spaces = self.spaces.lock();
        let n = Self::find_trusted(&mut spaces, owner, volume_id)?;
        if !rules::block_within(block, n.device_blocks) {
            // Past the end of the shared device: a takeover could not write it.
            return Err(EINVAL);
        }
        match n.blocks.get_mut(&block) {
            Some(r) => {
                if rules::keeps_incoming(Some(r.version), version) {
                    let (_, new) = node.to_key_value();
                    *r = new;
                }
            }
            None => {
                if !rules::within_quota(self.count.of(owner), self.quota.load(Relaxed)) {
                    return Err(ENOSPC);
                }
                n.blocks.insert(node);
                self.count.add(owner, 1);
            }
        }
        Ok(())
    }

    /// DROP_RANGE: drops every replica of blocks `first .. first + count` (the wire
    /// format checked that the end does not overflow) not newer than `version`.
    pub(crate) fn drop_range(&self, owner: u32, volume_id: u32, first: u64, count: u64, version: u64) -> Result {
        let end = first.checked_add(count).ok_or(EINVAL)?;
        let mut spaces = self.spaces.lock();
        let n = Self::find_trusted(&mut spaces, owner, volume_id)?;
        let mut from = first;
        // One lower-bound lookup per replica in the range: the cost follows what is
        // held, not the size of the range.
        while let Some(cursor) = n.blocks.cursor_lower_bound(&from) {
            let (&block, replica) = cursor.current();
            if block >= end {
                break;
            }
            if rules::drops(replica.version, version) {
                let (_, node) = cursor.remove_current();
                drop(node);
                self.count.sub(owner, 1);
            }
            // `block < end`, so this does not overflow.
            from = block + 1;
        }
        Ok(())
    }

    /// DESTAGED: drops each listed block whose replica is not newer than listed.
    pub(crate) fn drop_entries(&self, owner: u32, volume_id: u32, entries: impl Iterator<Item = (u64, u64)>) -> Result {
        let mut spaces = self.spaces.lock();
        let n = Self::find_trusted(&mut spaces, owner, volume_id)?;
        for (block, version) in entries {
            if n.blocks.get(&block).is_some_and(|r| rules::drops(r.version, version)) {
                n.blocks.remove(&block);
                self.count.sub(owner, 1);
            }
        }
        Ok(())
    }

    /// The store of (`owner`, `volume_id`) if it takes changes; ENOENT otherwise (none,
    /// or untrusted: the owner then opens a new epoch).
    fn find_trusted(spaces: &mut [Namespace], owner: u32, volume_id: u32) -> Result<&mut Namespace> {
        spaces
            .iter_mut()
            .find(|n| n.owner == owner && n.volume_id == volume_id && rules::accepts_changes(n.trusted))
            .ok_or(ENOENT)
    }

    /// VOLUME_CLOSE: the owner wrote everything back (or, for a new volume, asks whether
    /// an orphan of its name is left: EAGAIN until it is written).
    pub(crate) fn close(&self, owner: u32, volume_id: u32, name: &[u8]) -> Result {
        let name = abi::pool_name(name).ok_or(EINVAL)?;
        // Taken over: the owner must learn it, whatever it asks (`logic/replica.rs`).
        if self.recovered.lock().iter().any(|r| r.is(owner, volume_id)) {
            return Err(estale());
        }
        let removed = {
            let mut spaces = self.spaces.lock();
            self.resolve_orphans(&mut spaces, owner, volume_id, &name)?;
            let Some(i) = spaces.iter().position(|n| n.owner == owner && n.volume_id == volume_id) else {
                return Ok(());
            };
            vec::remove(&mut spaces, i)
        };
        if let Some(removed) = removed {
            self.count.sub(removed.owner, removed.blocks.iter().count() as u64);
            // Pages are freed here, outside the lock.
            drop(removed);
        }
        Ok(())
    }

    /// Deals with the orphans of `owner`'s volume `name` (its stores under a volume id
    /// other than `volume_id`): drops the empty ones, marks the others with replicas for
    /// the recovery thread to write ([`ReplicaStore::recover_orphans`]), keeps the
    /// untrusted ones. EAGAIN while one waits to be written or a takeover of `owner`
    /// runs: the owner asks again at its next heartbeat.
    fn resolve_orphans(
        &self,
        spaces: &mut KVec<Namespace>,
        owner: u32,
        volume_id: u32,
        name: &[u8; abi::NAME_LEN],
    ) -> Result {
        let mut to_write = 0u64;
        let mut i = 0;
        while i < spaces.len() {
            let n = &mut spaces[i];
            if n.owner != owner || n.volume_id == volume_id || &n.name != name {
                i += 1;
                continue;
            }
            let blocks = n.blocks.iter().count() as u64;
            match rules::on_orphan(n.trusted, blocks) {
                OrphanVerdict::Drop => {
                    pr_info!("dropped an empty orphaned store of volume {} of host {}\n", abi::name_str(name), owner);
                    drop(vec::remove(spaces, i));
                    continue;
                }
                OrphanVerdict::WriteFirst => {
                    if !n.orphan {
                        n.orphan = true;
                        pr_warn!(
                            "volume {} of host {}: {} replicas of an earlier incarnation left; writing them to the backing device first\n",
                            abi::name_str(name),
                            owner,
                            blocks
                        );
                    }
                    to_write += 1;
                }
                OrphanVerdict::Keep => {}
            }
            i += 1;
        }
        let recovering = self.recovering.load(Relaxed) & crate::logic::placement::host_bit(owner) != 0;
        if rules::may_confirm(to_write, recovering) {
            Ok(())
        } else {
            Err(EAGAIN)
        }
    }

    /// Takes the namespaces `pick` chooses out of the store; their owners are marked
    /// `recovering` under the same lock, so that no VOLUME_OPEN or VOLUME_CLOSE finds
    /// them gone and unmarked ([`rules::may_confirm`]). The caller clears the marks
    /// ([`ReplicaStore::end_recovery`]) once it put back what it could not write.
    fn take_where(&self, pick: impl Fn(&Namespace) -> bool) -> (KVec<Namespace>, u64, Option<u64>) {
        let mut out = KVec::new();
        let mut owners = 0u64;
        let mut spaces = self.spaces.lock();
        let taken = self.lease.lock().since();
        let mut i = 0;
        while i < spaces.len() {
            if pick(&spaces[i]) {
                if out.reserve(1, GFP_KERNEL).is_err() {
                    break;
                }
                if let Some(n) = vec::remove(&mut spaces, i) {
                    owners |= crate::logic::placement::host_bit(n.owner);
                    // Cannot fail: reserved above.
                    let _ = out.push(n, GFP_KERNEL);
                }
            } else {
                i += 1;
            }
        }
        self.recovering.fetch_or(owners, Relaxed);
        (out, owners, taken)
    }

    fn end_recovery(&self, owners: u64) {
        let _guard = self.spaces.lock();
        self.recovering.fetch_and(!owners, Relaxed);
    }

    /// Writes the orphans [`ReplicaStore::resolve_orphans`] marked (earlier incarnations
    /// of volumes whose owner now asks about a new one: it writes nothing until they are
    /// gone), flushes, and drops them. Their owner is waiting, so the lease alone is
    /// needed (`still_ready`). One that cannot be written stays for the next attempt.
    /// Sleeps.
    pub(crate) fn recover_orphans(
        &self,
        device: &dyn Fn(&[u8]) -> Option<abi::DeviceReq>,
        bioset: &BioSet,
        still_ready: &dyn Fn() -> bool,
    ) {
        let (spaces, owners, taken) = self.take_where(|n| n.orphan && n.trusted);
        if owners == 0 {
            return;
        }
        for n in spaces.into_iter() {
            let count = n.blocks.iter().count() as u64;
            match write_namespace(&n, device, bioset, still_ready) {
                Ok(()) => {
                    self.count.sub(n.owner, count);
                    pr_warn!(
                        "volume {} of host {}: {} replicas of an earlier incarnation written to the backing device\n",
                        abi::name_str(&n.name),
                        n.owner,
                        count
                    );
                }
                Err(e) => {
                    pr_err!(
                        "volume {} of host {}: cannot write the replicas of an earlier incarnation: error {}; will retry\n",
                        abi::name_str(&n.name),
                        n.owner,
                        e.to_errno()
                    );
                    self.put_back(n, taken);
                }
            }
        }
        self.end_recovery(owners);
    }

    /// Returns a namespace that could not be written to the store, taken out when the
    /// lease watch had seen the lease start `taken`: untrusted if an interruption was
    /// observed meanwhile (that observation untrusted only the stores present).
    fn put_back(&self, n: Namespace, taken: Option<u64>) {
        // Waits for memory: dropping it would lose the only copy of acknowledged writes.
        let mut n = Some(n);
        crate::fvp_kernel::sync::alloc_retry(|| {
            // The lease watch is read under `spaces`: an observation after this is
            // followed by `untrust_all`, which then finds the namespace back in place.
            let mut spaces = self.spaces.lock();
            spaces.reserve(1, GFP_KERNEL)?;
            let trusted = self.lease.lock().still_trusted(taken);
            if let Some(mut n) = n.take() {
                if n.trusted && !trusted {
                    n.trusted = false;
                    pr_warn!(
                        "volume {} of host {}: lease interrupted while its replicas were being written; untrusted\n",
                        abi::name_str(&n.name),
                        n.owner
                    );
                }
                // Cannot fail: reserved above.
                let _ = spaces.push(n, GFP_KERNEL);
            }
            Ok(())
        });
    }

    /// Writes every replica of `owner` to its shared backing device (newest version
    /// held per block), flushes, and drops them. A namespace whose device cannot be
    /// opened or written stays for the next attempt. Sleeps.
    pub(crate) fn recover_owner(
        &self,
        owner: u32,
        device: &dyn Fn(&[u8]) -> Option<abi::DeviceReq>,
        bioset: &BioSet,
        still_ready: &dyn Fn() -> bool,
    ) {
        let (spaces, owners, taken) = self.take_where(|n| n.owner == owner && n.trusted);
        for n in spaces.into_iter() {
            let name = abi::name_str(&n.name);
            let count = n.blocks.iter().count() as u64;
            // Recorded before the first write: from then on the owner must learn (ESTALE)
            // that its volume was taken over, even if this attempt stops half-way.
            // Waits for memory: without the record the owner could resume.
            crate::fvp_kernel::sync::alloc_retry(|| {
                let mut recovered = self.recovered.lock();
                if !recovered.iter().any(|r| r.is(n.owner, n.volume_id)) {
                    let record = TakeoverRecord { owner: n.owner, volume_id: n.volume_id, incarnation: n.incarnation };
                    recovered.push(record, GFP_KERNEL)?;
                }
                Ok(())
            });
            match write_namespace(&n, device, bioset, still_ready) {
                Ok(()) => {
                    self.count.sub(n.owner, count);
                    pr_warn!(
                        "recovered volume {} of host {}: {} blocks written to the backing device\n",
                        name,
                        owner,
                        count
                    );
                }
                Err(e) => {
                    pr_err!("cannot recover volume {} of host {}: error {}; will retry\n", name, owner, e.to_errno());
                    self.put_back(n, taken);
                }
            }
        }
        self.end_recovery(owners);
    }
}

/// Blocks written per batch during recovery.
const RECOVERY_BATCH: usize = 64;

/// Writes one namespace to the shared device `device` names it by (this host's path to
/// it), with fvp's bios from `bioset`.
fn write_namespace(
    n: &Namespace,
    device: &dyn Fn(&[u8]) -> Option<abi::DeviceReq>,
    bioset: &BioSet,
    still_ready: &dyn Fn() -> bool,
) -> Result {
    let dev = device(abi::name_str(&n.name).as_bytes()).ok_or(ENODEV)?;
    let devt = block::lookup_devt(&dev.path)?;
    let bdev = OpenedBdev::open(devt)?;
    let sectors = bdev.bdev().nr_sectors();
    let mut waiters = KVec::with_capacity(RECOVERY_BATCH, GFP_KERNEL)?;
    let mut failed = false;
    let mut outside = 0u64;
    for (block, r) in n.blocks.iter() {
        // Checked before every write, not only the first batch: the lease or the
        // majority fence may end meanwhile.
        if !still_ready() {
            // Lost the lease or the majority fence: stop before writing more.
            failed |= wait_all(&mut waiters);
            return Err(if failed { EIO } else { EAGAIN });
        }
        let Some(sector) = rules::block_sector(*block, BLOCK_BYTES as u32, sectors) else {
            // Past the device's end: cannot be written, and retrying cannot help.
            outside += 1;
            continue;
        };
        let mut bio = OwnedBio::new(bioset, bdev.bdev(), true, sector, 1)?;
        if !bio.add_page(r.page.clone_ref()) {
            return Err(EIO);
        }
        let w = IoWaiter::new();
        bio.submit(w.clone());
        waiters.push(w, GFP_KERNEL)?;
        if waiters.len() >= RECOVERY_BATCH {
            failed |= wait_all(&mut waiters);
        }
    }
    failed |= wait_all(&mut waiters);
    if outside > 0 {
        pr_err!(
            "volume {} of host {}: {} replica(s) past the end of {} skipped\n",
            abi::name_str(&n.name),
            n.owner,
            outside,
            abi::name_str(&dev.name)
        );
    }
    if failed {
        return Err(EIO);
    }
    flush_bdev(bioset, bdev.bdev(), &IoWaiter::new())
}

/// Waits for every write in `waiters` and empties it; whether any failed.
fn wait_all(waiters: &mut KVec<Arc<IoWaiter>>) -> bool {
    let mut failed = false;
    while let Some(w) = vec::pop(waiters) {
        failed |= !w.wait();
    }
    failed
}
