// SPDX-License-Identifier: GPL-2.0

//! Runs a parsed command line against the control device.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use fvp_logic::abi::{
    self, ClusterCfg, Command as Ioctl, DeviceReq, HostInfo, HostReq, KeyReq, PoolInfo, PoolReq, Version, VolumeHealth,
    VolumeInfo, VolumeRepl, ABI_VERSION, CLUSTER_CONFIGURED, FEATURE_REPLICATION, FEATURE_SECURE_TRANSPORT, HOST_DEFER,
    KEY_PRIVATE, TRANSPORT_AUTHENTICATED,
};
use nix::errno::Errno;
use zeroize::Zeroize;

use crate::cli::{
    ApplyArgs, Cli, ClusterCommand, ClusterSetArgs, Command, CreateArgs, DestroyArgs, DeviceAddArgs, DeviceCommand,
    DeviceRemoveArgs, DiscardDetachedArgs, DrainArgs, HostAddArgs, HostCommand, HostRemoveArgs, KeyCommand,
    KeyFileArgs, KeySetArgs, OutputArgs, PoolCheckArgs, PoolCommand, PoolName, ResizeArgs, StatsArgs, VolumeCommand,
};
use crate::cluster::{self, ClusterFile, KeyChange, ModuleCaps, Plan};
use crate::error::{Error, HOST_LEAVING_WAIT_S};
use crate::flash;
use crate::keys::{self, PrivateKey, PublicKey};
use crate::metrics::Rates;
use crate::output::{self, ApplyReport, KeyAction, MemberAction, PoolAction, VolumeView};
use crate::sys::{self, ControlDevice, DmDevice};

/// The oldest module ABI fvpctl works with. ABI 3 and 4 only added commands, so fvpctl
/// runs every ABI 2 command on an ABI 2 module, refuses only the cluster commands there,
/// and shows `-` for the volumes' health before ABI 4.
const MIN_ABI_VERSION: u32 = 2;

/// The first ABI with the cluster commands and `FVP_IOC_VOLUME_REPL`.
const CLUSTER_ABI_VERSION: u32 = 3;

/// The first ABI with `FVP_IOC_VOLUME_HEALTH`.
const HEALTH_ABI_VERSION: u32 = 4;

/// The first ABI with `FVP_IOC_HOST_UPDATE` and `FVP_IOC_VOLUME_DISCARD`.
const HOST_UPDATE_ABI_VERSION: u32 = 5;

/// The first ABI with `FVP_HOST_DEFER` (a batch of host changes put in force at once).
const HOST_DEFER_ABI_VERSION: u32 = 6;

/// The first ABI with hosts' keys (`FVP_IOC_KEY_SET`, `FVP_IOC_KEY_INFO`).
const KEY_ABI_VERSION: u32 = 8;

/// The first ABI with shared devices' uuids (`struct fvp_device_req` grew).
const DEVICE_UUID_ABI_VERSION: u32 = 9;

/// How often `volume drain` reads the dirty count.
const DRAIN_POLL: Duration = Duration::from_millis(200);

/// How often `volume drain` prints a line when stderr is not a terminal.
const DRAIN_LINE_EVERY: Duration = Duration::from_secs(1);

/// The program that sends messages to device-mapper targets.
const DMSETUP: &str = "dmsetup";

/// Runs `cli`, writing its reports to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), Error> {
    // A cluster description is checked before the device is even opened, so that it can
    // be checked on any machine, and no mistake in it is found after a change.
    let prepared = match &cli.command {
        Command::Cluster(ClusterCommand::Apply(args)) => Some(prepare_apply(args)?),
        // Reads a device, not the module: works without it.
        Command::Pool(PoolCommand::Check(args)) => return pool_check(args, out),
        // Key files, not the module.
        Command::Key(KeyCommand::Generate(args)) => return key_generate(args, out),
        Command::Key(KeyCommand::Public(args)) => return key_public(args, out),
        _ => None,
    };
    let path = cli.device.as_path();
    let mut device = ControlDevice::open(path).map_err(|errno| Error::from_open(errno, path, sys::module_loaded()))?;
    // Every command starts with the version: it tells whether the other structures
    // are the ones fvpctl knows.
    let version = checked_version(&device, path)?;
    device.set_abi_version(version.abi_version);
    let ctx = Context { device, path, version };
    match &cli.command {
        Command::Version(out_args) => {
            emit(out, &if out_args.json { output::version_json(&version) } else { output::version_text(&version) })
        }
        Command::Status(out_args) => {
            let status = ctx.device.status().map_err(|errno| ctx.ioctl_error(Ioctl::Status, errno))?;
            emit(
                out,
                &if out_args.json {
                    output::status_json(&version, &status)
                } else {
                    output::status_text(&version, &status)
                },
            )
        }
        Command::Pool(PoolCommand::Create(args)) => pool_create(&ctx, args, out),
        Command::Pool(PoolCommand::Open(args)) => flash_open(&ctx, &args.name, &args.flash, None, args.output, out),
        Command::Pool(PoolCommand::Close(args)) => pool_destroy(&ctx, args, out),
        Command::Pool(PoolCommand::Grow(args)) => pool_resize(&ctx, args, Direction::Grow, out),
        Command::Pool(PoolCommand::Shrink(args)) => pool_resize(&ctx, args, Direction::Shrink, out),
        Command::Pool(PoolCommand::Destroy(args)) => pool_destroy(&ctx, args, out),
        Command::Pool(PoolCommand::List(out_args)) => pool_list(&ctx, *out_args, out),
        Command::Pool(PoolCommand::Check(args)) => pool_check(args, out),
        Command::Stats(args) => stats(&ctx, args, out),
        Command::Volume(VolumeCommand::Drain(args)) => drain(&ctx, args, out),
        Command::Volume(VolumeCommand::DiscardDetached(args)) => discard_detached(&ctx, args, out),
        Command::Cluster(command) => {
            ctx.require_cluster()?;
            match command {
                ClusterCommand::Apply(args) => {
                    let prepared = prepared.expect("prepared before the device was opened");
                    cluster_apply(&ctx, args, &prepared, out)
                }
                ClusterCommand::Set(args) => cluster_set(&ctx, args, out),
                ClusterCommand::Show(out_args) => cluster_show(&ctx, *out_args, out),
            }
        }
        Command::Host(command) => {
            ctx.require_cluster()?;
            match command {
                HostCommand::Add(args) => host_add(&ctx, args, out),
                HostCommand::Remove(args) => host_remove(&ctx, args, out),
                HostCommand::List(out_args) => host_list(&ctx, *out_args, out),
            }
        }
        Command::Device(command) => {
            ctx.require_cluster()?;
            match command {
                DeviceCommand::Add(args) => device_add(&ctx, args, out),
                DeviceCommand::Remove(args) => device_remove(&ctx, args, out),
                DeviceCommand::List(out_args) => device_list(&ctx, *out_args, out),
            }
        }
        Command::Key(command) => {
            ctx.require_cluster()?;
            match command {
                KeyCommand::Set(args) => key_set(&ctx, args, out),
                KeyCommand::Generate(args) => key_generate(args, out),
                KeyCommand::Public(args) => key_public(args, out),
            }
        }
    }
}

/// The open control device, where it is, and what the module said it is.
struct Context<'a> {
    device: ControlDevice,
    path: &'a Path,
    version: Version,
}

impl Context<'_> {
    fn ioctl_error(&self, command: Ioctl, errno: Errno) -> Error {
        Error::from_ioctl(command, errno, self.path)
    }

    /// Refuses a cluster command on a module without them.
    fn require_cluster(&self) -> Result<(), Error> {
        check_cluster_support(&self.version)
    }

    /// Whether the module has hosts' keys (`FVP_IOC_KEY_SET`, `FVP_IOC_KEY_INFO`).
    fn has_keys(&self) -> bool {
        self.version.abi_version >= KEY_ABI_VERSION
    }

    /// Refuses a key command on a module without keys.
    fn require_keys(&self) -> Result<(), Error> {
        if self.has_keys() {
            Ok(())
        } else {
            Err(Error::NoKeyAbi { module: self.version.abi_version })
        }
    }

    /// `FVP_IOC_KEY_SET` of this host's private key, for its id `id`.
    fn set_private_key(&self, id: u32, key: &PrivateKey) -> Result<(), Error> {
        let mut request = KeyReq { id, flags: KEY_PRIVATE, key: *key.bytes(), ..Default::default() };
        let result = self.device.key_set(&request);
        request.key.zeroize();
        result.map_err(|errno| Error::from_key_set(errno, id, true, self.path))
    }

    /// `FVP_IOC_KEY_SET` of host `id`'s public key.
    fn set_public_key(&self, id: u32, key: &PublicKey) -> Result<(), Error> {
        let request = KeyReq { id, key: key.0, ..Default::default() };
        self.device.key_set(&request).map_err(|errno| Error::from_key_set(errno, id, false, self.path))
    }

    /// The public key of each of `hosts` that has one (`FVP_IOC_KEY_INFO`); none on a
    /// module without keys.
    fn host_keys(&self, hosts: &[HostInfo]) -> Result<BTreeMap<u32, PublicKey>, Error> {
        let mut keys = BTreeMap::new();
        if !self.has_keys() {
            return Ok(keys);
        }
        for host in hosts {
            match self.device.key_info(host.host.id) {
                Ok(Some(key)) => {
                    keys.insert(host.host.id, PublicKey(key));
                }
                Ok(None) => {}
                // A module that announces ABI 8 but lacks the command: no keys.
                Err(Errno::ENOTTY) => return Ok(BTreeMap::new()),
                Err(errno) => return Err(self.ioctl_error(Ioctl::KeyInfo, errno)),
            }
        }
        Ok(keys)
    }

    /// Whether the module has `FVP_IOC_VOLUME_REPL`.
    fn has_volume_repl(&self) -> bool {
        self.version.abi_version >= CLUSTER_ABI_VERSION
    }

    /// Replication state of every volume in `volumes` that the module reports, or none
    /// at all on a module without `FVP_IOC_VOLUME_REPL`.
    fn volume_repls(&self, volumes: &[VolumeInfo]) -> Result<Vec<VolumeRepl>, Error> {
        if !self.has_volume_repl() {
            return Ok(Vec::new());
        }
        let mut repls = Vec::new();
        for volume in volumes {
            match self.device.volume_repl(volume.index) {
                Ok(Some(repl)) => repls.push(repl),
                // Gone since FVP_IOC_VOLUME_INFO.
                Ok(None) => {}
                // A module that announces ABI 3 but lacks the command: no replication.
                Err(Errno::ENOTTY) => return Ok(Vec::new()),
                Err(errno) => return Err(self.ioctl_error(Ioctl::VolumeRepl, errno)),
            }
        }
        Ok(repls)
    }

    /// Health of every volume in `volumes` that the module reports, or none at all (so
    /// that fvpctl shows `-`) on a module without `FVP_IOC_VOLUME_HEALTH`.
    fn volume_healths(&self, volumes: &[VolumeInfo]) -> Result<Vec<VolumeHealth>, Error> {
        volume_healths(self.version.abi_version, volumes, |index| self.device.volume_health(index))
            .map_err(|errno| self.ioctl_error(Ioctl::VolumeHealth, errno))
    }

    /// The volume on `target`'s device now (see [`find_volume`]).
    fn volume_on(&self, target: &Target) -> Result<VolumeInfo, Error> {
        // Only the volumes with the device's number can be on it: ask only their health.
        let candidates: Vec<VolumeInfo> = self.volumes()?.into_iter().filter(|v| on_device(v, target)).collect();
        let healths = self.volume_healths(&candidates)?;
        find_volume(&candidates, &healths, target).copied()
    }

    fn cluster_info(&self) -> Result<abi::ClusterInfo, Error> {
        self.device.cluster_info().map_err(|errno| self.ioctl_error(Ioctl::ClusterInfo, errno))
    }

    fn hosts(&self) -> Result<Vec<HostInfo>, Error> {
        self.device.hosts().map_err(|errno| self.ioctl_error(Ioctl::HostInfo, errno))
    }

    fn shared_devices(&self) -> Result<Vec<DeviceReq>, Error> {
        self.device.shared_devices().map_err(|errno| self.ioctl_error(Ioctl::DeviceInfo, errno))
    }

    fn cluster_set(&self, cfg: &ClusterCfg) -> Result<(), Error> {
        self.device.cluster_set(cfg).map_err(|errno| Error::from_cluster_set(errno, self.path))
    }

    fn host_request(&self, command: Ioctl, request: &HostReq) -> Result<(), Error> {
        self.device
            .host_request(command, request)
            .map_err(|errno| Error::from_host_ioctl(command, errno, request, self.path))
    }

    fn device_request(&self, command: Ioctl, request: &DeviceReq) -> Result<(), Error> {
        self.device
            .device_request(command, request)
            .map_err(|errno| Error::from_device_ioctl(command, errno, request, self.path))
    }

    fn pools(&self) -> Result<Vec<PoolInfo>, Error> {
        self.device.pools().map_err(|errno| self.ioctl_error(Ioctl::PoolInfo, errno))
    }

    fn volumes(&self) -> Result<Vec<VolumeInfo>, Error> {
        self.device.volumes().map_err(|errno| self.ioctl_error(Ioctl::VolumeInfo, errno))
    }

    /// The pool called `name`, if there is one.
    fn find_pool(&self, name: &PoolName) -> Result<Option<PoolInfo>, Error> {
        Ok(self.pools()?.into_iter().find(|pool| abi::name_str(&pool.name) == name.as_str()))
    }

    /// Issues a pool request, and explains its failure.
    fn pool_request(&self, command: Ioctl, name: &PoolName, bytes: u64) -> Result<(), Error> {
        let request = PoolReq { name: name.abi(), ram_bytes: bytes };
        if command != Ioctl::PoolDestroy {
            // Filling or emptying a pool can take a while: let Ctrl-C interrupt it and
            // still be told where it stopped. Best effort: without the handler, a
            // signal just ends fvpctl.
            let _ = sys::interrupt_system_calls_on_signals();
        }
        self.device.pool_request(command, &request).map_err(|errno| {
            let volumes =
                if errno == Errno::EBUSY { self.find_pool(name).ok().flatten().map(|pool| pool.volumes) } else { None };
            Error::from_pool_ioctl(command, errno, name.as_str(), bytes, volumes, self.path)
        })
    }
}

/// Writes one report, a line or more, to `out`.
fn emit(out: &mut dyn Write, report: &str) -> Result<(), Error> {
    writeln!(out, "{report}").and_then(|()| out.flush()).map_err(Error::Output)
}

/// The module's version, provided it speaks fvpctl's ABI.
fn checked_version(device: &ControlDevice, path: &Path) -> Result<Version, Error> {
    let version = device.version().map_err(|errno| Error::from_ioctl(Ioctl::Version, errno, path))?;
    check_abi(&version)?;
    Ok(version)
}

/// Refuses a module of an ABI version fvpctl does not know: older than
/// `MIN_ABI_VERSION`, or newer than its own.
fn check_abi(version: &Version) -> Result<(), Error> {
    match version.abi_version {
        MIN_ABI_VERSION..=ABI_VERSION => Ok(()),
        module => Err(Error::AbiMismatch { ours: ABI_VERSION, module }),
    }
}

/// Asks `health` (`FVP_IOC_VOLUME_HEALTH`) about each of `volumes`, on a module of ABI
/// `abi_version`. Empty, so that fvpctl shows `-`, before ABI 4, or if the module refuses
/// the command as unknown (ENOTTY) or encoded otherwise (EINVAL). A volume gone since
/// `FVP_IOC_VOLUME_INFO` has no entry.
fn volume_healths(
    abi_version: u32,
    volumes: &[VolumeInfo],
    mut health: impl FnMut(u32) -> Result<Option<VolumeHealth>, Errno>,
) -> Result<Vec<VolumeHealth>, Errno> {
    if abi_version < HEALTH_ABI_VERSION {
        return Ok(Vec::new());
    }
    let mut healths = Vec::new();
    for volume in volumes {
        match health(volume.index) {
            Ok(Some(h)) => healths.push(h),
            Ok(None) => {}
            Err(Errno::ENOTTY | Errno::EINVAL) => return Ok(Vec::new()),
            Err(errno) => return Err(errno),
        }
    }
    Ok(healths)
}

/// Refuses the cluster commands on a module without them.
fn check_cluster_support(version: &Version) -> Result<(), Error> {
    if version.abi_version < CLUSTER_ABI_VERSION {
        Err(Error::NoClusterAbi { module: version.abi_version })
    } else if version.features & FEATURE_REPLICATION == 0 {
        Err(Error::NoReplication)
    } else {
        Ok(())
    }
}

/// Refuses settings that ask for an encrypted transport of a module without it (an older
/// module would refuse them as EINVAL, its `reserved` not being zero).
fn check_transport_support(version: &Version, cfg: &ClusterCfg) -> Result<(), Error> {
    if cfg.transport != TRANSPORT_AUTHENTICATED && version.features & FEATURE_SECURE_TRANSPORT == 0 {
        Err(Error::NoSecureTransport { module: version.abi_version })
    } else {
        Ok(())
    }
}

fn pool_action(out: &mut dyn Write, json: OutputArgs, name: &PoolName, action: PoolAction) -> Result<(), Error> {
    emit(
        out,
        &if json.json {
            output::pool_action_json(name.as_str(), action)
        } else {
            output::pool_action_text(name.as_str(), action)
        },
    )
}

fn pool_create(ctx: &Context<'_>, args: &CreateArgs, out: &mut dyn Write) -> Result<(), Error> {
    if args.force && args.flash.is_none() {
        return Err(Error::FlashFormat { path: "-".into(), reason: "--force applies to --flash only".into() });
    }
    if let Some(dev) = &args.flash {
        let uuid = flash_format(&args.name, dev, args.force)?;
        return flash_open(ctx, &args.name, dev, Some(uuid), args.output, out);
    }
    let bytes = args.ram.unwrap_or(0);
    ctx.pool_request(Ioctl::PoolCreate, &args.name, bytes)?;
    pool_action(out, args.output, &args.name, PoolAction::Created { bytes })
}

/// Formats `dev` as an empty flash pool (refusing a device that holds data unless
/// `force`); returns its UUID.
fn flash_format(name: &PoolName, dev: &Path, force: bool) -> Result<[u8; 16], Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |reason: String| Error::FlashFormat { path: dev.to_path_buf(), reason };
    // O_EXCL on a block device: refused while it is mounted or held by a driver.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_EXCL)
        .open(dev)
        .map_err(|e| fail(e.to_string()))?;
    let mut uuid = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut r| std::io::Read::read_exact(&mut r, &mut uuid))
        .map_err(|e| fail(format!("no random UUID: {e}")))?;
    match flash::format(&mut file, name.abi(), uuid, force, &mut |f| f.sync_all()) {
        Ok(_) => Ok(uuid),
        Err(flash::FormatRefusal::Holds(what)) => Err(Error::FlashInUse { path: dev.to_path_buf(), what }),
        Err(flash::FormatRefusal::Geometry(e)) => Err(fail(e.message().to_string())),
        Err(flash::FormatRefusal::Io(e)) => Err(fail(e.to_string())),
    }
}

/// Opens the flash pool on `dev` as `name` (`FVP_IOC_FLASH_OPEN`) and reports what
/// recovery found.
fn flash_open(
    ctx: &Context<'_>,
    name: &PoolName,
    dev: &Path,
    formatted: Option<[u8; 16]>,
    output: OutputArgs,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let fail = |reason: String| Error::FlashOpen { path: dev.to_path_buf(), reason };
    let path = std::fs::canonicalize(dev).map_err(|e| fail(e.to_string()))?;
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut request = abi::FlashOpen { name: name.abi(), ..Default::default() };
    if bytes.len() >= request.path.len() {
        return Err(fail("path too long".into()));
    }
    request.path[..bytes.len()].copy_from_slice(bytes);
    let opened = ctx.device.flash_open(&request).map_err(|errno| match errno {
        Errno::EEXIST => Error::PoolExists { name: name.to_string() },
        Errno::EINVAL => fail(format!(
            "not an fvp flash pool, or its metadata is damaged (see the kernel log; `fvpctl pool check --flash {}` says what)",
            dev.display()
        )),
        Errno::EBUSY => fail("the device is in use (mounted, open exclusively, or a pool already)".into()),
        errno => Error::from_ioctl(Ioctl::FlashOpen, errno, ctx.path),
    })?;
    let what = if formatted.is_some() { "formatted and opened" } else { "opened" };
    let report = if output.json {
        serde_json::json!({
            "pool": name.as_str(),
            "kind": "flash",
            "device": path.display().to_string(),
            "action": if formatted.is_some() { "created" } else { "opened" },
            "slots": opened.slots,
            "cached_blocks": opened.live_blocks,
            "dirty_blocks": opened.dirty_blocks,
            "stale_entries": opened.stale_entries,
            "open_us": opened.open_us,
        })
        .to_string()
    } else {
        format!(
            "pool {}: flash pool on {} {what}: {} blocks of 4 KiB ({}), {} cached ({} dirty), in {} ms",
            name,
            path.display(),
            opened.slots,
            crate::units::format_bytes(opened.slots * 4096),
            opened.live_blocks,
            opened.dirty_blocks,
            opened.open_us / 1000
        )
    };
    emit(out, &report)
}

/// Which way `pool grow` and `pool shrink` may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Grow,
    Shrink,
}

/// Refuses a resize from `current` to `requested` bytes that goes the wrong way.
/// Resizing to the current size is allowed either way (and changes nothing).
fn check_direction(name: &PoolName, direction: Direction, current: u64, requested: u64) -> Result<PoolAction, Error> {
    let name = name.as_str().to_owned();
    match direction {
        Direction::Grow if requested < current => Err(Error::CannotGrow { name, current, requested }),
        Direction::Shrink if requested > current => Err(Error::CannotShrink { name, current, requested }),
        Direction::Grow => Ok(PoolAction::Grown { from: current, to: requested }),
        Direction::Shrink => Ok(PoolAction::Shrunk { from: current, to: requested }),
    }
}

fn pool_resize(ctx: &Context<'_>, args: &ResizeArgs, direction: Direction, out: &mut dyn Write) -> Result<(), Error> {
    let pool = ctx.find_pool(&args.name)?.ok_or_else(|| Error::NoPool { name: args.name.to_string() })?;
    let action = check_direction(&args.name, direction, pool.target_bytes, args.size)?;
    ctx.pool_request(Ioctl::PoolResize, &args.name, args.size)?;
    pool_action(out, args.output, &args.name, action)
}

fn pool_destroy(ctx: &Context<'_>, args: &DestroyArgs, out: &mut dyn Write) -> Result<(), Error> {
    ctx.pool_request(Ioctl::PoolDestroy, &args.name, 0)?;
    pool_action(out, args.output, &args.name, PoolAction::Destroyed)
}

fn pool_check(args: &PoolCheckArgs, out: &mut dyn Write) -> Result<(), Error> {
    let path = args.flash.display().to_string();
    let read = |err| Error::FlashRead { path: args.flash.clone(), err };
    let mut dev = std::fs::File::open(&args.flash).map_err(read)?;
    let report = flash::check(&mut dev).map_err(read)?;
    emit(out, &if args.output.json { flash::check_json(&path, &report) } else { flash::check_text(&path, &report) })?;
    if report.ok() {
        Ok(())
    } else {
        Err(Error::FlashDamaged { path: args.flash.clone() })
    }
}

fn pool_list(ctx: &Context<'_>, args: OutputArgs, out: &mut dyn Write) -> Result<(), Error> {
    let pools = ctx.pools()?;
    let flash = ctx.device.flash_pools().map_err(|errno| ctx.ioctl_error(Ioctl::FlashInfo, errno))?;
    if args.json {
        return emit(out, &output::pool_list_json(&pools, &flash));
    }
    let mut text = output::pool_list_text(&pools);
    let extra = output::flash_list_text(&flash);
    if !extra.is_empty() {
        text.push('\n');
        text.push_str(extra.trim_end());
    }
    emit(out, &text)
}

/// A volume named on the command line, resolved to its device.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    /// What the user wrote.
    arg: String,
    /// The dm name, if known.
    name: Option<String>,
    major: u32,
    minor: u32,
}

/// Resolves a VOLUME argument: a dm device name, or else `MAJ:MIN`.
fn resolve_volume(arg: &str, devices: &[DmDevice]) -> Result<Target, Error> {
    if let Some(device) = devices.iter().find(|d| d.name == arg) {
        return Ok(Target {
            arg: arg.to_owned(),
            name: Some(device.name.clone()),
            major: device.major,
            minor: device.minor,
        });
    }
    if let Some((major, minor)) = sys::parse_dev(arg) {
        return Ok(Target {
            arg: arg.to_owned(),
            name: dm_name(devices, major, minor).map(str::to_owned),
            major,
            minor,
        });
    }
    Err(Error::NoDmDevice { name: arg.to_owned() })
}

/// The name of dm device `major:minor`.
fn dm_name(devices: &[DmDevice], major: u32, minor: u32) -> Option<&str> {
    devices.iter().find(|d| (d.major, d.minor) == (major, minor)).map(|d| d.name.as_str())
}

/// Whether `volume` has (or had, if detached) `target`'s device number.
fn on_device(volume: &VolumeInfo, target: &Target) -> bool {
    (volume.dev_major, volume.dev_minor) == (target.major, target.minor)
}

/// What `FVP_IOC_VOLUME_HEALTH` said about `volume`, if it was asked.
fn health_of<'a>(healths: &'a [VolumeHealth], volume: &VolumeInfo) -> Option<&'a VolumeHealth> {
    healths.iter().find(|h| h.index == volume.index)
}

/// Whether `volume` is known to be detached: its device was removed while it held dirty
/// blocks. It keeps that device's number, which a new device may have taken since.
fn is_detached(healths: &[VolumeHealth], volume: &VolumeInfo) -> bool {
    health_of(healths, volume).is_some_and(VolumeHealth::detached)
}

/// The volume on `target`'s device, or the error saying it is not an fvp volume. A
/// detached volume is only found by the number of its removed device, and only while no
/// device-mapper device has that number again. `healths` (by volume index) tells which
/// volumes are detached; without it (before ABI 4) none is.
fn find_volume<'a>(
    volumes: &'a [VolumeInfo],
    healths: &[VolumeHealth],
    target: &Target,
) -> Result<&'a VolumeInfo, Error> {
    let mut numbered = volumes.iter().filter(|v| on_device(v, target));
    let live = numbered.clone().find(|v| !is_detached(healths, v));
    let detached = || if target.name.is_none() { numbered.find(|v| is_detached(healths, v)) } else { None };
    live.or_else(detached).ok_or_else(|| Error::NotFvpVolume {
        volume: target.arg.clone(),
        major: target.major,
        minor: target.minor,
    })
}

/// Everything `stats` reports, read at one moment.
struct Sample {
    pools: Vec<PoolInfo>,
    volumes: Vec<VolumeInfo>,
    /// Replication state, by volume index (empty before ABI 3).
    repls: Vec<VolumeRepl>,
    /// Health, by volume index (empty before ABI 4).
    healths: Vec<VolumeHealth>,
    devices: Vec<DmDevice>,
    taken: Instant,
}

impl Sample {
    fn take(ctx: &Context<'_>) -> Result<Self, Error> {
        let pools = ctx.pools()?;
        let volumes = ctx.volumes()?;
        Ok(Self {
            pools,
            repls: ctx.volume_repls(&volumes)?,
            healths: ctx.volume_healths(&volumes)?,
            volumes,
            devices: sys::dm_devices(),
            taken: Instant::now(),
        })
    }

    /// Keeps only `target`'s volume and its pool; an error if it has no volume.
    fn select(&mut self, target: Option<&Target>) -> Result<(), Error> {
        let Some(target) = target else {
            return Ok(());
        };
        let volume = *find_volume(&self.volumes, &self.healths, target)?;
        self.pools.retain(|p| p.name == volume.pool);
        self.volumes = vec![volume];
        Ok(())
    }

    /// The volumes to print, with names and, given the previous sample, rates.
    fn views(&self, previous: Option<&Sample>) -> Vec<VolumeView<'_>> {
        self.volumes
            .iter()
            .map(|info| {
                let detached = is_detached(&self.healths, info);
                VolumeView {
                    info,
                    // A detached volume's device is gone: a device with its number now is
                    // another one.
                    name: if detached { None } else { dm_name(&self.devices, info.dev_major, info.dev_minor) },
                    rates: previous.and_then(|previous| {
                        let before = previous.volumes.iter().find(|v| {
                            (v.dev_major, v.dev_minor) == (info.dev_major, info.dev_minor)
                                && is_detached(&previous.healths, v) == detached
                        })?;
                        let seconds = self.taken.duration_since(previous.taken).as_secs_f64();
                        Rates::between(before, info, seconds)
                    }),
                    repl: self.repls.iter().find(|r| r.index == info.index),
                    health: health_of(&self.healths, info),
                }
            })
            .collect()
    }
}

fn stats(ctx: &Context<'_>, args: &StatsArgs, out: &mut dyn Write) -> Result<(), Error> {
    let target = args.volume.as_deref().map(|arg| resolve_volume(arg, &sys::dm_devices())).transpose()?;
    let mut previous = Sample::take(ctx)?;
    previous.select(target.as_ref())?;
    let Some(interval) = args.watch else {
        let views = previous.views(None);
        return emit(
            out,
            &if args.output.json {
                output::stats_json(&previous.pools, &views, None)
            } else {
                output::stats_text(&previous.pools, &views, false)
            },
        );
    };
    let mut reports = 0u64;
    loop {
        thread::sleep(interval);
        let mut sample = Sample::take(ctx)?;
        sample.select(target.as_ref())?;
        let views = sample.views(Some(&previous));
        let report = if args.output.json {
            output::stats_json(&sample.pools, &views, Some(interval))
        } else {
            output::stats_text(&sample.pools, &views, true)
        };
        if reports > 0 && !args.output.json {
            // A blank line between reports.
            emit(out, "")?;
        }
        emit(out, &report)?;
        reports += 1;
        if args.count == Some(reports) {
            return Ok(());
        }
        previous = sample;
    }
}

/// Reads a secret file for `cluster set`, and checks its length.
fn secret_from(path: &Path) -> Result<Vec<u8>, Error> {
    let secret = cluster::read_secret(path).map_err(|err| Error::SecretFile { path: path.to_path_buf(), err })?;
    match cluster::check_secret_len(secret.len()) {
        None => Ok(secret),
        Some(why) => Err(Error::ClusterSettings(format!("{}: {why}", path.display()))),
    }
}

/// The `FVP_IOC_CLUSTER_SET` argument of `cluster set`, checked as the module would.
fn cluster_cfg_of(args: &ClusterSetArgs, secret: &[u8]) -> Result<ClusterCfg, Error> {
    if let Some(why) = cluster::check_timers(args.heartbeat_ms, args.timeout_ms) {
        return Err(Error::ClusterSettings(why));
    }
    let mut cfg = ClusterCfg {
        name: args.name.abi(),
        local_id: args.local_id,
        heartbeat_ms: args.heartbeat_ms,
        timeout_ms: args.timeout_ms,
        ..Default::default()
    };
    cfg.transport = args.transport.as_u32();
    cfg.set_secret(secret)
        .ok_or_else(|| Error::ClusterSettings(cluster::check_secret_len(secret.len()).unwrap_or_default()))?;
    cfg.validate().map_err(|err| Error::ClusterSettings(err.to_string()))?;
    Ok(cfg)
}

fn cluster_set(ctx: &Context<'_>, args: &ClusterSetArgs, out: &mut dyn Write) -> Result<(), Error> {
    let cfg = cluster_cfg_of(args, &secret_from(&args.secret_file)?)?;
    check_transport_support(&ctx.version, &cfg)?;
    ctx.cluster_set(&cfg)?;
    emit(out, &if args.output.json { output::cluster_set_json(&cfg) } else { output::cluster_set_text(&cfg) })
}

fn cluster_show(ctx: &Context<'_>, args: OutputArgs, out: &mut dyn Write) -> Result<(), Error> {
    let info = ctx.cluster_info()?;
    let hosts = ctx.hosts()?;
    let keys = ctx.host_keys(&hosts)?;
    let devices = ctx.shared_devices()?;
    emit(
        out,
        &if args.json {
            output::cluster_show_json(&info, &hosts, &keys, &devices)
        } else {
            output::cluster_show_text(&info, &hosts, &keys, &devices)
        },
    )
}

/// Runs `plan` after `FVP_IOC_CLUSTER_SET` of `cfg`: the keys (this host's private key
/// being `private_key`), every removal, then every addition (so that a host or device can
/// take an address or path another one gives up). An error after the first change says
/// how far it got.
fn apply_plan(ctx: &Context<'_>, cfg: &ClusterCfg, plan: &Plan, private_key: &PrivateKey) -> Result<(), Error> {
    let total = plan.steps() + 1;
    let mut done = 0;
    let mut step =
        |result: Result<(), Error>| {
            result.map_err(|error| {
                if done == 0 {
                    error
                } else {
                    Error::ApplyStopped { error: Box::new(error), done, total }
                }
            })?;
            done += 1;
            Ok::<(), Error>(())
        };
    step(ctx.cluster_set(cfg))?;
    for key in &plan.keys {
        step(match key {
            KeyChange::Private(id) => ctx.set_private_key(*id, private_key),
            KeyChange::Public(id, public) => ctx.set_public_key(*id, public),
        })?;
    }
    for host in plan.hosts.iter().filter_map(|c| c.updated()) {
        step(ctx.host_request(Ioctl::HostUpdate, host))?;
    }
    // Every host change but the last is deferred, so that the module puts the new host
    // list in force at once (each list put in force stays in force until every host has
    // applied the next). A run that stops half-way leaves them deferred: the next run's
    // FVP_IOC_CLUSTER_SET puts them in force.
    let host_changes: Vec<(Ioctl, &HostReq)> = plan
        .hosts
        .iter()
        .filter_map(|c| c.removed())
        .map(|h| (Ioctl::HostRemove, h))
        .chain(plan.hosts.iter().filter_map(|c| c.added()).map(|h| (Ioctl::HostAdd, h)))
        .collect();
    let defer = ctx.version.abi_version >= HOST_DEFER_ABI_VERSION;
    let flags = |i: usize| if defer && i + 1 < host_changes.len() { HOST_DEFER } else { 0 };
    let (removals, additions): (Vec<_>, Vec<_>) =
        host_changes.iter().enumerate().partition(|(_, (command, _))| *command == Ioctl::HostRemove);
    for (i, (command, host)) in removals {
        let request = HostReq { flags: flags(i), ..**host };
        // A host holding replicas of volumes here leaves once they moved off it.
        let deadline = Instant::now() + Duration::from_secs(HOST_LEAVING_WAIT_S);
        let mut said = false;
        let result = loop {
            match ctx.host_request(*command, &request) {
                Err(Error::HostLeaving { id, .. }) if Instant::now() < deadline => {
                    if !said {
                        eprintln!("waiting for replicated volumes to move their replicas off host {id}");
                        said = true;
                    }
                    thread::sleep(Duration::from_millis(500));
                }
                result => break result,
            }
        };
        step(result)?;
    }
    for device in plan.devices.iter().filter_map(|c| c.removed()) {
        step(ctx.device_request(Ioctl::DeviceRemove, device))?;
    }
    for (i, (command, host)) in additions {
        step(ctx.host_request(*command, &HostReq { flags: flags(i), ..**host }))?;
    }
    for device in plan.devices.iter().filter_map(|c| c.added()) {
        step(ctx.device_request(Ioctl::DeviceAdd, device))?;
    }
    Ok(())
}

/// A checked cluster description, and this host's settings from it.
struct PreparedApply {
    description: ClusterFile,
    cfg: ClusterCfg,
}

/// Reads and checks `cluster apply`'s file, and finds this host in it.
fn prepare_apply(args: &ApplyArgs) -> Result<PreparedApply, Error> {
    let description = cluster::load(&args.file)?;
    let local_addrs = if args.local_id.is_some() {
        Vec::new()
    } else {
        sys::local_ipv4_addrs().map_err(|errno| {
            cluster::FileError::whole(
                &args.file,
                format!("cannot list this machine's addresses ({errno:?}: {}); pass --local-id", errno.desc()),
            )
        })?
    };
    let local_id = cluster::local_host(&description, &args.file, args.local_id, &local_addrs)?;
    description.check_local_key(&args.file, local_id)?;
    let cfg = description.cluster_cfg(local_id);
    debug_assert_eq!(cfg.validate(), Ok(()));
    Ok(PreparedApply { description, cfg })
}

fn cluster_apply(
    ctx: &Context<'_>,
    args: &ApplyArgs,
    prepared: &PreparedApply,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let PreparedApply { description, cfg } = prepared;
    check_transport_support(&ctx.version, cfg)?;
    let caps = ModuleCaps {
        update_domains: ctx.version.abi_version >= HOST_UPDATE_ABI_VERSION,
        keys: ctx.has_keys(),
        device_uuids: ctx.version.abi_version >= DEVICE_UUID_ABI_VERSION,
    };
    let plan = cluster::plan(description, cfg.local_id, &ctx.hosts()?, &ctx.shared_devices()?, caps);
    if !args.dry_run {
        apply_plan(ctx, cfg, &plan, &description.private_key)?;
    }
    let mut notes = cluster::quorum_notes(description.hosts.len());
    if !caps.keys {
        notes.push(no_keys_note(ctx.version.abi_version));
    }
    if !caps.device_uuids && description.devices.iter().any(|d| d.uuid.is_some()) {
        notes.push(format!(
            "the loaded fvp module speaks ABI {}, which has no device uuids (they need ABI \
             {DEVICE_UUID_ABI_VERSION}): the devices' uuids were checked, not set",
            ctx.version.abi_version
        ));
    }
    let report = ApplyReport { cfg, hosts: description.hosts.len(), plan: &plan, dry_run: args.dry_run, notes };
    emit(out, &if args.output.json { output::apply_json(&report) } else { output::apply_text(&report) })
}

/// The note of `cluster apply` on a module of ABI `module`, which has no keys.
fn no_keys_note(module: u32) -> String {
    format!(
        "the loaded fvp module speaks ABI {module}, which has no host keys (they need ABI \
         {KEY_ABI_VERSION}): key_file and the hosts' keys were checked, not set"
    )
}

/// Reads the private key file at `path` (root's, mode 0600 or stricter).
fn private_key_from(path: &Path) -> Result<PrivateKey, Error> {
    keys::read_private_key(path).map_err(|reason| Error::KeyFile { path: path.to_path_buf(), reason })
}

/// `key generate FILE`: a new private key in a new file; prints its public key.
fn key_generate(args: &KeyFileArgs, out: &mut dyn Write) -> Result<(), Error> {
    let key = PrivateKey::generate().map_err(Error::NoRandom)?;
    keys::write_private_key(&args.file, &key).map_err(|err| Error::KeyFileWrite { path: args.file.clone(), err })?;
    let public = key.public_key();
    emit(out, &if args.output.json { output::key_json(&args.file, &public) } else { output::key_text(&public) })
}

/// `key public FILE`: the public key of a private key file.
fn key_public(args: &KeyFileArgs, out: &mut dyn Write) -> Result<(), Error> {
    let public = private_key_from(&args.file)?.public_key();
    emit(out, &if args.output.json { output::key_json(&args.file, &public) } else { output::key_text(&public) })
}

/// `key set --host ID --public HEX` or `--private-file FILE`.
fn key_set(ctx: &Context<'_>, args: &KeySetArgs, out: &mut dyn Write) -> Result<(), Error> {
    ctx.require_keys()?;
    let action = match (&args.public, &args.private_file) {
        (Some(public), None) => {
            ctx.set_public_key(args.host, public)?;
            KeyAction { id: args.host, private: false, public: *public }
        }
        (None, Some(file)) => {
            let key = private_key_from(file)?;
            // The module would refuse both (EINVAL): say which it is.
            let info = ctx.cluster_info()?;
            if info.flags & CLUSTER_CONFIGURED == 0 {
                return Err(Error::KeyNeedsCluster);
            }
            if info.cfg.local_id != args.host {
                return Err(Error::KeyNotLocal { id: args.host, local: info.cfg.local_id });
            }
            ctx.set_private_key(args.host, &key)?;
            KeyAction { id: args.host, private: true, public: key.public_key() }
        }
        _ => unreachable!("the command line has exactly one of --public and --private-file"),
    };
    emit(out, &if args.output.json { output::key_set_json(&action) } else { output::key_set_text(&action) })
}

/// Prints what a host or device command did.
fn member_action(out: &mut dyn Write, json: OutputArgs, action: MemberAction<'_>) -> Result<(), Error> {
    emit(out, &if json.json { output::member_action_json(action) } else { output::member_action_text(action) })
}

fn host_add(ctx: &Context<'_>, args: &HostAddArgs, out: &mut dyn Write) -> Result<(), Error> {
    let request = HostReq::new(args.id, args.addr.ip().octets(), args.addr.port(), args.domain.abi());
    debug_assert_eq!(request.validate(), Ok(()));
    ctx.host_request(Ioctl::HostAdd, &request)?;
    member_action(out, args.output, MemberAction::HostAdded(&request))
}

fn host_remove(ctx: &Context<'_>, args: &HostRemoveArgs, out: &mut dyn Write) -> Result<(), Error> {
    let request = HostReq { id: args.id, ..Default::default() };
    ctx.host_request(Ioctl::HostRemove, &request)?;
    member_action(out, args.output, MemberAction::HostRemoved(args.id))
}

fn host_list(ctx: &Context<'_>, args: OutputArgs, out: &mut dyn Write) -> Result<(), Error> {
    let hosts = ctx.hosts()?;
    emit(out, &if args.json { output::host_list_json(&hosts) } else { output::hosts_text(&hosts) })
}

fn device_add(ctx: &Context<'_>, args: &DeviceAddArgs, out: &mut dyn Write) -> Result<(), Error> {
    let request = DeviceReq::new(args.name.abi(), args.path.as_bytes())
        .expect("the path is checked when the command line is parsed");
    let request = DeviceReq { uuid: args.uuid.unwrap_or_default(), ..request };
    if args.uuid.is_some() && ctx.version.abi_version < DEVICE_UUID_ABI_VERSION {
        return Err(Error::NoDeviceUuidAbi { module: ctx.version.abi_version });
    }
    debug_assert_eq!(request.validate(), Ok(()));
    ctx.device_request(Ioctl::DeviceAdd, &request)?;
    member_action(out, args.output, MemberAction::DeviceAdded(&request))
}

fn device_remove(ctx: &Context<'_>, args: &DeviceRemoveArgs, out: &mut dyn Write) -> Result<(), Error> {
    let request = DeviceReq { name: args.name.abi(), ..Default::default() };
    ctx.device_request(Ioctl::DeviceRemove, &request)?;
    member_action(out, args.output, MemberAction::DeviceRemoved(args.name.as_str()))
}

fn device_list(ctx: &Context<'_>, args: OutputArgs, out: &mut dyn Write) -> Result<(), Error> {
    let devices = ctx.shared_devices()?;
    emit(out, &if args.json { output::device_list_json(&devices) } else { output::devices_text(&devices) })
}

/// What `volume drain` shows on stderr.
#[derive(Debug)]
struct Progress {
    volume: String,
    /// stderr is a terminal: redraw a bar in place.
    terminal: bool,
    /// The dirty blocks at the first sample.
    initial: Option<u64>,
    /// When the last line was printed (not on a terminal).
    last_line: Option<(Instant, u64)>,
}

impl Progress {
    fn new(volume: &str, terminal: bool) -> Self {
        Self { volume: volume.to_owned(), terminal, initial: None, last_line: None }
    }

    /// What to write to stderr now that `left` dirty blocks are left, if anything.
    fn update(&mut self, left: u64, now: Instant) -> Option<String> {
        let initial = *self.initial.get_or_insert(left);
        if self.terminal {
            // Carriage return, the bar, and clear the rest of the line.
            let end = if left == 0 { "\n" } else { "" };
            return Some(format!("\r{}\x1b[K{end}", output::drain_bar(&self.volume, initial, left)));
        }
        let due = match self.last_line {
            None => true,
            // Always say when it is done, once.
            Some((_, last)) if left == 0 => last != 0,
            Some((at, _)) => now.duration_since(at) >= DRAIN_LINE_EVERY,
        };
        due.then(|| {
            self.last_line = Some((now, left));
            format!("{}\n", output::drain_line(&self.volume, left))
        })
    }

    /// What to write to stderr when giving up: end the bar's line.
    fn abandon(&self) -> Option<&'static str> {
        self.terminal.then_some("\n")
    }
}

fn dmsetup_flush(volume: &str) -> Result<(), Error> {
    let args = ["message", volume, "0", "flush"];
    run_checked(DMSETUP, &args)
}

/// Runs `program args...`, and fails with what it printed on stderr if it fails.
fn run_checked(program: &str, args: &[&str]) -> Result<(), Error> {
    let command = std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    let result =
        sys::run_program(program, args).map_err(|err| Error::ProgramNotRun { command: command.clone(), err })?;
    if result.status.success() {
        Ok(())
    } else {
        Err(Error::ProgramFailed {
            command,
            status: result.status.to_string(),
            stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
        })
    }
}

/// `volume discard-detached`: checked here before the module is asked.
fn discard_detached(ctx: &Context<'_>, args: &DiscardDetachedArgs, out: &mut dyn Write) -> Result<(), Error> {
    let (major, minor) = sys::parse_dev(&args.backing)
        .or_else(|| sys::block_device_number(Path::new(&args.backing)))
        .ok_or_else(|| Error::NotABlockDevice { backing: args.backing.clone() })?;
    if ctx.version.abi_version < HOST_UPDATE_ABI_VERSION {
        return Err(Error::NoDiscardAbi { module: ctx.version.abi_version });
    }
    if !args.yes {
        return Err(Error::NotConfirmed { backing: format!("{major}:{minor}") });
    }
    let done = ctx
        .device
        .volume_discard(major, minor)
        .map_err(|errno| Error::from_volume_discard(errno, major, minor, ctx.path))?;
    emit(
        out,
        &if args.output.json {
            output::discarded_json(major, minor, done.dirty_blocks)
        } else {
            output::discarded_text(major, minor, done.dirty_blocks)
        },
    )
}

fn drain(ctx: &Context<'_>, args: &DrainArgs, out: &mut dyn Write) -> Result<(), Error> {
    let start = Instant::now();
    let target = resolve_volume(&args.volume, &sys::dm_devices())?;
    // dmsetup needs the dm name.
    let name = target.name.clone().ok_or_else(|| Error::NoDmDevice { name: args.volume.clone() })?;
    ctx.volume_on(&target)?;
    dmsetup_flush(&name)?;

    let mut progress = Progress::new(&name, io::stderr().is_terminal());
    let mut first_dirty = None;
    loop {
        let info = ctx.volume_on(&target).map_err(|err| match err {
            Error::NotFvpVolume { .. } => Error::VolumeGone { volume: name.clone() },
            err => err,
        })?;
        let left = info.dirty_blocks;
        let initial = *first_dirty.get_or_insert(left);
        let now = Instant::now();
        if let Some(text) = progress.update(left, now) {
            eprint!("{text}");
        }
        if left == 0 {
            let elapsed = start.elapsed();
            return emit(
                out,
                &if args.output.json {
                    output::drained_json(&name, &info, initial, elapsed)
                } else {
                    output::drained_text(&name, initial, elapsed)
                },
            );
        }
        let mut pause = DRAIN_POLL;
        if let Some(timeout) = args.timeout {
            let elapsed = now.duration_since(start);
            if elapsed >= timeout {
                if let Some(text) = progress.abandon() {
                    eprint!("{text}");
                }
                return Err(Error::DrainTimeout { volume: name, timeout, dirty: left });
            }
            pause = pause.min(timeout - elapsed);
        }
        thread::sleep(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fvp_logic::seal::Transport;

    #[test]
    fn abi_check_accepts_only_our_version() {
        let mut version = Version::new(0, 1, 0, 0, "0.1.0");
        assert!(check_abi(&version).is_ok());
        // ABI 3 and 4 only added commands: an ABI 2 or 3 module still runs the others.
        version.abi_version = 2;
        assert!(check_abi(&version).is_ok());
        version.abi_version = 3;
        assert!(check_abi(&version).is_ok());
        version.abi_version = ABI_VERSION;
        version.abi_version = ABI_VERSION + 1;
        let err = check_abi(&version).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("ABI mismatch: fvpctl speaks {ABI_VERSION}, module speaks {}", ABI_VERSION + 1)
        );
        version.abi_version = 1;
        assert!(check_abi(&version).is_err());
    }

    #[test]
    fn cluster_commands_need_abi_3_and_replication() {
        let mut version = Version::new(0, 3, 0, FEATURE_REPLICATION, "0.3.0");
        assert!(check_cluster_support(&version).is_ok());
        version.features = abi::FEATURE_RAM_POOL;
        assert_eq!(
            check_cluster_support(&version).unwrap_err().to_string(),
            "the loaded fvp module does not support replication (FVP_FEATURE_REPLICATION is \
             not set): load a fvp.ko built with it"
        );
        version.abi_version = 2;
        version.features = FEATURE_REPLICATION;
        assert_eq!(
            check_cluster_support(&version).unwrap_err().to_string(),
            "the loaded fvp module speaks ABI 2, which has no cluster commands (they need ABI 3): \
             load a newer fvp.ko"
        );
    }

    #[test]
    fn encryption_needs_a_module_with_secure_transport() {
        let mut cfg = ClusterCfg::default();
        let mut version = Version::new(0, 7, 0, FEATURE_REPLICATION, "0.7.0");
        version.abi_version = 7;
        // Authenticated is the zero an older module reads as reserved.
        assert!(check_transport_support(&version, &cfg).is_ok());
        cfg.transport = abi::TRANSPORT_ENCRYPTED;
        assert!(matches!(check_transport_support(&version, &cfg), Err(Error::NoSecureTransport { module: 7 })));
        version.abi_version = ABI_VERSION;
        version.features |= FEATURE_SECURE_TRANSPORT;
        assert!(check_transport_support(&version, &cfg).is_ok());
    }

    #[test]
    fn key_files_need_no_module() {
        use clap::Parser;
        let dir = std::env::temp_dir().join(format!("fvpctl-commands-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("host.key");
        let path = file.to_str().unwrap();
        let run_args = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["fvpctl", "--device", "/nonexistent/x"][..], args].concat()).unwrap();
            let mut out = Vec::new();
            run(&cli, &mut out).map(|()| String::from_utf8(out).unwrap())
        };
        let json: serde_json::Value =
            serde_json::from_str(&run_args(&["key", "generate", path, "--json"]).unwrap()).unwrap();
        let content = std::fs::read_to_string(&file).unwrap();
        let public = PrivateKey::from_file_content(content.as_bytes()).unwrap().public_key();
        assert_eq!(json, serde_json::json!({"file": path, "public_key": public.hex()}));
        match run_args(&["key", "public", path]) {
            Ok(text) => assert_eq!(text, format!("{public}\n")),
            Err(err) => {
                assert!(err.to_string().starts_with(&format!("private key file {path}: owned by uid")), "{err}")
            }
        }
        let missing = dir.join("missing.key");
        let err = run_args(&["key", "public", missing.to_str().unwrap()]).unwrap_err().to_string();
        assert!(err.starts_with(&format!("private key file {}: cannot open: ", missing.display())), "{err}");
        let err = run_args(&["key", "generate", path]).unwrap_err().to_string();
        assert!(err.contains("it exists"), "{err}");
        // Setting a key needs the module.
        let err = run_args(&["key", "set", "--host", "1", "--private-file", path]).unwrap_err();
        assert!(matches!(err, Error::ModuleNotLoaded { .. } | Error::DeviceMissing { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn modules_without_keys_get_a_note() {
        assert_eq!(
            no_keys_note(7),
            "the loaded fvp module speaks ABI 7, which has no host keys (they need ABI 8): key_file and the \
             hosts' keys were checked, not set"
        );
    }

    fn set_args(heartbeat_ms: u32, timeout_ms: u32) -> ClusterSetArgs {
        ClusterSetArgs {
            name: crate::cli::Name::cluster("lab").unwrap(),
            local_id: 2,
            secret_file: "/unused".into(),
            heartbeat_ms,
            timeout_ms,
            transport: Transport::Authenticated,
            output: OutputArgs::default(),
        }
    }

    #[test]
    fn cluster_set_checks_before_asking_the_module() {
        let cfg = cluster_cfg_of(&set_args(200, 2000), b"0123456789abcdef").unwrap();
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!((cfg.local_id, cfg.heartbeat_ms, cfg.timeout_ms), (2, 200, 2000));
        assert_eq!(cfg.secret(), b"0123456789abcdef");
        assert_eq!(cfg.transport, TRANSPORT_AUTHENTICATED);
        let encrypted = ClusterSetArgs { transport: Transport::Encrypted, ..set_args(200, 2000) };
        let cfg = cluster_cfg_of(&encrypted, b"0123456789abcdef").unwrap();
        assert_eq!((cfg.transport, cfg.validate()), (abi::TRANSPORT_ENCRYPTED, Ok(())));
        assert_eq!(
            cluster_cfg_of(&set_args(200, 599), b"0123456789abcdef").unwrap_err().to_string(),
            "invalid cluster settings: timeout_ms 599 is less than 3 x heartbeat_ms (600)"
        );
        assert_eq!(
            cluster_cfg_of(&set_args(200, 2000), b"short").unwrap_err().to_string(),
            "invalid cluster settings: the secret is 5 bytes long; it must be 16 to 64 bytes"
        );
    }

    #[test]
    fn secret_files_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("fvpctl-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("good"), "0123456789abcdef\n").unwrap();
        std::fs::write(dir.join("short"), "abc\n").unwrap();
        assert_eq!(secret_from(&dir.join("good")).unwrap(), b"0123456789abcdef");
        let err = secret_from(&dir.join("short")).unwrap_err().to_string();
        assert!(err.ends_with("short: the secret is 3 bytes long; it must be 16 to 64 bytes"), "{err}");
        let err = secret_from(&dir.join("missing")).unwrap_err().to_string();
        assert!(err.starts_with("cannot read secret file "), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn name(text: &str) -> PoolName {
        PoolName::parse(text).unwrap()
    }

    #[test]
    fn grow_and_shrink_only_go_their_way() {
        let ram0 = name("ram0");
        assert_eq!(check_direction(&ram0, Direction::Grow, 64, 128).unwrap(), PoolAction::Grown { from: 64, to: 128 });
        assert_eq!(check_direction(&ram0, Direction::Grow, 64, 64).unwrap(), PoolAction::Grown { from: 64, to: 64 });
        assert!(matches!(
            check_direction(&ram0, Direction::Grow, 128, 64),
            Err(Error::CannotGrow { current: 128, requested: 64, .. })
        ));
        assert_eq!(
            check_direction(&ram0, Direction::Shrink, 128, 64).unwrap(),
            PoolAction::Shrunk { from: 128, to: 64 }
        );
        assert!(check_direction(&ram0, Direction::Shrink, 64, 64).is_ok());
        assert!(matches!(
            check_direction(&ram0, Direction::Shrink, 64, 128),
            Err(Error::CannotShrink { current: 64, requested: 128, .. })
        ));
    }

    fn devices() -> Vec<DmDevice> {
        vec![
            DmDevice { name: "vol0".into(), major: 253, minor: 0 },
            DmDevice { name: "vol1".into(), major: 253, minor: 1 },
        ]
    }

    #[test]
    fn volumes_resolve_by_name_or_number() {
        let devices = devices();
        assert_eq!(
            resolve_volume("vol1", &devices).unwrap(),
            Target { arg: "vol1".into(), name: Some("vol1".into()), major: 253, minor: 1 }
        );
        assert_eq!(
            resolve_volume("253:0", &devices).unwrap(),
            Target { arg: "253:0".into(), name: Some("vol0".into()), major: 253, minor: 0 }
        );
        assert_eq!(
            resolve_volume("253:7", &devices).unwrap(),
            Target { arg: "253:7".into(), name: None, major: 253, minor: 7 }
        );
        assert_eq!(resolve_volume("nope", &devices).unwrap_err().to_string(), "no device-mapper device named nope");
    }

    #[test]
    fn volumes_match_by_device_number() {
        let volumes = [
            VolumeInfo { index: 0, dev_major: 253, dev_minor: 1, ..Default::default() },
            VolumeInfo { index: 1, dev_major: 253, dev_minor: 0, ..Default::default() },
        ];
        let target = resolve_volume("vol0", &devices()).unwrap();
        assert_eq!(find_volume(&volumes, &[], &target).unwrap().index, 1);
        let target = Target { arg: "other".into(), name: Some("other".into()), major: 253, minor: 9 };
        assert_eq!(find_volume(&volumes, &[], &target).unwrap_err().to_string(), "other (253:9) is not an fvp volume");
    }

    fn health(index: u32, flags: u32) -> VolumeHealth {
        VolumeHealth { index, flags, ..Default::default() }
    }

    #[test]
    fn detached_volumes_are_not_on_a_device_that_took_their_number() {
        // Volume 0 was detached when vol0 (253:0) was removed; 253:0 is a new device now.
        let volumes = [
            VolumeInfo { index: 0, dev_major: 253, dev_minor: 0, ..Default::default() },
            VolumeInfo { index: 1, dev_major: 253, dev_minor: 1, ..Default::default() },
        ];
        let healths = [health(0, abi::VOLUME_DETACHED | abi::VOLUME_FAILING), health(1, 0)];
        let vol0 = resolve_volume("vol0", &devices()).unwrap();
        assert_eq!(
            find_volume(&volumes, &healths, &vol0).unwrap_err().to_string(),
            "vol0 (253:0) is not an fvp volume"
        );
        // Not failing, only detached: the same.
        let healths = [health(0, abi::VOLUME_DETACHED), health(1, 0)];
        assert!(find_volume(&volumes, &healths, &vol0).is_err());
        // Before ABI 4 nothing is known to be detached.
        assert_eq!(find_volume(&volumes, &[], &vol0).unwrap().index, 0);
        // A new fvp volume on 253:0, listed after the detached one: that one is found.
        let mut three = volumes.to_vec();
        three.push(VolumeInfo { index: 2, dev_major: 253, dev_minor: 0, ..Default::default() });
        let healths = [health(0, abi::VOLUME_DETACHED), health(1, 0), health(2, 0)];
        assert_eq!(find_volume(&three, &healths, &vol0).unwrap().index, 2);
        // By number, while no device has it: the detached volume.
        let removed = Target { arg: "253:0".into(), name: None, major: 253, minor: 0 };
        assert_eq!(find_volume(&volumes, &healths, &removed).unwrap().index, 0);
        assert_eq!(find_volume(&three, &healths, &removed).unwrap().index, 2);
    }

    #[test]
    fn health_is_asked_from_abi_4_on_and_missing_is_no_error() {
        let volumes = [
            VolumeInfo { index: 0, ..Default::default() },
            VolumeInfo { index: 1, ..Default::default() },
            VolumeInfo { index: 2, ..Default::default() },
        ];
        let answer = |index: u32| Ok((index != 1).then(|| health(index, abi::VOLUME_FAILING)));
        // ABI 4: every volume asked; one gone since FVP_IOC_VOLUME_INFO.
        let healths = volume_healths(4, &volumes, answer).unwrap();
        assert_eq!(healths.iter().map(|h| h.index).collect::<Vec<_>>(), [0, 2]);
        // Before ABI 4 the module is not asked at all.
        let never = |_| -> Result<Option<VolumeHealth>, Errno> { panic!("asked an ABI 3 module") };
        assert_eq!(volume_healths(3, &volumes, never).unwrap(), []);
        assert_eq!(volume_healths(2, &volumes, never).unwrap(), []);
        // A module that does not know the command: no health, not an error.
        for errno in [Errno::ENOTTY, Errno::EINVAL] {
            assert_eq!(volume_healths(4, &volumes, |_| Err(errno)).unwrap(), []);
            let late = |index: u32| if index == 0 { answer(index) } else { Err(errno) };
            assert_eq!(volume_healths(4, &volumes, late).unwrap(), []);
        }
        // Other errors are errors.
        assert_eq!(volume_healths(4, &volumes, |_| Err(Errno::EPERM)).unwrap_err(), Errno::EPERM);
    }

    fn sample(pools: &[&str], volumes: &[(u32, &str, u64)], taken: Instant) -> Sample {
        Sample {
            pools: pools
                .iter()
                .map(|n| PoolInfo { name: abi::pool_name(n.as_bytes()).unwrap(), ..Default::default() })
                .collect(),
            volumes: volumes
                .iter()
                .map(|&(minor, pool, reads)| VolumeInfo {
                    dev_major: 253,
                    dev_minor: minor,
                    pool: abi::pool_name(pool.as_bytes()).unwrap(),
                    reads,
                    ..Default::default()
                })
                .collect(),
            repls: Vec::new(),
            healths: Vec::new(),
            devices: devices(),
            taken,
        }
    }

    #[test]
    fn a_selected_volume_keeps_only_its_pool() {
        let now = Instant::now();
        let mut s = sample(&["a", "b"], &[(0, "a", 0), (1, "b", 0)], now);
        s.select(Some(&resolve_volume("vol1", &devices()).unwrap())).unwrap();
        assert_eq!(s.volumes.len(), 1);
        assert_eq!(s.volumes[0].dev_minor, 1);
        assert_eq!(s.pools.len(), 1);
        assert_eq!(abi::name_str(&s.pools[0].name), "b");
        let mut s = sample(&["a"], &[(0, "a", 0)], now);
        let missing = Target { arg: "x".into(), name: None, major: 8, minor: 0 };
        assert!(matches!(s.select(Some(&missing)), Err(Error::NotFvpVolume { .. })));
        let mut s = sample(&["a"], &[(0, "a", 0)], now);
        s.select(None).unwrap();
        assert_eq!((s.pools.len(), s.volumes.len()), (1, 1));
    }

    #[test]
    fn views_have_names_and_rates_between_samples() {
        let t0 = Instant::now();
        let before = sample(&[], &[(0, "a", 100)], t0);
        let after = sample(&[], &[(0, "a", 300), (5, "a", 50)], t0 + Duration::from_secs(2));
        let views = after.views(Some(&before));
        assert_eq!(views[0].name, Some("vol0"));
        assert_eq!(views[0].rates.unwrap().read_iops, 100.0);
        assert_eq!(views[0].rates.unwrap().interval_s, 2.0);
        // A volume that was not there before, and whose name sysfs does not know.
        assert_eq!(views[1].name, None);
        assert_eq!(views[1].rates, None);
        assert!(after.views(None).iter().all(|v| v.rates.is_none()));
        assert!(after.views(None).iter().all(|v| v.health.is_none()));
    }

    #[test]
    fn detached_volumes_have_no_name_and_no_rates_from_a_live_one() {
        let t0 = Instant::now();
        // vol0 (253:0) in the first sample; in the second, its volume is detached and a
        // new device took 253:0 (sysfs names it vol0 again).
        let before = sample(&[], &[(0, "a", 100)], t0);
        let mut after = sample(&[], &[(0, "a", 300)], t0 + Duration::from_secs(2));
        after.healths = vec![health(0, abi::VOLUME_DETACHED)];
        let views = after.views(Some(&before));
        assert_eq!(views[0].name, None);
        assert_eq!(views[0].rates, None);
        assert_eq!(views[0].health.map(|h| h.flags), Some(abi::VOLUME_DETACHED));
        // Still detached in the next sample: rates again.
        let later = {
            let mut s = sample(&[], &[(0, "a", 500)], t0 + Duration::from_secs(4));
            s.healths = vec![health(0, abi::VOLUME_DETACHED)];
            s
        };
        let views = later.views(Some(&after));
        assert_eq!(views[0].rates.unwrap().read_iops, 100.0);
        // Selecting the new device does not select the detached volume.
        let mut s = sample(&["a"], &[(0, "a", 0)], t0);
        s.healths = vec![health(0, abi::VOLUME_DETACHED)];
        assert!(matches!(
            s.select(Some(&resolve_volume("vol0", &devices()).unwrap())),
            Err(Error::NotFvpVolume { .. })
        ));
    }

    #[test]
    fn progress_on_a_terminal_is_a_bar_redrawn_in_place() {
        let mut p = Progress::new("vol0", true);
        let t = Instant::now();
        let first = p.update(100, t).unwrap();
        assert!(first.starts_with("\rdraining vol0 ["), "{first:?}");
        assert!(first.ends_with("]   0% 100 dirty blocks left\x1b[K"), "{first:?}");
        let half = p.update(50, t).unwrap();
        assert!(half.contains(" 50% 50 dirty blocks left"), "{half:?}");
        let done = p.update(0, t).unwrap();
        assert!(done.contains("100% 0 dirty blocks left"), "{done:?}");
        assert!(done.ends_with('\n'));
        assert_eq!(p.abandon(), Some("\n"));
    }

    #[test]
    fn progress_elsewhere_is_a_line_per_second() {
        let mut p = Progress::new("vol0", false);
        let t = Instant::now();
        assert_eq!(p.update(1234, t).as_deref(), Some("draining vol0: 1234 dirty blocks left\n"));
        assert_eq!(p.update(1000, t + Duration::from_millis(200)), None);
        assert_eq!(p.update(900, t + Duration::from_millis(800)), None);
        assert_eq!(
            p.update(800, t + Duration::from_millis(1000)).as_deref(),
            Some("draining vol0: 800 dirty blocks left\n")
        );
        // Done: said at once, and only once.
        assert_eq!(
            p.update(0, t + Duration::from_millis(1200)).as_deref(),
            Some("draining vol0: 0 dirty blocks left\n")
        );
        assert_eq!(p.update(0, t + Duration::from_millis(5000)), None);
        assert_eq!(p.abandon(), None);
        // Nothing to drain: a single line.
        let mut p = Progress::new("vol0", false);
        assert_eq!(p.update(0, t).as_deref(), Some("draining vol0: 0 dirty blocks left\n"));
    }

    #[test]
    fn helper_programs_failures_are_explained() {
        assert!(run_checked("true", &[]).is_ok());
        let err = run_checked("sh", &["-c", "echo 'device-mapper: message ioctl failed' >&2; exit 1"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c echo 'device-mapper: message ioctl failed' >&2; exit 1` failed (exit status: 1): \
             device-mapper: message ioctl failed"
        );
        let err = run_checked("/nonexistent/dmsetup", &["message", "v", "0", "flush"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("cannot run `/nonexistent/dmsetup message v 0 flush`: "), "{msg}");
        assert!(msg.contains("No such file or directory"), "{msg}");
    }
}
