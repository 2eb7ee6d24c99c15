// SPDX-License-Identifier: GPL-2.0

//! Renders reports as text for people or as JSON for scripts.

use std::time::Duration;

use fvp_logic::abi::{
    self, PoolInfo, Status, Version, VolumeInfo, FEATURE_PASSTHROUGH, FEATURE_RAM_POOL,
    POLICY_WRITE_BACK, POLICY_WRITE_THROUGH,
};
use serde::Serialize;

use crate::metrics::{hit_rate, hit_rate_text, latency_text, percentile, Latency, Rates};
use crate::units::{format_bytes, format_rate};

/// fvpctl's own version.
pub const FVPCTL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Names of the feature bits this fvpctl knows.
const FEATURE_NAMES: &[(u64, &str)] = &[
    (FEATURE_PASSTHROUGH, "passthrough"),
    (FEATURE_RAM_POOL, "ram-pool"),
];

/// Names the bits set in `mask`. A newer module may set bits this fvpctl does not
/// know; they show as `bitN` rather than vanish.
fn feature_names(mask: u64) -> Vec<String> {
    (0..u64::BITS)
        .map(|bit| 1u64 << bit)
        .filter(|flag| mask & flag != 0)
        .map(
            |flag| match FEATURE_NAMES.iter().find(|(known, _)| *known == flag) {
                Some((_, name)) => (*name).to_owned(),
                None => format!("bit{}", flag.trailing_zeros()),
            },
        )
        .collect()
}

/// What the module says about itself.
#[derive(Debug, Serialize)]
struct ModuleInfo {
    version: String,
    major: u32,
    minor: u32,
    patch: u32,
    abi_version: u32,
    features: Vec<String>,
    features_mask: u64,
}

impl ModuleInfo {
    fn new(version: &Version) -> Self {
        let text = match version.version_str() {
            // The string is informational; the numbers are what the ABI promises.
            "" => format!(
                "{}.{}.{}",
                version.module_major, version.module_minor, version.module_patch
            ),
            text => text.to_owned(),
        };
        Self {
            version: text,
            major: version.module_major,
            minor: version.module_minor,
            patch: version.module_patch,
            abi_version: version.abi_version,
            features: feature_names(version.features),
            features_mask: version.features,
        }
    }

    /// `fvp module 0.1.0 (abi 2)`.
    fn summary(&self) -> String {
        format!("fvp module {} (abi {})", self.version, self.abi_version)
    }
}

/// `fvpctl version --json`.
#[derive(Debug, Serialize)]
struct VersionReport {
    fvpctl: &'static str,
    module: ModuleInfo,
}

/// Module-wide counters.
#[derive(Debug, Serialize)]
struct Counters {
    volumes: u32,
    bios_mapped: u64,
}

/// `fvpctl status --json`.
#[derive(Debug, Serialize)]
struct StatusReport {
    fvpctl: &'static str,
    module: ModuleInfo,
    status: Counters,
}

/// Serializes a report; none of ours has a field `serde_json` could refuse.
fn to_json(report: &impl Serialize) -> String {
    serde_json::to_string(report).expect("reports are plain structs of strings and integers")
}

/// `fvpctl version`, as text.
pub fn version_text(version: &Version) -> String {
    let module = ModuleInfo::new(version);
    let features = if module.features.is_empty() {
        "none".to_owned()
    } else {
        module.features.join(", ")
    };
    format!(
        "fvpctl {FVPCTL_VERSION}\n{}\nfeatures: {features}",
        module.summary()
    )
}

/// `fvpctl version --json`.
pub fn version_json(version: &Version) -> String {
    to_json(&VersionReport {
        fvpctl: FVPCTL_VERSION,
        module: ModuleInfo::new(version),
    })
}

/// `fvpctl status`, as text.
pub fn status_text(version: &Version, status: &Status) -> String {
    format!(
        "{}\nvolumes: {}\nbios mapped: {}",
        ModuleInfo::new(version).summary(),
        status.volumes,
        status.bios_mapped
    )
}

/// `fvpctl status --json`.
pub fn status_json(version: &Version, status: &Status) -> String {
    to_json(&StatusReport {
        fvpctl: FVPCTL_VERSION,
        module: ModuleInfo::new(version),
        status: Counters {
            volumes: status.volumes,
            bios_mapped: status.bios_mapped,
        },
    })
}

/// `write-through`, `write-back`, or `unknown(N)` for a policy this fvpctl does not know.
pub fn policy_name(policy: u32) -> String {
    match policy {
        POLICY_WRITE_THROUGH => "write-through".to_owned(),
        POLICY_WRITE_BACK => "write-back".to_owned(),
        other => format!("unknown({other})"),
    }
}

/// The policy in force, and where it is heading when that is not the one asked for.
pub fn policy_text(requested: u32, effective: u32) -> String {
    if requested == effective {
        policy_name(effective)
    } else if effective == POLICY_WRITE_BACK && requested == POLICY_WRITE_THROUGH {
        // Dirty blocks are still being written back before write-through takes over.
        format!(
            "{} (draining -> {})",
            policy_name(effective),
            policy_name(requested)
        )
    } else {
        format!(
            "{} (requested {})",
            policy_name(effective),
            policy_name(requested)
        )
    }
}

/// Metadata bytes per page held, `None` for a pool holding no page.
fn metadata_per_page(pool: &PoolInfo) -> Option<f64> {
    (pool.pages != 0).then(|| pool.metadata_bytes as f64 / pool.pages as f64)
}

fn metadata_per_page_text(pool: &PoolInfo) -> String {
    metadata_per_page(pool).map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"))
}

/// A pool in JSON: every counter of `struct fvp_pool_info`, and the metadata ratio.
#[derive(Debug, Serialize)]
struct PoolJson<'a> {
    index: u32,
    name: &'a str,
    volumes: u32,
    target_bytes: u64,
    pages: u64,
    free_pages: u64,
    clean_pages: u64,
    dirty_pages: u64,
    busy_pages: u64,
    metadata_bytes: u64,
    evictions: u64,
    metadata_bytes_per_page: Option<f64>,
}

impl<'a> PoolJson<'a> {
    fn new(pool: &'a PoolInfo) -> Self {
        Self {
            index: pool.index,
            name: abi::name_str(&pool.name),
            volumes: pool.volumes,
            target_bytes: pool.target_bytes,
            pages: pool.pages,
            free_pages: pool.free_pages,
            clean_pages: pool.clean_pages,
            dirty_pages: pool.dirty_pages,
            busy_pages: pool.busy_pages,
            metadata_bytes: pool.metadata_bytes,
            evictions: pool.evictions,
            metadata_bytes_per_page: metadata_per_page(pool),
        }
    }
}

/// One line about a pool:
/// `pool ram0: size 64 MiB, 16384 pages (free 16000, clean 300, dirty 84, busy 0),
/// 1 volume(s), metadata 1.2 MiB (80.0 B/page), evictions 0`.
pub fn pool_line(pool: &PoolInfo) -> String {
    format!(
        "pool {}: size {}, {} pages (free {}, clean {}, dirty {}, busy {}), {} volume(s), \
         metadata {} ({} B/page), evictions {}",
        abi::name_str(&pool.name),
        format_bytes(pool.target_bytes),
        pool.pages,
        pool.free_pages,
        pool.clean_pages,
        pool.dirty_pages,
        pool.busy_pages,
        pool.volumes,
        format_bytes(pool.metadata_bytes),
        metadata_per_page_text(pool),
        pool.evictions,
    )
}

/// Lays out rows under a header; the first column is left-aligned, the others right.
/// Columns are two spaces apart, and no line has trailing spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                out.push_str(&format!("{cell:<width$}"));
            } else {
                out.push_str(&format!("  {cell:>width$}"));
            }
        }
        out.trim_end().to_owned()
    };
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    std::iter::once(line(&header))
        .chain(rows.iter().map(|row| line(row)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `fvpctl pool list`, as a table, or `no pools`.
pub fn pool_list_text(pools: &[PoolInfo]) -> String {
    if pools.is_empty() {
        return "no pools".to_owned();
    }
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|p| {
            vec![
                abi::name_str(&p.name).to_owned(),
                format_bytes(p.target_bytes),
                p.pages.to_string(),
                p.free_pages.to_string(),
                p.clean_pages.to_string(),
                p.dirty_pages.to_string(),
                p.busy_pages.to_string(),
                p.volumes.to_string(),
                format_bytes(p.metadata_bytes),
                metadata_per_page_text(p),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "SIZE", "PAGES", "FREE", "CLEAN", "DIRTY", "BUSY", "VOLUMES", "METADATA",
            "B/PAGE",
        ],
        &rows,
    )
}

/// `fvpctl pool list --json`: `{"pools": [...]}`.
pub fn pool_list_json(pools: &[PoolInfo]) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        pools: Vec<PoolJson<'a>>,
    }
    to_json(&Report {
        pools: pools.iter().map(PoolJson::new).collect(),
    })
}

/// What a pool command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolAction {
    /// Created with this many bytes.
    Created { bytes: u64 },
    /// Resized from a target of `from` bytes to `to` bytes by `pool grow`.
    Grown { from: u64, to: u64 },
    /// Resized from a target of `from` bytes to `to` bytes by `pool shrink`.
    Shrunk { from: u64, to: u64 },
    /// Destroyed.
    Destroyed,
}

/// `created pool ram0 (64 MiB)`, `grew pool ram0 from 64 MiB to 128 MiB`,
/// `shrank pool ram0 from 128 MiB to 64 MiB`, `destroyed pool ram0`.
pub fn pool_action_text(name: &str, action: PoolAction) -> String {
    match action {
        PoolAction::Created { bytes } => format!("created pool {name} ({})", format_bytes(bytes)),
        PoolAction::Grown { from, to } => {
            format!(
                "grew pool {name} from {} to {}",
                format_bytes(from),
                format_bytes(to)
            )
        }
        PoolAction::Shrunk { from, to } => {
            format!(
                "shrank pool {name} from {} to {}",
                format_bytes(from),
                format_bytes(to)
            )
        }
        PoolAction::Destroyed => format!("destroyed pool {name}"),
    }
}

/// `{"action": "create"|"grow"|"shrink"|"destroy", "pool": NAME, "ram_bytes": N,
/// "previous_bytes": N}` (sizes only where they apply).
pub fn pool_action_json(name: &str, action: PoolAction) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        action: &'static str,
        pool: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        ram_bytes: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_bytes: Option<u64>,
    }
    let (verb, ram_bytes, previous_bytes) = match action {
        PoolAction::Created { bytes } => ("create", Some(bytes), None),
        PoolAction::Grown { from, to } => ("grow", Some(to), Some(from)),
        PoolAction::Shrunk { from, to } => ("shrink", Some(to), Some(from)),
        PoolAction::Destroyed => ("destroy", None, None),
    };
    to_json(&Report {
        action: verb,
        pool: name,
        ram_bytes,
        previous_bytes,
    })
}

/// A volume to report: its counters, its dm name if known, and its rates when watching.
#[derive(Clone, Copy, Debug)]
pub struct VolumeView<'a> {
    /// What FVP_IOC_VOLUME_INFO said.
    pub info: &'a VolumeInfo,
    /// The dm device's name, if sysfs knew it.
    pub name: Option<&'a str>,
    /// Rates since the previous sample (watching), `None` when there is none.
    pub rates: Option<Rates>,
}

impl VolumeView<'_> {
    fn dev(&self) -> String {
        format!("{}:{}", self.info.dev_major, self.info.dev_minor)
    }

    /// `vol0 (253:0)`, or `253:0` if the name is unknown.
    fn label(&self) -> String {
        match self.name {
            Some(name) => format!("{name} ({})", self.dev()),
            None => self.dev(),
        }
    }

    fn dirty_bytes(&self) -> u64 {
        self.info
            .dirty_blocks
            .saturating_mul(u64::from(self.info.block_size))
    }
}

/// p50 and p99 of one latency histogram.
#[derive(Debug, Serialize)]
struct PercentilesJson {
    p50_us: Option<u64>,
    p99_us: Option<u64>,
}

impl PercentilesJson {
    fn new(histogram: &[u64; abi::LAT_BUCKETS]) -> Self {
        let us = |p| percentile(histogram, p).map(Latency::upper_bound_us);
        Self {
            p50_us: us(50),
            p99_us: us(99),
        }
    }
}

#[derive(Debug, Serialize)]
struct LatencyJson {
    read: PercentilesJson,
    write: PercentilesJson,
}

#[derive(Debug, Serialize)]
struct RatesJson {
    interval_s: f64,
    read_bytes_per_s: f64,
    write_bytes_per_s: f64,
    read_iops: f64,
    write_iops: f64,
}

/// A volume in JSON: every field of `struct fvp_volume_info`, and what fvpctl derives.
#[derive(Debug, Serialize)]
struct VolumeJson<'a> {
    index: u32,
    name: Option<&'a str>,
    dev: String,
    dev_major: u32,
    dev_minor: u32,
    pool: &'a str,
    block_size: u32,
    policy_requested: String,
    policy_effective: String,
    reads: u64,
    writes: u64,
    read_bytes: u64,
    write_bytes: u64,
    read_hits: u64,
    read_misses: u64,
    write_hits: u64,
    bypassed: u64,
    dirty_blocks: u64,
    dirty_bytes: u64,
    destaged_blocks: u64,
    evictions: u64,
    read_latency: Vec<u64>,
    write_latency: Vec<u64>,
    hit_rate: Option<f64>,
    latency: LatencyJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    rates: Option<Option<RatesJson>>,
}

impl<'a> VolumeJson<'a> {
    fn new(view: &VolumeView<'a>, watching: bool) -> Self {
        let v = view.info;
        Self {
            index: v.index,
            name: view.name,
            dev: view.dev(),
            dev_major: v.dev_major,
            dev_minor: v.dev_minor,
            pool: abi::name_str(&v.pool),
            block_size: v.block_size,
            policy_requested: policy_name(v.policy_requested),
            policy_effective: policy_name(v.policy_effective),
            reads: v.reads,
            writes: v.writes,
            read_bytes: v.read_bytes,
            write_bytes: v.write_bytes,
            read_hits: v.read_hits,
            read_misses: v.read_misses,
            write_hits: v.write_hits,
            bypassed: v.bypassed,
            dirty_blocks: v.dirty_blocks,
            dirty_bytes: view.dirty_bytes(),
            destaged_blocks: v.destaged_blocks,
            evictions: v.evictions,
            read_latency: v.read_latency.to_vec(),
            write_latency: v.write_latency.to_vec(),
            hit_rate: hit_rate(v.read_hits, v.read_misses),
            latency: LatencyJson {
                read: PercentilesJson::new(&v.read_latency),
                write: PercentilesJson::new(&v.write_latency),
            },
            rates: watching.then(|| {
                view.rates.map(|r| RatesJson {
                    interval_s: r.interval_s,
                    read_bytes_per_s: r.read_bytes_per_s,
                    write_bytes_per_s: r.write_bytes_per_s,
                    read_iops: r.read_iops,
                    write_iops: r.write_iops,
                })
            }),
        }
    }
}

/// `read 12.3 MiB/s (3150 IOPS), write 1.0 MiB/s (256 IOPS)`.
fn rates_text(rates: &Rates) -> String {
    format!(
        "read {} ({:.0} IOPS), write {} ({:.0} IOPS)",
        format_rate(rates.read_bytes_per_s),
        rates.read_iops,
        format_rate(rates.write_bytes_per_s),
        rates.write_iops
    )
}

/// The lines about one volume; the `rates:` line only when `watching`.
pub fn volume_text(view: &VolumeView<'_>, watching: bool) -> String {
    let v = view.info;
    let p = |h: &[u64; abi::LAT_BUCKETS], pct| latency_text(percentile(h, pct));
    let mut lines = vec![
        format!(
            "volume {}: pool {}, policy {}, block size {}",
            view.label(),
            abi::name_str(&v.pool),
            policy_text(v.policy_requested, v.policy_effective),
            v.block_size
        ),
        format!(
            "  reads {} ({}), writes {} ({})",
            v.reads,
            format_bytes(v.read_bytes),
            v.writes,
            format_bytes(v.write_bytes)
        ),
    ];
    if watching {
        lines.push(match &view.rates {
            Some(rates) => format!("  rates: {}", rates_text(rates)),
            None => "  rates: -".to_owned(),
        });
    }
    lines.extend([
        format!(
            "  read hits {}, misses {}, hit rate {}; write hits {}",
            v.read_hits,
            v.read_misses,
            hit_rate_text(hit_rate(v.read_hits, v.read_misses)),
            v.write_hits
        ),
        format!(
            "  dirty {} ({} blocks), destaged {} blocks, evictions {}, bypassed {}",
            format_bytes(view.dirty_bytes()),
            v.dirty_blocks,
            v.destaged_blocks,
            v.evictions,
            v.bypassed
        ),
        format!(
            "  latency: read p50 {}, p99 {}; write p50 {}, p99 {}",
            p(&v.read_latency, 50),
            p(&v.read_latency, 99),
            p(&v.write_latency, 50),
            p(&v.write_latency, 99)
        ),
    ]);
    lines.join("\n")
}

/// `fvpctl stats`: a line per pool, a blank line, then a block per volume, blocks
/// separated by blank lines. `no pools` and `no volumes` stand for empty lists.
pub fn stats_text(pools: &[PoolInfo], volumes: &[VolumeView<'_>], watching: bool) -> String {
    let pools = if pools.is_empty() {
        "no pools".to_owned()
    } else {
        pools.iter().map(pool_line).collect::<Vec<_>>().join("\n")
    };
    let volumes = if volumes.is_empty() {
        "no volumes".to_owned()
    } else {
        volumes
            .iter()
            .map(|v| volume_text(v, watching))
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    format!("{pools}\n\n{volumes}")
}

/// `fvpctl stats --json`: `{"pools": [...], "volumes": [...]}` on one line; when
/// watching, also `"interval_s"` and a `"rates"` member (or null) in each volume.
pub fn stats_json(
    pools: &[PoolInfo],
    volumes: &[VolumeView<'_>],
    interval: Option<Duration>,
) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        interval_s: Option<f64>,
        pools: Vec<PoolJson<'a>>,
        volumes: Vec<VolumeJson<'a>>,
    }
    to_json(&Report {
        interval_s: interval.map(|i| i.as_secs_f64()),
        pools: pools.iter().map(PoolJson::new).collect(),
        volumes: volumes
            .iter()
            .map(|v| VolumeJson::new(v, interval.is_some()))
            .collect(),
    })
}

/// The width of the drain progress bar, in characters.
const BAR_WIDTH: usize = 30;

/// How far draining has come from `initial` dirty blocks now that `left` are left,
/// in 0..=1 (new writes can push `left` above `initial`: that shows as 0).
pub fn drain_fraction(initial: u64, left: u64) -> f64 {
    if initial == 0 || left == 0 {
        return 1.0;
    }
    1.0 - (left.min(initial) as f64 / initial as f64)
}

/// `draining vol0 [#########---------------------]  30% 700 dirty blocks left`, for a terminal.
pub fn drain_bar(volume: &str, initial: u64, left: u64) -> String {
    let fraction = drain_fraction(initial, left);
    // Truncating: the bar is only full when nothing is left.
    let filled = ((fraction * BAR_WIDTH as f64) as usize).min(BAR_WIDTH);
    let filled = if left == 0 {
        BAR_WIDTH
    } else {
        filled.min(BAR_WIDTH - 1)
    };
    let percent = if left == 0 {
        100
    } else {
        ((fraction * 100.0) as u32).min(99)
    };
    format!(
        "draining {volume} [{}{}] {percent:>3}% {left} dirty blocks left",
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH - filled)
    )
}

/// `draining vol0: 1234 dirty blocks left`, a line per second when stderr is not a terminal.
pub fn drain_line(volume: &str, left: u64) -> String {
    format!("draining {volume}: {left} dirty blocks left")
}

/// `drained vol0: 1234 dirty blocks written back in 2.4 s`.
pub fn drained_text(volume: &str, initial: u64, elapsed: Duration) -> String {
    format!(
        "drained {volume}: {initial} dirty blocks written back in {:.1} s",
        elapsed.as_secs_f64()
    )
}

/// `{"volume": NAME, "dev": "MAJ:MIN", "drained": true, "initial_dirty_blocks": N,
/// "elapsed_s": F}`.
pub fn drained_json(volume: &str, info: &VolumeInfo, initial: u64, elapsed: Duration) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        volume: &'a str,
        dev: String,
        drained: bool,
        initial_dirty_blocks: u64,
        elapsed_s: f64,
    }
    to_json(&Report {
        volume,
        dev: format!("{}:{}", info.dev_major, info.dev_minor),
        drained: true,
        initial_dirty_blocks: initial,
        elapsed_s: elapsed.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn module_0_1_0() -> Version {
        Version::new(0, 1, 0, FEATURE_PASSTHROUGH | FEATURE_RAM_POOL, "0.1.0")
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("output is valid JSON")
    }

    #[test]
    fn version_json_has_the_documented_shape() {
        let value = parse(&version_json(&module_0_1_0()));
        assert_eq!(
            value,
            json!({
                "fvpctl": FVPCTL_VERSION,
                "module": {
                    "version": "0.1.0",
                    "major": 0,
                    "minor": 1,
                    "patch": 0,
                    "abi_version": 2,
                    "features": ["passthrough", "ram-pool"],
                    "features_mask": 3,
                }
            })
        );
    }

    #[test]
    fn status_json_has_the_documented_shape() {
        let status = Status {
            volumes: 3,
            reserved: 0,
            bios_mapped: 1 << 40,
        };
        let value = parse(&status_json(&module_0_1_0(), &status));
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["fvpctl", "module", "status"]);
        assert_eq!(value["module"]["version"], "0.1.0");
        assert_eq!(value["module"]["abi_version"], 2);
        assert_eq!(
            value["status"],
            json!({"volumes": 3, "bios_mapped": 1u64 << 40})
        );
    }

    #[test]
    fn version_text_names_both_sides() {
        assert_eq!(
            version_text(&module_0_1_0()),
            format!(
                "fvpctl {FVPCTL_VERSION}\nfvp module 0.1.0 (abi 2)\nfeatures: passthrough, ram-pool"
            )
        );
    }

    #[test]
    fn status_text_lists_counters() {
        let status = Status {
            volumes: 2,
            reserved: 0,
            bios_mapped: 12345,
        };
        assert_eq!(
            status_text(&module_0_1_0(), &status),
            "fvp module 0.1.0 (abi 2)\nvolumes: 2\nbios mapped: 12345"
        );
    }

    #[test]
    fn unknown_and_missing_features_are_shown() {
        let version = Version::new(0, 1, 0, FEATURE_PASSTHROUGH | 1 << 5, "0.1.0");
        assert!(version_text(&version).ends_with("features: passthrough, bit5"));
        assert_eq!(
            parse(&version_json(&version))["module"]["features"],
            json!(["passthrough", "bit5"])
        );
        let bare = Version::new(0, 1, 0, 0, "0.1.0");
        assert!(version_text(&bare).ends_with("features: none"));
    }

    #[test]
    fn empty_version_string_falls_back_to_numbers() {
        let version = Version::new(2, 3, 4, 0, "");
        assert_eq!(parse(&version_json(&version))["module"]["version"], "2.3.4");
    }
    const MIB: u64 = 1 << 20;

    fn pool(name: &str) -> PoolInfo {
        PoolInfo {
            index: 0,
            volumes: 1,
            name: abi::pool_name(name.as_bytes()).unwrap(),
            target_bytes: 64 * MIB,
            pages: 16384,
            free_pages: 16000,
            clean_pages: 300,
            dirty_pages: 84,
            busy_pages: 0,
            metadata_bytes: 1_310_720,
            evictions: 7,
        }
    }

    fn volume() -> VolumeInfo {
        let mut v = VolumeInfo {
            index: 0,
            block_size: 4096,
            dev_major: 253,
            dev_minor: 0,
            pool: abi::pool_name(b"ram0").unwrap(),
            policy_requested: POLICY_WRITE_BACK,
            policy_effective: POLICY_WRITE_BACK,
            reads: 1234,
            writes: 567,
            read_bytes: 5 * MIB,
            write_bytes: 2 * MIB,
            read_hits: 1200,
            read_misses: 34,
            write_hits: 567,
            bypassed: 2,
            dirty_blocks: 256,
            destaged_blocks: 311,
            evictions: 0,
            ..Default::default()
        };
        // Reads: 98 in [32, 64) µs, 2 in [512, 1024) µs. Writes: all in [16, 32) µs.
        v.read_latency[5] = 98;
        v.read_latency[9] = 2;
        v.write_latency[4] = 10;
        v
    }

    fn view(info: &VolumeInfo) -> VolumeView<'_> {
        VolumeView {
            info,
            name: Some("vol0"),
            rates: None,
        }
    }

    fn rates() -> Rates {
        Rates {
            interval_s: 1.0,
            read_bytes_per_s: 12.3 * MIB as f64,
            write_bytes_per_s: MIB as f64,
            read_iops: 3150.0,
            write_iops: 256.4,
        }
    }

    #[test]
    fn ram_pool_feature_is_named() {
        let version = Version::new(0, 2, 0, FEATURE_RAM_POOL, "0.2.0");
        assert!(version_text(&version).ends_with("features: ram-pool"));
    }

    #[test]
    fn policies_are_named() {
        assert_eq!(policy_name(POLICY_WRITE_THROUGH), "write-through");
        assert_eq!(policy_name(POLICY_WRITE_BACK), "write-back");
        assert_eq!(policy_name(0), "unknown(0)");
        assert_eq!(
            policy_text(POLICY_WRITE_BACK, POLICY_WRITE_BACK),
            "write-back"
        );
        assert_eq!(
            policy_text(POLICY_WRITE_THROUGH, POLICY_WRITE_THROUGH),
            "write-through"
        );
        assert_eq!(
            policy_text(POLICY_WRITE_THROUGH, POLICY_WRITE_BACK),
            "write-back (draining -> write-through)"
        );
        assert_eq!(
            policy_text(POLICY_WRITE_BACK, POLICY_WRITE_THROUGH),
            "write-through (requested write-back)"
        );
    }

    #[test]
    fn pool_line_shows_every_counter() {
        assert_eq!(
            pool_line(&pool("ram0")),
            "pool ram0: size 64 MiB, 16384 pages (free 16000, clean 300, dirty 84, busy 0), \
             1 volume(s), metadata 1.2 MiB (80.0 B/page), evictions 7"
        );
        let empty = PoolInfo {
            pages: 0,
            metadata_bytes: 0,
            ..pool("new")
        };
        assert!(
            pool_line(&empty).contains("metadata 0 B (- B/page)"),
            "{}",
            pool_line(&empty)
        );
    }

    #[test]
    fn pool_list_is_a_table() {
        let big = PoolInfo {
            target_bytes: 1 << 30,
            pages: 262144,
            volumes: 12,
            ..pool("big-pool.1")
        };
        assert_eq!(
            pool_list_text(&[pool("ram0"), big]),
            "\
NAME          SIZE   PAGES   FREE  CLEAN  DIRTY  BUSY  VOLUMES  METADATA  B/PAGE
ram0        64 MiB   16384  16000    300     84     0        1   1.2 MiB    80.0
big-pool.1   1 GiB  262144  16000    300     84     0       12   1.2 MiB     5.0"
        );
        assert_eq!(pool_list_text(&[]), "no pools");
    }

    #[test]
    fn pool_list_json_has_every_field() {
        let value = parse(&pool_list_json(&[pool("ram0")]));
        assert_eq!(
            value,
            json!({"pools": [{
                "index": 0,
                "name": "ram0",
                "volumes": 1,
                "target_bytes": 64 * MIB,
                "pages": 16384,
                "free_pages": 16000,
                "clean_pages": 300,
                "dirty_pages": 84,
                "busy_pages": 0,
                "metadata_bytes": 1_310_720,
                "evictions": 7,
                "metadata_bytes_per_page": 80.0,
            }]})
        );
        assert_eq!(parse(&pool_list_json(&[])), json!({"pools": []}));
        let empty = PoolInfo {
            pages: 0,
            ..pool("x")
        };
        assert_eq!(
            parse(&pool_list_json(&[empty]))["pools"][0]["metadata_bytes_per_page"],
            Value::Null
        );
    }

    #[test]
    fn pool_actions_read_well() {
        assert_eq!(
            pool_action_text("ram0", PoolAction::Created { bytes: 64 * MIB }),
            "created pool ram0 (64 MiB)"
        );
        assert_eq!(
            pool_action_text(
                "ram0",
                PoolAction::Grown {
                    from: 64 * MIB,
                    to: 128 * MIB
                }
            ),
            "grew pool ram0 from 64 MiB to 128 MiB"
        );
        assert_eq!(
            pool_action_text(
                "ram0",
                PoolAction::Shrunk {
                    from: 128 * MIB,
                    to: 64 * MIB
                }
            ),
            "shrank pool ram0 from 128 MiB to 64 MiB"
        );
        assert_eq!(
            pool_action_text("ram0", PoolAction::Destroyed),
            "destroyed pool ram0"
        );
        assert_eq!(
            parse(&pool_action_json(
                "ram0",
                PoolAction::Created { bytes: 4096 }
            )),
            json!({"action": "create", "pool": "ram0", "ram_bytes": 4096})
        );
        assert_eq!(
            parse(&pool_action_json(
                "ram0",
                PoolAction::Grown {
                    from: 4096,
                    to: 8192
                }
            )),
            json!({"action": "grow", "pool": "ram0", "ram_bytes": 8192, "previous_bytes": 4096})
        );
        assert_eq!(
            parse(&pool_action_json(
                "ram0",
                PoolAction::Shrunk {
                    from: 8192,
                    to: 4096
                }
            )),
            json!({"action": "shrink", "pool": "ram0", "ram_bytes": 4096, "previous_bytes": 8192})
        );
        assert_eq!(
            parse(&pool_action_json("ram0", PoolAction::Destroyed)),
            json!({"action": "destroy", "pool": "ram0"})
        );
    }

    #[test]
    fn volume_text_shows_totals_and_derived_numbers() {
        let info = volume();
        assert_eq!(
            volume_text(&view(&info), false),
            "\
volume vol0 (253:0): pool ram0, policy write-back, block size 4096
  reads 1234 (5 MiB), writes 567 (2 MiB)
  read hits 1200, misses 34, hit rate 97.2%; write hits 567
  dirty 1 MiB (256 blocks), destaged 311 blocks, evictions 0, bypassed 2
  latency: read p50 ≤ 64 µs, p99 ≤ 1024 µs; write p50 ≤ 32 µs, p99 ≤ 32 µs"
        );
    }

    #[test]
    fn volume_text_without_name_or_traffic() {
        let info = VolumeInfo {
            dev_major: 253,
            dev_minor: 4,
            block_size: 4096,
            pool: abi::pool_name(b"ram1").unwrap(),
            policy_requested: POLICY_WRITE_THROUGH,
            policy_effective: POLICY_WRITE_BACK,
            ..Default::default()
        };
        let view = VolumeView {
            info: &info,
            name: None,
            rates: None,
        };
        assert_eq!(
            volume_text(&view, false),
            "\
volume 253:4: pool ram1, policy write-back (draining -> write-through), block size 4096
  reads 0 (0 B), writes 0 (0 B)
  read hits 0, misses 0, hit rate -; write hits 0
  dirty 0 B (0 blocks), destaged 0 blocks, evictions 0, bypassed 0
  latency: read p50 -, p99 -; write p50 -, p99 -"
        );
    }

    #[test]
    fn watching_adds_rates() {
        let info = volume();
        let with = VolumeView {
            rates: Some(rates()),
            ..view(&info)
        };
        let text = volume_text(&with, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines[2],
            "  rates: read 12.3 MiB/s (3150 IOPS), write 1.0 MiB/s (256 IOPS)"
        );
        let text = volume_text(&view(&info), true);
        assert_eq!(text.lines().nth(2), Some("  rates: -"));
        // Not watching: no rates line even if rates are known.
        assert!(!volume_text(&with, false).contains("rates"));
    }

    #[test]
    fn stats_text_lists_pools_then_volumes() {
        let a = volume();
        let b = VolumeInfo {
            dev_minor: 1,
            ..volume()
        };
        let views = [
            view(&a),
            VolumeView {
                info: &b,
                name: None,
                rates: None,
            },
        ];
        let text = stats_text(&[pool("ram0")], &views, false);
        let blocks: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(blocks.len(), 3, "{text}");
        assert_eq!(blocks[0], pool_line(&pool("ram0")));
        assert!(blocks[1].starts_with("volume vol0 (253:0): "));
        assert!(blocks[2].starts_with("volume 253:1: "));
        assert_eq!(stats_text(&[], &[], false), "no pools\n\nno volumes");
    }

    #[test]
    fn stats_json_has_raw_and_derived_numbers() {
        let info = volume();
        let value = parse(&stats_json(&[pool("ram0")], &[view(&info)], None));
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["pools", "volumes"]);
        assert_eq!(value["pools"][0]["name"], "ram0");
        let v = &value["volumes"][0];
        let mut read_latency = vec![0u64; abi::LAT_BUCKETS];
        read_latency[5] = 98;
        read_latency[9] = 2;
        let mut write_latency = vec![0u64; abi::LAT_BUCKETS];
        write_latency[4] = 10;
        assert_eq!(
            *v,
            json!({
                "index": 0,
                "name": "vol0",
                "dev": "253:0",
                "dev_major": 253,
                "dev_minor": 0,
                "pool": "ram0",
                "block_size": 4096,
                "policy_requested": "write-back",
                "policy_effective": "write-back",
                "reads": 1234,
                "writes": 567,
                "read_bytes": 5 * MIB,
                "write_bytes": 2 * MIB,
                "read_hits": 1200,
                "read_misses": 34,
                "write_hits": 567,
                "bypassed": 2,
                "dirty_blocks": 256,
                "dirty_bytes": MIB,
                "destaged_blocks": 311,
                "evictions": 0,
                "read_latency": read_latency,
                "write_latency": write_latency,
                "hit_rate": 1200.0 / 1234.0,
                "latency": {
                    "read": {"p50_us": 64, "p99_us": 1024},
                    "write": {"p50_us": 32, "p99_us": 32},
                },
            })
        );
    }

    #[test]
    fn stats_json_without_traffic_has_nulls() {
        let info = VolumeInfo::default();
        let view = VolumeView {
            info: &info,
            name: None,
            rates: None,
        };
        let value = parse(&stats_json(&[], &[view], None));
        let v = &value["volumes"][0];
        assert_eq!(v["name"], Value::Null);
        assert_eq!(v["hit_rate"], Value::Null);
        assert_eq!(
            v["latency"],
            json!({"read": {"p50_us": null, "p99_us": null}, "write": {"p50_us": null, "p99_us": null}})
        );
        assert_eq!(v["policy_effective"], "unknown(0)");
        assert_eq!(
            parse(&stats_json(&[], &[], None)),
            json!({"pools": [], "volumes": []})
        );
    }

    #[test]
    fn watched_stats_json_has_rates_on_one_line() {
        let info = volume();
        let with = VolumeView {
            rates: Some(rates()),
            ..view(&info)
        };
        let text = stats_json(&[], &[with, view(&info)], Some(Duration::from_millis(500)));
        assert!(!text.contains('\n'));
        let value = parse(&text);
        assert_eq!(value["interval_s"], 0.5);
        assert_eq!(
            value["volumes"][0]["rates"],
            json!({
                "interval_s": 1.0,
                "read_bytes_per_s": 12.3 * MIB as f64,
                "write_bytes_per_s": MIB as f64,
                "read_iops": 3150.0,
                "write_iops": 256.4,
            })
        );
        assert_eq!(value["volumes"][1]["rates"], Value::Null);
        // Not watching: no rates member at all.
        let value = parse(&stats_json(&[], &[with], None));
        assert!(value["volumes"][0].get("rates").is_none());
    }

    #[test]
    fn drain_progress() {
        assert_eq!(drain_fraction(100, 100), 0.0);
        assert_eq!(drain_fraction(100, 25), 0.75);
        assert_eq!(drain_fraction(100, 0), 1.0);
        assert_eq!(drain_fraction(0, 0), 1.0);
        assert_eq!(drain_fraction(100, 150), 0.0);
        assert_eq!(
            drain_bar("vol0", 100, 100),
            "draining vol0 [------------------------------]   0% 100 dirty blocks left"
        );
        assert_eq!(
            drain_bar("vol0", 100, 50),
            "draining vol0 [###############---------------]  50% 50 dirty blocks left"
        );
        // Almost done is not done.
        assert_eq!(
            drain_bar("vol0", 1000, 1),
            "draining vol0 [#############################-]  99% 1 dirty blocks left"
        );
        assert_eq!(
            drain_bar("vol0", 100, 0),
            "draining vol0 [##############################] 100% 0 dirty blocks left"
        );
        assert_eq!(
            drain_line("vol0", 1234),
            "draining vol0: 1234 dirty blocks left"
        );
        assert_eq!(
            drained_text("vol0", 1234, Duration::from_millis(2400)),
            "drained vol0: 1234 dirty blocks written back in 2.4 s"
        );
        let value = parse(&drained_json(
            "vol0",
            &volume(),
            1234,
            Duration::from_millis(2500),
        ));
        assert_eq!(
            value,
            json!({"volume": "vol0", "dev": "253:0", "drained": true, "initial_dirty_blocks": 1234, "elapsed_s": 2.5})
        );
    }
}
