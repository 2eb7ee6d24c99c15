// SPDX-License-Identifier: GPL-2.0

//! `KVec` operations 6.12's `kernel::alloc` lacks (`pop`, `remove`, `clear`), and boxes
//! allocated zeroed in place ([`zeroed_box`]).

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

/// Types of which all-zero bytes are a valid value: the ones [`zeroed_box`] may make.
///
/// # Safety
///
/// Implementors hold only integers, `bool`s, and arrays and structs of those (no
/// references, pointers, enums with a niche or non-zero types).
pub unsafe trait ZeroValid {}

/// A box of `T` allocated zeroed, without a `T` ever on the stack: for values too large
/// for a kernel stack (16 KiB without KASAN), which the caller then sets up in place.
pub fn zeroed_box<T: ZeroValid>() -> Result<KBox<T>> {
    let b = KBox::<T>::new_uninit(GFP_KERNEL | kernel::alloc::flags::__GFP_ZERO)?;
    // SAFETY: the allocation is zeroed (`__GFP_ZERO`), and all-zero bytes are a valid
    // `T` (`T: ZeroValid`).
    Ok(unsafe { b.assume_init() })
}

// SAFETY: `Membership` holds only `u32`, `u64`, `bool` and arrays of `u64` and of `View`,
// itself `u64`s (drivers/block/fvp/logic/membership.rs).
unsafe impl ZeroValid for crate::logic::membership::Membership {}
