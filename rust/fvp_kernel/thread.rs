// SPDX-License-Identifier: GPL-2.0

//! Kernel threads running a Rust closure (6.12's `kernel` crate cannot start one).

use super::bindings;
use core::ffi::{c_int, c_void, CStr};
use core::ptr::NonNull;
use kernel::error::from_err_ptr;
use kernel::prelude::*;

/// A running kernel thread; [`Thread::stop`] (or drop) asks it to stop and waits.
///
/// # Invariants
///
/// `task` is a kthread on which this value holds a task reference, and `data` is the
/// boxed closure handed to it, owned by the thread once it starts running.
pub struct Thread {
    task: Option<NonNull<bindings::task_struct>>,
    data: *mut c_void,
    drop_data: unsafe fn(*mut c_void),
}

// SAFETY: the handle only stops the thread, which may be done from any thread.
unsafe impl Send for Thread {}
// SAFETY: as above; `stop` needs `&mut self`.
unsafe impl Sync for Thread {}

/// Handed to a thread's closure: asks whether the thread should stop.
///
/// # Invariants
///
/// Exists only on a thread started by [`Thread::start`] (it is neither `Send` nor
/// `Sync`, and only the trampoline creates one).
pub struct StopToken {
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl StopToken {
    /// Whether [`Thread::stop`] was called.
    pub fn should_stop(&self) -> bool {
        // SAFETY: we run on a kthread (type invariant).
        unsafe { bindings::kthread_should_stop() }
    }

    /// Sleeps `ms` milliseconds, or until [`Thread::stop`] is called.
    pub fn nap(&self, ms: u32) {
        // SAFETY: we run on a kthread (type invariant), in process context.
        unsafe { bindings::fvp_helper_kthread_nap(ms) }
    }
}

unsafe extern "C" fn trampoline<F: FnOnce(&StopToken) + Send + 'static>(data: *mut c_void) -> c_int {
    // SAFETY: `data` came from `KBox::into_raw` in `Thread::start` and the thread
    // function runs at most once, so the box is reclaimed exactly once.
    let f = KBox::into_inner(unsafe { KBox::from_raw(data.cast::<F>()) });
    // SAFETY: no preconditions; it only sets a flag of the current task, which is this
    // kthread (fvp's threads serve the I/O path: their allocations must not recurse
    // into block I/O).
    unsafe { bindings::fvp_helper_kthread_noio() };
    // INVARIANT: this is the kthread `Thread::start` created.
    f(&StopToken { _not_send: core::marker::PhantomData });
    // Never -EINTR: that value tells `stop` the function did not run.
    0
}

unsafe fn drop_box<F>(data: *mut c_void) {
    // SAFETY: the caller passes the pointer `start` boxed, which the thread never took.
    drop(unsafe { KBox::from_raw(data.cast::<F>()) });
}

impl Thread {
    /// Starts a kernel thread named `name` running `f`. The closure must return soon
    /// after [`StopToken::should_stop`] becomes true.
    pub fn start<F: FnOnce(&StopToken) + Send + 'static>(name: &CStr, f: F) -> Result<Self> {
        let data = KBox::into_raw(KBox::new(f, GFP_KERNEL)?).cast::<c_void>();
        // SAFETY: the trampoline matches the data's type; `name` is NUL-terminated.
        let task = from_err_ptr(unsafe {
            bindings::fvp_helper_kthread_start(Some(trampoline::<F>), data, name.as_ptr().cast())
        });
        match task {
            // INVARIANT: the helper took a task reference for us.
            Ok(task) => Ok(Self { task: NonNull::new(task), data, drop_data: drop_box::<F> }),
            Err(e) => {
                // SAFETY: no thread was created, so the box is still ours.
                unsafe { drop_box::<F>(data) };
                Err(e)
            }
        }
    }

    /// Asks the thread to stop ([`StopToken::should_stop`] turns true, it is woken) and waits for
    /// it to return.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            // SAFETY: we hold a reference on the kthread (invariant), dropped here.
            let ret = unsafe { bindings::fvp_helper_kthread_stop(task.as_ptr()) };
            if ret == -(bindings::EINTR as i32) {
                // SAFETY: the function never ran, so the closure was never taken.
                unsafe { (self.drop_data)(self.data) };
            }
        }
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        self.stop();
    }
}
