// SPDX-License-Identifier: GPL-2.0

//! The parts of `fvpctl` that other crates use: the cluster description parser
//! (`cluster`) and the hosts' keys it reads (`keys`). The fuzz target `cluster_toml`
//! (`fuzz/`) calls `cluster::parse_with`. The binary (`main.rs`) uses these modules
//! from here; everything else of it stays in the binary.

// As in the binary: no `unsafe` here.
#![deny(unsafe_code)]

pub mod cluster;
pub mod keys;
