// SPDX-License-Identifier: GPL-2.0

//! Model checks of the replication protocol: see the crate documentation.

use fvp_model::{format_path, Config, FvpModel};
use stateright::{Checker, Model};
use std::time::Instant;

fn check(name: &str, cfg: Config) {
    let model = FvpModel::new(cfg);
    let props = model.properties();
    let start = Instant::now();
    let checker = model.checker().spawn_bfs().join();
    let elapsed = start.elapsed();
    println!(
        "{name}: {} unique states, {} total, max depth {}, {:.1} s",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        elapsed.as_secs_f64()
    );
    let mut failures = Vec::new();
    for p in &props {
        let found = checker.discovery(p.name);
        match (p.expectation.discovery_is_failure(), found) {
            (true, Some(path)) => failures.push(format!("counterexample to \"{}\":\n{}", p.name, format_path(&path))),
            (false, None) => failures.push(format!("never reached: \"{}\"", p.name)),
            _ => {}
        }
    }
    assert!(checker.is_done());
    if !failures.is_empty() {
        panic!("{name}:\n{}", failures.join("\n"));
    }
}

#[test]
fn peers1() {
    check(
        "peers=1",
        Config { peers: 1, max_writes: 2, max_ticks: 12, max_crashes: 1, max_cuts: 1, restarts: true },
    );
}
