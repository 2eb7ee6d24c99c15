// SPDX-License-Identifier: GPL-2.0

//! Workqueues a module owns (6.12's `kernel::workqueue` only exposes the system ones).

use super::bindings;
use core::ffi::CStr;
use core::ops::Deref;
use core::ptr::NonNull;
use kernel::error::{code::ENOMEM, Result};
use kernel::workqueue::Queue;

/// A workqueue allocated with `alloc_workqueue`, destroyed (after draining) on drop.
///
/// # Invariants
///
/// `ptr` points to a live workqueue owned by this value.
pub struct OwnedQueue {
    ptr: NonNull<bindings::workqueue_struct>,
}

// SAFETY: workqueues are used from any context by design.
unsafe impl Send for OwnedQueue {}
// SAFETY: as above.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// A queue that may run work while the system reclaims memory (`WQ_MEM_RECLAIM`),
    /// as any queue on the I/O path must, unbound to CPUs.
    pub fn new_reclaim(name: &CStr) -> Result<Self> {
        let flags = bindings::wq_flags_WQ_MEM_RECLAIM | bindings::wq_flags_WQ_UNBOUND;
        // SAFETY: `name` is NUL-terminated; the format string is a constant "%s".
        let ptr = unsafe { bindings::fvp_helper_alloc_workqueue(name.as_ptr().cast(), flags, 0) };
        // INVARIANT: non-null means a live queue we own.
        Ok(Self { ptr: NonNull::new(ptr).ok_or(ENOMEM)? })
    }
}

impl OwnedQueue {
    /// Waits until every work item queued so far has finished.
    pub fn flush(&self) {
        // SAFETY: the queue is live (invariant).
        unsafe { bindings::fvp_helper_flush_workqueue(self.ptr.as_ptr()) };
    }
}

impl Deref for OwnedQueue {
    type Target = Queue;
    fn deref(&self) -> &Queue {
        // SAFETY: the queue is live for as long as `self` (type invariant).
        unsafe { Queue::from_raw(self.ptr.as_ptr()) }
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: the queue is live and ours; `destroy_workqueue` drains it first.
        unsafe { bindings::destroy_workqueue(self.ptr.as_ptr()) };
    }
}
