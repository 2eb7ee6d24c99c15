// SPDX-License-Identifier: GPL-2.0

//! Device-mapper targets.
//!
//! A module implements [`Target`] and registers it with [`Registration`]; device-mapper
//! then constructs one instance per table line that names the target type, and calls
//! [`Target::map`] for every bio sent to it.
//!
//! C header: [`include/linux/device-mapper.h`](srctree/include/linux/device-mapper.h)

use super::bindings;
use super::bio::{BlockDevice, DmBio};
use core::ffi::CStr;
use core::fmt;
use core::marker::PhantomData;
use core::pin::Pin;
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVec};
use kernel::error::{code::*, to_result, Error, Result};
use kernel::ffi::{c_char, c_int, c_uint, c_void};
use kernel::init::PinInit;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::{ForeignOwnable, Opaque};
use kernel::ThisModule;

/// Why a constructor refused a table line: an errno for device-mapper and the message
/// it logs (`ti->error`).
#[derive(Clone, Copy, Debug)]
pub struct CtrError {
    /// Returned to device-mapper (and to `dmsetup`).
    pub errno: Error,
    /// Logged by device-mapper as `<dev>: <target>: <message>`.
    pub message: &'static CStr,
}

impl CtrError {
    /// An `EINVAL` refusal with `message`.
    pub fn invalid(message: &'static CStr) -> Self {
        Self { errno: EINVAL, message }
    }
}

/// What a target did with a bio (`DM_MAPIO_*`).
///
/// # Invariants
///
/// `Remapped`, `Kill` and `Requeue` are made only by the [`DmBio`] methods that give the
/// bio back to device-mapper (consuming it), and carry that bio's pointer: the map
/// callback checks it is the bio being mapped. Anyone may make [`MapResult::submitted`]:
/// a bio the target neither kept nor gave back was dropped, and `DmBio`'s `Drop`
/// completed it, so device-mapper must not touch it either way.
///
/// [`DmBio`]: super::bio::DmBio
#[derive(Debug, PartialEq, Eq)]
pub struct MapResult(MapKind);

#[derive(Debug, PartialEq, Eq)]
enum MapKind {
    Remapped(*mut bindings::bio),
    Submitted,
    Kill(*mut bindings::bio),
    Requeue(*mut bindings::bio),
}

impl MapResult {
    /// The target took ownership of the bio and completes it itself (or completed it).
    pub fn submitted() -> Self {
        MapResult(MapKind::Submitted)
    }

    /// Device-mapper submits `bio`, which was redirected. Only for `DmBio::remap`.
    pub(super) fn remapped(bio: *mut bindings::bio) -> Self {
        MapResult(MapKind::Remapped(bio))
    }

    /// Device-mapper fails `bio`. Only for a `DmBio` method that consumed it.
    #[allow(dead_code)]
    pub(super) fn kill(bio: *mut bindings::bio) -> Self {
        MapResult(MapKind::Kill(bio))
    }

    /// Device-mapper maps `bio` again later. Only for `DmBio::requeue`.
    pub(super) fn requeue(bio: *mut bindings::bio) -> Self {
        MapResult(MapKind::Requeue(bio))
    }

    /// The `DM_MAPIO_*` value for the map of `bio`. A result made for another bio (a
    /// target that kept an earlier bio and gave that one back instead) must not make
    /// device-mapper act on `bio`, which the target dropped (so completed) or kept: the
    /// earlier bio is failed here, and `bio` counts as submitted.
    fn into_raw_for(self, bio: *mut bindings::bio) -> c_int {
        let (code, of) = match self.0 {
            MapKind::Submitted => return bindings::DM_MAPIO_SUBMITTED as c_int,
            MapKind::Remapped(b) => (bindings::DM_MAPIO_REMAPPED, b),
            MapKind::Kill(b) => (bindings::DM_MAPIO_KILL, b),
            MapKind::Requeue(b) => (bindings::DM_MAPIO_REQUEUE, b),
        };
        if of == bio {
            return code as c_int;
        }
        pr_err!("fvp: a target gave back a bio other than the one it was mapping; failing that one\n");
        // SAFETY: `of` was given back by a `DmBio` method that consumed it (invariant),
        // so nothing else owns it: completing it is its only completion.
        unsafe {
            (*of).bi_status = super::bio::BioStatus::IOERR.raw();
            bindings::bio_endio(of);
        }
        bindings::DM_MAPIO_SUBMITTED as c_int
    }
}

/// Which status device-mapper asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusType {
    /// `dmsetup status`: runtime state.
    Info,
    /// `dmsetup table`: the table line's arguments.
    Table,
    /// The IMA measurement record.
    Ima,
}

/// A device-mapper target instance.
pub trait Target: Sized + Send + Sync + 'static {
    /// State shared by all instances of this target type (owned by the [`Registration`]).
    type Context: Send + Sync;

    /// Constructs an instance from a table line; `args` are the words after the target name.
    fn new(
        context: &Arc<Self::Context>,
        target: &mut TargetInfo,
        args: &[&[u8]],
    ) -> core::result::Result<Pin<KBox<Self>>, CtrError>;

    /// Maps one bio: remap it ([`DmBio::remap`]), or keep it and complete it later
    /// (return [`MapResult::Submitted`]). Called concurrently from the submitters' process
    /// context; may take sleeping locks but should not wait for I/O.
    fn map(&self, target: &TargetInfo, bio: DmBio) -> MapResult;

    /// The device was suspended: no bio is in flight and none arrives until resume.
    /// Device-mapper suspends before a table is replaced or removed.
    fn postsuspend(&self, _target: &TargetInfo) {}

    /// The device resumes I/O.
    fn resume(&self, _target: &TargetInfo) {}

    /// Handles `dmsetup message <dev> 0 <args...>`.
    fn message(&self, _target: &TargetInfo, _args: &[&[u8]]) -> Result {
        Err(EINVAL)
    }

    /// Writes the status line of the given type.
    fn status(&self, target: &TargetInfo, kind: StatusType, out: &mut StatusWriter<'_>);

    /// The device this target sends data to, reported to device-mapper so that it
    /// stacks queue limits and detects overlapping use.
    fn data_device(&self) -> &TargetDevice;

    /// A bio remapped with [`DmBio::remap_tagged`] completed (`ok`: without error).
    /// Called once per such bio, in its completion context (may be an interrupt):
    /// must not sleep.
    fn end_io(&self, _target: &TargetInfo, _tag: super::bio::RemapTag, _ok: bool) {}

    /// The smallest unit of I/O this target accepts, in bytes (its logical block
    /// size): 512 accepts anything; 4096 makes every bio a whole number of 4 KiB blocks.
    fn logical_block_size(&self) -> u32 {
        512
    }
}

/// A device-mapper target (`struct dm_target`) as seen by its implementation.
///
/// # Invariants
///
/// The wrapped `dm_target` is valid for the duration of the borrow. Its geometry
/// (`begin`, `len`) does not change after construction.
#[repr(transparent)]
pub struct TargetInfo(Opaque<bindings::dm_target>);

impl TargetInfo {
    /// # Safety
    ///
    /// `ptr` must be a valid `dm_target` for `'a`, not mutated by anyone else during `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::dm_target) -> &'a Self {
        // SAFETY: `TargetInfo` is `repr(transparent)` over `dm_target`; validity is the
        // caller's guarantee.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// # Safety
    ///
    /// `ptr` must be a valid `dm_target` for `'a` and exclusively ours (during `ctr`).
    unsafe fn from_raw_mut<'a>(ptr: *mut bindings::dm_target) -> &'a mut Self {
        // SAFETY: As for `from_raw`, plus exclusivity guaranteed by the caller.
        unsafe { &mut *ptr.cast::<Self>() }
    }

    fn raw(&self) -> &bindings::dm_target {
        // SAFETY: By the type invariant the target is valid.
        unsafe { &*self.0.get() }
    }

    fn raw_mut(&mut self) -> &mut bindings::dm_target {
        // SAFETY: By the type invariant the target is valid; `&mut self` means we are in
        // the constructor, which has exclusive access.
        unsafe { &mut *self.0.get() }
    }

    /// First sector of the mapped device this target covers.
    pub fn begin(&self) -> u64 {
        self.raw().begin
    }

    /// Number of sectors this target covers.
    pub fn len(&self) -> u64 {
        self.raw().len
    }

    /// Whether the target covers no sectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Converts a sector of the mapped device to an offset within this target
    /// (`dm_target_offset`). Empty flush bios carry sector 0, hence the wrapping.
    pub fn offset(&self, sector: u64) -> u64 {
        sector.wrapping_sub(self.begin())
    }

    /// The mapped device's number (`major:minor` as a `dev_t`).
    pub fn devt(&self) -> u32 {
        // SAFETY: the target is valid and belongs to a table of a live mapped device.
        unsafe { bindings::fvp_helper_dm_target_devt(self.0.get()) }
    }

    /// Splits bios so that none crosses a boundary of `sectors` sectors.
    pub fn set_max_io_len(&mut self, sectors: u64) -> Result {
        // SAFETY: the target is valid and under construction (exclusive).
        to_result(unsafe { bindings::dm_set_target_max_io_len(self.0.get(), sectors) })
    }

    /// Makes the mapped device accept flushes and FUA whatever its devices support: a
    /// target with a volatile cache of its own must see them.
    pub fn set_flush_supported(&mut self) {
        self.raw_mut().set_flush_supported(true);
    }

    /// How many copies of an empty flush bio device-mapper sends to `map`.
    pub fn set_num_flush_bios(&mut self, n: u32) {
        self.raw_mut().num_flush_bios = n;
    }

    /// How many copies of a discard bio device-mapper sends to `map`.
    pub fn set_num_discard_bios(&mut self, n: u32) {
        self.raw_mut().num_discard_bios = n;
    }

    /// How many copies of a write-zeroes bio device-mapper sends to `map`.
    pub fn set_num_write_zeroes_bios(&mut self, n: u32) {
        self.raw_mut().num_write_zeroes_bios = n;
    }

    /// Opens `path` (a device path or `major:minor`) in the table's mode and adds it to
    /// the table's device list.
    pub fn get_device(&mut self, path: &[u8]) -> Result<TargetDevice> {
        let mut cpath = KVec::with_capacity(path.len() + 1, GFP_KERNEL)?;
        cpath.extend_from_slice(path, GFP_KERNEL)?;
        cpath.push(0, GFP_KERNEL)?;
        let ti = self.0.get();
        let mut dev: *mut bindings::dm_dev = core::ptr::null_mut();
        // SAFETY: `ti` is valid (type invariant) and owned by a table, as `dm_get_device`
        // requires during construction; `cpath` is NUL-terminated; `dev` is a valid out
        // pointer.
        to_result(unsafe {
            bindings::dm_get_device(
                ti,
                cpath.as_ptr().cast::<c_char>(),
                bindings::dm_table_get_mode((*ti).table),
                &mut dev,
            )
        })?;
        // INVARIANT: `dev` was just obtained for `ti` and is released only by `Drop`.
        Ok(TargetDevice { ti, dev })
    }
}

/// A device opened for a target with `dm_get_device`.
///
/// # Invariants
///
/// `dev` was obtained with `dm_get_device` for `ti` and is put exactly once, on drop.
/// A `TargetDevice` is only created in a target's constructor and is owned by that
/// target's state, which [`Registration`] drops in the destructor callback (or when the
/// constructor fails), while `ti` is still valid.
pub struct TargetDevice {
    ti: *mut bindings::dm_target,
    dev: *mut bindings::dm_dev,
}

impl TargetDevice {
    /// The opened block device.
    pub fn bdev(&self) -> &BlockDevice {
        // SAFETY: `dev` is a live `dm_dev` (type invariant), whose `bdev` stays open until
        // `dm_put_device`, which happens only after `self` is gone.
        unsafe { BlockDevice::from_raw((*self.dev).bdev) }
    }

    /// The device number (`dev_t`).
    pub fn devt(&self) -> u32 {
        self.bdev().devt()
    }

    /// The device's name as device-mapper prints it (`major:minor`).
    pub fn name(&self) -> &CStr {
        // SAFETY: `dev` is live (type invariant) and `name` is a NUL-terminated array that
        // device-mapper filled when it opened the device and never changes.
        unsafe { CStr::from_ptr((*self.dev).name.as_ptr().cast()) }
    }
}

impl Drop for TargetDevice {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, `dev` was obtained for `ti`, `ti` is still valid,
        // and this is the only put.
        unsafe { bindings::dm_put_device(self.ti, self.dev) };
    }
}

// SAFETY: The pointers are only used to put the device and to read immutable fields;
// `dm_put_device` may run on any thread.
unsafe impl Send for TargetDevice {}
// SAFETY: Shared access only reads fields that are immutable while the device is open.
unsafe impl Sync for TargetDevice {}

/// Formats a status line into device-mapper's buffer, truncating like `DMEMIT`.
pub struct StatusWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> StatusWriter<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        if let Some(first) = buf.first_mut() {
            *first = 0;
        }
        Self { buf, pos: 0 }
    }
}

impl fmt::Write for StatusWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep room for the NUL; device-mapper sees a full buffer and retries larger.
        let room = self.buf.len().saturating_sub(self.pos + 1);
        let n = s.len().min(room);
        self.buf[self.pos..self.pos + n].copy_from_slice(&s.as_bytes()[..n]);
        self.pos += n;
        if self.pos < self.buf.len() {
            self.buf[self.pos] = 0;
        }
        if n < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// A registered device-mapper target type.
///
/// # Invariants
///
/// `target_type` is registered with device-mapper for the lifetime of the value, and
/// its callbacks are the trampolines of `T`.
#[pin_data(PinnedDrop)]
pub struct Registration<T: Target> {
    context: Arc<T::Context>,
    #[pin]
    target_type: Opaque<bindings::target_type>,
    _p: PhantomData<T>,
}

// SAFETY: The registration only hands out shared references to `context`, which is
// `Send + Sync`; the C `target_type` is owned by device-mapper's locking once registered.
unsafe impl<T: Target> Sync for Registration<T> {}
// SAFETY: As for `Sync`; the value is pinned, so moving between threads moves only the box.
unsafe impl<T: Target> Send for Registration<T> {}

impl<T: Target> Registration<T> {
    /// Registers target type `name`, version `version`, owned by `module`.
    ///
    /// While any table uses the target, device-mapper holds a reference on `module`, so
    /// the module cannot be unloaded.
    pub fn new(
        name: &'static CStr,
        version: [u32; 3],
        module: &'static ThisModule,
        context: Arc<T::Context>,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            // Initialised first: callbacks may run as soon as the type is registered.
            context,
            target_type <- Self::register(name, version, module),
            _p: PhantomData,
        })
    }

    fn register(
        name: &'static CStr,
        version: [u32; 3],
        module: &'static ThisModule,
    ) -> impl PinInit<Opaque<bindings::target_type>, Error> {
        let closure = move |slot: *mut Opaque<bindings::target_type>| {
            let tt = Opaque::raw_get(slot);
            // SAFETY: `slot` is valid for writes (pin-init contract). `name` and the
            // callbacks are `'static`; `module` is this module.
            unsafe {
                tt.write(bindings::target_type {
                    name: name.as_ptr().cast(),
                    module: module.as_ptr(),
                    version,
                    ctr: Some(ctr_callback::<T>),
                    dtr: Some(dtr_callback::<T>),
                    map: Some(map_callback::<T>),
                    end_io: Some(end_io_callback::<T>),
                    status: Some(status_callback::<T>),
                    postsuspend: Some(postsuspend_callback::<T>),
                    resume: Some(resume_callback::<T>),
                    message: Some(message_callback::<T>),
                    iterate_devices: Some(iterate_devices_callback::<T>),
                    io_hints: Some(io_hints_callback::<T>),
                    ..Default::default()
                })
            };
            // SAFETY: `tt` is fully initialised and pinned; it is unregistered in `drop`
            // before its memory goes away.
            // INVARIANT: on success the type is registered with `T`'s trampolines.
            to_result(unsafe { bindings::dm_register_target(tt) })
        };
        // SAFETY: On `Ok` the slot is initialised; on `Err` the `Opaque` may stay
        // uninitialised, and nothing was registered.
        unsafe { kernel::init::pin_init_from_closure(closure) }
    }

    /// Finds the registration from a target's `type` pointer.
    ///
    /// # Safety
    ///
    /// `tt` must be the `target_type` of a live `Registration<T>`.
    unsafe fn from_target_type<'a>(tt: *mut bindings::target_type) -> &'a Self {
        // SAFETY: `Opaque` is `repr(transparent)`, so `tt` points at the field
        // `target_type` of a `Registration<T>` (caller's guarantee).
        unsafe { &*kernel::container_of!(tt, Self, target_type) }
    }
}

#[pinned_drop]
impl<T: Target> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the type is registered. Device-mapper holds a
        // module reference for every table using it, so none remain when the module
        // (the owner of this registration) is being unloaded.
        unsafe { bindings::dm_unregister_target(self.target_type.get()) };
    }
}

/// # Safety
///
/// Called by device-mapper only, with a valid target under construction.
unsafe extern "C" fn ctr_callback<T: Target>(
    ti: *mut bindings::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
) -> c_int {
    let fail = |ti: *mut bindings::dm_target, e: CtrError| -> c_int {
        // SAFETY: `ti` is valid during construction; `message` is `'static`.
        unsafe { (*ti).error = e.message.as_ptr().cast_mut().cast() };
        e.errno.to_errno()
    };
    let oom = CtrError { errno: ENOMEM, message: c"out of memory" };
    let mut args = match KVec::<&[u8]>::with_capacity(argc as usize, GFP_KERNEL) {
        Ok(v) => v,
        Err(_) => return fail(ti, oom),
    };
    for i in 0..argc as usize {
        // SAFETY: device-mapper passes `argc` valid NUL-terminated strings in `argv`,
        // which live until the constructor returns.
        let arg = unsafe { kernel::str::CStr::from_char_ptr(*argv.add(i)) };
        if args.push(arg.as_bytes(), GFP_KERNEL).is_err() {
            return fail(ti, oom);
        }
    }
    // SAFETY: `ti->type` is the target type device-mapper found by name: ours, registered
    // by a live `Registration<T>` (it is unregistered only after all tables are gone).
    let registration = unsafe { Registration::<T>::from_target_type((*ti).type_) };
    // SAFETY: During construction device-mapper gives us exclusive use of `ti`.
    let info = unsafe { TargetInfo::from_raw_mut(ti) };
    match T::new(&registration.context, info, &args) {
        Ok(target) => {
            // INVARIANT: `private` holds a `Pin<KBox<T>>` until the destructor callback.
            info.raw_mut().private = target.into_foreign().cast_mut();
            // Every mapped bio carries fvp's `PerBio` (`DmBio::from_raw` relies on it).
            info.raw_mut().per_io_data_size = super::bio::PER_BIO_SIZE as c_uint;
            0
        }
        Err(e) => fail(ti, e),
    }
}

/// # Safety
///
/// Called by device-mapper only, once, for a target whose constructor succeeded.
unsafe extern "C" fn dtr_callback<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: The constructor stored a `Pin<KBox<T>>` in `private`; device-mapper calls
    // the destructor once, after all bios completed, so no borrow remains.
    drop(unsafe { <Pin<KBox<T>> as ForeignOwnable>::from_foreign((*ti).private) });
}

/// # Safety
///
/// Called by device-mapper only, between construction and destruction.
unsafe extern "C" fn map_callback<T: Target>(ti: *mut bindings::dm_target, bio: *mut bindings::bio) -> c_int {
    // SAFETY: `private` holds the `Pin<KBox<T>>` stored by the constructor, not yet freed.
    let target = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*ti).private) };
    // SAFETY: `ti` is valid while it maps bios, and not mutated after construction.
    let info = unsafe { TargetInfo::from_raw(ti) };
    let raw = bio;
    // SAFETY: device-mapper hands the bio to this target, which owns it until it
    // remaps or completes it; the constructor set `per_io_data_size` to `PER_BIO_SIZE`.
    let bio = unsafe { DmBio::from_raw(raw) };
    target.map(info, bio).into_raw_for(raw)
}

/// # Safety
///
/// Called by device-mapper only, when a bio it passed to `map` completes, between
/// construction and destruction.
unsafe extern "C" fn end_io_callback<T: Target>(
    ti: *mut bindings::dm_target,
    bio: *mut bindings::bio,
    error: *mut bindings::blk_status_t,
) -> c_int {
    // SAFETY: `bio` went through `map` (which set up its per-bio data) and is completing.
    if let Some(tag) = unsafe { super::bio::take_remap_tag(bio) } {
        // SAFETY: `private` holds the `Pin<KBox<T>>` stored by the constructor; the
        // destructor runs only after every bio completed.
        let target = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*ti).private) };
        // SAFETY: `ti` is valid while its bios complete, and not mutated after construction.
        let info = unsafe { TargetInfo::from_raw(ti) };
        // SAFETY: device-mapper passes the completion status.
        let ok = unsafe { *error } == 0;
        target.end_io(info, tag, ok);
    }
    bindings::DM_ENDIO_DONE as c_int
}

/// # Safety
///
/// Called by device-mapper only, between construction and destruction.
unsafe extern "C" fn postsuspend_callback<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: as in `map_callback`.
    let target = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*ti).private) };
    // SAFETY: as in `map_callback`.
    target.postsuspend(unsafe { TargetInfo::from_raw(ti) });
}

/// # Safety
///
/// Called by device-mapper only, between construction and destruction.
unsafe extern "C" fn resume_callback<T: Target>(ti: *mut bindings::dm_target) {
    // SAFETY: as in `map_callback`.
    let target = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*ti).private) };
    // SAFETY: as in `map_callback`.
    target.resume(unsafe { TargetInfo::from_raw(ti) });
}

/// # Safety
///
/// Called by device-mapper only, between construction and destruction, with `argc`
/// NUL-terminated arguments.
unsafe extern "C" fn message_callback<T: Target>(
    ti: *mut bindings::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
    _result: *mut c_char,
    _maxlen: c_uint,
) -> c_int {
    let Ok(mut args) = KVec::<&[u8]>::with_capacity(argc as usize, GFP_KERNEL) else {
        return ENOMEM.to_errno();
    };
    for i in 0..argc as usize {
        // SAFETY: device-mapper passes `argc` valid strings that outlive the call.
        let arg = unsafe { kernel::str::CStr::from_char_ptr(*argv.add(i)) };
        if args.push(arg.as_bytes(), GFP_KERNEL).is_err() {
            return ENOMEM.to_errno();
        }
    }
    // SAFETY: as in `map_callback`.
    let target = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*ti).private) };
    // SAFETY: as in `map_callback`.
    match target.message(unsafe { TargetInfo::from_raw(ti) }, &args) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by device-mapper only, between construction and destruction, with a buffer of
/// `maxlen` bytes.
unsafe extern "C" fn status_callback<T: Target>(
    ti: *mut bindings::dm_target,
    kind: bindings::status_type_t,
    _flags: c_uint,
    result: *mut c_char,
    maxlen: c_uint,
) {
    if result.is_null() || maxlen == 0 {
        return;
    }
    // SAFETY: As in `map_callback`.
    let target = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*ti).private) };
    // SAFETY: As in `map_callback`.
    let info = unsafe { TargetInfo::from_raw(ti) };
    // SAFETY: device-mapper passes a writable buffer of `maxlen` bytes that nothing else
    // touches during the call.
    let buf = unsafe { core::slice::from_raw_parts_mut(result.cast::<u8>(), maxlen as usize) };
    let kind = match kind {
        bindings::status_type_t_STATUSTYPE_INFO => StatusType::Info,
        bindings::status_type_t_STATUSTYPE_TABLE => StatusType::Table,
        _ => StatusType::Ima,
    };
    target.status(info, kind, &mut StatusWriter::new(buf));
}

/// # Safety
///
/// Called by device-mapper only, between construction and destruction, with the
/// limits it is stacking for the target's device.
unsafe extern "C" fn io_hints_callback<T: Target>(ti: *mut bindings::dm_target, limits: *mut bindings::queue_limits) {
    // SAFETY: As in `map_callback`.
    let target = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*ti).private) };
    let size = target.logical_block_size();
    if size <= 512 || !size.is_power_of_two() || size as usize > kernel::page::PAGE_SIZE {
        return;
    }
    // SAFETY: device-mapper passes the limits being built, exclusively ours for the call.
    let l = unsafe { &mut *limits };
    l.logical_block_size = l.logical_block_size.max(size);
    l.physical_block_size = l.physical_block_size.max(size);
    l.io_min = l.io_min.max(size);
}

/// # Safety
///
/// Called by device-mapper only, between construction and destruction.
unsafe extern "C" fn iterate_devices_callback<T: Target>(
    ti: *mut bindings::dm_target,
    callout: bindings::iterate_devices_callout_fn,
    data: *mut c_void,
) -> c_int {
    let Some(callout) = callout else { return 0 };
    // SAFETY: As in `map_callback`.
    let target = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow((*ti).private) };
    let dev = target.data_device();
    // SAFETY: `callout` and `data` come from device-mapper as a pair; `dev.dev` is a
    // device this target holds; the range is the target's own.
    unsafe { callout(ti, dev.dev, 0, (*ti).len, data) }
}
