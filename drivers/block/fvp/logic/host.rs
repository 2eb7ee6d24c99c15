// SPDX-License-Identifier: GPL-2.0

//! Host build of fvp's pure logic, for `cargo test`, property tests and fuzzing.
//! The same files are compiled into fvp.ko; see `mod.rs`.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
#[macro_use]
extern crate std;

#[path = "mod.rs"]
mod logic;

pub use logic::*;

#[cfg(any(test, feature = "std"))]
extern crate alloc;

/// Vec-backed arrays for the cache index and the flash journal on the host (the
/// logic's tests, fvpctl, the fuzz targets; feature `std`). The kernel has its own
/// (`pool.rs`).
#[cfg(any(test, feature = "std"))]
pub mod vec_stores {
    use crate::logic::cache::{OutOfMemory, Store, Stores};
    use alloc::vec::Vec;

    impl<T: Copy> Store<T> for Vec<T> {
        fn try_extend(&mut self, n: usize, value: T) -> Result<(), OutOfMemory> {
            self.try_reserve(n).map_err(|_| OutOfMemory)?;
            self.resize(self.len() + n, value);
            Ok(())
        }

        fn truncate_to(&mut self, len: usize) {
            self.truncate(len);
        }
    }

    /// The family of `Vec`s.
    pub struct VecStores;

    impl Stores for VecStores {
        type Array<T: Copy> = Vec<T>;
        fn empty<T: Copy>() -> Vec<T> {
            Vec::new()
        }
    }
}
