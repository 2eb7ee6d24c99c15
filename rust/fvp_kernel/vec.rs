// SPDX-License-Identifier: GPL-2.0

//! `KVec` operations 6.12's `kernel::alloc` lacks (`pop`, `remove`, `clear`).

use kernel::prelude::*;

/// Removes and returns the last element.
pub fn pop<T>(v: &mut KVec<T>) -> Option<T> {
    let len = v.len();
    if len == 0 {
        return None;
    }
    // SAFETY: `len - 1 < len`, so the slot is initialised; shrinking the length first
    // hands its ownership to us exactly once.
    unsafe {
        v.set_len(len - 1);
        Some(core::ptr::read(v.as_ptr().add(len - 1)))
    }
}

/// Removes the element at `index`, shifting the later ones down; `None` past the end.
pub fn remove<T>(v: &mut KVec<T>, index: usize) -> Option<T> {
    let len = v.len();
    if index >= len {
        return None;
    }
    // SAFETY: `index < len`: we read the element out, move the `len - index - 1` later
    // ones one slot down (overlapping copy), and shorten the vector by the one moved out.
    unsafe {
        let p = v.as_mut_ptr().add(index);
        let item = core::ptr::read(p);
        core::ptr::copy(p.add(1), p, len - index - 1);
        v.set_len(len - 1);
        Some(item)
    }
}

/// Drops every element, keeping the allocation.
pub fn clear<T>(v: &mut KVec<T>) {
    while pop(v).is_some() {}
}
