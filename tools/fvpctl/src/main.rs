// SPDX-License-Identifier: GPL-2.0

//! `fvpctl`: queries and manages the fvp block caching module through its control device.
//!
//! Module map: `cli` parses arguments, `commands` runs them, `sys` holds every system
//! call (and all of fvpctl's `unsafe`), `output` renders reports, `metrics` derives
//! rates and percentiles, `units` reads and writes sizes, `cluster` reads cluster
//! descriptions and plans their application, `flash` reads flash pool devices, `keys`
//! reads and writes hosts' key files, `error` explains failures. `cluster` and `keys` are
//! the library's (`lib.rs`, for the fuzz target `cluster_toml`).

// Keep `unsafe` confined to `sys`, and explained there.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod cli;
mod commands;
mod error;
mod flash;
mod metrics;
mod output;
#[allow(unsafe_code)]
mod sys;
mod units;

use std::io::{self, ErrorKind};
use std::process::ExitCode;

use clap::Parser;
// From the library, under the same paths (`crate::cluster`, `crate::keys`).
use fvpctl::{cluster, keys};

fn main() -> ExitCode {
    // Usage errors exit with 2 and `--help`/`--version` with 0, inside `parse`.
    let cli = cli::Cli::parse();
    match commands::run(&cli, &mut io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read the output stopped (`fvpctl stats --watch | head`): not a failure.
        Err(error::Error::Output(err)) if err.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fvpctl: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
