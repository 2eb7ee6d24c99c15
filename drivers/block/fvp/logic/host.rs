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
