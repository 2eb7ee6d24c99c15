// SPDX-License-Identifier: GPL-2.0

//! Arrays of pages from the page allocator, kept as 4-byte page frame numbers.
//!
//! A RAM pool holds millions of pages; a pfn instead of a `struct page *` saves four
//! bytes of metadata per cached block.

use super::bindings;
use core::marker::PhantomData;
use kernel::alloc::{flags::GFP_KERNEL, KVec};
use kernel::error::{code::ENOMEM, Result};

/// Pages owned by this array, indexed from 0.
///
/// # Invariants
///
/// Every entry of `pfns` is the pfn of an order-0 page allocated by this array, of
/// which the array holds one reference, dropped when the entry is removed.
pub struct PageArray {
    pfns: KVec<u32>,
}

impl PageArray {
    /// An empty array.
    pub fn new() -> Self {
        // INVARIANT: no entries.
        Self { pfns: KVec::new() }
    }

    /// Number of pages held.
    pub fn len(&self) -> usize {
        self.pfns.len()
    }

    /// Whether the array holds no page.
    pub fn is_empty(&self) -> bool {
        self.pfns.is_empty()
    }

    /// Allocates `n` zeroed pages and appends them; all or nothing.
    ///
    /// May sleep: callers must not hold spinlocks.
    pub fn grow(&mut self, n: usize) -> Result {
        let flags = GFP_KERNEL;
        self.pfns.reserve(n, flags)?;
        let start = self.pfns.len();
        for _ in 0..n {
            let gfp = bindings::GFP_KERNEL | bindings::__GFP_ZERO | bindings::__GFP_NOWARN;
            // SAFETY: `fvp_helper_alloc_page` has no preconditions beyond a valid gfp mask.
            let page = unsafe { bindings::fvp_helper_alloc_page(gfp) };
            if page.is_null() {
                self.truncate(start);
                return Err(ENOMEM);
            }
            // SAFETY: `page` is a page we just allocated.
            let pfn = unsafe { bindings::fvp_helper_page_to_pfn(page) };
            let Ok(pfn) = u32::try_from(pfn) else {
                // A pfn above 2^32 (RAM beyond 16 TiB) cannot be stored compactly.
                // SAFETY: we own the only reference to `page`.
                unsafe { bindings::fvp_helper_put_page(page) };
                self.truncate(start);
                return Err(ENOMEM);
            };
            // INVARIANT: the array now owns the page's reference. Capacity was reserved.
            if self.pfns.push(pfn, flags).is_err() {
                // SAFETY: as above, the reference is ours.
                unsafe { bindings::fvp_helper_put_page(page) };
                self.truncate(start);
                return Err(ENOMEM);
            }
        }
        Ok(())
    }

    /// Moves every page of `other` to the end of this array (`other` ends empty). Fails
    /// only if the index cannot grow; then nothing moves.
    pub fn append(&mut self, other: &mut PageArray) -> Result {
        self.pfns.reserve(other.pfns.len(), GFP_KERNEL)?;
        for &pfn in other.pfns.iter() {
            // Cannot fail: capacity was reserved. INVARIANT: the reference moves here.
            let _ = self.pfns.push(pfn, GFP_KERNEL);
        }
        // SAFETY: the elements are `Copy` and their page references now belong to
        // `self`; emptying `other` without putting them keeps each reference counted once.
        unsafe { other.pfns.set_len(0) };
        Ok(())
    }

    /// Frees the pages at `len` and beyond.
    pub fn truncate(&mut self, len: usize) {
        while self.pfns.len() > len {
            let last = self.pfns.len() - 1;
            let pfn = self.pfns[last];
            // SAFETY: `last < len()`; the element is `Copy`, so shortening the vector
            // without dropping it is fine.
            unsafe { self.pfns.set_len(last) };
            // SAFETY: by the type invariant the array held a reference on this page,
            // which it gives up now that the entry is gone.
            unsafe { bindings::fvp_helper_put_page(bindings::fvp_helper_pfn_to_page(pfn as _)) };
        }
    }

    /// The page at `index`, borrowed from the array.
    pub fn get(&self, index: u32) -> Option<PageRef<'_>> {
        let pfn = *self.pfns.get(index as usize)?;
        // SAFETY: `pfn` belongs to a page this array holds (type invariant).
        let page = unsafe { bindings::fvp_helper_pfn_to_page(pfn as _) };
        // INVARIANT: the page stays allocated while the array is borrowed.
        Some(PageRef { page, _array: PhantomData })
    }

    /// Bytes of metadata per page (the pfn).
    pub const BYTES_PER_PAGE: usize = core::mem::size_of::<u32>();
}

impl Default for PageArray {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PageArray {
    fn drop(&mut self) {
        self.truncate(0);
    }
}

/// A page borrowed from a [`PageArray`].
///
/// # Invariants
///
/// `page` is allocated for at least `'a`.
#[derive(Clone, Copy)]
pub struct PageRef<'a> {
    page: *mut bindings::page,
    _array: PhantomData<&'a PageArray>,
}

impl PageRef<'_> {
    pub(crate) fn as_raw(&self) -> *mut bindings::page {
        self.page
    }

    /// Takes a reference on the page that keeps it allocated for as long as it lives,
    /// whatever happens to the array (for I/O that outlives a lock guard).
    pub fn counted(&self) -> CountedPage {
        // SAFETY: the page is allocated (type invariant), so taking a reference is valid.
        unsafe { bindings::fvp_helper_get_page(self.page) };
        // INVARIANT: we took the reference the new value owns.
        CountedPage { page: self.page }
    }
}

/// A page kept allocated by a reference of its own.
///
/// # Invariants
///
/// The value owns one reference on `page`.
pub struct CountedPage {
    page: *mut bindings::page,
}

impl CountedPage {
    pub(crate) fn as_raw(&self) -> *mut bindings::page {
        self.page
    }

    /// A new zeroed page for I/O paths (`GFP_NOIO`): `ENOMEM` if none is free.
    pub fn alloc() -> Result<CountedPage> {
        // SAFETY: allocating a page has no preconditions.
        let page = unsafe {
            bindings::fvp_helper_alloc_page(bindings::FVP_GFP_NOIO | bindings::__GFP_ZERO | bindings::__GFP_NOWARN)
        };
        if page.is_null() {
            return Err(kernel::error::code::ENOMEM);
        }
        // INVARIANT: `alloc_page` returned a page with one reference, now ours.
        Ok(CountedPage { page })
    }

    /// Copies `buf` into the page at `offset`; `false` (nothing copied) if out of range.
    /// Concurrent readers of the same bytes see old or new data, as with any I/O buffer.
    pub fn write(&self, offset: u32, buf: &[u8]) -> bool {
        if offset as usize + buf.len() > kernel::page::PAGE_SIZE {
            return false;
        }
        // SAFETY: we hold a reference, so the page is allocated; the range was checked;
        // `buf` is valid for reads of its length.
        unsafe { bindings::fvp_helper_page_copy(self.page, offset, buf.as_ptr() as *mut _, buf.len(), true) };
        true
    }

    /// Copies from the page at `offset` into `buf`; `false` if out of range.
    pub fn read(&self, offset: u32, buf: &mut [u8]) -> bool {
        if offset as usize + buf.len() > kernel::page::PAGE_SIZE {
            return false;
        }
        // SAFETY: as in `write`; `buf` is valid for writes of its length.
        unsafe { bindings::fvp_helper_page_copy(self.page, offset, buf.as_mut_ptr().cast(), buf.len(), false) };
        true
    }

    /// Another reference on the same page.
    pub fn clone_ref(&self) -> CountedPage {
        // SAFETY: we hold a reference (invariant), so the page is allocated.
        unsafe { bindings::fvp_helper_get_page(self.page) };
        // INVARIANT: the new value owns the reference just taken.
        CountedPage { page: self.page }
    }
}

impl Drop for CountedPage {
    fn drop(&mut self) {
        // SAFETY: we own one reference (type invariant).
        unsafe { bindings::fvp_helper_put_page(self.page) };
    }
}

// SAFETY: a page reference may be taken and dropped on any CPU and in any context
// (`get_page`/`put_page` are atomic).
unsafe impl Send for CountedPage {}
// Concurrent copies, from any threads, can at worst tear the data, as with any I/O
// buffer the kernel shares with a device.
// SAFETY: `&self` methods only read the pointer (`as_raw`; `clone_ref` takes an atomic
// reference) or copy between the page and a Rust slice with `fvp_helper_page_copy` (C
// `memcpy` on a kmap): no Rust reference to the page's bytes ever exists.
unsafe impl Sync for CountedPage {}
// SAFETY: `PageArray` owns plain pfns; pages may be freed from any thread.
unsafe impl Send for PageArray {}
// SAFETY: shared access only reads the pfns.
unsafe impl Sync for PageArray {}

/// Mutable access helpers for arrays of `Copy` elements that `KVec` lacks in 6.12.
pub fn truncate_vec<T: Copy>(v: &mut KVec<T>, len: usize) {
    if len < v.len() {
        // SAFETY: `len < v.len()`, and `T: Copy` has no destructor to run.
        unsafe { v.set_len(len) };
    }
}

/// Free memory the page allocator could hand out without swapping, in pages.
pub fn available_pages() -> u64 {
    // SAFETY: `si_mem_available` only reads global counters.
    let avail = unsafe { bindings::si_mem_available() };
    avail.max(0) as u64
}

/// Total RAM in pages.
pub fn total_ram_pages() -> u64 {
    let mut info = bindings::sysinfo::default();
    // SAFETY: `info` is a valid, writable `sysinfo`.
    unsafe { bindings::si_meminfo(&mut info) };
    info.totalram as u64
}
