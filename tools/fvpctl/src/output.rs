// SPDX-License-Identifier: GPL-2.0

//! Renders reports as text for people or as JSON for scripts.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use fvp_logic::abi::{
    self, ClusterCfg, ClusterInfo, DeviceReq, HostInfo, HostReq, PoolInfo, Status, Version, VolumeHealth, VolumeInfo,
    VolumeRepl, CLUSTER_CONFIGURED, CLUSTER_JOINT, CLUSTER_LEASE, CLUSTER_LISTENING, CLUSTER_PENDING, DOMAIN_DIFFERENT,
    DOMAIN_SAME, FEATURE_PASSTHROUGH, FEATURE_RAM_POOL, FEATURE_REPLICATION, HOST_CONNECTING, HOST_DOWN, HOST_FENCED,
    HOST_SELF, HOST_UP, LAST_HEARD_NEVER, POLICY_WRITE_BACK, POLICY_WRITE_THROUGH, REPL_DEGRADED, REPL_FENCED,
    REPL_NONE, REPL_PROTECTED, REPL_REPROTECTING, REPL_SUSPENDED, VOLUME_DETACHED, VOLUME_FAILING,
};
use fvp_logic::seal::Transport;
use serde::Serialize;

use crate::cluster::{Change, KeyChange, Plan};
use crate::keys::PublicKey;
use crate::metrics::{hit_rate, hit_rate_text, latency_text, percentile, Latency, Rates};
use crate::units::{format_bytes, format_rate};

/// fvpctl's own version.
pub const FVPCTL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Names of the feature bits this fvpctl knows.
const FEATURE_NAMES: &[(u64, &str)] = &[
    (FEATURE_PASSTHROUGH, "passthrough"),
    (FEATURE_RAM_POOL, "ram-pool"),
    (FEATURE_REPLICATION, "replication"),
    (fvp_logic::abi::FEATURE_FLASH_POOL, "flash-pool"),
    (fvp_logic::abi::FEATURE_SECURE_TRANSPORT, "secure-transport"),
];

/// Names the bits set in `mask`. A newer module may set bits this fvpctl does not
/// know; they show as `bitN` rather than vanish.
fn feature_names(mask: u64) -> Vec<String> {
    (0..u64::BITS)
        .map(|bit| 1u64 << bit)
        .filter(|flag| mask & flag != 0)
        .map(|flag| match FEATURE_NAMES.iter().find(|(known, _)| *known == flag) {
            Some((_, name)) => (*name).to_owned(),
            None => format!("bit{}", flag.trailing_zeros()),
        })
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
            "" => format!("{}.{}.{}", version.module_major, version.module_minor, version.module_patch),
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
    let features = if module.features.is_empty() { "none".to_owned() } else { module.features.join(", ") };
    format!("fvpctl {FVPCTL_VERSION}\n{}\nfeatures: {features}", module.summary())
}

/// `fvpctl version --json`.
pub fn version_json(version: &Version) -> String {
    to_json(&VersionReport { fvpctl: FVPCTL_VERSION, module: ModuleInfo::new(version) })
}

/// `fvpctl status`, as text.
pub fn status_text(version: &Version, status: &Status) -> String {
    format!("{}\nvolumes: {}\nbios mapped: {}", ModuleInfo::new(version).summary(), status.volumes, status.bios_mapped)
}

/// `fvpctl status --json`.
pub fn status_json(version: &Version, status: &Status) -> String {
    to_json(&StatusReport {
        fvpctl: FVPCTL_VERSION,
        module: ModuleInfo::new(version),
        status: Counters { volumes: status.volumes, bios_mapped: status.bios_mapped },
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
        format!("{} (draining -> {})", policy_name(effective), policy_name(requested))
    } else {
        format!("{} (requested {})", policy_name(effective), policy_name(requested))
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
    table_aligned(header, rows, 1)
}

/// Like [`table`], with the first `left` columns left-aligned.
fn table_aligned(header: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            let gap = if i == 0 { "" } else { "  " };
            // Pad by characters, not bytes: `µs` is one column.
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            if i < left {
                out.push_str(&format!("{gap}{cell}{pad}"));
            } else {
                out.push_str(&format!("{gap}{pad}{cell}"));
            }
        }
        out.trim_end().to_owned()
    };
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    std::iter::once(line(&header)).chain(rows.iter().map(|row| line(row))).collect::<Vec<_>>().join("\n")
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
    table(&["NAME", "SIZE", "PAGES", "FREE", "CLEAN", "DIRTY", "BUSY", "VOLUMES", "METADATA", "B/PAGE"], &rows)
}

/// `fvpctl pool list --json`: `{"pools": [...]}`.
pub fn pool_list_json(pools: &[PoolInfo], flash: &[fvp_logic::abi::FlashInfo]) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        pools: Vec<PoolJson<'a>>,
        flash_pools: Vec<FlashJson>,
    }
    to_json(&Report {
        pools: pools.iter().map(PoolJson::new).collect(),
        flash_pools: flash.iter().map(FlashJson::new).collect(),
    })
}

/// A flash pool in `pool list --json`.
#[derive(Serialize)]
struct FlashJson {
    name: String,
    kind: &'static str,
    device: String,
    uuid: String,
    state: &'static str,
    volumes: u32,
    slots: u64,
    free_slots: u64,
    clean_blocks: u64,
    dirty_blocks: u64,
    held_slots: u64,
    commits: u64,
    metadata_bytes: u64,
}

fn c_str(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]).into_owned()
}

fn flash_state(state: u32) -> &'static str {
    if state == fvp_logic::abi::FLASH_OK {
        "ok"
    } else {
        "failed"
    }
}

impl FlashJson {
    fn new(f: &fvp_logic::abi::FlashInfo) -> Self {
        FlashJson {
            name: abi::name_str(&f.name).to_owned(),
            kind: "flash",
            device: c_str(&f.path),
            uuid: f.uuid.iter().map(|b| format!("{b:02x}")).collect(),
            state: flash_state(f.state),
            volumes: f.volumes,
            slots: f.slots,
            free_slots: f.free_slots,
            clean_blocks: f.clean_blocks,
            dirty_blocks: f.dirty_blocks,
            held_slots: f.held_slots,
            commits: f.commits,
            metadata_bytes: f.metadata_bytes,
        }
    }
}

/// The flash pools, a line each, after the RAM pools' table (nothing if none).
pub fn flash_list_text(flash: &[fvp_logic::abi::FlashInfo]) -> String {
    let mut out = String::new();
    for f in flash {
        let j = FlashJson::new(f);
        out.push_str(&format!(
            "flash pool {}: {} uuid {} {}, {} volumes, {} blocks ({} free, {} clean, {} dirty, {} held), {} commits, {} of RAM\n",
            j.name,
            j.device,
            j.uuid,
            j.state,
            j.volumes,
            j.slots,
            j.free_slots,
            j.clean_blocks,
            j.dirty_blocks,
            j.held_slots,
            j.commits,
            format_bytes(j.metadata_bytes)
        ));
    }
    out
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
            format!("grew pool {name} from {} to {}", format_bytes(from), format_bytes(to))
        }
        PoolAction::Shrunk { from, to } => {
            format!("shrank pool {name} from {} to {}", format_bytes(from), format_bytes(to))
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
    to_json(&Report { action: verb, pool: name, ram_bytes, previous_bytes })
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
    /// What FVP_IOC_VOLUME_REPL said (ABI 3), `None` if not asked or unknown.
    pub repl: Option<&'a VolumeRepl>,
    /// What FVP_IOC_VOLUME_HEALTH said (ABI 4), `None` if not asked or unknown.
    pub health: Option<&'a VolumeHealth>,
}

impl VolumeView<'_> {
    fn dev(&self) -> String {
        format!("{}:{}", self.info.dev_major, self.info.dev_minor)
    }

    /// Whether the volume is detached: its dm device was removed (the volume keeps the
    /// device's number, which a new device may have taken since).
    fn detached(&self) -> bool {
        self.health.is_some_and(VolumeHealth::detached)
    }

    /// `vol0 (253:0)`, `253:0` if the name is unknown, or `253:0 (removed)` if the
    /// volume is detached.
    fn label(&self) -> String {
        match self.name {
            _ if self.detached() => format!("{} (removed)", self.dev()),
            Some(name) => format!("{name} ({})", self.dev()),
            None => self.dev(),
        }
    }

    fn dirty_bytes(&self) -> u64 {
        self.info.dirty_blocks.saturating_mul(u64::from(self.info.block_size))
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
        Self { p50_us: us(50), p99_us: us(99) }
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
    /// Only for a replicated volume (peers > 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    replication: Option<ReplJson<'a>>,
    /// `null` when the module does not say (before ABI 4).
    health: Option<HealthJson>,
}

/// A volume's `struct fvp_volume_health`, in JSON.
#[derive(Debug, Serialize)]
struct HealthJson {
    /// `ok`, `failing`, `detached` or `detached,failing`.
    state: String,
    flags: Vec<String>,
    flags_mask: u32,
    destage_errors: u64,
    io_errors: u64,
    dirty_blocks: u64,
    backing_dev: String,
    backing_major: u32,
    backing_minor: u32,
}

impl HealthJson {
    fn new(h: &VolumeHealth) -> Self {
        Self {
            state: health_text(Some(h)),
            flags: volume_flag_names(h.flags),
            flags_mask: h.flags,
            destage_errors: h.destage_errors,
            io_errors: h.io_errors,
            dirty_blocks: h.dirty_blocks,
            backing_dev: format!("{}:{}", h.backing_major, h.backing_minor),
            backing_major: h.backing_major,
            backing_minor: h.backing_minor,
        }
    }
}

/// Names of the `FVP_VOLUME_*` flags, in the order they are shown.
const VOLUME_FLAG_NAMES: &[(u32, &str)] = &[(VOLUME_DETACHED, "detached"), (VOLUME_FAILING, "failing")];

/// Names the flags set in `flags`: the known ones in `VOLUME_FLAG_NAMES` order, then
/// those this fvpctl does not know as `bitN`.
fn volume_flag_names(flags: u32) -> Vec<String> {
    let known = VOLUME_FLAG_NAMES.iter().filter(|(flag, _)| flags & flag != 0).map(|(_, name)| (*name).to_owned());
    let unknown_mask = VOLUME_FLAG_NAMES.iter().fold(flags, |mask, (flag, _)| mask & !flag);
    let unknown = (0..u32::BITS).filter(|bit| unknown_mask & (1 << bit) != 0).map(|bit| format!("bit{bit}"));
    known.chain(unknown).collect()
}

/// `ok`, `failing`, `detached`, `detached,failing` (with unknown flags as `bitN`), or `-`
/// when the module does not say (before ABI 4).
pub fn health_text(health: Option<&VolumeHealth>) -> String {
    match health {
        None => "-".to_owned(),
        Some(h) if h.flags == 0 => "ok".to_owned(),
        Some(h) => volume_flag_names(h.flags).join(","),
    }
}

/// `  health ok; destage errors 0, I/O errors 0; backing device 8:16`, or dashes when the
/// module does not say (before ABI 4).
fn health_line(health: Option<&VolumeHealth>) -> String {
    match health {
        Some(h) => format!(
            "  health {}; destage errors {}, I/O errors {}; backing device {}:{}",
            health_text(Some(h)),
            h.destage_errors,
            h.io_errors,
            h.backing_major,
            h.backing_minor
        ),
        None => "  health -; destage errors -, I/O errors -".to_owned(),
    }
}

/// A replicated volume's `struct fvp_volume_repl`, in JSON.
#[derive(Debug, Serialize)]
struct ReplJson<'a> {
    device: &'a str,
    peers: u32,
    domain: String,
    state: String,
    peer_ids: Vec<u32>,
    epoch: u64,
    replicated_writes: u64,
    reprotections: u64,
    resent_blocks: u64,
}

impl<'a> ReplJson<'a> {
    fn new(r: &'a VolumeRepl) -> Self {
        Self {
            device: abi::name_str(&r.name),
            peers: r.peers,
            domain: domain_rule_name(r.domain),
            state: repl_state_name(r.state),
            peer_ids: current_peers(r),
            epoch: r.epoch,
            replicated_writes: r.replicated_writes,
            reprotections: r.reprotections,
            resent_blocks: r.resent_blocks,
        }
    }
}

/// The replication of a volume worth showing: only a replicated one's (peers > 0).
fn replicated<'a>(view: &VolumeView<'a>) -> Option<&'a VolumeRepl> {
    view.repl.filter(|r| r.peers > 0)
}

/// The peers a volume has now (the ids that are not 0).
fn current_peers(r: &VolumeRepl) -> Vec<u32> {
    r.peer_ids.iter().copied().filter(|&id| id != 0).collect()
}

/// `protected`, `reprotecting`, `degraded`, `suspended`, `fenced`, `none`, or `unknown(N)`.
pub fn repl_state_name(state: u32) -> String {
    match state {
        REPL_NONE => "none".to_owned(),
        REPL_PROTECTED => "protected".to_owned(),
        REPL_REPROTECTING => "reprotecting".to_owned(),
        REPL_DEGRADED => "degraded".to_owned(),
        REPL_SUSPENDED => "suspended".to_owned(),
        REPL_FENCED => "fenced".to_owned(),
        other => format!("unknown({other})"),
    }
}

/// `same`, `different`, or `unknown(N)`: where a volume's peers are, by fault domain.
pub fn domain_rule_name(domain: u32) -> String {
    match domain {
        DOMAIN_SAME => "same".to_owned(),
        DOMAIN_DIFFERENT => "different".to_owned(),
        other => format!("unknown({other})"),
    }
}

/// The two lines about a replicated volume.
fn repl_lines(r: &VolumeRepl) -> [String; 2] {
    let peers = current_peers(r);
    let peers = if peers.is_empty() {
        "none".to_owned()
    } else {
        peers.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    };
    [
        format!(
            "  replication: device {}, {} peer(s) in {} domain, {}; current peers {peers}; epoch {}",
            abi::name_str(&r.name),
            r.peers,
            domain_rule_name(r.domain),
            repl_state_name(r.state),
            r.epoch
        ),
        format!(
            "  replicated writes {}, reprotections {}, resent blocks {}",
            r.replicated_writes, r.reprotections, r.resent_blocks
        ),
    ]
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
            replication: replicated(view).map(ReplJson::new),
            health: view.health.map(HealthJson::new),
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
        health_line(view.health),
        format!(
            "  latency: read p50 {}, p99 {}; write p50 {}, p99 {}",
            p(&v.read_latency, 50),
            p(&v.read_latency, 99),
            p(&v.write_latency, 50),
            p(&v.write_latency, 99)
        ),
    ]);
    if let Some(r) = replicated(view) {
        lines.extend(repl_lines(r));
    }
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
        volumes.iter().map(|v| volume_text(v, watching)).collect::<Vec<_>>().join("\n\n")
    };
    format!("{pools}\n\n{volumes}")
}

/// `fvpctl stats --json`: `{"pools": [...], "volumes": [...]}` on one line; when
/// watching, also `"interval_s"` and a `"rates"` member (or null) in each volume.
pub fn stats_json(pools: &[PoolInfo], volumes: &[VolumeView<'_>], interval: Option<Duration>) -> String {
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
        volumes: volumes.iter().map(|v| VolumeJson::new(v, interval.is_some())).collect(),
    })
}

/// `self`, `down`, `connecting`, `up`, `fenced`, or `unknown(N)`.
pub fn host_state_name(state: u32) -> String {
    match state {
        HOST_SELF => "self".to_owned(),
        HOST_DOWN => "down".to_owned(),
        HOST_CONNECTING => "connecting".to_owned(),
        HOST_UP => "up".to_owned(),
        HOST_FENCED => "fenced".to_owned(),
        other => format!("unknown({other})"),
    }
}

/// Names of the `FVP_CLUSTER_*` flags.
const CLUSTER_FLAG_NAMES: &[(u32, &str)] = &[
    (CLUSTER_CONFIGURED, "configured"),
    (CLUSTER_LISTENING, "listening"),
    (CLUSTER_LEASE, "lease"),
    (CLUSTER_JOINT, "joint"),
    (CLUSTER_PENDING, "pending"),
];

/// Names the flags set in `flags`; unknown ones as `bitN`.
fn cluster_flag_names(flags: u32) -> Vec<String> {
    (0..u32::BITS)
        .map(|bit| 1u32 << bit)
        .filter(|flag| flags & flag != 0)
        .map(|flag| match CLUSTER_FLAG_NAMES.iter().find(|(known, _)| *known == flag) {
            Some((_, name)) => (*name).to_owned(),
            None => format!("bit{}", flag.trailing_zeros()),
        })
        .collect()
}

/// `12 ms ago`, `42 s ago` (from 10 s on), `never`, or `-` for this host.
pub fn last_heard_text(host: &HostInfo) -> String {
    match (host.state, host.last_heard_ms) {
        (HOST_SELF, _) => "-".to_owned(),
        (_, LAST_HEARD_NEVER) => "never".to_owned(),
        (_, ms) if ms < 10_000 => format!("{ms} ms ago"),
        (_, ms) => format!("{} s ago", ms / 1000),
    }
}

/// `850 µs`, `1.2 ms`, `12 ms`, or `-` for no round trip measured.
pub fn rtt_text(us: u64) -> String {
    match us {
        0 => "-".to_owned(),
        us if us < 1000 => format!("{us} µs"),
        us if us < 10_000 => format!("{:.1} ms", us as f64 / 1000.0),
        us => format!("{} ms", us / 1000),
    }
}

/// A host's `IP:PORT`.
fn host_addr(host: &HostReq) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(host.octets()), host.port)
}

/// The hosts as a table, or `no hosts`.
pub fn hosts_text(hosts: &[HostInfo]) -> String {
    hosts_table(hosts, None)
}

/// The hosts as a table, with the start of their public keys (`keys`, by host id) if
/// given, or `no hosts`.
fn hosts_table(hosts: &[HostInfo], keys: Option<&BTreeMap<u32, PublicKey>>) -> String {
    if hosts.is_empty() {
        return "no hosts".to_owned();
    }
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            let mut row =
                vec![h.host.id.to_string(), host_addr(&h.host).to_string(), abi::name_str(&h.host.domain).to_owned()];
            if let Some(keys) = keys {
                row.push(keys.get(&h.host.id).map_or("-".to_owned(), PublicKey::short));
            }
            row.extend([
                host_state_name(h.state),
                last_heard_text(h),
                rtt_text(h.rtt_us),
                h.replica_blocks.to_string(),
            ]);
            row
        })
        .collect();
    let mut header = vec!["ID", "ADDRESS", "DOMAIN"];
    if keys.is_some() {
        header.push("KEY");
    }
    header.extend(["STATE", "LAST HEARD", "RTT", "REPLICA BLOCKS"]);
    table_aligned(&header, &rows, header.len() - 3)
}

/// A host in JSON.
#[derive(Debug, Serialize)]
struct HostJson<'a> {
    index: u32,
    id: u32,
    addr: String,
    ip: String,
    port: u16,
    domain: &'a str,
    state: String,
    /// `null` if never heard from.
    last_heard_ms: Option<u64>,
    /// `null` if no round trip was measured.
    rtt_us: Option<u64>,
    replica_blocks: u64,
}

impl<'a> HostJson<'a> {
    fn new(h: &'a HostInfo) -> Self {
        let addr = host_addr(&h.host);
        Self {
            index: h.index,
            id: h.host.id,
            addr: addr.to_string(),
            ip: addr.ip().to_string(),
            port: addr.port(),
            domain: abi::name_str(&h.host.domain),
            state: host_state_name(h.state),
            last_heard_ms: (h.last_heard_ms != LAST_HEARD_NEVER).then_some(h.last_heard_ms),
            rtt_us: (h.rtt_us != 0).then_some(h.rtt_us),
            replica_blocks: h.replica_blocks,
        }
    }
}

/// `fvpctl host list --json`: `{"hosts": [...]}`.
pub fn host_list_json(hosts: &[HostInfo]) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        hosts: Vec<HostJson<'a>>,
    }
    to_json(&Report { hosts: hosts.iter().map(HostJson::new).collect() })
}

/// The shared devices as a table, or `no shared devices`.
pub fn devices_text(devices: &[DeviceReq]) -> String {
    if devices.is_empty() {
        return "no shared devices".to_owned();
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| vec![abi::name_str(&d.name).to_owned(), d.path_str().to_owned(), uuid_text(d).unwrap_or("-".into())])
        .collect();
    table_aligned(&["DEVICE", "PATH", "UUID"], &rows, 3)
}

/// A device's uuid as text; `None` if it has none (all zero).
fn uuid_text(d: &DeviceReq) -> Option<String> {
    (d.uuid != [0; abi::DEVICE_UUID_LEN]).then(|| abi::UuidText(&d.uuid).to_string())
}

/// A shared device in JSON.
#[derive(Debug, Serialize)]
struct DeviceJson<'a> {
    index: u32,
    name: &'a str,
    path: &'a str,
    /// `null` if none.
    uuid: Option<String>,
}

impl<'a> DeviceJson<'a> {
    fn new(d: &'a DeviceReq) -> Self {
        Self { index: d.index, name: abi::name_str(&d.name), path: d.path_str(), uuid: uuid_text(d) }
    }
}

/// `fvpctl device list --json`: `{"devices": [...]}`.
pub fn device_list_json(devices: &[DeviceReq]) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        devices: Vec<DeviceJson<'a>>,
    }
    to_json(&Report { devices: devices.iter().map(DeviceJson::new).collect() })
}

/// `authenticated`, `encrypted`, or `unknown(N)` for a transport this fvpctl does not know.
pub fn transport_name(transport: u32) -> String {
    match Transport::from_u32(transport) {
        Some(mode) => mode.name().to_owned(),
        None => format!("unknown({transport})"),
    }
}

/// `cluster lab: local host 2, heartbeat 200 ms, timeout 2000 ms, transport authenticated`.
fn cluster_settings_line(cfg: &ClusterCfg) -> String {
    format!(
        "cluster {}: local host {}, heartbeat {} ms, timeout {} ms, transport {}",
        abi::name_str(&cfg.name),
        cfg.local_id,
        cfg.heartbeat_ms,
        cfg.timeout_ms,
        transport_name(cfg.transport)
    )
}

/// `fvpctl cluster show`: the settings and state, a blank line, the hosts with the start
/// of their public keys (`-` for none), a blank line, the shared devices.
pub fn cluster_show_text(
    info: &ClusterInfo,
    hosts: &[HostInfo],
    keys: &BTreeMap<u32, PublicKey>,
    devices: &[DeviceReq],
) -> String {
    let flags = cluster_flag_names(info.flags);
    let head = if info.flags & CLUSTER_CONFIGURED == 0 {
        "cluster: not configured (fvpctl cluster apply FILE)".to_owned()
    } else {
        cluster_settings_line(&info.cfg)
    };
    let flags = if flags.is_empty() { "none".to_owned() } else { flags.join(", ") };
    format!(
        "{head}\nflags: {flags}\nhosts up {}/{}, replica blocks {}, refused connections {}, \
         protocol errors {}\n\n{}\n\n{}",
        info.hosts_up,
        info.hosts,
        info.replica_blocks,
        info.refused_connections,
        info.protocol_errors,
        hosts_table(hosts, Some(keys)),
        devices_text(devices)
    )
}

/// `fvpctl cluster show --json`: `{"cluster": {...}, "hosts": [...], "devices": [...]}`;
/// each host has its public key as `"key"` (hex, or null for none).
pub fn cluster_show_json(
    info: &ClusterInfo,
    hosts: &[HostInfo],
    keys: &BTreeMap<u32, PublicKey>,
    devices: &[DeviceReq],
) -> String {
    #[derive(Serialize)]
    struct Cluster<'a> {
        configured: bool,
        name: &'a str,
        local_id: u32,
        heartbeat_ms: u32,
        timeout_ms: u32,
        transport: String,
        secret_len: u32,
        flags: Vec<String>,
        flags_mask: u32,
        hosts: u32,
        hosts_up: u32,
        devices: u32,
        replica_blocks: u64,
        refused_connections: u64,
        protocol_errors: u64,
    }
    #[derive(Serialize)]
    struct Host<'a> {
        #[serde(flatten)]
        host: HostJson<'a>,
        key: Option<String>,
    }
    #[derive(Serialize)]
    struct Report<'a> {
        cluster: Cluster<'a>,
        hosts: Vec<Host<'a>>,
        devices: Vec<DeviceJson<'a>>,
    }
    let cfg = &info.cfg;
    to_json(&Report {
        cluster: Cluster {
            configured: info.flags & CLUSTER_CONFIGURED != 0,
            name: abi::name_str(&cfg.name),
            local_id: cfg.local_id,
            heartbeat_ms: cfg.heartbeat_ms,
            timeout_ms: cfg.timeout_ms,
            transport: transport_name(cfg.transport),
            secret_len: cfg.secret_len,
            flags: cluster_flag_names(info.flags),
            flags_mask: info.flags,
            hosts: info.hosts,
            hosts_up: info.hosts_up,
            devices: info.devices,
            replica_blocks: info.replica_blocks,
            refused_connections: info.refused_connections,
            protocol_errors: info.protocol_errors,
        },
        hosts: hosts
            .iter()
            .map(|h| Host { host: HostJson::new(h), key: keys.get(&h.host.id).map(PublicKey::hex) })
            .collect(),
        devices: devices.iter().map(DeviceJson::new).collect(),
    })
}

/// `fvpctl key generate|public FILE`: the public key, 64 hex digits.
pub fn key_text(public: &PublicKey) -> String {
    public.hex()
}

/// `fvpctl key generate|public FILE --json`: `{"file": ..., "public_key": ...}`.
pub fn key_json(file: &Path, public: &PublicKey) -> String {
    serde_json::json!({"file": file.display().to_string(), "public_key": public.hex()}).to_string()
}

/// What `fvpctl key set` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAction {
    /// The host.
    pub id: u32,
    /// This host's private key was set (else host `id`'s public key).
    pub private: bool,
    /// The public key set, or that of the private key set.
    pub public: PublicKey,
}

/// `set the public key of host 3: HEX` or `set the private key of host 2 (this host),
/// whose public key is HEX`.
pub fn key_set_text(action: &KeyAction) -> String {
    if action.private {
        format!("set the private key of host {} (this host), whose public key is {}", action.id, action.public)
    } else {
        format!("set the public key of host {}: {}", action.id, action.public)
    }
}

/// `{"action": "set", "host": 3, "kind": "public"|"private", "public_key": HEX}`.
pub fn key_set_json(action: &KeyAction) -> String {
    serde_json::json!({
        "action": "set",
        "host": action.id,
        "kind": if action.private { "private" } else { "public" },
        "public_key": action.public.hex(),
    })
    .to_string()
}

/// `fvpctl cluster set`: `set cluster lab: local host 2, heartbeat 200 ms, timeout 2000 ms,
/// transport authenticated`.
pub fn cluster_set_text(cfg: &ClusterCfg) -> String {
    format!("set {}", cluster_settings_line(cfg))
}

/// `fvpctl cluster set --json` (no secret, only its length).
pub fn cluster_set_json(cfg: &ClusterCfg) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        action: &'static str,
        cluster: &'a str,
        local_id: u32,
        heartbeat_ms: u32,
        timeout_ms: u32,
        transport: String,
        secret_len: u32,
    }
    to_json(&Report {
        action: "set",
        cluster: abi::name_str(&cfg.name),
        local_id: cfg.local_id,
        heartbeat_ms: cfg.heartbeat_ms,
        timeout_ms: cfg.timeout_ms,
        transport: transport_name(cfg.transport),
        secret_len: cfg.secret_len,
    })
}

/// What a host or device command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberAction<'a> {
    /// `host add`.
    HostAdded(&'a HostReq),
    /// `host remove ID`.
    HostRemoved(u32),
    /// `device add`.
    DeviceAdded(&'a DeviceReq),
    /// `device remove NAME`.
    DeviceRemoved(&'a str),
}

/// `added host 3 (10.0.0.3:7790, domain rack-b)`, `removed host 3`,
/// `added shared device shared0 (/dev/vdb)`, `removed shared device shared0`.
pub fn member_action_text(action: MemberAction<'_>) -> String {
    match action {
        MemberAction::HostAdded(h) => {
            format!("added host {} ({}, domain {})", h.id, host_addr(h), abi::name_str(&h.domain))
        }
        MemberAction::HostRemoved(id) => format!("removed host {id}"),
        MemberAction::DeviceAdded(d) => match uuid_text(d) {
            Some(u) => format!("added shared device {} ({}, uuid {u})", abi::name_str(&d.name), d.path_str()),
            None => format!("added shared device {} ({})", abi::name_str(&d.name), d.path_str()),
        },
        MemberAction::DeviceRemoved(name) => format!("removed shared device {name}"),
    }
}

/// `{"action": "add"|"remove", "host": {...}}` or `{"action": ..., "device": {...}}`.
pub fn member_action_json(action: MemberAction<'_>) -> String {
    use serde_json::json;
    let value = match action {
        MemberAction::HostAdded(h) => json!({"action": "add", "host": {
            "id": h.id,
            "addr": host_addr(h).to_string(),
            "domain": abi::name_str(&h.domain),
        }}),
        MemberAction::HostRemoved(id) => json!({"action": "remove", "host": {"id": id}}),
        MemberAction::DeviceAdded(d) => json!({"action": "add", "device": {
            "name": abi::name_str(&d.name),
            "path": d.path_str(),
            "uuid": uuid_text(d),
        }}),
        MemberAction::DeviceRemoved(name) => json!({"action": "remove", "device": {"name": name}}),
    };
    value.to_string()
}

/// `volume discard-detached`, as text.
pub fn discarded_text(major: u32, minor: u32, blocks: u64) -> String {
    format!(
        "discarded {blocks} dirty blocks of the removed volume over {major}:{minor}; \
         the device keeps older data for them"
    )
}

/// `volume discard-detached`, as JSON.
pub fn discarded_json(major: u32, minor: u32, blocks: u64) -> String {
    serde_json::json!({"action": "discard-detached", "backing": format!("{major}:{minor}"), "dirty_blocks_discarded": blocks})
        .to_string()
}

/// What `cluster apply` did or, with `--dry-run`, would do.
#[derive(Clone, Debug)]
pub struct ApplyReport<'a> {
    pub cfg: &'a ClusterCfg,
    /// Hosts in the description.
    pub hosts: usize,
    pub plan: &'a Plan,
    pub dry_run: bool,
    pub notes: Vec<String>,
}

/// Ids and names by what happens to them.
#[derive(Debug, Serialize)]
struct Changes<T> {
    added: Vec<T>,
    /// Changed in place (a host's fault domain).
    updated: Vec<T>,
    replaced: Vec<T>,
    removed: Vec<T>,
    unchanged: Vec<T>,
}

impl<T: ToString> Changes<T> {
    fn new<R>(changes: &[Change<R>], unchanged: Vec<T>, key: impl Fn(&R) -> T) -> Self {
        let mut out =
            Changes { added: Vec::new(), updated: Vec::new(), replaced: Vec::new(), removed: Vec::new(), unchanged };
        for change in changes {
            match change {
                Change::Add(new) => out.added.push(key(new)),
                Change::Update { new, .. } => out.updated.push(key(new)),
                Change::Replace { new, .. } => out.replaced.push(key(new)),
                Change::Remove(old) => out.removed.push(key(old)),
            }
        }
        out
    }

    /// `added 3, 4; removed 9; unchanged 1, 2` (with `dry_run`: `to add 3, 4; ...`).
    fn text(&self, dry_run: bool) -> String {
        let verbs: [(&str, &str, &Vec<T>); 5] = [
            ("added", "to add", &self.added),
            ("updated", "to update", &self.updated),
            ("replaced", "to replace", &self.replaced),
            ("removed", "to remove", &self.removed),
            ("unchanged", "unchanged", &self.unchanged),
        ];
        let parts: Vec<String> = verbs
            .iter()
            .filter(|(_, _, items)| !items.is_empty())
            .map(|(done, planned, items)| {
                let items: Vec<String> = items.iter().map(ToString::to_string).collect();
                format!("{} {}", if dry_run { planned } else { done }, items.join(", "))
            })
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

fn host_changes(plan: &Plan) -> Changes<u32> {
    Changes::new(&plan.hosts, plan.hosts_unchanged.clone(), |h: &HostReq| h.id)
}

fn device_changes(plan: &Plan) -> Changes<String> {
    Changes::new(&plan.devices, plan.devices_unchanged.clone(), |d: &DeviceReq| abi::name_str(&d.name).to_owned())
}

/// The keys a plan sets: this host's private key, by host id, and the public keys.
#[derive(Debug, Serialize)]
struct KeysJson {
    /// This host's id.
    private: Option<u32>,
    public: Vec<u32>,
}

/// `None` for a plan without keys (a module without them).
fn keys_set(plan: &Plan) -> Option<KeysJson> {
    if plan.keys.is_empty() {
        return None;
    }
    let private = plan.keys.iter().find_map(|k| match k {
        KeyChange::Private(id) => Some(*id),
        KeyChange::Public(..) => None,
    });
    let public = plan
        .keys
        .iter()
        .filter_map(|k| match k {
            KeyChange::Public(id, _) => Some(*id),
            KeyChange::Private(_) => None,
        })
        .collect();
    Some(KeysJson { private, public })
}

/// `3 set (private key of host 2; public keys of hosts 1, 3)` (with `dry_run`: `3 to
/// set (...)`), or `none set (...)`.
fn keys_text(plan: &Plan, dry_run: bool) -> String {
    let Some(keys) = keys_set(plan) else {
        return "none set (the module has no host keys)".to_owned();
    };
    let mut what = Vec::new();
    if let Some(id) = keys.private {
        what.push(format!("private key of host {id}"));
    }
    if !keys.public.is_empty() {
        let ids: Vec<String> = keys.public.iter().map(u32::to_string).collect();
        let s = if ids.len() == 1 { "" } else { "s" };
        what.push(format!("public key{s} of host{s} {}", ids.join(", ")));
    }
    format!("{} {} ({})", plan.keys.len(), if dry_run { "to set" } else { "set" }, what.join("; "))
}

/// `fvpctl cluster apply`, as text:
/// `applied cluster lab: local host 2 of 3, heartbeat 200 ms, timeout 2000 ms, transport
/// authenticated`, then
/// a line each for keys, hosts and devices, then notes.
pub fn apply_text(report: &ApplyReport<'_>) -> String {
    let cfg = report.cfg;
    let mut lines = vec![
        format!(
            "{} cluster {}: local host {} of {}, heartbeat {} ms, timeout {} ms, transport {}",
            if report.dry_run { "would apply (dry run, nothing changed)" } else { "applied" },
            abi::name_str(&cfg.name),
            cfg.local_id,
            report.hosts,
            cfg.heartbeat_ms,
            cfg.timeout_ms,
            transport_name(cfg.transport)
        ),
        format!("keys: {}", keys_text(report.plan, report.dry_run)),
        format!("hosts: {}", host_changes(report.plan).text(report.dry_run)),
        format!("shared devices: {}", device_changes(report.plan).text(report.dry_run)),
    ];
    lines.extend(report.notes.iter().map(|note| format!("note: {note}")));
    lines.join("\n")
}

/// `fvpctl cluster apply --json`.
pub fn apply_json(report: &ApplyReport<'_>) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        action: &'static str,
        dry_run: bool,
        cluster: &'a str,
        local_id: u32,
        heartbeat_ms: u32,
        timeout_ms: u32,
        transport: String,
        /// `null` when the module has no keys.
        keys: Option<KeysJson>,
        hosts: Changes<u32>,
        devices: Changes<String>,
        notes: &'a [String],
    }
    let cfg = report.cfg;
    to_json(&Report {
        action: "apply",
        dry_run: report.dry_run,
        cluster: abi::name_str(&cfg.name),
        local_id: cfg.local_id,
        heartbeat_ms: cfg.heartbeat_ms,
        timeout_ms: cfg.timeout_ms,
        transport: transport_name(cfg.transport),
        keys: keys_set(report.plan),
        hosts: host_changes(report.plan),
        devices: device_changes(report.plan),
        notes: &report.notes,
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
    let filled = if left == 0 { BAR_WIDTH } else { filled.min(BAR_WIDTH - 1) };
    let percent = if left == 0 { 100 } else { ((fraction * 100.0) as u32).min(99) };
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
    format!("drained {volume}: {initial} dirty blocks written back in {:.1} s", elapsed.as_secs_f64())
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
                    "abi_version": 9,
                    "features": ["passthrough", "ram-pool"],
                    "features_mask": 3,
                }
            })
        );
    }

    #[test]
    fn status_json_has_the_documented_shape() {
        let status = Status { volumes: 3, reserved: 0, bios_mapped: 1 << 40 };
        let value = parse(&status_json(&module_0_1_0(), &status));
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["fvpctl", "module", "status"]);
        assert_eq!(value["module"]["version"], "0.1.0");
        assert_eq!(value["module"]["abi_version"], 9);
        assert_eq!(value["status"], json!({"volumes": 3, "bios_mapped": 1u64 << 40}));
    }

    #[test]
    fn version_text_names_both_sides() {
        assert_eq!(
            version_text(&module_0_1_0()),
            format!("fvpctl {FVPCTL_VERSION}\nfvp module 0.1.0 (abi 9)\nfeatures: passthrough, ram-pool")
        );
    }

    #[test]
    fn status_text_lists_counters() {
        let status = Status { volumes: 2, reserved: 0, bios_mapped: 12345 };
        assert_eq!(status_text(&module_0_1_0(), &status), "fvp module 0.1.0 (abi 9)\nvolumes: 2\nbios mapped: 12345");
    }

    #[test]
    fn unknown_and_missing_features_are_shown() {
        let version = Version::new(0, 1, 0, FEATURE_PASSTHROUGH | 1 << 5, "0.1.0");
        assert!(version_text(&version).ends_with("features: passthrough, bit5"));
        assert_eq!(parse(&version_json(&version))["module"]["features"], json!(["passthrough", "bit5"]));
        let secure = Version::new(0, 1, 0, FEATURE_REPLICATION | abi::FEATURE_SECURE_TRANSPORT, "0.1.0");
        assert!(version_text(&secure).ends_with("features: replication, secure-transport"));
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
        VolumeView { info, name: Some("vol0"), rates: None, repl: None, health: None }
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
        assert_eq!(policy_text(POLICY_WRITE_BACK, POLICY_WRITE_BACK), "write-back");
        assert_eq!(policy_text(POLICY_WRITE_THROUGH, POLICY_WRITE_THROUGH), "write-through");
        assert_eq!(policy_text(POLICY_WRITE_THROUGH, POLICY_WRITE_BACK), "write-back (draining -> write-through)");
        assert_eq!(policy_text(POLICY_WRITE_BACK, POLICY_WRITE_THROUGH), "write-through (requested write-back)");
    }

    #[test]
    fn pool_line_shows_every_counter() {
        assert_eq!(
            pool_line(&pool("ram0")),
            "pool ram0: size 64 MiB, 16384 pages (free 16000, clean 300, dirty 84, busy 0), \
             1 volume(s), metadata 1.2 MiB (80.0 B/page), evictions 7"
        );
        let empty = PoolInfo { pages: 0, metadata_bytes: 0, ..pool("new") };
        assert!(pool_line(&empty).contains("metadata 0 B (- B/page)"), "{}", pool_line(&empty));
    }

    #[test]
    fn pool_list_is_a_table() {
        let big = PoolInfo { target_bytes: 1 << 30, pages: 262144, volumes: 12, ..pool("big-pool.1") };
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
        let value = parse(&pool_list_json(&[pool("ram0")], &[]));
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
            }], "flash_pools": []})
        );
        assert_eq!(parse(&pool_list_json(&[], &[])), json!({"pools": [], "flash_pools": []}));
        let empty = PoolInfo { pages: 0, ..pool("x") };
        assert_eq!(parse(&pool_list_json(&[empty], &[]))["pools"][0]["metadata_bytes_per_page"], Value::Null);
    }

    #[test]
    fn pool_actions_read_well() {
        assert_eq!(pool_action_text("ram0", PoolAction::Created { bytes: 64 * MIB }), "created pool ram0 (64 MiB)");
        assert_eq!(
            pool_action_text("ram0", PoolAction::Grown { from: 64 * MIB, to: 128 * MIB }),
            "grew pool ram0 from 64 MiB to 128 MiB"
        );
        assert_eq!(
            pool_action_text("ram0", PoolAction::Shrunk { from: 128 * MIB, to: 64 * MIB }),
            "shrank pool ram0 from 128 MiB to 64 MiB"
        );
        assert_eq!(pool_action_text("ram0", PoolAction::Destroyed), "destroyed pool ram0");
        assert_eq!(
            parse(&pool_action_json("ram0", PoolAction::Created { bytes: 4096 })),
            json!({"action": "create", "pool": "ram0", "ram_bytes": 4096})
        );
        assert_eq!(
            parse(&pool_action_json("ram0", PoolAction::Grown { from: 4096, to: 8192 })),
            json!({"action": "grow", "pool": "ram0", "ram_bytes": 8192, "previous_bytes": 4096})
        );
        assert_eq!(
            parse(&pool_action_json("ram0", PoolAction::Shrunk { from: 8192, to: 4096 })),
            json!({"action": "shrink", "pool": "ram0", "ram_bytes": 4096, "previous_bytes": 8192})
        );
        assert_eq!(
            parse(&pool_action_json("ram0", PoolAction::Destroyed)),
            json!({"action": "destroy", "pool": "ram0"})
        );
    }

    fn health(flags: u32) -> VolumeHealth {
        VolumeHealth {
            index: 0,
            flags,
            destage_errors: 12,
            io_errors: 3,
            dirty_blocks: 256,
            backing_major: 8,
            backing_minor: 16,
            reserved: [0; 4],
        }
    }

    #[test]
    fn volume_text_shows_totals_and_derived_numbers() {
        let info = volume();
        let ok = VolumeHealth { destage_errors: 0, io_errors: 0, ..health(0) };
        assert_eq!(
            volume_text(&VolumeView { health: Some(&ok), ..view(&info) }, false),
            "\
volume vol0 (253:0): pool ram0, policy write-back, block size 4096
  reads 1234 (5 MiB), writes 567 (2 MiB)
  read hits 1200, misses 34, hit rate 97.2%; write hits 567
  dirty 1 MiB (256 blocks), destaged 311 blocks, evictions 0, bypassed 2
  health ok; destage errors 0, I/O errors 0; backing device 8:16
  latency: read p50 ≤ 64 µs, p99 ≤ 1024 µs; write p50 ≤ 32 µs, p99 ≤ 32 µs"
        );
    }

    #[test]
    fn health_states_are_named() {
        let names: Vec<String> = [0, VOLUME_FAILING, VOLUME_DETACHED, VOLUME_DETACHED | VOLUME_FAILING, 1 << 5 | 1]
            .into_iter()
            .map(|flags| health_text(Some(&health(flags))))
            .collect();
        assert_eq!(names, ["ok", "failing", "detached", "detached,failing", "failing,bit5"]);
        assert_eq!(health_text(None), "-");
        assert_eq!(volume_flag_names(0), Vec::<String>::new());
        assert_eq!(volume_flag_names(VOLUME_FAILING | VOLUME_DETACHED | 1 << 31), ["detached", "failing", "bit31"]);
    }

    #[test]
    fn volume_text_shows_health_and_errors() {
        let info = volume();
        let failing = health(VOLUME_FAILING);
        let text = volume_text(&VolumeView { health: Some(&failing), ..view(&info) }, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert_eq!(lines[0], "volume vol0 (253:0): pool ram0, policy write-back, block size 4096");
        assert_eq!(lines[4], "  health failing; destage errors 12, I/O errors 3; backing device 8:16");
        // Watching: the health line stays after the dirty line.
        let text = volume_text(&VolumeView { health: Some(&failing), rates: Some(rates()), ..view(&info) }, true);
        assert_eq!(text.lines().nth(5), Some("  health failing; destage errors 12, I/O errors 3; backing device 8:16"));
        // A module before ABI 4: dashes, not an error.
        let text = volume_text(&view(&info), false);
        assert_eq!(text.lines().nth(4), Some("  health -; destage errors -, I/O errors -"));
    }

    #[test]
    fn discards_say_what_was_lost() {
        assert_eq!(
            discarded_text(8, 16, 37),
            "discarded 37 dirty blocks of the removed volume over 8:16; the device keeps older data for them"
        );
        assert_eq!(
            parse(&discarded_json(8, 16, 37)),
            json!({"action": "discard-detached", "backing": "8:16", "dirty_blocks_discarded": 37})
        );
    }

    #[test]
    fn detached_volumes_show_their_device_as_removed() {
        let info = volume();
        let detached = health(VOLUME_DETACHED | VOLUME_FAILING);
        // Even if a name was found for the number (a new device may have taken it).
        let with = VolumeView { health: Some(&detached), ..view(&info) };
        let text = volume_text(&with, false);
        assert!(text.starts_with("volume 253:0 (removed): pool ram0, "), "{text}");
        assert!(text.contains("\n  health detached,failing; destage errors 12, I/O errors 3; backing device 8:16\n"));
        let view_without_name = VolumeView { name: None, ..with };
        assert!(volume_text(&view_without_name, false).starts_with("volume 253:0 (removed): "));
        let failing = health(VOLUME_FAILING);
        let live = VolumeView { health: Some(&failing), ..view(&info) };
        assert!(volume_text(&live, false).starts_with("volume vol0 (253:0): "));
        let value = parse(&stats_json(&[], &[VolumeView { name: None, ..with }], None));
        assert_eq!(value["volumes"][0]["name"], Value::Null);
        assert_eq!(
            value["volumes"][0]["health"],
            json!({
                "state": "detached,failing",
                "flags": ["detached", "failing"],
                "flags_mask": 3,
                "destage_errors": 12,
                "io_errors": 3,
                "dirty_blocks": 256,
                "backing_dev": "8:16",
                "backing_major": 8,
                "backing_minor": 16,
            })
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
        let view = VolumeView { info: &info, name: None, rates: None, repl: None, health: None };
        assert_eq!(
            volume_text(&view, false),
            "\
volume 253:4: pool ram1, policy write-back (draining -> write-through), block size 4096
  reads 0 (0 B), writes 0 (0 B)
  read hits 0, misses 0, hit rate -; write hits 0
  dirty 0 B (0 blocks), destaged 0 blocks, evictions 0, bypassed 0
  health -; destage errors -, I/O errors -
  latency: read p50 -, p99 -; write p50 -, p99 -"
        );
    }

    #[test]
    fn watching_adds_rates() {
        let info = volume();
        let with = VolumeView { rates: Some(rates()), ..view(&info) };
        let text = volume_text(&with, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[2], "  rates: read 12.3 MiB/s (3150 IOPS), write 1.0 MiB/s (256 IOPS)");
        let text = volume_text(&view(&info), true);
        assert_eq!(text.lines().nth(2), Some("  rates: -"));
        // Not watching: no rates line even if rates are known.
        assert!(!volume_text(&with, false).contains("rates"));
    }

    #[test]
    fn stats_text_lists_pools_then_volumes() {
        let a = volume();
        let b = VolumeInfo { dev_minor: 1, ..volume() };
        let views = [view(&a), VolumeView { info: &b, name: None, rates: None, repl: None, health: None }];
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
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
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
                "health": null,
            })
        );
    }

    #[test]
    fn stats_json_without_traffic_has_nulls() {
        let info = VolumeInfo::default();
        let view = VolumeView { info: &info, name: None, rates: None, repl: None, health: None };
        let value = parse(&stats_json(&[], &[view], None));
        let v = &value["volumes"][0];
        assert_eq!(v["name"], Value::Null);
        assert_eq!(v["hit_rate"], Value::Null);
        assert_eq!(
            v["latency"],
            json!({"read": {"p50_us": null, "p99_us": null}, "write": {"p50_us": null, "p99_us": null}})
        );
        assert_eq!(v["policy_effective"], "unknown(0)");
        assert_eq!(parse(&stats_json(&[], &[], None)), json!({"pools": [], "volumes": []}));
    }

    #[test]
    fn watched_stats_json_has_rates_on_one_line() {
        let info = volume();
        let with = VolumeView { rates: Some(rates()), ..view(&info) };
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
        assert_eq!(drain_line("vol0", 1234), "draining vol0: 1234 dirty blocks left");
        assert_eq!(
            drained_text("vol0", 1234, Duration::from_millis(2400)),
            "drained vol0: 1234 dirty blocks written back in 2.4 s"
        );
        let value = parse(&drained_json("vol0", &volume(), 1234, Duration::from_millis(2500)));
        assert_eq!(
            value,
            json!({"volume": "vol0", "dev": "253:0", "drained": true, "initial_dirty_blocks": 1234, "elapsed_s": 2.5})
        );
    }

    fn host_info(index: u32, id: u32, state: u32, last_heard_ms: u64, rtt_us: u64) -> HostInfo {
        HostInfo {
            index,
            host: HostReq::new(
                id,
                [10, 0, 0, id as u8],
                7790,
                abi::pool_name(if id == 1 { b"rack-a" } else { b"rack-b" }).unwrap(),
            ),
            state,
            reserved: 0,
            last_heard_ms,
            rtt_us,
            replica_blocks: u64::from(id) * 100,
        }
    }

    fn cluster_hosts() -> Vec<HostInfo> {
        vec![
            host_info(0, 1, HOST_SELF, 0, 0),
            host_info(1, 2, HOST_UP, 12, 850),
            host_info(2, 3, HOST_DOWN, LAST_HEARD_NEVER, 0),
            host_info(3, 14, HOST_CONNECTING, 42_000, 12_345),
            host_info(4, 5, HOST_FENCED, 2500, 1250),
        ]
    }

    fn shared_devices() -> Vec<DeviceReq> {
        vec![DeviceReq {
            index: 0,
            ..DeviceReq::new(abi::pool_name(b"shared0").unwrap(), b"/dev/disk/by-id/virtio-fvp-shared").unwrap()
        }]
    }

    fn cluster_info() -> ClusterInfo {
        let mut cfg = ClusterCfg {
            name: abi::pool_name(b"lab").unwrap(),
            local_id: 1,
            heartbeat_ms: 200,
            timeout_ms: 2000,
            secret_len: 24,
            ..Default::default()
        };
        cfg.reserved = [0; 3];
        ClusterInfo {
            cfg,
            flags: CLUSTER_CONFIGURED | CLUSTER_LISTENING | CLUSTER_LEASE,
            hosts: 5,
            devices: 1,
            hosts_up: 2,
            replica_blocks: 1234,
            refused_connections: 3,
            protocol_errors: 1,
        }
    }

    #[test]
    fn unknown_transports_show_as_numbers() {
        let names: Vec<String> = [0, 1, 2, u32::MAX].into_iter().map(transport_name).collect();
        assert_eq!(names, ["authenticated", "encrypted", "unknown(2)", "unknown(4294967295)"]);
        let mut info = cluster_info();
        info.cfg.transport = 7;
        assert!(cluster_show_text(&info, &[], &BTreeMap::new(), &[])
            .starts_with("cluster lab: local host 1, heartbeat 200 ms, timeout 2000 ms, transport unknown(7)\n"));
        assert_eq!(parse(&cluster_show_json(&info, &[], &BTreeMap::new(), &[]))["cluster"]["transport"], "unknown(7)");
        assert_eq!(parse(&cluster_set_json(&info.cfg))["transport"], "unknown(7)");
    }

    #[test]
    fn host_states_and_times_read_well() {
        let names: Vec<String> = [0, 1, 2, 3, 4, 9].into_iter().map(host_state_name).collect();
        assert_eq!(names, ["self", "down", "connecting", "up", "fenced", "unknown(9)"]);
        let hosts = cluster_hosts();
        let heard: Vec<String> = hosts.iter().map(last_heard_text).collect();
        assert_eq!(heard, ["-", "12 ms ago", "never", "42 s ago", "2500 ms ago"]);
        assert_eq!(rtt_text(0), "-");
        assert_eq!(rtt_text(850), "850 µs");
        assert_eq!(rtt_text(1250), "1.2 ms");
        assert_eq!(rtt_text(12_345), "12 ms");
        assert_eq!(cluster_flag_names(CLUSTER_CONFIGURED | 1 << 7), ["configured", "bit7"]);
    }

    /// Public keys of hosts 1, 2 and 14 (RFC 7748's Alice's, Bob's, and one made up).
    fn host_keys() -> BTreeMap<u32, PublicKey> {
        use crate::keys::rfc7748::{ALICE_PUBLIC, BOB_PUBLIC};
        [(1, ALICE_PUBLIC), (2, BOB_PUBLIC), (14, &"0e".repeat(32)[..])]
            .into_iter()
            .map(|(id, hex)| (id, PublicKey::parse(hex).unwrap()))
            .collect()
    }

    #[test]
    fn cluster_show_text_has_settings_hosts_and_devices() {
        assert_eq!(
            cluster_show_text(&cluster_info(), &cluster_hosts(), &host_keys(), &shared_devices()),
            "\
cluster lab: local host 1, heartbeat 200 ms, timeout 2000 ms, transport authenticated
flags: configured, listening, lease
hosts up 2/5, replica blocks 1234, refused connections 3, protocol errors 1

ID  ADDRESS         DOMAIN  KEY               STATE        LAST HEARD     RTT  REPLICA BLOCKS
1   10.0.0.1:7790   rack-a  8520f0098930a754  self                  -       -             100
2   10.0.0.2:7790   rack-b  de9edb7d7b7dc1b4  up            12 ms ago  850 µs             200
3   10.0.0.3:7790   rack-b  -                 down              never       -             300
14  10.0.0.14:7790  rack-b  0e0e0e0e0e0e0e0e  connecting     42 s ago   12 ms            1400
5   10.0.0.5:7790   rack-b  -                 fenced      2500 ms ago  1.2 ms             500

DEVICE   PATH                               UUID
shared0  /dev/disk/by-id/virtio-fvp-shared  -"
        );
        // `host list` has no keys.
        assert_eq!(
            hosts_text(&cluster_hosts()[..1]),
            "\
ID  ADDRESS        DOMAIN  STATE  LAST HEARD  RTT  REPLICA BLOCKS
1   10.0.0.1:7790  rack-a  self            -    -             100"
        );
        let empty = ClusterInfo::default();
        assert_eq!(
            cluster_show_text(&empty, &[], &BTreeMap::new(), &[]),
            "\
cluster: not configured (fvpctl cluster apply FILE)
flags: none
hosts up 0/0, replica blocks 0, refused connections 0, protocol errors 0

no hosts

no shared devices"
        );
    }

    #[test]
    fn cluster_show_json_has_every_field() {
        let value = parse(&cluster_show_json(&cluster_info(), &cluster_hosts()[..3], &host_keys(), &shared_devices()));
        assert_eq!(
            value["cluster"],
            json!({
                "configured": true,
                "name": "lab",
                "local_id": 1,
                "heartbeat_ms": 200,
                "timeout_ms": 2000,
                "transport": "authenticated",
                "secret_len": 24,
                "flags": ["configured", "listening", "lease"],
                "flags_mask": 7,
                "hosts": 5,
                "hosts_up": 2,
                "devices": 1,
                "replica_blocks": 1234,
                "refused_connections": 3,
                "protocol_errors": 1,
            })
        );
        assert_eq!(
            value["hosts"][1],
            json!({
                "index": 1, "id": 2, "addr": "10.0.0.2:7790", "ip": "10.0.0.2", "port": 7790,
                "domain": "rack-b", "state": "up", "last_heard_ms": 12, "rtt_us": 850,
                "replica_blocks": 200, "key": crate::keys::rfc7748::BOB_PUBLIC,
            })
        );
        assert_eq!(value["hosts"][0]["key"], crate::keys::rfc7748::ALICE_PUBLIC);
        assert_eq!(value["hosts"][2]["last_heard_ms"], Value::Null);
        assert_eq!(value["hosts"][2]["rtt_us"], Value::Null);
        assert_eq!(value["hosts"][2]["key"], Value::Null);
        // `host list --json` has no keys.
        assert!(parse(&host_list_json(&cluster_hosts()))["hosts"][0].get("key").is_none());
        assert_eq!(
            value["devices"],
            json!([{"index": 0, "name": "shared0", "path": "/dev/disk/by-id/virtio-fvp-shared", "uuid": null}])
        );
        assert_eq!(parse(&host_list_json(&[])), json!({"hosts": []}));
        assert_eq!(parse(&host_list_json(&cluster_hosts()))["hosts"][3]["id"], 14);
        assert_eq!(parse(&device_list_json(&[])), json!({"devices": []}));
        let mut encrypted = cluster_info();
        encrypted.cfg.transport = abi::TRANSPORT_ENCRYPTED;
        let value = parse(&cluster_show_json(&encrypted, &[], &BTreeMap::new(), &[]));
        assert_eq!(value["cluster"]["transport"], "encrypted");
        assert_eq!(hosts_text(&[]), "no hosts");
        assert_eq!(devices_text(&[]), "no shared devices");
    }

    #[test]
    fn cluster_set_and_member_actions_read_well() {
        let cfg = cluster_info().cfg;
        assert_eq!(
            cluster_set_text(&cfg),
            "set cluster lab: local host 1, heartbeat 200 ms, timeout 2000 ms, transport authenticated"
        );
        assert_eq!(
            parse(&cluster_set_json(&cfg)),
            json!({"action": "set", "cluster": "lab", "local_id": 1, "heartbeat_ms": 200,
                   "timeout_ms": 2000, "transport": "authenticated", "secret_len": 24})
        );
        let encrypted = ClusterCfg { transport: abi::TRANSPORT_ENCRYPTED, ..cfg };
        assert!(cluster_set_text(&encrypted).ends_with("timeout 2000 ms, transport encrypted"));
        assert_eq!(parse(&cluster_set_json(&encrypted))["transport"], "encrypted");
        let host = cluster_hosts()[1].host;
        let device = shared_devices()[0];
        assert_eq!(member_action_text(MemberAction::HostAdded(&host)), "added host 2 (10.0.0.2:7790, domain rack-b)");
        assert_eq!(member_action_text(MemberAction::HostRemoved(2)), "removed host 2");
        assert_eq!(
            member_action_text(MemberAction::DeviceAdded(&device)),
            "added shared device shared0 (/dev/disk/by-id/virtio-fvp-shared)"
        );
        assert_eq!(member_action_text(MemberAction::DeviceRemoved("shared0")), "removed shared device shared0");
        assert_eq!(
            parse(&member_action_json(MemberAction::HostAdded(&host))),
            json!({"action": "add", "host": {"id": 2, "addr": "10.0.0.2:7790", "domain": "rack-b"}})
        );
        assert_eq!(
            parse(&member_action_json(MemberAction::HostRemoved(2))),
            json!({"action": "remove", "host": {"id": 2}})
        );
        assert_eq!(
            parse(&member_action_json(MemberAction::DeviceRemoved("shared0"))),
            json!({"action": "remove", "device": {"name": "shared0"}})
        );
    }

    fn plan() -> Plan {
        let hosts = cluster_hosts();
        let device = shared_devices()[0];
        let keys = host_keys();
        Plan {
            keys: vec![KeyChange::Private(1), KeyChange::Public(2, keys[&2]), KeyChange::Public(14, keys[&14])],
            hosts: vec![
                Change::Replace { old: hosts[1].host, new: hosts[1].host },
                Change::Update { old: HostReq { id: 9, ..hosts[0].host }, new: HostReq { id: 9, ..hosts[0].host } },
                Change::Add(hosts[3].host),
                Change::Add(hosts[4].host),
                Change::Remove(hosts[2].host),
            ],
            hosts_unchanged: vec![1],
            devices: vec![Change::Add(device)],
            devices_unchanged: vec![],
        }
    }

    #[test]
    fn apply_reports_say_what_changed() {
        let cfg = cluster_info().cfg;
        let plan = plan();
        let mut report = ApplyReport { cfg: &cfg, hosts: 4, plan: &plan, dry_run: false, notes: vec![] };
        assert_eq!(
            apply_text(&report),
            "\
applied cluster lab: local host 1 of 4, heartbeat 200 ms, timeout 2000 ms, transport authenticated
keys: 3 set (private key of host 1; public keys of hosts 2, 14)
hosts: added 14, 5; updated 9; replaced 2; removed 3; unchanged 1
shared devices: added shared0"
        );
        report.dry_run = true;
        report.notes = vec!["mind the gap".into()];
        assert_eq!(
            apply_text(&report),
            "\
would apply (dry run, nothing changed) cluster lab: local host 1 of 4, heartbeat 200 ms, timeout 2000 ms, \
transport authenticated
keys: 3 to set (private key of host 1; public keys of hosts 2, 14)
hosts: to add 14, 5; to update 9; to replace 2; to remove 3; unchanged 1
shared devices: to add shared0
note: mind the gap"
        );
        assert_eq!(
            parse(&apply_json(&report)),
            json!({
                "action": "apply",
                "dry_run": true,
                "cluster": "lab",
                "local_id": 1,
                "heartbeat_ms": 200,
                "timeout_ms": 2000,
                "transport": "authenticated",
                "keys": {"private": 1, "public": [2, 14]},
                "hosts": {"added": [14, 5], "updated": [9], "replaced": [2], "removed": [3], "unchanged": [1]},
                "devices": {"added": ["shared0"], "updated": [], "replaced": [], "removed": [], "unchanged": []},
                "notes": ["mind the gap"],
            })
        );
        // A single host: one key.
        let alone = Plan { keys: vec![KeyChange::Private(1)], ..Plan::default() };
        report.plan = &alone;
        report.dry_run = false;
        assert!(apply_text(&report).contains("\nkeys: 1 set (private key of host 1)\nhosts: none\n"));
        let two = Plan { keys: vec![KeyChange::Private(1), plan.keys[1]], ..Plan::default() };
        report.plan = &two;
        assert!(apply_text(&report).contains("\nkeys: 2 set (private key of host 1; public key of host 2)\n"));
        // A module without keys.
        let nothing = Plan::default();
        report.plan = &nothing;
        assert!(apply_text(&report)
            .contains("\nkeys: none set (the module has no host keys)\nhosts: none\nshared devices: none\n"));
        assert_eq!(parse(&apply_json(&report))["keys"], Value::Null);
    }

    #[test]
    fn key_reports_read_well() {
        use crate::keys::rfc7748::{ALICE_PUBLIC, BOB_PUBLIC};
        let alice = PublicKey::parse(ALICE_PUBLIC).unwrap();
        assert_eq!(key_text(&alice), ALICE_PUBLIC);
        assert_eq!(
            parse(&key_json(Path::new("/etc/fvp/host.key"), &alice)),
            json!({"file": "/etc/fvp/host.key", "public_key": ALICE_PUBLIC})
        );
        let private = KeyAction { id: 2, private: true, public: alice };
        assert_eq!(
            key_set_text(&private),
            format!("set the private key of host 2 (this host), whose public key is {ALICE_PUBLIC}")
        );
        assert_eq!(
            parse(&key_set_json(&private)),
            json!({"action": "set", "host": 2, "kind": "private", "public_key": ALICE_PUBLIC})
        );
        let public = KeyAction { id: 3, private: false, public: PublicKey::parse(BOB_PUBLIC).unwrap() };
        assert_eq!(key_set_text(&public), format!("set the public key of host 3: {BOB_PUBLIC}"));
        assert_eq!(parse(&key_set_json(&public))["kind"], "public");
    }

    fn repl() -> VolumeRepl {
        VolumeRepl {
            index: 0,
            peers: 2,
            domain: DOMAIN_DIFFERENT,
            state: REPL_REPROTECTING,
            peer_ids: [3, 0],
            name: abi::pool_name(b"shared0").unwrap(),
            epoch: 7,
            replicated_writes: 1234,
            reprotections: 1,
            resent_blocks: 56,
        }
    }

    #[test]
    fn replicated_volumes_show_their_replication() {
        let names: Vec<String> = [0, 1, 2, 3, 4, 5, 6].into_iter().map(repl_state_name).collect();
        assert_eq!(names, ["none", "protected", "reprotecting", "degraded", "suspended", "fenced", "unknown(6)"]);
        assert_eq!(domain_rule_name(DOMAIN_SAME), "same");
        assert_eq!(domain_rule_name(2), "unknown(2)");
        let info = volume();
        let r = repl();
        let with = VolumeView { repl: Some(&r), ..view(&info) };
        let text = volume_text(&with, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8, "{text}");
        assert_eq!(
            lines[6],
            "  replication: device shared0, 2 peer(s) in different domain, reprotecting; \
             current peers 3; epoch 7"
        );
        assert_eq!(lines[7], "  replicated writes 1234, reprotections 1, resent blocks 56");
        let none = VolumeRepl { peer_ids: [0, 0], state: REPL_DEGRADED, ..repl() };
        let text = volume_text(&VolumeView { repl: Some(&none), ..view(&info) }, false);
        assert!(text.contains(", degraded; current peers none; epoch 7"), "{text}");
        // peers=0: nothing about replication, in text or JSON.
        let local = VolumeRepl { peers: 0, state: REPL_NONE, ..Default::default() };
        let plain = VolumeView { repl: Some(&local), ..view(&info) };
        assert_eq!(volume_text(&plain, false), volume_text(&view(&info), false));
        let value = parse(&stats_json(&[], &[plain], None));
        assert!(value["volumes"][0].get("replication").is_none());
        let value = parse(&stats_json(&[], &[with], None));
        assert_eq!(
            value["volumes"][0]["replication"],
            json!({
                "device": "shared0",
                "peers": 2,
                "domain": "different",
                "state": "reprotecting",
                "peer_ids": [3],
                "epoch": 7,
                "replicated_writes": 1234,
                "reprotections": 1,
                "resent_blocks": 56,
            })
        );
    }

    #[test]
    fn replication_feature_is_named() {
        let version = Version::new(0, 3, 0, FEATURE_RAM_POOL | FEATURE_REPLICATION, "0.3.0");
        assert!(version_text(&version).ends_with("features: ram-pool, replication"));
    }
}
