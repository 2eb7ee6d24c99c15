// SPDX-License-Identifier: GPL-2.0

//! Explores one configuration given on the command line:
//! `sweep PEERS WRITES TICKS CRASHES CUTS STALLS RESTARTS [SILENCE [MAX_STATES]]`
//! (RESTARTS 0 or 1; SILENCE the ticks a restarted host stays silent, by default the
//! kernel's `fvp_model::SILENCE_TICKS`), breadth first, stopping at the first
//! counterexample or after MAX_STATES states, e.g.
//! `cargo run --profile test -p fvp-model --example sweep 1 2 12 1 1 0 1`.
//!
//! In the environment, `SWEEP_ALL=1` explores on after a counterexample, to report every
//! property's; `SWEEP_DFS=1` explores depth first, which keeps only fingerprints of the
//! states seen (far less memory for long horizons; longer traces).

use fvp_model::{format_path, Config, FvpModel, SILENCE_TICKS};
use stateright::{Checker, HasDiscoveries, Model};
use std::time::Instant;

fn main() {
    let a: Vec<u64> = std::env::args().skip(1).map(|x| x.parse().expect("a number")).collect();
    if a.len() < 7 {
        eprintln!("usage: sweep PEERS WRITES TICKS CRASHES CUTS STALLS RESTARTS [SILENCE [MAX_STATES]]");
        std::process::exit(2);
    }
    let cfg = Config {
        peers: a[0] as u32,
        max_writes: a[1] as u8,
        max_ticks: a[2] as u8,
        max_crashes: a[3] as u8,
        max_cuts: a[4] as u8,
        max_stalls: a[5] as u8,
        restarts: a[6] != 0,
        silence_ticks: a.get(7).map_or(SILENCE_TICKS, |&s| s as u8),
    };
    let max_states = a.get(8).copied().unwrap_or(5_000_000) as usize;
    let env = |k: &str| std::env::var_os(k).is_some_and(|v| v == "1");
    let finish = if env("SWEEP_ALL") { HasDiscoveries::All } else { HasDiscoveries::AnyFailures };
    let builder = FvpModel::new(cfg.clone()).checker().target_state_count(max_states).finish_when(finish);
    let start = Instant::now();
    if env("SWEEP_DFS") {
        report(&cfg, builder.spawn_dfs().join(), start);
    } else {
        report(&cfg, builder.spawn_bfs().join(), start);
    }
}

fn report(cfg: &Config, checker: impl Checker<FvpModel>, start: Instant) {
    println!(
        "{cfg:?}: {} unique, {} total, depth {}, {:.1} s, done={}",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        start.elapsed().as_secs_f64(),
        checker.is_done()
    );
    for p in &checker.model().properties() {
        let found = checker.discovery(p.name);
        match (p.expectation.discovery_is_failure(), found) {
            (true, Some(path)) => {
                println!("COUNTEREXAMPLE \"{}\":\n{}", p.name, format_path(&path))
            }
            (false, None) => println!("not reached: \"{}\"", p.name),
            _ => {}
        }
    }
}
