// SPDX-License-Identifier: GPL-2.0

//! Pure logic of fvp: no kernel and no `std` dependency.
//!
//! This directory is compiled twice from the same files: into fvp.ko as the module
//! `logic`, and on the host as the crate `fvp-logic` (see `host.rs`), where cargo runs
//! its unit and property tests.

pub mod abi;
pub mod admission;
pub mod auth;
pub mod cache;
pub mod crc32c;
pub mod flash;
pub mod membership;
pub mod owner;
pub mod placement;
pub mod replica;
pub mod seal;
pub mod table;
pub mod wire;
