// SPDX-License-Identifier: GPL-2.0

//! A reference on fvp's own module, held while state that only the module can write
//! out exists without a user holding the module (a removed volume with dirty blocks):
//! `rmmod` is refused meanwhile instead of losing them.

use super::bindings;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::ThisModule;

/// Holds at most one reference on a module, taken and dropped on demand.
///
/// # Invariants
///
/// `held` is true exactly while this object owns one reference on `module` (taken with
/// `try_module_get`, so never on a module that is being unloaded).
pub struct UnloadGuard {
    module: &'static ThisModule,
    held: AtomicBool,
}

// SAFETY: the module pointer is only passed to the module refcount functions, which
// are safe from any thread; `held` is atomic.
unsafe impl Send for UnloadGuard {}
// SAFETY: as above.
unsafe impl Sync for UnloadGuard {}

impl UnloadGuard {
    /// A guard that holds nothing yet.
    pub const fn new(module: &'static ThisModule) -> Self {
        Self { module, held: AtomicBool::new(false) }
    }

    /// Keeps the module loaded until [`Self::release`]. Returns false if the module is
    /// already being unloaded (it then holds nothing).
    pub fn hold(&self) -> bool {
        if self.held.load(Ordering::Acquire) {
            return true;
        }
        // SAFETY: `module` is a `ThisModule`, so the module (or NULL for built-in code)
        // whose code calls this; `try_module_get` refuses a module that is going away.
        if !unsafe { bindings::fvp_helper_try_module_get(self.module.as_ptr()) } {
            return false;
        }
        if self.held.swap(true, Ordering::AcqRel) {
            // Another caller took one at the same time: keep only one.
            // SAFETY: we took this reference just above.
            unsafe { bindings::fvp_helper_module_put(self.module.as_ptr()) };
        }
        true
    }

    /// Drops the reference, if held.
    pub fn release(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            // SAFETY: `held` was true, so this object owned one reference (invariant).
            unsafe { bindings::fvp_helper_module_put(self.module.as_ptr()) };
        }
    }
}

impl Drop for UnloadGuard {
    fn drop(&mut self) {
        self.release();
    }
}
