// SPDX-License-Identifier: GPL-2.0

//! Why fvpctl failed, worded for the person running it.

use std::fmt;
use std::io;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fvp_logic::abi::{self, Command};
use nix::errno::Errno;

use crate::cluster::FileError;
use crate::units::{format_bytes, format_seconds};

/// Exit status of a `volume drain` that timed out, so scripts can tell it from errors.
pub const EXIT_TIMEOUT: u8 = 3;

/// How long `cluster apply` waits for volumes to move their replicas off a host it
/// removes (`FVP_IOC_HOST_REMOVE` answering EAGAIN).
pub const HOST_LEAVING_WAIT_S: u64 = 120;

/// A system call fvpctl made on the control device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Opening the device node.
    Open,
    /// An fvp ioctl.
    Ioctl(Command),
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Open => "open",
            Operation::Ioctl(Command::Version) => "FVP_IOC_VERSION",
            Operation::Ioctl(Command::Status) => "FVP_IOC_STATUS",
            Operation::Ioctl(Command::PoolCreate) => "FVP_IOC_POOL_CREATE",
            Operation::Ioctl(Command::PoolResize) => "FVP_IOC_POOL_RESIZE",
            Operation::Ioctl(Command::PoolDestroy) => "FVP_IOC_POOL_DESTROY",
            Operation::Ioctl(Command::PoolInfo) => "FVP_IOC_POOL_INFO",
            Operation::Ioctl(Command::FlashOpen) => "FVP_IOC_FLASH_OPEN",
            Operation::Ioctl(Command::FlashInfo) => "FVP_IOC_FLASH_INFO",
            Operation::Ioctl(Command::VolumeInfo) => "FVP_IOC_VOLUME_INFO",
            Operation::Ioctl(Command::VolumeRepl) => "FVP_IOC_VOLUME_REPL",
            Operation::Ioctl(Command::VolumeHealth) => "FVP_IOC_VOLUME_HEALTH",
            Operation::Ioctl(Command::ClusterSet) => "FVP_IOC_CLUSTER_SET",
            Operation::Ioctl(Command::ClusterInfo) => "FVP_IOC_CLUSTER_INFO",
            Operation::Ioctl(Command::HostAdd) => "FVP_IOC_HOST_ADD",
            Operation::Ioctl(Command::HostRemove) => "FVP_IOC_HOST_REMOVE",
            Operation::Ioctl(Command::HostInfo) => "FVP_IOC_HOST_INFO",
            Operation::Ioctl(Command::DeviceAdd) => "FVP_IOC_DEVICE_ADD",
            Operation::Ioctl(Command::DeviceRemove) => "FVP_IOC_DEVICE_REMOVE",
            Operation::Ioctl(Command::DeviceInfo) => "FVP_IOC_DEVICE_INFO",
            Operation::Ioctl(Command::HostUpdate) => "FVP_IOC_HOST_UPDATE",
            Operation::Ioctl(Command::VolumeDiscard) => "FVP_IOC_VOLUME_DISCARD",
            Operation::Ioctl(Command::KeySet) => "FVP_IOC_KEY_SET",
            Operation::Ioctl(Command::KeyInfo) => "FVP_IOC_KEY_INFO",
        })
    }
}

/// A failure of an fvpctl command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flash device or image could not be read.
    #[error("cannot read {}: {err}", .path.display())]
    FlashRead { path: PathBuf, err: std::io::Error },

    /// `pool create --flash` found data on the device.
    #[error("{} holds {what}: not formatted (--force formats it anyway, destroying that)", .path.display())]
    FlashInUse { path: PathBuf, what: &'static str },

    /// `pool create --flash` could not format the device.
    #[error("cannot format {}: {reason}", .path.display())]
    FlashFormat { path: PathBuf, reason: String },

    /// `FVP_IOC_FLASH_OPEN` refused the device.
    #[error("cannot open the flash pool on {}: {reason}", .path.display())]
    FlashOpen { path: PathBuf, reason: String },

    /// `pool check` found problems (listed in its report).
    #[error("the flash pool on {} is damaged or not a pool (problems listed above)", .path.display())]
    FlashDamaged { path: PathBuf },

    /// The device node does not exist and neither does the module.
    #[error(
        "cannot open {}: fvp module is not loaded (modprobe fvp / insmod fvp.ko)",
        .device.display()
    )]
    ModuleNotLoaded { device: PathBuf },

    /// The module is loaded but its device node is not there.
    #[error(
        "fvp module is loaded but {} is missing (wrong --device, or no udev/devtmpfs?)",
        .device.display()
    )]
    DeviceMissing { device: PathBuf },

    /// The file mode or the module's capability check refused us.
    #[error(
        "permission denied: fvpctl needs CAP_SYS_ADMIN ({operation} {}: {errno:?})",
        .device.display()
    )]
    PermissionDenied { operation: Operation, device: PathBuf, errno: Errno },

    /// Whatever is behind the path, it is not fvp's control device.
    #[error(
        "{} does not speak the fvp ABI ({operation}: ENOTTY)",
        .device.display()
    )]
    NotFvpDevice { operation: Operation, device: PathBuf },

    /// The module speaks another ABI version, so its structures may differ from ours.
    #[error("ABI mismatch: fvpctl speaks {ours}, module speaks {module}")]
    AbiMismatch { ours: u32, module: u32 },

    /// Any other errno.
    #[error("{operation} {}: {errno:?} ({})", .device.display(), .errno.desc())]
    Os { operation: Operation, device: PathBuf, errno: Errno },

    /// `pool create` of a name already taken (EEXIST).
    #[error("pool {name} already exists")]
    PoolExists { name: String },

    /// No pool has that name (ENOENT, or not found by FVP_IOC_POOL_INFO).
    #[error("no pool named {name}")]
    NoPool { name: String },

    /// `pool destroy` of a pool that volumes use (EBUSY).
    #[error("pool {name} is in use by {}", busy_users(*.volumes))]
    PoolBusy { name: String, volumes: Option<u32> },

    /// Creating or growing would leave too little free memory (ENOMEM).
    #[error(
        "not enough free memory for a pool of {} (fvp keeps 1/8 of RAM free)",
        format_bytes(*.bytes)
    )]
    PoolNoMemory { bytes: u64 },

    /// The module refused the name or the size (EINVAL).
    #[error("invalid pool name or size")]
    PoolInvalid,

    /// A signal interrupted filling or emptying a pool (EINTR from a resize).
    #[error("interrupted; the pool kept the size it had reached")]
    PoolInterrupted,

    /// A signal interrupted filling a new pool (EINTR from a create): the module
    /// does not keep a half-filled new pool.
    #[error("interrupted; pool {name} was not created")]
    PoolCreateInterrupted { name: String },

    /// `pool grow` to less than the pool's size.
    #[error(
        "cannot grow pool {name} to {}: it is already {} (use `fvpctl pool shrink`)",
        format_bytes(*.requested),
        format_bytes(*.current)
    )]
    CannotGrow { name: String, current: u64, requested: u64 },

    /// `pool shrink` to more than the pool's size.
    #[error(
        "cannot shrink pool {name} to {}: it is only {} (use `fvpctl pool grow`)",
        format_bytes(*.requested),
        format_bytes(*.current)
    )]
    CannotShrink { name: String, current: u64, requested: u64 },

    /// The VOLUME argument names no device-mapper device.
    #[error("no device-mapper device named {name}")]
    NoDmDevice { name: String },

    /// The device exists, but no fvp volume is on it.
    #[error("{volume} ({major}:{minor}) is not an fvp volume")]
    NotFvpVolume { volume: String, major: u32, minor: u32 },

    /// `dmsetup` could not be started.
    #[error("cannot run `{command}`: {err}")]
    ProgramNotRun { command: String, err: io::Error },

    /// `dmsetup` ran and failed.
    #[error("`{command}` failed ({status}){}", stderr_suffix(.stderr))]
    ProgramFailed { command: String, status: String, stderr: String },

    /// `volume drain --timeout` ran out.
    #[error(
        "timed out after {} draining {volume}: {dirty} dirty blocks left",
        format_seconds(*.timeout)
    )]
    DrainTimeout { volume: String, timeout: Duration, dirty: u64 },

    /// `volume discard-detached` without `--yes`.
    #[error(
        "not discarding anything without --yes: the dirty blocks of the volume over {backing} are \
         acknowledged writes, and its backing device keeps older data for them"
    )]
    NotConfirmed { backing: String },

    /// `volume discard-detached`: BACKING is neither `MAJ:MIN` nor a block device node.
    #[error("{backing} is neither MAJ:MIN nor a block device")]
    NotABlockDevice { backing: String },

    /// `volume discard-detached`, and the module predates `FVP_IOC_VOLUME_DISCARD`.
    #[error(
        "the loaded fvp module speaks ABI {module}, which cannot discard a removed volume's \
         blocks (that needs ABI 5): load a newer fvp.ko"
    )]
    NoDiscardAbi { module: u32 },

    /// `FVP_IOC_VOLUME_DISCARD`: ENOENT.
    #[error("no fvp volume is over backing device {major}:{minor}")]
    NoVolumeOver { major: u32, minor: u32 },

    /// `FVP_IOC_VOLUME_DISCARD`: EBUSY.
    #[error(
        "the fvp volume over {major}:{minor} still has its device: send it \
         `dmsetup message NAME 0 discard-dirty` instead"
    )]
    VolumeNotDetached { major: u32, minor: u32 },

    /// `FVP_IOC_VOLUME_DISCARD`: EOPNOTSUPP.
    #[error(
        "the fvp volume over {major}:{minor} is replicated: its peers hold its dirty blocks \
         too, so they cannot be discarded here"
    )]
    ReplicatedDiscard { major: u32, minor: u32 },

    /// The volume being drained disappeared.
    #[error("volume {volume} went away while draining")]
    VolumeGone { volume: String },

    /// Standard output could not be written.
    #[error("cannot write output: {0}")]
    Output(io::Error),

    /// A cluster command, and the module predates the cluster commands.
    #[error(
        "the loaded fvp module speaks ABI {module}, which has no cluster commands \
         (they need ABI 3): load a newer fvp.ko"
    )]
    NoClusterAbi { module: u32 },

    /// A cluster command, and the module does not announce replication.
    #[error(
        "the loaded fvp module does not support replication \
         (FVP_FEATURE_REPLICATION is not set): load a fvp.ko built with it"
    )]
    NoReplication,

    /// `transport encrypted`, and the module cannot seal replication messages.
    #[error(
        "the loaded fvp module (ABI {module}) has no encrypted transport \
         (FVP_FEATURE_SECURE_TRANSPORT is not set, it needs ABI 8): load a newer fvp.ko, \
         or leave transport at authenticated"
    )]
    NoSecureTransport { module: u32 },

    /// A cluster description is wrong, or this host is not in it.
    #[error("{0}")]
    ClusterFile(#[from] FileError),

    /// `cluster set --secret-file` could not be read.
    #[error("cannot read secret file {}: {err}", .path.display())]
    SecretFile { path: PathBuf, err: io::Error },

    /// `cluster set` settings that fvpctl refuses before asking the module.
    #[error("invalid cluster settings: {0}")]
    ClusterSettings(String),

    /// `FVP_IOC_CLUSTER_SET`: EINVAL.
    #[error(
        "the module refused the cluster settings (EINVAL): name, local id, timers, secret or \
         transport out of range"
    )]
    ClusterInvalid,

    /// `FVP_IOC_CLUSTER_SET`: EBUSY.
    #[error(
        "cannot change the cluster (EBUSY): replicated volumes exist, and its name, local id \
         and secret cannot change while they run"
    )]
    ClusterBusy,

    /// `FVP_IOC_HOST_ADD`: EEXIST.
    #[error("cannot add host {id} at {addr} (EEXIST): its id or address is already configured")]
    HostExists { id: u32, addr: SocketAddrV4 },

    /// `FVP_IOC_HOST_ADD`: EINVAL.
    #[error("the module refused host {id} (EINVAL): bad id, address, port or fault domain")]
    HostInvalid { id: u32 },

    /// `FVP_IOC_HOST_REMOVE`: ENOENT.
    #[error("no host with id {id} (ENOENT)")]
    NoHost { id: u32 },

    /// `FVP_IOC_HOST_REMOVE`: EBUSY.
    #[error(
        "cannot remove host {id} (EBUSY): it is this host while volumes run, or two earlier \
         host lists are still in force (a host has not applied them: see the module's log)"
    )]
    HostBusy { id: u32 },

    /// `FVP_IOC_HOST_REMOVE`: EAGAIN (ABI 6).
    #[error(
        "host {id} still holds (or may hold) replicas of replicated volumes on this host (EAGAIN): \
         they are moving off it; try again (cluster apply waits up to {wait_s} s)"
    )]
    HostLeaving { id: u32, wait_s: u64 },

    /// `FVP_IOC_HOST_ADD`: EBUSY.
    #[error(
        "cannot add host {id} (EBUSY): two earlier host lists are still in force (a host has \
         not applied them: apply this file on every host first)"
    )]
    HostListBusy { id: u32 },

    /// `FVP_IOC_HOST_REMOVE`: EINVAL.
    #[error(
        "cannot remove host {id} (EINVAL): with the hosts removed before it, a majority of a \
         host list in force would go, and they alone could hold a majority; remove fewer at \
         once, and apply each step on every host"
    )]
    RemovesMajority { id: u32 },

    /// `FVP_IOC_DEVICE_ADD`: EEXIST.
    #[error("cannot add shared device {name} (EEXIST): a device of that name is already configured")]
    DeviceExists { name: String },

    /// `FVP_IOC_DEVICE_ADD`: EINVAL.
    #[error(
        "the module refused shared device {name} at {path} (EINVAL): bad name, or a path \
         that is not absolute"
    )]
    DeviceInvalid { name: String, path: String },

    /// `FVP_IOC_DEVICE_REMOVE`: ENOENT.
    #[error("no shared device named {name} (ENOENT)")]
    NoDevice { name: String },

    /// A private key file that fvpctl refuses, or cannot read.
    #[error("private key file {}: {reason}", .path.display())]
    KeyFile { path: PathBuf, reason: String },

    /// `key generate` could not create its file.
    #[error("cannot create private key file {}: {}", .path.display(), key_write_reason(.err))]
    KeyFileWrite { path: PathBuf, err: io::Error },

    /// `key generate` got no random bytes.
    #[error("cannot read random bytes from /dev/urandom: {0}")]
    NoRandom(io::Error),

    /// A key command, and the module predates hosts' keys.
    #[error(
        "the loaded fvp module speaks ABI {module}, which has no host keys (they need ABI 8): \
         load a newer fvp.ko"
    )]
    NoKeyAbi { module: u32 },

    /// `device add --uuid`, and the module predates devices' uuids.
    #[error(
        "the loaded fvp module speaks ABI {module}, which has no device uuids (they need ABI 9): \
         load a newer fvp.ko, or add the device without --uuid"
    )]
    NoDeviceUuidAbi { module: u32 },

    /// `key set --private-file` before the cluster is set.
    #[error(
        "the cluster is not set: set it (fvpctl cluster apply FILE, or fvpctl cluster set) \
         before this host's private key"
    )]
    KeyNeedsCluster,

    /// `key set --private-file` for another host than this one.
    #[error(
        "host {id} is not this host (host {local}): only this host's private key is set here; \
         the other hosts' keys are public ones (--public HEX)"
    )]
    KeyNotLocal { id: u32, local: u32 },

    /// `FVP_IOC_KEY_SET`: EINVAL.
    #[error("{}", key_refusal(*.id, *.private))]
    KeyInvalid { id: u32, private: bool },

    /// `cluster apply` failed after changing some of the module's configuration.
    #[error(
        "{error}\n(cluster apply stopped after {done} of {total} changes; fix the cause and \
         run it again: changes already made are kept)"
    )]
    ApplyStopped { error: Box<Error>, done: usize, total: usize },
}

/// `3 volume(s)`, or a vaguer phrase when the count could not be read.
fn busy_users(volumes: Option<u32>) -> String {
    match volumes {
        Some(n) => format!("{n} volume(s)"),
        None => "one or more volumes".to_owned(),
    }
}

/// Why a private key file could not be created.
fn key_write_reason(err: &io::Error) -> String {
    if err.kind() == io::ErrorKind::AlreadyExists {
        "it exists (fvpctl never overwrites a key file: remove it first if it is to go)".to_owned()
    } else {
        err.to_string()
    }
}

/// The module's refusal (EINVAL) of host `id`'s key.
fn key_refusal(id: u32, private: bool) -> String {
    if private {
        format!(
            "the module refused the private key of host {id} (EINVAL): host {id} is not this host, \
             the cluster is not set, or the key is all zero or not a usable X25519 key"
        )
    } else {
        format!(
            "the module refused the public key of host {id} (EINVAL): host {id} is this host (whose \
             public key comes from its private key), the cluster is not set, or the key is all zero"
        )
    }
}

/// `: what the program said`, or nothing when it said nothing.
fn stderr_suffix(stderr: &str) -> String {
    match stderr.trim() {
        "" => String::new(),
        text => format!(": {text}"),
    }
}

impl Error {
    /// Explains a failed open of `device`; `module_loaded` tells a missing node apart
    /// from a missing module.
    pub fn from_open(errno: Errno, device: &Path, module_loaded: bool) -> Self {
        let device = device.to_path_buf();
        match errno {
            // ENODEV and ENXIO: a stale node whose driver is gone.
            Errno::ENOENT | Errno::ENODEV | Errno::ENXIO if !module_loaded => Error::ModuleNotLoaded { device },
            Errno::ENOENT => Error::DeviceMissing { device },
            _ => Error::from_errno(Operation::Open, errno, device),
        }
    }

    /// Explains a failed ioctl on `device`.
    pub fn from_ioctl(command: Command, errno: Errno, device: &Path) -> Self {
        Error::from_errno(Operation::Ioctl(command), errno, device.to_path_buf())
    }

    /// Explains a failed `FVP_IOC_POOL_CREATE`, `_RESIZE` or `_DESTROY` of pool `name`
    /// to `bytes`. `volumes` is how many volumes use the pool, if known, for EBUSY.
    pub fn from_pool_ioctl(
        command: Command,
        errno: Errno,
        name: &str,
        bytes: u64,
        volumes: Option<u32>,
        device: &Path,
    ) -> Self {
        let name = name.to_owned();
        let sizes = matches!(command, Command::PoolCreate | Command::PoolResize);
        match errno {
            Errno::EEXIST if command == Command::PoolCreate => Error::PoolExists { name },
            Errno::ENOENT if command != Command::PoolCreate => Error::NoPool { name },
            Errno::EBUSY if command == Command::PoolDestroy => Error::PoolBusy { name, volumes },
            Errno::ENOMEM if sizes => Error::PoolNoMemory { bytes },
            Errno::EINTR if command == Command::PoolCreate => Error::PoolCreateInterrupted { name },
            Errno::EINTR if command == Command::PoolResize => Error::PoolInterrupted,
            Errno::EINVAL => Error::PoolInvalid,
            _ => Error::from_ioctl(command, errno, device),
        }
    }

    /// Explains a failed `FVP_IOC_CLUSTER_SET`.
    pub fn from_cluster_set(errno: Errno, device: &Path) -> Self {
        match errno {
            Errno::EINVAL => Error::ClusterInvalid,
            Errno::EBUSY => Error::ClusterBusy,
            _ => Error::from_ioctl(Command::ClusterSet, errno, device),
        }
    }

    /// Explains a failed `FVP_IOC_HOST_ADD` or `FVP_IOC_HOST_REMOVE` of `host`.
    pub fn from_host_ioctl(command: Command, errno: Errno, host: &abi::HostReq, device: &Path) -> Self {
        let id = host.id;
        match (command, errno) {
            (Command::HostAdd, Errno::EEXIST) => {
                Error::HostExists { id, addr: SocketAddrV4::new(host.octets().into(), host.port) }
            }
            (Command::HostAdd, Errno::EINVAL) => Error::HostInvalid { id },
            (Command::HostRemove | Command::HostUpdate, Errno::ENOENT) => Error::NoHost { id },
            (Command::HostUpdate, Errno::EINVAL) => Error::HostInvalid { id },
            (Command::HostRemove, Errno::EBUSY) => Error::HostBusy { id },
            (Command::HostAdd, Errno::EBUSY) => Error::HostListBusy { id },
            (Command::HostRemove, Errno::EINVAL) => Error::RemovesMajority { id },
            (Command::HostRemove, Errno::EAGAIN) => Error::HostLeaving { id, wait_s: HOST_LEAVING_WAIT_S },
            _ => Error::from_ioctl(command, errno, device),
        }
    }

    /// Explains a failed `FVP_IOC_KEY_SET` of host `id`'s public or (`private`) private key.
    pub fn from_key_set(errno: Errno, id: u32, private: bool, device: &Path) -> Self {
        match errno {
            Errno::EINVAL => Error::KeyInvalid { id, private },
            _ => Error::from_ioctl(Command::KeySet, errno, device),
        }
    }

    /// Explains a failed `FVP_IOC_VOLUME_DISCARD` of the volume over `major:minor`.
    pub fn from_volume_discard(errno: Errno, major: u32, minor: u32, device: &Path) -> Self {
        match errno {
            Errno::ENOENT => Error::NoVolumeOver { major, minor },
            Errno::EBUSY => Error::VolumeNotDetached { major, minor },
            Errno::EOPNOTSUPP => Error::ReplicatedDiscard { major, minor },
            _ => Error::from_ioctl(Command::VolumeDiscard, errno, device),
        }
    }

    /// Explains a failed `FVP_IOC_DEVICE_ADD` or `FVP_IOC_DEVICE_REMOVE` of `request`.
    pub fn from_device_ioctl(command: Command, errno: Errno, request: &abi::DeviceReq, device: &Path) -> Self {
        let name = abi::name_str(&request.name).to_owned();
        match (command, errno) {
            (Command::DeviceAdd, Errno::EEXIST) => Error::DeviceExists { name },
            (Command::DeviceAdd, Errno::EINVAL) => Error::DeviceInvalid { name, path: request.path_str().to_owned() },
            (Command::DeviceRemove, Errno::ENOENT) => Error::NoDevice { name },
            _ => Error::from_ioctl(command, errno, device),
        }
    }

    /// The process's exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::DrainTimeout { .. } => EXIT_TIMEOUT,
            _ => 1,
        }
    }

    fn from_errno(operation: Operation, errno: Errno, device: PathBuf) -> Self {
        match errno {
            Errno::EACCES | Errno::EPERM => Error::PermissionDenied { operation, device, errno },
            Errno::ENOTTY => Error::NotFvpDevice { operation, device },
            _ => Error::Os { operation, device, errno },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: &str = "/dev/fvp-control";

    fn open_error(errno: Errno, module_loaded: bool) -> String {
        Error::from_open(errno, Path::new(DEVICE), module_loaded).to_string()
    }

    fn ioctl_error(command: Command, errno: Errno) -> String {
        Error::from_ioctl(command, errno, Path::new(DEVICE)).to_string()
    }

    #[test]
    fn missing_node_without_module_blames_the_module() {
        for errno in [Errno::ENOENT, Errno::ENODEV, Errno::ENXIO] {
            let msg = open_error(errno, false);
            assert!(msg.contains("fvp module is not loaded (modprobe fvp / insmod fvp.ko)"), "{msg}");
            assert!(msg.contains(DEVICE), "{msg}");
        }
    }

    #[test]
    fn missing_node_with_module_blames_the_node() {
        let msg = open_error(Errno::ENOENT, true);
        assert!(msg.contains("/dev/fvp-control is missing"), "{msg}");
    }

    #[test]
    fn permission_problems_name_the_capability() {
        assert!(open_error(Errno::EACCES, true).starts_with("permission denied: fvpctl needs CAP_SYS_ADMIN"));
        let msg = ioctl_error(Command::Version, Errno::EPERM);
        assert!(msg.starts_with("permission denied: fvpctl needs CAP_SYS_ADMIN"), "{msg}");
        assert!(msg.contains("FVP_IOC_VERSION"), "{msg}");
    }

    #[test]
    fn enotty_means_not_fvp() {
        let msg = ioctl_error(Command::Status, Errno::ENOTTY);
        assert_eq!(msg, "/dev/fvp-control does not speak the fvp ABI (FVP_IOC_STATUS: ENOTTY)");
    }

    #[test]
    fn other_errnos_are_named() {
        let msg = ioctl_error(Command::Status, Errno::EINVAL);
        assert_eq!(msg, "FVP_IOC_STATUS /dev/fvp-control: EINVAL (Invalid argument)");
        let msg = open_error(Errno::ENODEV, true);
        assert!(msg.starts_with("open /dev/fvp-control: ENODEV"), "{msg}");
    }

    fn pool_error(command: Command, errno: Errno, volumes: Option<u32>) -> String {
        Error::from_pool_ioctl(command, errno, "ram0", 64 << 20, volumes, Path::new(DEVICE)).to_string()
    }

    #[test]
    fn pool_errors_are_explained() {
        use Command::{PoolCreate, PoolDestroy, PoolResize};
        assert_eq!(pool_error(PoolCreate, Errno::EEXIST, None), "pool ram0 already exists");
        assert_eq!(pool_error(PoolResize, Errno::ENOENT, None), "no pool named ram0");
        assert_eq!(pool_error(PoolDestroy, Errno::ENOENT, None), "no pool named ram0");
        assert_eq!(pool_error(PoolDestroy, Errno::EBUSY, Some(2)), "pool ram0 is in use by 2 volume(s)");
        assert_eq!(pool_error(PoolDestroy, Errno::EBUSY, None), "pool ram0 is in use by one or more volumes");
        for command in [PoolCreate, PoolResize] {
            assert_eq!(
                pool_error(command, Errno::ENOMEM, None),
                "not enough free memory for a pool of 64 MiB (fvp keeps 1/8 of RAM free)"
            );
        }
        assert_eq!(pool_error(PoolResize, Errno::EINTR, None), "interrupted; the pool kept the size it had reached");
        assert_eq!(pool_error(PoolCreate, Errno::EINTR, None), "interrupted; pool ram0 was not created");
        for command in [PoolCreate, PoolResize, PoolDestroy] {
            assert_eq!(pool_error(command, Errno::EINVAL, None), "invalid pool name or size");
            assert!(pool_error(command, Errno::EPERM, None).starts_with("permission denied"));
            assert!(pool_error(command, Errno::ENOTTY, None).contains("does not speak the fvp ABI"));
        }
        // Errnos the header does not list for a command stay errnos.
        assert_eq!(
            pool_error(PoolCreate, Errno::ENOENT, None),
            "FVP_IOC_POOL_CREATE /dev/fvp-control: ENOENT (No such file or directory)"
        );
        assert_eq!(
            pool_error(PoolResize, Errno::EBUSY, None),
            "FVP_IOC_POOL_RESIZE /dev/fvp-control: EBUSY (Device or resource busy)"
        );
        assert!(pool_error(PoolDestroy, Errno::EEXIST, None).starts_with("FVP_IOC_POOL_DESTROY"));
    }

    #[test]
    fn every_command_has_its_header_name() {
        for (command, name) in [
            (Command::PoolCreate, "FVP_IOC_POOL_CREATE"),
            (Command::PoolResize, "FVP_IOC_POOL_RESIZE"),
            (Command::PoolDestroy, "FVP_IOC_POOL_DESTROY"),
            (Command::PoolInfo, "FVP_IOC_POOL_INFO"),
            (Command::VolumeInfo, "FVP_IOC_VOLUME_INFO"),
        ] {
            assert_eq!(Operation::Ioctl(command).to_string(), name);
        }
    }

    #[test]
    fn other_failures_read_well() {
        let grow = Error::CannotGrow { name: "ram0".into(), current: 128 << 20, requested: 64 << 20 };
        assert_eq!(
            grow.to_string(),
            "cannot grow pool ram0 to 64 MiB: it is already 128 MiB (use `fvpctl pool shrink`)"
        );
        let shrink = Error::CannotShrink { name: "ram0".into(), current: 64 << 20, requested: 1 << 30 };
        assert_eq!(shrink.to_string(), "cannot shrink pool ram0 to 1 GiB: it is only 64 MiB (use `fvpctl pool grow`)");
        let failed = Error::ProgramFailed {
            command: "dmsetup message v 0 flush".into(),
            status: "exit status: 1".into(),
            stderr: "device-mapper: message ioctl failed\n".into(),
        };
        assert_eq!(
            failed.to_string(),
            "`dmsetup message v 0 flush` failed (exit status: 1): device-mapper: message ioctl failed"
        );
        let silent =
            Error::ProgramFailed { command: "x".into(), status: "exit status: 2".into(), stderr: " \n".into() };
        assert_eq!(silent.to_string(), "`x` failed (exit status: 2)");
        let timeout = Error::DrainTimeout { volume: "v".into(), timeout: Duration::from_secs(5), dirty: 12 };
        assert_eq!(timeout.to_string(), "timed out after 5 s draining v: 12 dirty blocks left");
        assert_eq!(timeout.exit_code(), EXIT_TIMEOUT);
        assert_eq!(Error::PoolInvalid.exit_code(), 1);
        assert_eq!(
            Error::NotFvpVolume { volume: "v".into(), major: 253, minor: 3 }.to_string(),
            "v (253:3) is not an fvp volume"
        );
        assert_eq!(Error::NoDmDevice { name: "v".into() }.to_string(), "no device-mapper device named v");
        let dev = Path::new("/dev/fvp-control");
        assert!(matches!(
            Error::from_volume_discard(Errno::ENOENT, 8, 16, dev),
            Error::NoVolumeOver { major: 8, minor: 16 }
        ));
        assert!(Error::from_volume_discard(Errno::EBUSY, 8, 16, dev).to_string().contains("discard-dirty"));
        assert!(Error::from_volume_discard(Errno::EOPNOTSUPP, 8, 16, dev).to_string().contains("replicated"));
        assert!(Error::NotConfirmed { backing: "8:16".into() }
            .to_string()
            .starts_with("not discarding anything without --yes"));
    }

    fn host() -> abi::HostReq {
        abi::HostReq::new(3, [10, 0, 0, 3], 7790, abi::pool_name(b"rack-a").unwrap())
    }

    fn device() -> abi::DeviceReq {
        abi::DeviceReq::new(abi::pool_name(b"shared0").unwrap(), b"/dev/vdb").unwrap()
    }

    #[test]
    fn cluster_errors_are_explained() {
        let path = Path::new(DEVICE);
        assert_eq!(
            Error::from_cluster_set(Errno::EBUSY, path).to_string(),
            "cannot change the cluster (EBUSY): replicated volumes exist, and its name, local id \
             and secret cannot change while they run"
        );
        assert!(Error::from_cluster_set(Errno::EINVAL, path)
            .to_string()
            .contains("(EINVAL): name, local id, timers, secret or transport"));
        assert!(Error::from_cluster_set(Errno::EPERM, path).to_string().contains("CAP_SYS_ADMIN (FVP_IOC_CLUSTER_SET"));
        let host_error = |command, errno| Error::from_host_ioctl(command, errno, &host(), path).to_string();
        assert_eq!(
            host_error(Command::HostAdd, Errno::EEXIST),
            "cannot add host 3 at 10.0.0.3:7790 (EEXIST): its id or address is already configured"
        );
        assert!(host_error(Command::HostAdd, Errno::EINVAL).starts_with("the module refused host 3 (EINVAL)"));
        assert_eq!(host_error(Command::HostRemove, Errno::ENOENT), "no host with id 3 (ENOENT)");
        assert!(
            host_error(Command::HostRemove, Errno::EBUSY).starts_with("cannot remove host 3 (EBUSY): it is this host")
        );
        assert_eq!(
            host_error(Command::HostRemove, Errno::EEXIST),
            "FVP_IOC_HOST_REMOVE /dev/fvp-control: EEXIST (File exists)"
        );
        let device_error = |command, errno| Error::from_device_ioctl(command, errno, &device(), path).to_string();
        assert_eq!(
            device_error(Command::DeviceAdd, Errno::EEXIST),
            "cannot add shared device shared0 (EEXIST): a device of that name is already configured"
        );
        assert!(device_error(Command::DeviceAdd, Errno::EINVAL)
            .starts_with("the module refused shared device shared0 at /dev/vdb (EINVAL)"));
        assert_eq!(device_error(Command::DeviceRemove, Errno::ENOENT), "no shared device named shared0 (ENOENT)");
        assert!(device_error(Command::DeviceRemove, Errno::ENOTTY).contains("does not speak the fvp ABI"));
        assert_eq!(
            Error::NoClusterAbi { module: 2 }.to_string(),
            "the loaded fvp module speaks ABI 2, which has no cluster commands (they need ABI 3): \
             load a newer fvp.ko"
        );
        assert_eq!(
            Error::NoSecureTransport { module: 7 }.to_string(),
            "the loaded fvp module (ABI 7) has no encrypted transport (FVP_FEATURE_SECURE_TRANSPORT \
             is not set, it needs ABI 8): load a newer fvp.ko, or leave transport at authenticated"
        );
        let stopped = Error::ApplyStopped { error: Box::new(Error::NoHost { id: 4 }), done: 2, total: 5 };
        assert_eq!(
            stopped.to_string(),
            "no host with id 4 (ENOENT)\n(cluster apply stopped after 2 of 5 changes; fix the cause \
             and run it again: changes already made are kept)"
        );
    }

    #[test]
    fn every_new_command_has_its_header_name() {
        for command in Command::ALL {
            let name = Operation::Ioctl(command).to_string();
            assert!(name.starts_with("FVP_IOC_"), "{name}");
            assert_eq!(abi::ioc_size(command.ioc()), command.size());
        }
        assert_eq!(Operation::Ioctl(Command::VolumeRepl).to_string(), "FVP_IOC_VOLUME_REPL");
        assert_eq!(Operation::Ioctl(Command::VolumeHealth).to_string(), "FVP_IOC_VOLUME_HEALTH");
        assert_eq!(Operation::Ioctl(Command::DeviceInfo).to_string(), "FVP_IOC_DEVICE_INFO");
    }

    #[test]
    fn key_errors_are_explained() {
        let path = Path::new(DEVICE);
        assert_eq!(
            Error::from_key_set(Errno::EINVAL, 2, true, path).to_string(),
            "the module refused the private key of host 2 (EINVAL): host 2 is not this host, the cluster \
             is not set, or the key is all zero or not a usable X25519 key"
        );
        assert_eq!(
            Error::from_key_set(Errno::EINVAL, 3, false, path).to_string(),
            "the module refused the public key of host 3 (EINVAL): host 3 is this host (whose public key \
             comes from its private key), the cluster is not set, or the key is all zero"
        );
        assert!(Error::from_key_set(Errno::EPERM, 3, false, path)
            .to_string()
            .contains("CAP_SYS_ADMIN (FVP_IOC_KEY_SET"));
        assert_eq!(
            Error::from_key_set(Errno::ENOTTY, 3, false, path).to_string(),
            "/dev/fvp-control does not speak the fvp ABI (FVP_IOC_KEY_SET: ENOTTY)"
        );
        assert_eq!(Operation::Ioctl(Command::KeyInfo).to_string(), "FVP_IOC_KEY_INFO");
        let exists = Error::KeyFileWrite { path: "/etc/fvp/host.key".into(), err: io::ErrorKind::AlreadyExists.into() };
        assert_eq!(
            exists.to_string(),
            "cannot create private key file /etc/fvp/host.key: it exists (fvpctl never overwrites a key \
             file: remove it first if it is to go)"
        );
        let file = Error::KeyFile { path: "/k".into(), reason: "not a regular file".into() };
        assert_eq!(file.to_string(), "private key file /k: not a regular file");
        assert!(Error::NoKeyAbi { module: 7 }
            .to_string()
            .starts_with("the loaded fvp module speaks ABI 7, which has no host keys"));
        assert!(Error::KeyNotLocal { id: 3, local: 2 }.to_string().starts_with("host 3 is not this host (host 2)"));
        assert!(Error::KeyNeedsCluster.to_string().starts_with("the cluster is not set"));
        assert!(Error::NoDeviceUuidAbi { module: 8 }.to_string().contains("ABI 8, which has no device uuids"));
    }

    #[test]
    fn abi_mismatch_names_both_versions() {
        let msg = Error::AbiMismatch { ours: 1, module: 2 }.to_string();
        assert_eq!(msg, "ABI mismatch: fvpctl speaks 1, module speaks 2");
    }
}
