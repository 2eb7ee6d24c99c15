// SPDX-License-Identifier: GPL-2.0

//! Credentials of the current task.

use super::bindings;

/// Returns whether the current task has `CAP_SYS_ADMIN` in the initial user namespace.
///
/// Like the C `capable()`, a successful check marks the task as having used the
/// capability (`PF_SUPERPRIV`).
pub fn capable_sys_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials, which is always valid
    // from process context, and has no other preconditions.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}
