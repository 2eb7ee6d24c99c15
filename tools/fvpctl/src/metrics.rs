// SPDX-License-Identifier: GPL-2.0

//! Numbers derived from the module's counters: hit rates, latency percentiles, rates.

use fvp_logic::abi::{VolumeInfo, LAT_BUCKETS};

/// A latency percentile, known only to the resolution of its histogram bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    /// In bucket `i < LAT_BUCKETS - 1`: at most `2^(i+1)` µs.
    AtMost(u64),
    /// In the last bucket, which also counts every slower I/O: at least `2^(LAT_BUCKETS-1)` µs.
    AtLeast(u64),
}

impl Latency {
    /// The bucket's upper bound in µs, which is what JSON reports. For the last bucket
    /// that is `2^LAT_BUCKETS`, although slower I/Os are counted there too.
    pub fn upper_bound_us(self) -> u64 {
        match self {
            Latency::AtMost(us) => us,
            Latency::AtLeast(us) => us * 2,
        }
    }

    /// `≤ 64 µs`, or `≥ 8388608 µs` for the last bucket.
    pub fn text(self) -> String {
        match self {
            Latency::AtMost(us) => format!("≤ {us} µs"),
            Latency::AtLeast(us) => format!("≥ {us} µs"),
        }
    }
}

/// The `percent`th percentile of a latency histogram whose bucket `i` counts I/Os that
/// took `[2^i, 2^(i+1))` µs: the bucket holding the I/O of rank `ceil(total * percent / 100)`.
/// `None` when the histogram is empty.
pub fn percentile(histogram: &[u64; LAT_BUCKETS], percent: u32) -> Option<Latency> {
    assert!((1..=100).contains(&percent), "percentile {percent} out of 1..=100");
    // u128: the sum of 24 u64 counters cannot overflow it.
    let total: u128 = histogram.iter().map(|&n| u128::from(n)).sum();
    if total == 0 {
        return None;
    }
    let rank = (total * u128::from(percent)).div_ceil(100);
    let mut seen = 0u128;
    for (bucket, &count) in histogram.iter().enumerate() {
        seen += u128::from(count);
        if seen >= rank {
            return Some(if bucket == LAT_BUCKETS - 1 {
                Latency::AtLeast(1 << bucket)
            } else {
                Latency::AtMost(1 << (bucket + 1))
            });
        }
    }
    unreachable!("rank {rank} is at most the total {total}")
}

/// `Some(latency)` as text, `-` for none.
pub fn latency_text(latency: Option<Latency>) -> String {
    latency.map_or_else(|| "-".to_owned(), Latency::text)
}

/// The read hit rate, `read_hits / (read_hits + read_misses)`, or `None` before any read.
pub fn hit_rate(hits: u64, misses: u64) -> Option<f64> {
    let total = u128::from(hits) + u128::from(misses);
    (total != 0).then(|| hits as f64 / total as f64)
}

/// The hit rate as a percentage with one decimal, `-` for none.
pub fn hit_rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// How fast a counter grew between two samples `seconds` apart; `None` if it went
/// backwards (the volume was replaced) or no time passed.
pub fn rate(before: u64, after: u64, seconds: f64) -> Option<f64> {
    if after < before || seconds <= 0.0 || !seconds.is_finite() {
        return None;
    }
    Some((after - before) as f64 / seconds)
}

/// A volume's throughput between two samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    /// Seconds between the samples.
    pub interval_s: f64,
    /// Bytes read per second.
    pub read_bytes_per_s: f64,
    /// Bytes written per second.
    pub write_bytes_per_s: f64,
    /// Read bios per second.
    pub read_iops: f64,
    /// Write bios per second.
    pub write_iops: f64,
}

impl Rates {
    /// The rates between `before` and `after`, two samples of the same volume taken
    /// `seconds` apart. `None` if they cannot be of the same volume (another device, or
    /// a counter that went backwards because the volume was recreated).
    pub fn between(before: &VolumeInfo, after: &VolumeInfo, seconds: f64) -> Option<Self> {
        if (before.dev_major, before.dev_minor) != (after.dev_major, after.dev_minor) {
            return None;
        }
        Some(Self {
            interval_s: seconds,
            read_bytes_per_s: rate(before.read_bytes, after.read_bytes, seconds)?,
            write_bytes_per_s: rate(before.write_bytes, after.write_bytes, seconds)?,
            read_iops: rate(before.reads, after.reads, seconds)?,
            write_iops: rate(before.writes, after.writes, seconds)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(counts: &[(usize, u64)]) -> [u64; LAT_BUCKETS] {
        let mut h = [0; LAT_BUCKETS];
        for &(bucket, count) in counts {
            h[bucket] = count;
        }
        h
    }

    #[test]
    fn empty_histogram_has_no_percentiles() {
        let h = [0; LAT_BUCKETS];
        assert_eq!(percentile(&h, 50), None);
        assert_eq!(percentile(&h, 99), None);
        assert_eq!(latency_text(percentile(&h, 50)), "-");
    }

    #[test]
    fn single_bucket_reports_its_upper_bound() {
        // Bucket 5 is [32, 64) µs.
        let h = histogram(&[(5, 10)]);
        assert_eq!(percentile(&h, 50), Some(Latency::AtMost(64)));
        assert_eq!(percentile(&h, 99), Some(Latency::AtMost(64)));
        assert_eq!(percentile(&h, 50).unwrap().text(), "≤ 64 µs");
        assert_eq!(percentile(&h, 50).unwrap().upper_bound_us(), 64);
        // Bucket 0 also holds I/Os faster than 1 µs.
        assert_eq!(percentile(&histogram(&[(0, 1)]), 50), Some(Latency::AtMost(2)));
    }

    #[test]
    fn a_single_io_is_every_percentile() {
        let h = histogram(&[(9, 1)]);
        assert_eq!(percentile(&h, 1), Some(Latency::AtMost(1024)));
        assert_eq!(percentile(&h, 100), Some(Latency::AtMost(1024)));
    }

    #[test]
    fn percentiles_pick_the_bucket_of_their_rank() {
        // 98 fast I/Os and 2 slow ones: p50 and p98 are fast, p99 is slow.
        let h = histogram(&[(3, 98), (12, 2)]);
        assert_eq!(percentile(&h, 50), Some(Latency::AtMost(16)));
        assert_eq!(percentile(&h, 98), Some(Latency::AtMost(16)));
        assert_eq!(percentile(&h, 99), Some(Latency::AtMost(8192)));
        // Exactly half and half: the 50th of 100 is still in the first bucket.
        let h = histogram(&[(1, 50), (2, 50)]);
        assert_eq!(percentile(&h, 50), Some(Latency::AtMost(4)));
        assert_eq!(percentile(&h, 51), Some(Latency::AtMost(8)));
        // Ranks round up: of 3 I/Os the median is the 2nd.
        let h = histogram(&[(1, 1), (2, 1), (3, 1)]);
        assert_eq!(percentile(&h, 50), Some(Latency::AtMost(8)));
        // Ignores empty buckets in between.
        let h = histogram(&[(0, 1), (20, 1)]);
        assert_eq!(percentile(&h, 99), Some(Latency::AtMost(1 << 21)));
    }

    #[test]
    fn last_bucket_is_open_ended() {
        let h = histogram(&[(LAT_BUCKETS - 1, 5)]);
        let p = percentile(&h, 50).unwrap();
        assert_eq!(p, Latency::AtLeast(1 << 23));
        assert_eq!(p.text(), "≥ 8388608 µs");
        assert_eq!(p.upper_bound_us(), 1 << 24);
    }

    #[test]
    fn huge_counters_do_not_overflow() {
        let h = [u64::MAX; LAT_BUCKETS];
        assert_eq!(percentile(&h, 50), Some(Latency::AtMost(1 << 12)));
        assert_eq!(percentile(&h, 99), Some(Latency::AtLeast(1 << 23)));
        assert_eq!(hit_rate(u64::MAX, u64::MAX), Some(0.5));
    }

    #[test]
    fn hit_rates() {
        assert_eq!(hit_rate(0, 0), None);
        assert_eq!(hit_rate(3, 1), Some(0.75));
        assert_eq!(hit_rate(0, 7), Some(0.0));
        assert_eq!(hit_rate_text(hit_rate(3, 1)), "75.0%");
        assert_eq!(hit_rate_text(hit_rate(1, 2)), "33.3%");
        assert_eq!(hit_rate_text(None), "-");
    }

    #[test]
    fn rates_between_samples() {
        assert_eq!(rate(100, 300, 2.0), Some(100.0));
        assert_eq!(rate(5, 5, 1.0), Some(0.0));
        assert_eq!(rate(300, 100, 1.0), None);
        assert_eq!(rate(0, 1, 0.0), None);
        assert_eq!(rate(0, 1, f64::NAN), None);

        let before = VolumeInfo { reads: 10, writes: 20, read_bytes: 4096, write_bytes: 0, ..Default::default() };
        let after = VolumeInfo {
            reads: 110,
            writes: 20,
            read_bytes: 4096 + 2 * 1048576,
            write_bytes: 8192,
            ..Default::default()
        };
        let rates = Rates::between(&before, &after, 0.5).unwrap();
        assert_eq!(
            rates,
            Rates {
                interval_s: 0.5,
                read_bytes_per_s: 4.0 * 1048576.0,
                write_bytes_per_s: 16384.0,
                read_iops: 200.0,
                write_iops: 0.0,
            }
        );
        // A recreated volume restarts its counters: no rate rather than a huge one.
        assert_eq!(Rates::between(&after, &before, 1.0), None);
        // Another device.
        let other = VolumeInfo { dev_minor: 1, ..after };
        assert_eq!(Rates::between(&before, &other, 1.0), None);
    }
}
