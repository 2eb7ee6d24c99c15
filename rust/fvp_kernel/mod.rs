// SPDX-License-Identifier: GPL-2.0

//! fvp's own safe abstractions over kernel APIs that Linux 6.12's `kernel` crate lacks.
//!
//! This is the only place in fvp where `unsafe` code and raw bindings live; the
//! driver (`drivers/block/fvp/`) uses the safe types exported here. Each abstraction
//! follows the conventions of the kernel's own `rust/kernel`: C objects are wrapped in
//! `Opaque`, types state their `# Invariants`, and every `unsafe` block says why it is
//! sound in a `// SAFETY:` comment.

pub mod bindings;
pub mod bio;
pub mod block;
pub mod cred;
pub mod crypto;
pub mod dm;
pub mod errno;
pub mod mempool;
pub mod miscdev;
pub mod module;
pub mod net;
pub mod pages;
pub mod sync;
pub mod thread;
pub mod vec;
pub mod workqueue;
