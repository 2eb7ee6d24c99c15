// SPDX-License-Identifier: GPL-2.0

//! `fvpctl`: queries the fvp block caching module through its control device.
//!
//! Module map: `cli` parses arguments, `commands` runs them, `sys` holds every system
//! call (and all of fvpctl's `unsafe`), `output` renders reports, `error` explains failures.

// Keep `unsafe` confined to `sys`, and explained there.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod cli;
mod commands;
mod error;
mod output;
#[allow(unsafe_code)]
mod sys;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors exit with 2 and `--help`/`--version` with 0, inside `parse`.
    let cli = cli::Cli::parse();
    match commands::run(&cli) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("fvpctl: {err}");
            ExitCode::FAILURE
        }
    }
}
