// SPDX-License-Identifier: GPL-2.0

//! The `fvp` device-mapper target: table parsing, status, messages, suspend.
//! The data path is in `volume.rs`. See `docs/target.md` for the syntax.
#![forbid(unsafe_code)]

use crate::flash_pool::FlashPool;
use crate::flash_volume::FlashVolume;
use crate::fvp_kernel::bio::{DmBio, RemapTag};
use crate::fvp_kernel::block::OpenedBdev;
use crate::fvp_kernel::dm::{self, CtrError, MapResult, StatusType, StatusWriter, TargetDevice, TargetInfo};
use crate::logic::abi::{self, POLICY_WRITE_BACK, POLICY_WRITE_THROUGH};
use crate::logic::cache::SlotState;
use crate::logic::replica::DeviceIdentity;
use crate::logic::table::{self, Policy, TableError};
use crate::pool::Released;
use crate::registry::Registry;
use crate::repl::{ProtectedVolume, Replication};
use crate::stats::Stats;
use crate::volume::{Volume, MAX_BLOCKS};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use kernel::prelude::*;
use kernel::sync::Arc;

/// One `fvp` table: a volume over a RAM pool or over a flash pool.
pub(crate) enum FvpTarget {
    Ram(Pin<KBox<RamTarget>>),
    Flash(FlashTarget),
}

/// A volume over a RAM pool: a constructed target.
pub(crate) struct RamTarget {
    /// Device-mapper's reference on the backing device (stacking limits, table status).
    dm_backing: TargetDevice,
    volume: Arc<Volume>,
    registry: Arc<Registry>,
    /// This table took an existing volume on: its policy and sequential cutoff apply at
    /// its first resume, not while the old table still serves I/O (a load may be
    /// cleared, or fail, and never replace it).
    adopted: Option<AdoptedSettings>,
}

struct AdoptedSettings {
    applied: AtomicBool,
    policy: u32,
    sequential_cutoff: u64,
}

fn refuse(e: TableError) -> CtrError {
    let errno = match e {
        TableError::OutOfMemory => ENOMEM,
        _ => EINVAL,
    };
    CtrError { errno, message: e.message() }
}

fn policy_code(p: Policy) -> u32 {
    match p {
        Policy::WriteThrough => POLICY_WRITE_THROUGH,
        Policy::WriteBack => POLICY_WRITE_BACK,
    }
}

/// The info status fields every volume has, up to its pool's name (`docs/target.md`).
fn write_info(
    out: &mut StatusWriter<'_>,
    s: &Stats,
    requested: u32,
    effective: u32,
    dirty: u64,
    pool: &str,
) -> core::fmt::Result {
    write!(
        out,
        "{} {} {} {} {} {} {} {} {} {} {} {} {}",
        table::BLOCK_SIZE,
        policy_name(requested),
        policy_name(effective),
        Stats::get(&s.read_hits),
        Stats::get(&s.read_misses),
        Stats::get(&s.write_hits),
        dirty,
        Stats::get(&s.destaged),
        Stats::get(&s.evictions),
        Stats::get(&s.bypassed),
        Stats::get(&s.reads),
        Stats::get(&s.writes),
        pool,
    )
}

/// The IMA measurement line.
/// What a volume's status lines say, RAM or flash.
struct StatusLine<'a> {
    backing: &'a str,
    pool: &'a str,
    stats: &'a Stats,
    requested: u32,
    effective: u32,
    dirty: u64,
    repl: Option<&'a Replication>,
    health: &'static str,
    sequential_cutoff: u64,
}

impl StatusLine<'_> {
    fn write(&self, kind: StatusType, out: &mut StatusWriter<'_>) {
        let s = self.stats;
        // A full buffer makes device-mapper retry with a larger one, so the error from a
        // truncated write needs no handling here.
        let _ = match kind {
            StatusType::Info => write_info(out, s, self.requested, self.effective, self.dirty, self.pool)
                .and_then(|_| self.repl.map_or(Ok(()), |r| write_repl(out, r)))
                // Last on every line (after the replication fields, if any).
                .and_then(|_| {
                    write!(out, " {} {} {}", self.health, Stats::get(&s.destage_errors), Stats::get(&s.io_errors))
                }),
            StatusType::Table => write!(out, "{} {} {} ", self.backing, self.pool, policy_name(self.requested))
                .and_then(|_| match self.repl {
                    None => write!(out, "peers=0"),
                    Some(r) => write!(out, "peers={} domain={}", r.peers_wanted, r.rule.name()),
                })
                .and_then(|_| {
                    write!(out, " block_size={} sequential_cutoff={}", table::BLOCK_SIZE, self.sequential_cutoff)
                }),
            StatusType::Ima => write_ima(out, self.backing, self.pool, self.requested),
        };
    }
}

/// Replicated volumes add: <state> <peer ids, comma-separated, or -> <epoch>.
fn write_repl(out: &mut StatusWriter<'_>, r: &Replication) -> core::fmt::Result {
    let p = r.peer_ids();
    match (p[0], p[1]) {
        (0, _) => write!(out, " {} - {}", r.state_name(), r.epoch.load(Relaxed)),
        (a, 0) => write!(out, " {} {} {}", r.state_name(), a, r.epoch.load(Relaxed)),
        (a, b) => write!(out, " {} {},{} {}", r.state_name(), a, b, r.epoch.load(Relaxed)),
    }
}

/// The replication of a new volume with `peers>0` (else `None`): the backing device
/// must be one the cluster shares, since a peer writes the volume's blocks to it after a
/// takeover. Its size (`backing_sectors`) and configured uuid go to the peers, which
/// check their own path to it against them.
fn replication_for(
    registry: &Arc<Registry>,
    table: &table::Table<'_>,
    backing_devt: u32,
    backing_sectors: u64,
) -> Result<Option<Arc<Replication>>, CtrError> {
    if table.peers == 0 {
        return Ok(None);
    }
    let cluster = &registry.cluster;
    if cluster.settings().is_none() {
        return Err(CtrError { errno: EINVAL, message: c"peers: no cluster configured (fvpctl cluster apply)" });
    }
    let Some(dev) = cluster.device_by_devt(backing_devt) else {
        return Err(CtrError {
            errno: EINVAL,
            message: c"peers: the backing device is not a shared device of the cluster (fvpctl device add)",
        });
    };
    let device = DeviceIdentity { sectors: backing_sectors, uuid: dev.req.uuid };
    Replication::new(cluster.clone(), dev.req.name, device, table.peers, table.domain)
        .map(Some)
        .map_err(|_| refuse(TableError::OutOfMemory))
}

/// `discard-dirty` on a replicated volume: its peers hold replicas of the blocks,
/// which a takeover would write.
fn refuse_if_replicated(replicated: bool) -> Result {
    if replicated {
        pr_err!("discard-dirty is not supported on replicated volumes (peers>0)\n");
        // EOPNOTSUPP, which userspace knows (the kernel crate names only ENOTSUPP).
        return Err(Error::from_errno(-(kernel::bindings::EOPNOTSUPP as i32)));
    }
    Ok(())
}

/// `resolve keep|discard`: a volume suspended because a peer that held its replicas
/// cannot be asked whether it took it over; the operator knows.
fn resolve(repl: &Option<Arc<Replication>>, volume: &impl ProtectedVolume, how: &[u8]) -> Result {
    let Some(r) = repl else {
        pr_warn!("resolve: the volume is not replicated (peers=0)\n");
        return Err(EINVAL);
    };
    r.resolve(volume, how == b"keep").inspect_err(|_| {
        pr_warn!("resolve: the volume is not waiting for a takeover answer\n");
    })
}

fn write_ima(out: &mut StatusWriter<'_>, backing: &str, pool: &str, requested: u32) -> core::fmt::Result {
    write!(
        out,
        "target_name=fvp,target_version={}.{}.{},backing_device={},pool={},policy={};",
        crate::VERSION.0,
        crate::VERSION.1,
        crate::VERSION.2,
        backing,
        pool,
        policy_name(requested)
    )
}

fn policy_name(code: u32) -> &'static str {
    if code == POLICY_WRITE_BACK {
        "write-back"
    } else {
        "write-through"
    }
}

impl dm::Target for FvpTarget {
    type Context = Registry;

    fn new(registry: &Arc<Registry>, ti: &mut TargetInfo, args: &[&[u8]]) -> Result<Pin<KBox<Self>>, CtrError> {
        let table = table::parse(args).map_err(refuse)?;
        let pool_name = abi::pool_name(table.pool).ok_or(refuse(TableError::NoSuchPool))?;
        let target = match registry.find_flash_pool(&pool_name) {
            Some(pool) => FvpTarget::Flash(FlashTarget::new(registry, ti, &table, pool)?),
            None => FvpTarget::Ram(RamTarget::new(registry, ti, args)?),
        };
        KBox::pin(target, GFP_KERNEL).map_err(|_| refuse(TableError::OutOfMemory))
    }

    fn map(&self, ti: &TargetInfo, bio: DmBio) -> MapResult {
        match self {
            FvpTarget::Ram(t) => t.map(ti, bio),
            FvpTarget::Flash(t) => t.volume.map(ti.offset(bio.sector()), bio),
        }
    }

    fn resume(&self, ti: &TargetInfo) {
        match self {
            FvpTarget::Ram(t) => t.resume(ti),
            FvpTarget::Flash(_) => {}
        }
    }

    fn postsuspend(&self, ti: &TargetInfo) {
        match self {
            FvpTarget::Ram(t) => t.postsuspend(ti),
            FvpTarget::Flash(t) => {
                // Everything acknowledged is durable in the pool across a suspend (its
                // dirty blocks stay there, as after a reboot).
                if t.volume.pool.wait_commit().is_err() {
                    pr_err!("flash volume {}: commit on suspend failed\n", t.volume.id);
                }
                // A replicated volume writes its dirty blocks back, as over a RAM pool: a
                // removal then leaves none behind, and dirty blocks found at the next
                // creation can only be a crash's (see `FlashTarget::new`).
                if t.volume.repl.is_some() {
                    if let Err(e) = t.volume.flush_sync() {
                        pr_err!("flash volume {}: write-back on suspend failed: {}\n", t.volume.id, e.to_errno());
                    }
                }
            }
        }
    }

    fn message(&self, ti: &TargetInfo, args: &[&[u8]]) -> Result {
        match self {
            FvpTarget::Ram(t) => t.message(ti, args),
            FvpTarget::Flash(t) => t.message(args),
        }
    }

    fn status(&self, ti: &TargetInfo, kind: StatusType, out: &mut StatusWriter<'_>) {
        match self {
            FvpTarget::Ram(t) => t.status(ti, kind, out),
            FvpTarget::Flash(t) => t.status(kind, out),
        }
    }

    fn end_io(&self, _ti: &TargetInfo, tag: RemapTag, ok: bool) {
        // Only flash volumes remap with a tag (hits sent straight to the pool's device).
        if let FvpTarget::Flash(t) = self {
            t.volume.hit_ended(tag, ok);
        }
    }

    fn data_device(&self) -> &TargetDevice {
        match self {
            FvpTarget::Ram(t) => t.data_device(),
            FvpTarget::Flash(t) => &t.dm_backing,
        }
    }

    fn logical_block_size(&self) -> u32 {
        match self {
            FvpTarget::Ram(_) => 512,
            // Whole blocks only, as dm-writecache's default: a write never shares a
            // block with another one in flight (nothing acknowledged is rewritten in
            // place, so a partial write would merge with a copy another write may be
            // replacing).
            FvpTarget::Flash(_) => table::BLOCK_SIZE,
        }
    }
}

impl dm::Target for RamTarget {
    type Context = Registry;

    fn new(registry: &Arc<Registry>, ti: &mut TargetInfo, args: &[&[u8]]) -> Result<Pin<KBox<Self>>, CtrError> {
        let table = table::parse(args).map_err(refuse)?;
        let pool_name = abi::pool_name(table.pool).ok_or(refuse(TableError::NoSuchPool))?;
        // Held from the pool's look-up until the volume is registered in it: a pool
        // destroyed meanwhile (which takes this lock too) would keep a volume nobody
        // writes back or finds.
        let _one = registry.constructing.lock();
        let pool = registry.find_pool(&pool_name).ok_or(refuse(TableError::NoSuchPool))?;
        let dm_backing = ti.get_device(table.backing_dev).map_err(|e| {
            pr_err!(
                "cannot open backing device {:?}: error {}\n",
                kernel::str::BStr::from_bytes(table.backing_dev),
                e.to_errno()
            );
            refuse(TableError::CannotOpenBackingDevice)
        })?;
        let backing_sectors = dm_backing.bdev().nr_sectors();
        table::check_length(ti.len(), backing_sectors).map_err(|e| {
            pr_err!(
                "target length {} sectors, backing device {:?} has {} sectors\n",
                ti.len(),
                dm_backing.name(),
                backing_sectors
            );
            refuse(e)
        })?;
        let backing = OpenedBdev::open(dm_backing.devt()).map_err(|_| refuse(TableError::CannotOpenBackingDevice))?;

        // Flushes, discards and write-zeroes reach `map` once each; bios span at most
        // MAX_BLOCKS blocks.
        ti.set_num_flush_bios(1);
        // The pool is a volatile cache: flushes must reach us even over a backing
        // device without one, or fsync would return with dirty data only in RAM.
        ti.set_flush_supported();
        ti.set_num_discard_bios(1);
        ti.set_num_write_zeroes_bios(1);
        ti.set_max_io_len(u64::from(MAX_BLOCKS) * u64::from(table::BLOCK_SIZE / 512))
            .map_err(|_| refuse(TableError::OutOfMemory))?;

        let devt = ti.devt();
        let backing_devt = dm_backing.devt();
        if registry.flash_volume_over(backing_devt).is_some() {
            return Err(CtrError {
                errno: EBUSY,
                message: c"the backing device is already cached by an fvp volume of a flash pool",
            });
        }
        if registry.is_volume_device(backing_devt) {
            // Both volumes would draw on the module's one reserve of IoOps and bios:
            // with it used up, the upper one's I/O could wait for elements only the
            // lower one frees.
            return Err(CtrError {
                errno: EINVAL,
                message: c"the backing device is an fvp volume (fvp over fvp is not supported)",
            });
        }
        // A volume over this backing device already exists: a reload of its device, or
        // a device created again over a detached volume's backing device. Taking it on
        // keeps its cached and dirty blocks; anything else over the same device would
        // let two caches disagree about it.
        if let Some((vpool, existing)) = registry.volume_over(backing_devt) {
            let detached = existing.tables.load(Relaxed) == 0;
            let reload = existing.devt.load(Relaxed) == devt;
            let same_setup = Arc::ptr_eq(&vpool, &pool)
                && match &existing.repl {
                    None => table.peers == 0,
                    Some(r) => r.peers_wanted == table.peers && r.rule == table.domain,
                };
            if (detached || reload) && same_setup {
                if pool.adopt(&existing, devt) {
                    if detached {
                        pr_info!(
                            "volume {}: taken on again with {} dirty blocks\n",
                            existing.id,
                            existing.dirty.load(Relaxed)
                        );
                    }
                    registry.volume_created();
                    let adopted = Some(AdoptedSettings {
                        applied: AtomicBool::new(false),
                        policy: policy_code(table.policy),
                        sequential_cutoff: table.sequential_cutoff,
                    });
                    let target = RamTarget { dm_backing, volume: existing, registry: registry.clone(), adopted };
                    // On failure the dropped target releases the volume again.
                    return KBox::pin(target, GFP_KERNEL).map_err(|_| refuse(TableError::OutOfMemory));
                }
                // Retiring since the look-up: clean and about to be unregistered; a
                // new volume takes its place.
            } else if detached {
                pr_err!(
                    "{} dirty blocks of a removed volume over this backing device wait in pool {}: create the volume again with that pool and the same peers and domain, or send it discard-dirty\n",
                    existing.dirty.load(Relaxed),
                    abi::name_str(&vpool.name)
                );
                return Err(CtrError {
                    errno: EBUSY,
                    message: c"the backing device has dirty blocks of a removed fvp volume (see the kernel log)",
                });
            } else if !reload {
                return Err(CtrError {
                    errno: EBUSY,
                    message: c"the backing device is already cached by another fvp device",
                });
            } else {
                // A reload that changes the pool or the replication. The old volume
                // would drain at the suspend, but if the disk refused that drain its
                // dirty blocks would stay behind, detached, while the new table served
                // the disk's older data and later writes: its retried write-back would
                // then land over them. Moving a volume is a removal and a new device.
                pr_err!(
                    "volume {}: a reload cannot change its pool, peers or domain: remove the device and create it again\n",
                    existing.id
                );
                return Err(CtrError {
                    errno: EBUSY,
                    message: c"a reload cannot change the volume's pool, peers or domain (remove and create it again)",
                });
            }
        }
        let repl = replication_for(registry, &table, dm_backing.devt(), dm_backing.bdev().nr_sectors())?;
        let volume = pool
            .add_volume(|id| {
                Volume::new(
                    id,
                    pool.clone(),
                    backing,
                    backing_devt,
                    devt,
                    policy_code(table.policy),
                    table.sequential_cutoff,
                    repl.clone(),
                    registry.shared.module,
                )
            })
            .map_err(
                |e| if e == ENOSPC { refuse(TableError::TooManyVolumes) } else { refuse(TableError::OutOfMemory) },
            )?;
        let registered = match &volume.repl {
            Some(r) => registry.cluster.add_volume(r.volume_id, volume.clone()),
            None => Ok(()),
        };
        if registered.is_err() {
            pool.remove_volume(&volume);
            return Err(refuse(TableError::OutOfMemory));
        }
        let target = RamTarget { dm_backing, volume, registry: registry.clone(), adopted: None };
        registry.volume_created();
        KBox::pin(target, GFP_KERNEL).map_err(|_| refuse(TableError::OutOfMemory))
    }

    fn map(&self, ti: &TargetInfo, bio: DmBio) -> MapResult {
        let rel = ti.offset(bio.sector());
        self.volume.map(rel, bio)
    }

    fn resume(&self, _ti: &TargetInfo) {
        if let Some(a) = &self.adopted {
            if !a.applied.swap(true, Relaxed) {
                self.volume.set_policy(a.policy);
                self.volume.seq_cutoff.store(a.sequential_cutoff, Relaxed);
            }
        }
    }

    fn postsuspend(&self, _ti: &TargetInfo) {
        // Nothing may stay only in RAM across a suspend: the table may be replaced or
        // removed next.
        if let Err(e) = self.volume.drain_sync() {
            pr_err!("drain on suspend failed: {}\n", e.to_errno());
        }
    }

    fn message(&self, _ti: &TargetInfo, args: &[&[u8]]) -> Result {
        match args {
            [b"flush"] => {
                // Start writing everything back; `fvpctl volume drain` watches the count.
                self.volume.pool.make_urgent();
                Ok(())
            }
            [b"policy", name] => {
                let policy = Policy::parse(name).ok_or(EINVAL)?;
                self.volume.set_policy(policy_code(policy));
                Ok(())
            }
            [b"clear-stats"] => {
                self.volume.stats.clear();
                Ok(())
            }
            [b"discard-dirty"] => {
                refuse_if_replicated(self.volume.repl.is_some())?;
                let n = self.volume.discard_dirty();
                pr_warn!(
                    "volume {}: discard-dirty: {} dirty blocks dropped; the backing device keeps older data for them\n",
                    self.volume.id,
                    n
                );
                Ok(())
            }
            [b"resolve", how @ (b"keep" | b"discard")] => resolve(&self.volume.repl, &*self.volume, how),
            [b"retry"] => {
                // After a backing-device failure: write the dirty blocks back now
                // rather than at the destager's next retry.
                self.volume.pool.make_urgent();
                Ok(())
            }
            _ => {
                pr_warn!(
                    "unknown message (known: flush, retry, discard-dirty, resolve <keep|discard>, policy <write-through|write-back>, clear-stats)\n"
                );
                Err(EINVAL)
            }
        }
    }

    fn status(&self, _ti: &TargetInfo, kind: StatusType, out: &mut StatusWriter<'_>) {
        let v = &self.volume;
        let line = StatusLine {
            backing: self.dm_backing.name().to_str().unwrap_or("?"),
            pool: abi::name_str(&v.pool.name),
            stats: &v.stats,
            requested: v.requested(),
            effective: v.effective(),
            dirty: v.dirty.load(Relaxed),
            repl: v.repl.as_deref(),
            health: v.health(),
            sequential_cutoff: v.seq_cutoff.load(Relaxed),
        };
        line.write(kind, out);
    }

    fn data_device(&self) -> &TargetDevice {
        &self.dm_backing
    }
}

impl Drop for RamTarget {
    fn drop(&mut self) {
        let v = &self.volume;
        match v.pool.release(v) {
            Released::InUse => {}
            Released::Retire => v.retire(),
            // Suspend drained the volume; what is left could not be written back.
            // Dropping it would lose acknowledged writes: it stays, and is retried.
            Released::Detached => pr_err!(
                "volume {} removed with {} dirty blocks the backing device refused: they stay in pool {} and are retried (fvp cannot be unloaded meanwhile); create the volume again over the same device to reach them, or send it discard-dirty\n",
                v.id,
                v.dirty.load(Relaxed),
                abi::name_str(&v.pool.name)
            ),
        }
        self.registry.volume_destroyed();
    }
}

/// A volume over a flash pool: a constructed target.
pub(crate) struct FlashTarget {
    dm_backing: TargetDevice,
    volume: Arc<FlashVolume>,
    registry: Arc<Registry>,
}

impl FlashTarget {
    fn new(
        registry: &Arc<Registry>,
        ti: &mut TargetInfo,
        table: &table::Table<'_>,
        pool: Arc<FlashPool>,
    ) -> Result<Self, CtrError> {
        let _one = registry.constructing.lock();
        let dm_backing = ti.get_device(table.backing_dev).map_err(|_| refuse(TableError::CannotOpenBackingDevice))?;
        let backing_sectors = dm_backing.bdev().nr_sectors();
        table::check_length(ti.len(), backing_sectors).map_err(refuse)?;
        let backing_devt = dm_backing.devt();
        if registry.is_volume_device(backing_devt) || registry.volume_over(backing_devt).is_some() {
            return Err(CtrError {
                errno: EBUSY,
                message: c"the backing device is an fvp volume, or cached by one of a RAM pool",
            });
        }
        if let Some(other) = registry.flash_volume_over(backing_devt) {
            if !Arc::ptr_eq(&other.pool, &pool) {
                return Err(CtrError { errno: EBUSY, message: c"the backing device is cached by another flash pool" });
            }
        }
        let backing = OpenedBdev::open(backing_devt).map_err(|_| refuse(TableError::CannotOpenBackingDevice))?;
        ti.set_num_flush_bios(1);
        // The pool's device has a volatile cache of its own: flushes must reach us.
        ti.set_flush_supported();
        ti.set_num_discard_bios(1);
        ti.set_max_io_len(u64::from(MAX_BLOCKS) * u64::from(table::BLOCK_SIZE / 512))
            .map_err(|_| refuse(TableError::OutOfMemory))?;
        let devt = ti.devt();
        let policy = policy_code(table.policy);
        // Unused if a reload shares the volume (it has its own).
        let repl = replication_for(registry, table, backing_devt, backing_sectors)?;
        let volume = pool
            .attach(table.backing_dev, backing_sectors, devt, |id, dirty| {
                FlashVolume::new(id, pool.clone(), backing, backing_devt, devt, policy, dirty, repl)
            })
            .map_err(|e| {
                let message = if e == EBUSY {
                    c"the pool's record of this backing device is in use by another fvp device"
                } else if e == ENOSPC {
                    c"the flash pool records 256 backing devices already"
                } else if e == EINVAL {
                    c"the flash pool holds blocks of another device at this path (see the kernel log)"
                } else {
                    c"cannot record the backing device in the flash pool"
                };
                CtrError { errno: e, message }
            })?;
        let same_setup = match &volume.repl {
            None => table.peers == 0,
            Some(r) => r.peers_wanted == table.peers && r.rule == table.domain,
        };
        if !same_setup {
            // A reload sharing the volume: its replication cannot change under it.
            pool.detach(&volume);
            return Err(CtrError {
                errno: EBUSY,
                message: c"a reload cannot change the volume's peers or domain (remove and create it again)",
            });
        }
        if let (Some(_), 1, dirty @ 1..) = (&volume.repl, volume.tables.load(Relaxed), volume.dirty.load(Relaxed)) {
            // Dirty blocks of an earlier incarnation, left by a crash (a replicated
            // volume writes them back when removed). If a peer took the volume over
            // since, they are older than what it wrote, and what was written after it;
            // if every host lost power at once, they are the only copy. The operator
            // knows which (docs/flash.md, "Replication").
            pr_err!(
                "flash pool {}: {} dirty blocks of this device from before (a crash?); if a peer took the volume over since, they are stale: create it with peers=0 and send discard-dirty, else with peers=0 and send flush; then create it with peers\n",
                abi::name_str(&pool.name),
                dirty
            );
            pool.detach(&volume);
            return Err(CtrError {
                errno: EBUSY,
                message: c"the flash pool holds dirty blocks of this device from before (see the kernel log)",
            });
        }
        if let (Some(r), 1) = (&volume.repl, volume.tables.load(Relaxed)) {
            // A new replicated volume. After a crash its peers may hold an orphan (the
            // replicas of its earlier incarnation), written to the backing device before
            // this one runs: a clean copy here may be older than that (docs/flash.md,
            // "Replication"). Dirty copies are at least as new (acknowledged writes
            // were committed first) and are written back after the orphan.
            let dropped_clean = pool.purge(&volume, |st| st == SlotState::Clean);
            let _ = dropped_clean;
            if registry.cluster.add_volume(r.volume_id, volume.clone()).is_err() {
                pool.detach(&volume);
                return Err(refuse(TableError::OutOfMemory));
            }
        }
        if volume.dirty.load(Relaxed) > 0 {
            pr_info!(
                "flash volume {}: {} dirty blocks of this backing device found in pool {}\n",
                volume.id,
                volume.dirty.load(Relaxed),
                abi::name_str(&pool.name)
            );
        }
        registry.volume_created();
        Ok(FlashTarget { dm_backing, volume, registry: registry.clone() })
    }

    fn message(&self, args: &[&[u8]]) -> Result {
        match args {
            [b"flush"] | [b"retry"] => {
                self.volume.pool.kick_destager(true);
                Ok(())
            }
            [b"policy", name] => {
                let policy = Policy::parse(name).ok_or(EINVAL)?;
                self.volume.set_policy(policy_code(policy));
                Ok(())
            }
            [b"clear-stats"] => {
                self.volume.stats.clear();
                Ok(())
            }
            [b"discard-dirty"] => {
                refuse_if_replicated(self.volume.repl.is_some())?;
                let n = {
                    // No write-back batch in flight: it could mark a block clean after.
                    let _one = self.volume.pool.destage_lock.lock();
                    self.volume.pool.purge(&self.volume, |st| st == SlotState::Dirty)
                };
                pr_warn!(
                    "flash volume {}: discard-dirty: {} dirty blocks dropped; the backing device keeps older data for them\n",
                    self.volume.id,
                    n
                );
                Ok(())
            }
            [b"resolve", how @ (b"keep" | b"discard")] => resolve(&self.volume.repl, &*self.volume, how),
            _ => {
                pr_warn!(
                    "unknown message for a flash volume (known: flush, retry, discard-dirty, resolve <keep|discard>, policy <write-through|write-back>, clear-stats)\n"
                );
                Err(EINVAL)
            }
        }
    }

    fn status(&self, kind: StatusType, out: &mut StatusWriter<'_>) {
        let v = &self.volume;
        let line = StatusLine {
            backing: self.dm_backing.name().to_str().unwrap_or("?"),
            pool: abi::name_str(&v.pool.name),
            stats: &v.stats,
            requested: v.requested(),
            effective: v.effective(),
            dirty: v.dirty.load(Relaxed),
            repl: v.repl.as_deref(),
            health: v.health(),
            // Not used on flash pools (reported as 0).
            sequential_cutoff: 0,
        };
        line.write(kind, out);
    }
}

impl Drop for FlashTarget {
    fn drop(&mut self) {
        let v = &self.volume;
        if v.pool.detach(v) {
            if let Some(r) = &v.repl {
                r.cluster.remove_volume(r.volume_id);
                if v.dirty.load(Relaxed) == 0 {
                    // Nothing dirty: the peers' replicas are no longer needed.
                    r.close();
                } else {
                    // The write-back on suspend failed (no lease, a failing device):
                    // the peers keep their replicas (an orphan), and the next table
                    // over these blocks is refused (docs/flash.md, "Replication").
                    pr_warn!(
                        "flash volume {}: removed with {} dirty blocks: they stay in the pool, and their replicas at the peers\n",
                        v.id,
                        v.dirty.load(Relaxed)
                    );
                }
            }
        }
        self.registry.volume_destroyed();
    }
}
