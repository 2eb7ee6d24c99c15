// SPDX-License-Identifier: GPL-2.0

//! Per-volume counters and latency histograms.
//!
//! Plain relaxed atomics: readers (status, ioctls) tolerate a torn view across
//! counters, and the I/O path pays one uncontended atomic add per counter.
#![forbid(unsafe_code)]

use crate::logic::abi::LAT_BUCKETS;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::time::Ktime;

/// A log2 histogram of latencies in microseconds.
pub(crate) struct Histogram([AtomicU64; LAT_BUCKETS]);

impl Histogram {
    pub(crate) const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; LAT_BUCKETS])
    }

    /// Records the time since `start`.
    pub(crate) fn record_since(&self, start: Ktime) {
        let ns = (Ktime::ktime_get() - start).to_ns().max(0) as u64;
        let us = ns / 1000;
        let bucket = if us < 2 { 0 } else { (63 - us.leading_zeros()) as usize };
        self.0[bucket.min(LAT_BUCKETS - 1)].fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> [u64; LAT_BUCKETS] {
        core::array::from_fn(|i| self.0[i].load(Relaxed))
    }

    fn clear(&self) {
        for b in &self.0 {
            b.store(0, Relaxed);
        }
    }
}

/// Counters of one volume.
pub(crate) struct Stats {
    pub(crate) reads: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) read_bytes: AtomicU64,
    pub(crate) write_bytes: AtomicU64,
    pub(crate) read_hits: AtomicU64,
    pub(crate) read_misses: AtomicU64,
    pub(crate) write_hits: AtomicU64,
    pub(crate) bypassed: AtomicU64,
    pub(crate) destaged: AtomicU64,
    pub(crate) evictions: AtomicU64,
    /// Blocks whose write-back to the backing device failed (each attempt counts).
    pub(crate) destage_errors: AtomicU64,
    /// Bios completed with an error because the backing device failed them.
    pub(crate) io_errors: AtomicU64,
    pub(crate) read_latency: Histogram,
    pub(crate) write_latency: Histogram,
}

impl Stats {
    pub(crate) const fn new() -> Self {
        Self {
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
            write_bytes: AtomicU64::new(0),
            read_hits: AtomicU64::new(0),
            read_misses: AtomicU64::new(0),
            write_hits: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            destaged: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            destage_errors: AtomicU64::new(0),
            io_errors: AtomicU64::new(0),
            read_latency: Histogram::new(),
            write_latency: Histogram::new(),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// `dmsetup message <dev> 0 clear-stats`: zero every counter but the dirty count
    /// (which is state, not a statistic).
    pub(crate) fn clear(&self) {
        for c in [
            &self.reads,
            &self.writes,
            &self.read_bytes,
            &self.write_bytes,
            &self.read_hits,
            &self.read_misses,
            &self.write_hits,
            &self.bypassed,
            &self.destaged,
            &self.evictions,
            &self.destage_errors,
            &self.io_errors,
        ] {
            c.store(0, Relaxed);
        }
        self.read_latency.clear();
        self.write_latency.clear();
    }
}
