// SPDX-License-Identifier: GPL-2.0

//! The peer side of replication (`docs/replication.md` section 6) as pure decisions:
//! which replica stores a host keeps for other hosts' volumes, which requests change
//! them, when they may be written at a takeover, and where their blocks go on disk.
//!
//! The kernel (`replica.rs`) and the cluster simulator (`tests/sim`) keep the data and
//! call these functions for every decision. Nothing here reads a clock or allocates.
//!
//! # Rules
//!
//! - **Stores.** A store holds the replicas of one volume of one owner, opened with an
//!   epoch. VOLUME_OPEN of another epoch empties it and makes it trusted; of the same
//!   epoch, or of epoch 0, it changes nothing (the owner's "did you take it over?"
//!   probe; epoch 0 is never opened, so a host that holds no store for the volume, or
//!   an older one, is asked without creating or emptying anything). A volume this host
//!   took over answers ESTALE, to VOLUME_OPEN and VOLUME_CLOSE alike.
//! - **Trusted.** A store is *trusted* while this host has held its lease without
//!   interruption since the store was opened. An owner stops counting on a peer (and may
//!   write newer data around it) once a majority fenced that peer, and a host a majority
//!   fenced has no lease (every fencer's grant has expired by the time it fences), so a
//!   lease interruption may hide a fence the host never heard of. On any interruption
//!   ([`LeaseWatch`]) every store becomes untrusted: it takes no more changes (the
//!   owner's requests get ENOENT, so it opens a new epoch) and no automatic takeover
//!   writes it. It is kept: it may be the last copy of acknowledged writes (when the
//!   cluster lost its majority, not this host), which an operator can still write.
//! - **Replicas.** A REPLICATE replaces a block's replica only with a larger version;
//!   DESTAGED and DROP_RANGE drop replicas not newer than their version.
//! - **Takeover.** Only trusted stores are written, each block at the sector
//!   [`block_sector`] checks against the device's size.
//! - **Orphans.** A store of the same owner and volume name as a VOLUME_OPEN or
//!   VOLUME_CLOSE, under another volume id, is an *orphan*: the replicas of an earlier
//!   incarnation of that volume (the owner restarted, or a VOLUME_CLOSE was lost). An
//!   owner holds one live volume per name, and a new volume counts every other host as
//!   stale, writing nothing until each confirmed a VOLUME_OPEN or VOLUME_CLOSE or a
//!   majority fenced it ([`Owner::new`](super::owner::Owner::new)). So a trusted orphan
//!   may be written with the lease alone, and must be before the request is confirmed:
//!   once the new incarnation writes, the orphan's older replicas would land over newer
//!   blocks at a later takeover. See [`on_orphan`].
//! - **Identity.** A store is created or reset only if this host's path to the volume's
//!   shared device names the same device as the owner's: same size and same configured
//!   identity ([`check_device`]); a takeover would write the replicas through that
//!   path. The store then refuses blocks past the device's end ([`block_within`]).
//! - **Takeover records.** A volume written at a takeover is remembered (its owner and
//!   volume id), so that its owner learns it (ESTALE). A record keeps the slot of the
//!   store it came from ([`admits_store`] counts both), and is forgotten once the owner
//!   connects as a later incarnation ([`record_outlived`]): the volume ids of an earlier
//!   incarnation died with it.

/// Replica stores one owner may hold at a host.
pub const STORES_PER_OWNER_MAX: usize = 256;
/// Replica stores a host holds in all.
pub const STORES_MAX: usize = 4096;

/// Whether an owner holding `owner_slots` slots (its stores and takeover records), at a
/// host holding `all_slots`, may open one more store: the bounds keep one owner from
/// taking every slot, and bound the takeover records with the stores they come from.
pub fn admits_store(owner_slots: usize, all_slots: usize) -> bool {
    owner_slots < STORES_PER_OWNER_MAX && all_slots < STORES_MAX
}

/// Whether a takeover record made while the owner ran as incarnation `recorded` is
/// forgotten when it connects as `connected`: only a later incarnation (the owner's
/// module was loaded again, so its volumes, and their ids, are new).
pub fn record_outlived(recorded: u64, connected: u64) -> bool {
    connected > recorded
}

/// A shared device as one host sees it: its size and its configured identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// The configured identity (`[[device]] uuid`), all zero if none.
    pub uuid: [u8; super::abi::DEVICE_UUID_LEN],
}

/// Why a peer refuses a store: its own path to the volume's device would not write the
/// owner's device at a takeover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceMismatch {
    /// No shared device of the volume's name here, or its path does not open.
    NoDevice,
    /// The configured identities differ.
    Uuid,
    /// The sizes differ.
    Size,
}

impl DeviceMismatch {
    /// A short explanation for the log.
    pub fn reason(self) -> &'static str {
        match self {
            DeviceMismatch::NoDevice => "no such shared device here (or it does not open)",
            DeviceMismatch::Uuid => "its configured uuid differs from the owner's",
            DeviceMismatch::Size => "its size differs from the owner's",
        }
    }
}

/// Checks the owner's view of a volume's shared device (`offered`, from VOLUME_OPEN)
/// against this host's (`local`, `None` without one). On a match, the block numbers the
/// store accepts: `0..` that many blocks of `block_size` bytes.
pub fn check_device(
    local: Option<DeviceIdentity>,
    offered: DeviceIdentity,
    block_size: u32,
) -> Result<u64, DeviceMismatch> {
    let local = local.ok_or(DeviceMismatch::NoDevice)?;
    if local.uuid != offered.uuid {
        return Err(DeviceMismatch::Uuid);
    }
    if local.sectors != offered.sectors {
        return Err(DeviceMismatch::Size);
    }
    Ok(super::wire::device_blocks(local.sectors, block_size))
}

/// Whether a store of a volume of `blocks` blocks takes a REPLICATE of `block`.
pub fn block_within(block: u64, blocks: u64) -> bool {
    block < blocks
}

/// The replica blocks one owner may hold at a host of `total_pages` pages of RAM with
/// `other_hosts` other configured hosts: an equal share, among the hosts that may
/// replicate to it, of half the RAM. One owner then cannot push the others into ENOSPC
/// (its writes past the quota are refused, ENOSPC, as when memory runs short: it
/// protects them otherwise, `docs/replication.md`).
pub fn owner_quota(total_pages: u64, other_hosts: u32) -> u64 {
    (total_pages / 2) / u64::from(other_hosts.max(1))
}

/// Whether an owner holding `held` blocks under `quota` may add a new block (a new
/// version of a block it holds replaces it and always may).
pub fn within_quota(held: u64, quota: u64) -> bool {
    held < quota
}

/// What VOLUME_OPEN does to a host's stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenVerdict {
    /// This host took the volume over: answer ESTALE.
    TakenOver,
    /// No store yet: create an empty, trusted one.
    Create,
    /// A store of another epoch: empty it; it is trusted again.
    Reset,
    /// The same epoch, or epoch 0: nothing changes (a probe).
    Unchanged,
    /// Epoch 0 and no store: answer ENOENT. A probed host the owner knows held a
    /// store lost it (it restarted), and may have taken the volume over before, which
    /// it no longer remembers: the owner cannot tell (its operator can).
    NotHeld,
}

/// The decision for VOLUME_OPEN of `epoch`, given the store held for that volume (its
/// epoch), if any, and whether this host took the volume over.
pub fn on_open(held_epoch: Option<u64>, taken_over: bool, epoch: u64) -> OpenVerdict {
    match held_epoch {
        _ if taken_over => OpenVerdict::TakenOver,
        None if epoch == 0 => OpenVerdict::NotHeld,
        Some(_) if epoch == 0 => OpenVerdict::Unchanged,
        None => OpenVerdict::Create,
        Some(e) if e != epoch => OpenVerdict::Reset,
        Some(_) => OpenVerdict::Unchanged,
    }
}

/// Whether REPLICATE, DESTAGED and DROP_RANGE may change a store (else ENOENT).
pub fn accepts_changes(trusted: bool) -> bool {
    trusted
}

/// Whether a REPLICATE of `incoming` replaces the replica held at `held`, if any.
pub fn keeps_incoming(held: Option<u64>, incoming: u64) -> bool {
    held.is_none_or(|h| incoming > h)
}

/// Whether DESTAGED or DROP_RANGE of `version` drops a replica held at `held`.
pub fn drops(held: u64, version: u64) -> bool {
    held <= version
}

/// Whether a store may be written at a takeover.
pub fn may_take_over(trusted: bool, takeover_ready: bool) -> bool {
    trusted && takeover_ready
}

/// What VOLUME_OPEN or VOLUME_CLOSE does to an orphan (see the module's rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrphanVerdict {
    /// Trusted and empty: drop it.
    Drop,
    /// Trusted with replicas: write them to the backing device and drop it; until then
    /// the request is answered EAGAIN (the owner asks again).
    WriteFirst,
    /// Untrusted: keep it as it is (it may be the last copy of acknowledged writes; no
    /// automatic takeover writes it, so it cannot land over the new incarnation's).
    Keep,
}

/// The decision for an orphan holding `blocks` replicas.
pub fn on_orphan(trusted: bool, blocks: u64) -> OrphanVerdict {
    match (trusted, blocks) {
        (false, _) => OrphanVerdict::Keep,
        (true, 0) => OrphanVerdict::Drop,
        (true, _) => OrphanVerdict::WriteFirst,
    }
}

/// Whether VOLUME_OPEN or VOLUME_CLOSE of an owner's volume may be confirmed: no orphan
/// of it waits to be written, and no takeover of that owner's stores is running (one
/// may be writing an orphan of it).
pub fn may_confirm(orphans_to_write: u64, recovering_owner: bool) -> bool {
    orphans_to_write == 0 && !recovering_owner
}

/// Watches the local lease for interruptions (see the module's rules).
///
/// # Invariants
///
/// `since` is the lease start seen at the last [`LeaseWatch::observe`], `None` if the
/// lease was not held then.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LeaseWatch {
    since: Option<u64>,
}

impl LeaseWatch {
    /// A watch that has seen no lease yet.
    pub fn new() -> Self {
        LeaseWatch { since: None }
    }

    /// Feeds `Membership::lease_held_since` (called at least every heartbeat, and before
    /// any takeover decision); true when every store must become untrusted: the lease
    /// is not held, or was interrupted since the last call (a new start).
    pub fn observe(&mut self, since: Option<u64>) -> bool {
        let interrupted = since.is_none() || since != self.since;
        self.since = since;
        interrupted
    }

    /// The lease start seen at the last [`LeaseWatch::observe`]: recorded when stores
    /// are taken out of the store set (a takeover, orphans to write).
    pub fn since(&self) -> Option<u64> {
        self.since
    }

    /// Whether stores taken out when [`LeaseWatch::since`] was `taken`, trusted then,
    /// are still trusted when they are put back (a write that stopped): only if no
    /// interruption was observed meanwhile (the observation that saw one untrusted only
    /// the stores present).
    pub fn still_trusted(&self, taken: Option<u64>) -> bool {
        taken.is_some() && self.since == taken
    }
}

/// The first 512-byte sector of `block` on a device of `device_sectors` sectors with
/// blocks of `block_size` bytes, or `None` if the block does not fit on the device (or
/// the arithmetic overflows): such a block is never written.
pub fn block_sector(block: u64, block_size: u32, device_sectors: u64) -> Option<u64> {
    if block_size < 512 || !block_size.is_multiple_of(512) {
        return None;
    }
    let per_block = u64::from(block_size / 512);
    let first = block.checked_mul(per_block)?;
    let end = first.checked_add(per_block)?;
    (end <= device_sectors).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_blocks_are_bounded_per_owner() {
        assert!(admits_store(0, 0));
        assert!(admits_store(STORES_PER_OWNER_MAX - 1, STORES_MAX - 1));
        assert!(!admits_store(STORES_PER_OWNER_MAX, 0));
        assert!(!admits_store(0, STORES_MAX));
        // 1 GiB of 4 KiB pages, three other hosts: each may hold a sixth of it.
        let pages = 262_144;
        assert_eq!(owner_quota(pages, 3), pages / 6);
        assert_eq!(owner_quota(pages, 0), pages / 2, "no other host: still half");
        assert_eq!(owner_quota(0, 5), 0);
        assert_eq!(owner_quota(u64::MAX, 1), u64::MAX / 2);
        assert!(within_quota(9, 10));
        assert!(!within_quota(10, 10));
    }
    use proptest::prelude::*;

    #[test]
    fn takeover_records_are_bounded_and_outlived() {
        // The records count with the stores: an owner with 255 stores and one record is full.
        assert!(!admits_store(255 + 1, 256));
        assert!(record_outlived(5, 6));
        assert!(!record_outlived(5, 5), "the same incarnation reconnecting still must learn it");
        assert!(!record_outlived(5, 4));
    }

    #[test]
    fn device_identity() {
        let id = |sectors, u| DeviceIdentity { sectors, uuid: [u; 16] };
        assert_eq!(check_device(Some(id(80, 1)), id(80, 1), 4096), Ok(10));
        assert_eq!(check_device(Some(id(87, 0)), id(87, 0), 4096), Ok(10), "a partial block is not used");
        assert_eq!(check_device(None, id(80, 1), 4096), Err(DeviceMismatch::NoDevice));
        assert_eq!(check_device(Some(id(80, 2)), id(80, 1), 4096), Err(DeviceMismatch::Uuid));
        assert_eq!(check_device(Some(id(80, 0)), id(80, 1), 4096), Err(DeviceMismatch::Uuid), "one side unset");
        assert_eq!(check_device(Some(id(88, 1)), id(80, 1), 4096), Err(DeviceMismatch::Size));
        assert!(block_within(9, 10) && !block_within(10, 10) && !block_within(u64::MAX, 10));
    }

    proptest! {
        /// Every block a matched store accepts fits on the device a takeover writes.
        #[test]
        fn accepted_blocks_fit_the_device(sectors: u64, shift in 0u32..4, block: u64) {
            let size = 512u32 << shift;
            let me = DeviceIdentity { sectors, uuid: [7; 16] };
            let blocks = check_device(Some(me), me, size).unwrap();
            prop_assert_eq!(block_within(block, blocks), block_sector(block, size, sectors).is_some());
        }
    }

    #[test]
    fn open_verdicts() {
        assert_eq!(on_open(None, false, 3), OpenVerdict::Create);
        assert_eq!(on_open(Some(2), false, 3), OpenVerdict::Reset);
        assert_eq!(on_open(Some(3), false, 3), OpenVerdict::Unchanged);
        assert_eq!(on_open(Some(3), true, 3), OpenVerdict::TakenOver);
        assert_eq!(on_open(None, true, 1), OpenVerdict::TakenOver);
        // Epoch 0 probes: it never creates or empties a store.
        assert_eq!(on_open(None, false, 0), OpenVerdict::NotHeld);
        assert_eq!(on_open(Some(4), false, 0), OpenVerdict::Unchanged);
        assert_eq!(on_open(Some(4), true, 0), OpenVerdict::TakenOver);
    }

    #[test]
    fn stores_put_back_after_an_interruption_are_untrusted() {
        let mut w = LeaseWatch::new();
        w.observe(Some(5));
        let taken = w.since();
        assert!(w.still_trusted(taken));
        w.observe(None);
        w.observe(Some(9));
        assert!(!w.still_trusted(taken), "interrupted while they were out");
        assert!(!LeaseWatch::new().still_trusted(None));
    }

    #[test]
    fn orphans() {
        assert_eq!(on_orphan(false, 0), OrphanVerdict::Keep);
        assert_eq!(on_orphan(false, 5), OrphanVerdict::Keep);
        assert_eq!(on_orphan(true, 0), OrphanVerdict::Drop);
        assert_eq!(on_orphan(true, 1), OrphanVerdict::WriteFirst);
        assert!(may_confirm(0, false));
        assert!(!may_confirm(1, false) && !may_confirm(0, true));
    }

    #[test]
    fn versions() {
        assert!(keeps_incoming(None, 1));
        assert!(keeps_incoming(Some(1), 2));
        assert!(!keeps_incoming(Some(2), 2));
        assert!(drops(2, 2) && drops(1, 2) && !drops(3, 2));
    }

    #[test]
    fn untrusted_takes_nothing() {
        assert!(!accepts_changes(false) && accepts_changes(true));
        assert!(!may_take_over(false, true) && !may_take_over(true, false) && may_take_over(true, true));
    }

    #[test]
    fn lease_watch() {
        let mut w = LeaseWatch::new();
        assert!(w.observe(None), "no lease: untrust");
        assert!(w.observe(Some(10)), "a new lease: it was interrupted before");
        assert!(!w.observe(Some(10)), "held without interruption");
        assert!(w.observe(Some(50)), "lapsed and regained between two ticks");
        assert!(w.observe(None));
    }

    #[test]
    fn sectors() {
        assert_eq!(block_sector(0, 4096, 8), Some(0));
        assert_eq!(block_sector(1, 4096, 16), Some(8));
        assert_eq!(block_sector(1, 4096, 15), None, "past the end");
        assert_eq!(block_sector(u64::MAX / 4, 4096, u64::MAX), None, "overflow");
        assert_eq!(block_sector(u64::MAX, 512, u64::MAX), None);
        assert_eq!(block_sector(0, 1000, 100), None, "not a sector multiple");
        assert_eq!(block_sector(0, 0, 100), None);
    }

    proptest! {
        #[test]
        fn sector_in_range(block: u64, shift in 0u32..8, sectors: u64) {
            let size = 512u32 << shift;
            if let Some(s) = block_sector(block, size, sectors) {
                prop_assert_eq!(s, block * u64::from(size / 512));
                prop_assert!(s + u64::from(size / 512) <= sectors);
            }
        }
    }
}
