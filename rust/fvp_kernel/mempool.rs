// SPDX-License-Identifier: GPL-2.0

//! Reference-counted objects allocated from a mempool: per-I/O state that must exist
//! for every bio however short memory is, as device-mapper targets keep theirs in
//! per-bio data or mempools.
//!
//! C header: [`include/linux/mempool.h`](srctree/include/linux/mempool.h)

use super::bindings;
use core::marker::PhantomData;
use core::mem::offset_of;
use core::ops::Deref;
use core::ptr::NonNull;
use kernel::init::PinInit;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::Opaque;
use kernel::workqueue::{HasWork, RawWorkItem, Work, WorkItem, WorkItemPointer};

/// A `mempool_t` of kmalloc'd elements.
///
/// # Invariants
///
/// `ptr` is a live mempool created by `mempool_create_kmalloc_pool` and owned by this
/// value. Every element taken from it holds an `Arc` of this value until it is given
/// back, so the pool is destroyed only once all its elements are back.
struct RawMempool {
    ptr: NonNull<bindings::mempool_s>,
}

// SAFETY: a mempool is used from any context by design; it locks internally.
unsafe impl Send for RawMempool {}
// SAFETY: as above.
unsafe impl Sync for RawMempool {}

impl Drop for RawMempool {
    fn drop(&mut self) {
        // SAFETY: the pool is ours (invariant) and every element is back: each held an
        // `Arc` of this value until it was freed.
        unsafe { bindings::fvp_helper_mempool_destroy(self.ptr.as_ptr()) };
    }
}

/// What one pool element holds.
#[repr(C)]
struct Element<T> {
    refcount: Opaque<bindings::refcount_t>,
    pool: Arc<RawMempool>,
    value: T,
}

/// A pool of `T`s with `min_nr` kept in reserve: [`ObjectPool::alloc`] never fails, it
/// waits for an element to come back instead (`mempool_alloc` with `GFP_NOIO`).
///
/// Progress needs every element in use to come back without allocating another from
/// the same pool, which is how callers must use it (one per bio, freed when it ends).
pub struct ObjectPool<T> {
    raw: Arc<RawMempool>,
    _value: PhantomData<fn() -> T>,
}

impl<T> ObjectPool<T> {
    /// kmalloc aligns every allocation to at least 8 bytes (`ARCH_KMALLOC_MINALIGN`).
    const ALIGNED: () = assert!(core::mem::align_of::<Element<T>>() <= 8);

    /// A pool holding `min_nr` elements in reserve.
    pub fn new(min_nr: u32) -> Result<Self> {
        #[allow(clippy::let_unit_value)]
        let () = Self::ALIGNED;
        let min_nr = i32::try_from(min_nr).map_err(|_| EINVAL)?;
        // SAFETY: no preconditions; the size is that of a real type.
        let ptr = unsafe { bindings::fvp_helper_mempool_create_kmalloc(min_nr, core::mem::size_of::<Element<T>>()) };
        let raw = RawMempool { ptr: NonNull::new(ptr).ok_or(ENOMEM)? };
        Ok(Self { raw: Arc::new(raw, GFP_KERNEL)?, _value: PhantomData })
    }

    /// An element initialised by `init`, with one reference. Sleeps (process context
    /// only) until an element is free if memory is short; never does I/O to reclaim.
    pub fn alloc<E>(&self, init: impl PinInit<T, E>) -> core::result::Result<PoolArc<T>, E> {
        // SAFETY: the pool is live (invariant of `RawMempool`). With `GFP_NOIO`, which
        // may sleep, `mempool_alloc` does not return NULL.
        let ptr = unsafe { bindings::fvp_helper_mempool_alloc_noio(self.raw.ptr.as_ptr()) }.cast::<Element<T>>();
        let Some(ptr) = NonNull::new(ptr) else {
            // Not reached (see above); kept so that a NULL is never dereferenced.
            panic!("mempool_alloc(GFP_NOIO) returned NULL");
        };
        let p = ptr.as_ptr();
        // SAFETY: `p` is an element of the pool: `size_of::<Element<T>>()` bytes, aligned
        // (kmalloc alignment, checked by `ALIGNED`), uninitialised and ours.
        unsafe {
            core::ptr::addr_of_mut!((*p).refcount).write(Opaque::new(bindings::REFCOUNT_INIT(1)));
            core::ptr::addr_of_mut!((*p).pool).write(self.raw.clone());
        }
        // SAFETY: `value` is valid for writes and will not move: the element stays where
        // it is until it is freed.
        if let Err(e) = unsafe { init.__pinned_init(core::ptr::addr_of_mut!((*p).value)) } {
            // SAFETY: `pool` was written above; `value` was left uninitialised by the
            // failed initialiser, so the element goes back with only `pool` dropped.
            unsafe {
                let pool = core::ptr::addr_of_mut!((*p).pool).read();
                bindings::fvp_helper_mempool_free(p.cast(), pool.ptr.as_ptr());
            }
            return Err(e);
        }
        // INVARIANT: fully initialised, with the one reference the new value owns.
        Ok(PoolArc { ptr, _owns: PhantomData })
    }
}

/// A reference-counted `T` in an [`ObjectPool`] element, given back to the pool when
/// the last reference is dropped.
///
/// # Invariants
///
/// `ptr` points to an initialised element whose refcount counts this value; the value
/// is pinned (never moved before it is dropped in place).
pub struct PoolArc<T> {
    ptr: NonNull<Element<T>>,
    _owns: PhantomData<Element<T>>,
}

// SAFETY: as for `Arc<T>`: the value is shared by every thread holding a reference and
// dropped by whichever drops the last.
unsafe impl<T: Send + Sync> Send for PoolArc<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for PoolArc<T> {}

impl<T> PoolArc<T> {
    /// Gives up the reference as a pointer to the value, for C to carry (`bi_private`,
    /// a queued `work_struct`); [`PoolArc::from_raw`] takes it back.
    pub fn into_raw(self) -> *const T {
        let ptr = self.ptr.as_ptr();
        core::mem::forget(self);
        // SAFETY: `ptr` points to a live element (invariant).
        unsafe { core::ptr::addr_of!((*ptr).value) }
    }

    /// Takes back a reference given up by [`PoolArc::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` came from `into_raw` on a `PoolArc<T>` and is taken back only once.
    pub unsafe fn from_raw(ptr: *const T) -> Self {
        // SAFETY: by the contract `ptr` is the `value` field of an element.
        let element = unsafe { ptr.cast::<u8>().sub(offset_of!(Element<T>, value)) }.cast::<Element<T>>();
        // SAFETY: an element's address is not null.
        let ptr = unsafe { NonNull::new_unchecked(element.cast_mut()) };
        // INVARIANT: the reference given up by `into_raw` is ours again.
        Self { ptr, _owns: PhantomData }
    }
}

impl<T> Deref for PoolArc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the element is live and initialised while we hold a reference.
        unsafe { &self.ptr.as_ref().value }
    }
}

impl<T> Clone for PoolArc<T> {
    fn clone(&self) -> Self {
        // SAFETY: the element is live; `refcount_inc` saturates rather than overflow.
        unsafe { bindings::refcount_inc(self.ptr.as_ref().refcount.get()) };
        // INVARIANT: the new value owns the reference just taken.
        Self { ptr: self.ptr, _owns: PhantomData }
    }
}

impl<T> Drop for PoolArc<T> {
    fn drop(&mut self) {
        let p = self.ptr.as_ptr();
        // SAFETY: the element is live while we hold a reference.
        let last = unsafe { bindings::refcount_dec_and_test((*p).refcount.get()) };
        if !last {
            return;
        }
        // SAFETY: ours was the last reference, so nothing else can reach the element:
        // drop the value in place, then give the element back to its pool, whose `Arc`
        // we move out first (it keeps the pool alive until the free).
        unsafe {
            core::ptr::drop_in_place(core::ptr::addr_of_mut!((*p).value));
            let pool = core::ptr::addr_of_mut!((*p).pool).read();
            bindings::fvp_helper_mempool_free(p.cast(), pool.ptr.as_ptr());
        }
    }
}

/// A value told once, with an argument, through a reference whose type a [`Notifier`]
/// erased.
pub trait Notify<A>: Send + Sync + Sized {
    /// Called once for the reference a [`Notifier`] holds, which it consumes.
    fn notify(this: PoolArc<Self>, arg: A);
}

/// A [`PoolArc`] of some `T: Notify<A>` with its type erased, in the manner of Binder's
/// `DArc<dyn DeliverToRead>`: a layer that must not know `T` (the network, holding a
/// write until its peer's ACK) can only notify it once, or drop it.
///
/// # Invariants
///
/// `ptr` came from [`PoolArc::into_raw`] of a `PoolArc<T>` whose reference this value
/// owns, and `notify_fn`/`drop_fn` are [`notify_raw::<T, A>`]/[`drop_raw::<T>`] for that
/// same `T`.
pub struct Notifier<A> {
    ptr: *const (),
    notify_fn: unsafe fn(*const (), A),
    drop_fn: unsafe fn(*const ()),
}

// SAFETY: the erased `T` is `Send + Sync` (`Notify`'s bound), so its reference may move
// to and be used from any thread, as a `PoolArc<T>` may.
unsafe impl<A> Send for Notifier<A> {}
// SAFETY: a shared `Notifier` gives no access to `T` at all.
unsafe impl<A> Sync for Notifier<A> {}

/// # Safety
///
/// `ptr` came from `PoolArc::<T>::into_raw` and its reference is taken back only here.
unsafe fn notify_raw<T: Notify<A>, A>(ptr: *const (), arg: A) {
    // SAFETY: by the contract.
    let this = unsafe { PoolArc::<T>::from_raw(ptr.cast()) };
    T::notify(this, arg);
}

/// # Safety
///
/// As for [`notify_raw`].
unsafe fn drop_raw<T>(ptr: *const ()) {
    // SAFETY: by the contract.
    drop(unsafe { PoolArc::<T>::from_raw(ptr.cast()) });
}

impl<A> Notifier<A> {
    /// Erases the type of `this`.
    pub fn new<T: Notify<A>>(this: PoolArc<T>) -> Self {
        // INVARIANT: the reference `into_raw` gives up is this value's, and the two
        // functions are instantiated for its `T`.
        Self { ptr: this.into_raw().cast(), notify_fn: notify_raw::<T, A>, drop_fn: drop_raw::<T> }
    }

    /// Tells the value `arg`, giving up the reference.
    pub fn notify(self, arg: A) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `ptr` and `notify_fn` match (invariant), and `this` is never dropped,
        // so the reference is taken back only once.
        unsafe { (this.notify_fn)(this.ptr, arg) }
    }
}

impl<A> Drop for Notifier<A> {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `drop_fn` match (invariant); `notify` does not drop.
        unsafe { (self.drop_fn)(self.ptr) }
    }
}

// SAFETY: `__enqueue` below passes a `work_struct` inside a `Work<T, ID>` of the value,
// which `run` turns back into the reference `__enqueue` gave up.
unsafe impl<T, const ID: u64> WorkItemPointer<ID> for PoolArc<T>
where
    T: WorkItem<ID, Pointer = Self> + HasWork<T, ID>,
{
    unsafe extern "C" fn run(ptr: *mut bindings::work_struct) {
        let ptr = ptr.cast::<Work<T, ID>>();
        // SAFETY: the `work_struct` is the one `__enqueue` queued, inside a `T`.
        let value = unsafe { T::work_container_of(ptr) };
        // SAFETY: the pointer came from `into_raw` in `__enqueue`; ownership is ours now.
        T::run(unsafe { PoolArc::from_raw(value) })
    }
}

// SAFETY: the `work_struct` stays valid until `run` is called: the reference given up
// here keeps the element allocated until `run` takes it back.
unsafe impl<T, const ID: u64> RawWorkItem<ID> for PoolArc<T>
where
    T: WorkItem<ID, Pointer = Self> + HasWork<T, ID>,
{
    type EnqueueOutput = core::result::Result<(), Self>;

    unsafe fn __enqueue<F>(self, queue_work_on: F) -> Self::EnqueueOutput
    where
        F: FnOnce(*mut bindings::work_struct) -> bool,
    {
        let ptr = self.into_raw().cast_mut();
        // SAFETY: `ptr` points to a live value.
        let work = unsafe { T::raw_get_work(ptr) };
        // SAFETY: `raw_get_work` returned a pointer to a valid `Work`.
        let work = unsafe { Work::raw_get(work) };
        if queue_work_on(work) {
            Ok(())
        } else {
            // SAFETY: the queue did not take the reference; it is ours again.
            Err(unsafe { PoolArc::from_raw(ptr) })
        }
    }
}
