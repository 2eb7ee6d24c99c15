// SPDX-License-Identifier: GPL-2.0

//! Explores one configuration given on the command line:
//! `sweep PEERS WRITES TICKS CRASHES CUTS STALLS RESTARTS FIXES [MAX_STATES]`
//! (RESTARTS 0 or 1, FIXES a mask of `fvp_model::fix`), breadth first, stopping at the
//! first counterexample or after MAX_STATES states, e.g.
//! `cargo run --profile test -p fvp-model --example sweep 1 2 12 1 1 0 1 15`.

use fvp_model::{format_path, Config, FvpModel};
use stateright::{Checker, HasDiscoveries, Model};
use std::time::Instant;

fn main() {
    let a: Vec<u64> = std::env::args().skip(1).map(|x| x.parse().unwrap()).collect();
    if a.len() < 8 {
        eprintln!("usage: sweep PEERS WRITES TICKS CRASHES CUTS STALLS RESTARTS FIXES [MAX_STATES]");
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
        fixes: a[7] as u32,
    };
    let max_states = a.get(8).copied().unwrap_or(5_000_000) as usize;
    let model = FvpModel::new(cfg.clone());
    let props = model.properties();
    let start = Instant::now();
    let checker =
        model.checker().target_state_count(max_states).finish_when(HasDiscoveries::AnyFailures).spawn_bfs().join();
    println!(
        "{cfg:?}: {} unique, {} total, depth {}, {:.1} s, done={}",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        start.elapsed().as_secs_f64(),
        checker.is_done()
    );
    for p in &props {
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
