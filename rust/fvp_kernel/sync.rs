// SPDX-License-Identifier: GPL-2.0

//! Completions, sleeping and signals (6.12's `kernel` crate lacks them).

use super::bindings;
use kernel::init::PinInit;
use kernel::prelude::*;
use kernel::types::Opaque;

/// A `struct completion`: one side waits until the other signals, from any context.
///
/// # Invariants
///
/// `inner` is initialised by `init_completion`.
#[pin_data]
pub struct Completion {
    #[pin]
    inner: Opaque<bindings::completion>,
}

// SAFETY: a completion is meant to be shared between threads and interrupt handlers.
unsafe impl Send for Completion {}
// SAFETY: as above; all operations synchronise internally.
unsafe impl Sync for Completion {}

impl Completion {
    /// A new, not yet completed, completion.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `init_completion` initialises the whole structure in place.
            inner <- Opaque::ffi_init(|slot| unsafe { bindings::fvp_helper_init_completion(slot) }),
        })
    }

    /// Wakes one waiter, or lets the next wait return at once. Safe in any context.
    pub fn complete(&self) {
        // SAFETY: initialised (invariant).
        unsafe { bindings::complete(self.inner.get()) };
    }

    /// Wakes every waiter, now and later.
    pub fn complete_all(&self) {
        // SAFETY: initialised (invariant).
        unsafe { bindings::complete_all(self.inner.get()) };
    }

    /// Sleeps until completed.
    pub fn wait(&self) {
        // SAFETY: initialised (invariant); we are in process context (callers sleep).
        unsafe { bindings::wait_for_completion(self.inner.get()) };
    }

    /// Sleeps until completed or `ms` milliseconds passed; returns whether completed.
    pub fn wait_timeout_ms(&self, ms: u32) -> bool {
        let jiffies = kernel::time::msecs_to_jiffies(ms);
        // SAFETY: initialised (invariant).
        unsafe { bindings::wait_for_completion_timeout(self.inner.get(), jiffies) != 0 }
    }

    /// Makes the completion waitable again. Under the completion's lock, so a
    /// concurrent `complete` is not a data race: it counts before or after the reset.
    pub fn reinit(&self) {
        // SAFETY: initialised (invariant); the helper writes `done` under `wait.lock`.
        unsafe { bindings::fvp_helper_reinit_completion(self.inner.get()) };
    }
}

/// A wait queue (`struct wait_queue_head`) for conditions that can be read without
/// sleeping (atomics, a clock): a task waits until its condition holds; whoever changes
/// what a condition reads calls [`WaitQueue::wake_all`] afterwards. The wait is
/// uninterruptible, unlike `CondVar`'s: a pending signal (an ioctl's task) neither ends
/// it early nor turns it into a spin.
///
/// # Invariants
///
/// `inner` is initialised by `__init_waitqueue_head`.
#[pin_data]
pub struct WaitQueue {
    #[pin]
    inner: Opaque<bindings::wait_queue_head>,
}

// SAFETY: a wait queue is meant to be shared between threads; its lock protects it.
unsafe impl Send for WaitQueue {}
// SAFETY: as above; every operation takes the queue's own spinlock.
unsafe impl Sync for WaitQueue {}

impl WaitQueue {
    /// A new wait queue.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `init_waitqueue_head` initialises the whole structure in place.
            inner <- Opaque::ffi_init(|slot| unsafe { bindings::fvp_helper_init_waitqueue_head(slot) }),
        })
    }

    /// Wakes every task waiting on the queue. Call it after changing what their
    /// conditions read. Any context.
    pub fn wake_all(&self) {
        // SAFETY: initialised (invariant).
        unsafe { bindings::fvp_helper_wake_up_all(self.inner.get()) };
    }

    /// Sleeps until `cond()` is true or `ms` milliseconds passed; returns whether it is
    /// true. `cond` is evaluated with the task already marked as sleeping, so it must
    /// not sleep itself (no mutex: the debug kernel reports a blocking call there);
    /// atomics and the clock are what it is for. Process context.
    pub fn wait_timeout_ms<F: FnMut() -> bool>(&self, ms: u32, mut cond: F) -> bool {
        unsafe extern "C" fn call<F: FnMut() -> bool>(ctx: *mut core::ffi::c_void) -> bool {
            // SAFETY: `ctx` is the `&mut F` passed below, alive for the whole wait and
            // used by this one task only.
            let f = unsafe { &mut *ctx.cast::<F>() };
            f()
        }
        let jiffies = kernel::time::msecs_to_jiffies(ms) as kernel::ffi::c_long;
        let ctx: *mut core::ffi::c_void = core::ptr::from_mut(&mut cond).cast();
        // SAFETY: initialised (invariant); `call::<F>` matches `ctx`'s type, and `cond`
        // outlives the call, which returns only after its last use of `ctx`.
        let left = unsafe { bindings::fvp_helper_wait_event_timeout(self.inner.get(), Some(call::<F>), ctx, jiffies) };
        // `wait_event_timeout` evaluates the condition once more when time runs out:
        // zero means it was false then.
        left > 0
    }
}

/// Sleeps for at least `ms` milliseconds.
pub fn sleep_ms(ms: u32) {
    // SAFETY: `msleep` has no preconditions beyond process context.
    unsafe { bindings::msleep(ms) };
}

/// Whether the current task has a signal pending (a user interrupted the call).
pub fn signal_pending() -> bool {
    // SAFETY: reads the current task's flags only.
    unsafe { bindings::fvp_helper_signal_pending() }
}

/// While it lives, every allocation of the current task behaves as `GFP_NOIO`, the
/// `GFP_KERNEL` ones included: memory reclaim it triggers never waits for block I/O,
/// which on fvp's I/O path could be I/O waiting for this very task.
///
/// # Invariants
///
/// `saved` is what `memalloc_noio_save` returned on the task that created the scope,
/// and the scope is dropped on that task (it is neither `Send` nor `Sync`). Scopes are
/// meant to nest lexically; forgetting one or dropping an outer one first only keeps or
/// ends the no-I/O mode early, which changes how reclaim behaves, never memory safety.
pub struct NoIoScope {
    saved: u32,
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl NoIoScope {
    /// Enters a no-I/O allocation scope on the current task.
    pub fn enter() -> Self {
        // SAFETY: no preconditions; it sets a flag of the current task.
        let saved = unsafe { bindings::fvp_helper_memalloc_noio_save() };
        // INVARIANT: saved on this task, and the value cannot leave it.
        Self { saved, _not_send: core::marker::PhantomData }
    }
}

impl Drop for NoIoScope {
    fn drop(&mut self) {
        // SAFETY: `saved` came from `memalloc_noio_save` on this task (invariant).
        unsafe { bindings::fvp_helper_memalloc_noio_restore(self.saved) };
    }
}

/// Allocates with `alloc` until it succeeds, in a no-I/O scope: for memory on the I/O
/// and write-back paths, where failing would fail an acknowledged or in-flight write.
/// Between attempts it waits as the kernel's own retry loops do
/// (`memalloc_retry_wait`: a tick, so reclaim and fvp's completing I/O free memory).
/// Only for small allocations, in process context that may sleep.
pub fn alloc_retry<T>(mut alloc: impl FnMut() -> kernel::error::Result<T>) -> T {
    let _noio = NoIoScope::enter();
    loop {
        if let Ok(v) = alloc() {
            return v;
        }
        // SAFETY: no preconditions beyond process context, which the caller's is.
        unsafe { bindings::fvp_helper_memalloc_retry_wait() };
    }
}
