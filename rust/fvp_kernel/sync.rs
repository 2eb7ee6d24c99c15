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

    /// Makes the completion waitable again.
    pub fn reinit(&self) {
        // SAFETY: initialised (invariant).
        unsafe { bindings::fvp_helper_reinit_completion(self.inner.get()) };
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
