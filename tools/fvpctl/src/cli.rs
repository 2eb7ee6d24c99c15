// SPDX-License-Identifier: GPL-2.0

//! Command-line syntax.

use std::fmt;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use fvp_logic::abi::{
    self, CONTROL_NAME, DEFAULT_HEARTBEAT_MS, DEFAULT_TIMEOUT_MS, HEARTBEAT_MS_MAX, HEARTBEAT_MS_MIN, NAME_LEN,
    TIMEOUT_MS_MAX,
};
use fvp_logic::seal::Transport;

use crate::cluster::{check_device_path, check_name, parse_host_addr, parse_host_id, parse_transport};
use crate::keys::PublicKey;
use crate::units::{parse_seconds, parse_size};

/// Query and manage the fvp block caching module through its control device.
#[derive(Debug, Parser)]
#[command(name = "fvpctl", version)]
pub struct Cli {
    /// Control device to talk to.
    #[arg(long, global = true, value_name = "PATH", default_value_os_t = default_device())]
    pub device: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

/// What fvpctl is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Show the versions of fvpctl and of the loaded module, and the module's features.
    Version(OutputArgs),
    /// Show the module's version and module-wide counters.
    Status(OutputArgs),
    /// Create, resize, destroy and list RAM pools; check flash pool devices.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Show pool and volume statistics, once or every few seconds.
    Stats(StatsArgs),
    /// Act on an fvp volume.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Configure the replication cluster from a description file, or show its state.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Add, remove and list the cluster's hosts one at a time (see `cluster apply`).
    #[command(subcommand)]
    Host(HostCommand),
    /// Add, remove and list the cluster's shared backing devices one at a time.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Make hosts' X25519 key pairs, and set keys one at a time (see `cluster apply`).
    #[command(subcommand)]
    Key(KeyCommand),
}

/// `fvpctl pool ...`.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum PoolCommand {
    /// Create a RAM pool (--ram SIZE), or format a device as a flash pool and open it
    /// (--flash DEV).
    Create(CreateArgs),
    /// Open an existing flash pool (after a reboot): its cached blocks, clean and
    /// dirty, come back.
    Open(OpenArgs),
    /// Close a flash pool no volume uses; its blocks stay on the device.
    Close(DestroyArgs),
    /// Grow a pool to SIZE (its new total size).
    Grow(ResizeArgs),
    /// Shrink a pool to SIZE (its new total size), evicting clean blocks.
    Shrink(ResizeArgs),
    /// Destroy a pool no volume uses.
    Destroy(DestroyArgs),
    /// List the pools.
    List(OutputArgs),
    /// Check a flash pool's metadata on a device or image without the module, like
    /// cache_check: exit status 0 if it would open, 1 if it is damaged.
    Check(PoolCheckArgs),
}

/// `fvpctl pool check --flash PATH`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct PoolCheckArgs {
    /// The flash device (or an image file of it), read only
    #[arg(long, value_name = "PATH")]
    pub flash: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The long help of a size: a number of bytes, or a number with a binary unit.
macro_rules! size_help {
    ($what:literal) => {
        concat!(
            $what,
            ": a number of bytes, or a number with a unit K/KiB, M/MiB, G/GiB, T/TiB \
             (binary, any case; e.g. 64M, 1.5G); a non-zero multiple of 4096"
        )
    };
}

/// `fvpctl pool create NAME --ram SIZE` or `--flash DEV [--force]`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["ram", "flash"])))]
pub struct CreateArgs {
    /// Pool name: 1 to 31 of A-Z a-z 0-9 _ . -
    #[arg(value_parser = PoolName::parse)]
    pub name: PoolName,
    /// Size of the pool in RAM (e.g. 64M, 1.5G)
    #[arg(long, value_name = "SIZE", value_parser = parse_size, long_help = size_help!("Size of the pool in RAM"))]
    pub ram: Option<u64>,
    /// Format this block device as a flash pool (everything on it is lost)
    #[arg(long, value_name = "DEV")]
    pub flash: Option<PathBuf>,
    /// Format even a device that holds a filesystem, a partition table or a pool
    #[arg(long, requires = "flash")]
    pub force: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl pool open NAME --flash DEV`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct OpenArgs {
    /// Pool name: 1 to 31 of A-Z a-z 0-9 _ . -
    #[arg(value_parser = PoolName::parse)]
    pub name: PoolName,
    /// The flash pool's block device
    #[arg(long, value_name = "DEV")]
    pub flash: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl pool grow|shrink NAME SIZE`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct ResizeArgs {
    /// Pool name
    #[arg(value_parser = PoolName::parse)]
    pub name: PoolName,
    /// New total size of the pool (e.g. 64M, 1.5G)
    #[arg(value_parser = parse_size, long_help = size_help!("New total size of the pool"))]
    pub size: u64,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl pool destroy NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct DestroyArgs {
    /// Pool name
    #[arg(value_parser = PoolName::parse)]
    pub name: PoolName,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl stats [VOLUME] [--watch [SECS]]`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct StatsArgs {
    /// Only this volume (and its pool): a device-mapper name, or MAJ:MIN
    pub volume: Option<String>,
    /// Print rates over every SECS seconds (default 1) until interrupted; put VOLUME first
    /// or write --watch=SECS
    #[arg(
        long,
        value_name = "SECS",
        num_args = 0..=1,
        default_missing_value = "1",
        value_parser = parse_seconds
    )]
    pub watch: Option<Duration>,
    /// With --watch: stop after N reports
    #[arg(long, value_name = "N", requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl volume ...`.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum VolumeCommand {
    /// Write back every dirty block (`dmsetup message VOLUME 0 flush`) and wait until none is left.
    Drain(DrainArgs),
    /// Drop the dirty blocks of a removed volume whose backing device refuses them (a
    /// disk gone for good): acknowledged writes are lost; the device keeps older data.
    DiscardDetached(DiscardDetachedArgs),
}

/// `fvpctl volume discard-detached BACKING --yes`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct DiscardDetachedArgs {
    /// The removed volume's backing device: MAJ:MIN (as `fvpctl stats` shows it), or
    /// its device node
    pub backing: String,
    /// Confirm that the dirty blocks, acknowledged writes, are to be lost
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl volume drain VOLUME [--timeout SECS]`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct DrainArgs {
    /// The volume: a device-mapper name, or MAJ:MIN
    pub volume: String,
    /// Give up (exit status 3) if dirty blocks are still left after SECS seconds
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl cluster ...`.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum ClusterCommand {
    /// Make the module's cluster settings, hosts and shared devices those of FILE, a TOML
    /// description of the whole cluster, the same on every host.
    Apply(ApplyArgs),
    /// Set the cluster's name, this host's id, the timers and the shared secret.
    Set(ClusterSetArgs),
    /// Show the cluster's settings and state, its hosts and its shared devices.
    Show(OutputArgs),
}

/// The long help of `cluster apply FILE`.
const APPLY_FILE_HELP: &str = "\
The cluster description (TOML), the same on every host:

  name = \"lab\"
  secret = \"at-least-16-bytes-secret\"   # or secret_file = \"/path\"
  heartbeat_ms = 200                    # optional, default 200
  timeout_ms = 2000                     # optional, default 2000
  transport = \"encrypted\"               # optional, default \"authenticated\"
  key_file = \"/etc/fvp/host.key\"        # this host's private key: root's, mode 0600
  [[host]]                              # one per host, this one included
  id = 1
  addr = \"10.0.0.1:7790\"
  domain = \"rack-a\"
  key = \"8520f0...\"                     # its public key: 64 hex digits (fvpctl key public)
  [[device]]                            # one per shared backing device
  name = \"shared0\"
  path = \"/dev/disk/by-id/virtio-fvp-shared\"";

/// `fvpctl cluster apply FILE [--local-id ID] [--dry-run]`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct ApplyArgs {
    /// The cluster description (TOML), the same on every host
    #[arg(value_name = "FILE", long_help = APPLY_FILE_HELP)]
    pub file: PathBuf,
    /// This host's id in FILE (default: the host whose address is on one of this machine's
    /// interfaces)
    #[arg(long, value_name = "ID", value_parser = parse_host_id)]
    pub local_id: Option<u32>,
    /// Check FILE and print what would change, without changing anything
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl cluster set --name NAME --local-id ID --secret-file FILE [timers]`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct ClusterSetArgs {
    /// Cluster name: 1 to 31 of A-Z a-z 0-9 _ . -
    #[arg(long, value_parser = Name::cluster)]
    pub name: Name,
    /// This host's id, 1 to 64
    #[arg(long, value_name = "ID", value_parser = parse_host_id)]
    pub local_id: u32,
    /// File holding the shared secret, 16 to 64 bytes (a trailing newline is not part of it)
    #[arg(long, value_name = "FILE")]
    pub secret_file: PathBuf,
    /// Interval of heartbeats, in milliseconds
    #[arg(
        long,
        value_name = "MS",
        default_value_t = DEFAULT_HEARTBEAT_MS,
        value_parser = clap::value_parser!(u32).range(i64::from(HEARTBEAT_MS_MIN)..=i64::from(HEARTBEAT_MS_MAX))
    )]
    pub heartbeat_ms: u32,
    /// Silence after which a host is fenced, in milliseconds (at least 3 heartbeats)
    #[arg(
        long,
        value_name = "MS",
        default_value_t = DEFAULT_TIMEOUT_MS,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(TIMEOUT_MS_MAX))
    )]
    pub timeout_ms: u32,
    /// How replication messages are protected: authenticated (in clear), or encrypted
    /// too; the same on every host
    #[arg(
        long,
        value_name = "MODE",
        default_value = "authenticated",
        value_parser = PossibleValuesParser::new(["authenticated", "encrypted"])
            .try_map(|text: String| parse_transport(&text))
    )]
    pub transport: Transport,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl host ...`.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum HostCommand {
    /// Add a host to the cluster.
    Add(HostAddArgs),
    /// Remove a host from the cluster.
    Remove(HostRemoveArgs),
    /// List the cluster's hosts and their state.
    List(OutputArgs),
}

/// `fvpctl host add ID --addr IP:PORT --domain NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct HostAddArgs {
    /// Host id, 1 to 64
    #[arg(value_parser = parse_host_id)]
    pub id: u32,
    /// The host's IPv4 address and replication port (e.g. 10.0.0.1:7790)
    #[arg(long, value_name = "IP:PORT", value_parser = parse_host_addr)]
    pub addr: SocketAddrV4,
    /// The host's fault domain: 1 to 31 of A-Z a-z 0-9 _ . -
    #[arg(long, value_name = "NAME", value_parser = Name::domain)]
    pub domain: Name,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl host remove ID`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct HostRemoveArgs {
    /// Host id, 1 to 64
    #[arg(value_parser = parse_host_id)]
    pub id: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl device ...`.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum DeviceCommand {
    /// Add a shared backing device: its cluster-wide name and this host's path to it.
    Add(DeviceAddArgs),
    /// Remove a shared backing device.
    Remove(DeviceRemoveArgs),
    /// List the shared backing devices.
    List(OutputArgs),
}

/// `fvpctl device add NAME PATH`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct DeviceAddArgs {
    /// Cluster-wide device name: 1 to 31 of A-Z a-z 0-9 _ . -
    #[arg(value_parser = Name::device)]
    pub name: Name,
    /// This host's path to the device (absolute, e.g. /dev/disk/by-id/...)
    #[arg(value_parser = parse_device_path)]
    pub path: String,
    /// The device's configured identity (8-4-4-4-12 hex), the same on every host: peers
    /// hold a volume's replicas only if theirs matches (ABI 9)
    #[arg(long, value_parser = crate::cluster::parse_device_uuid)]
    pub uuid: Option<[u8; 16]>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl device remove NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct DeviceRemoveArgs {
    /// Cluster-wide device name
    #[arg(value_parser = Name::device)]
    pub name: Name,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl key ...`.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum KeyCommand {
    /// Write a new random private key to FILE (created with mode 0600, never overwritten)
    /// and print its public key.
    Generate(KeyFileArgs),
    /// Print the public key of the private key in FILE (root's, mode 0600).
    Public(KeyFileArgs),
    /// Set a host's public key, or this host's private key, in the module.
    Set(KeySetArgs),
}

/// `fvpctl key generate|public FILE`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct KeyFileArgs {
    /// The private key file: 64 hex digits and a newline
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `fvpctl key set --host ID --public HEX | --private-file FILE`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["public", "private_file"])))]
pub struct KeySetArgs {
    /// The host, 1 to 64
    #[arg(long, value_name = "ID", value_parser = parse_host_id)]
    pub host: u32,
    /// The host's public key: 64 hex digits (`fvpctl key public FILE` on that host)
    #[arg(long, value_name = "HEX", value_parser = PublicKey::parse)]
    pub public: Option<PublicKey>,
    /// This host's private key file (root's, mode 0600); --host must be this host's id
    #[arg(long, value_name = "FILE")]
    pub private_file: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// A shared device's path, as `FVP_IOC_DEVICE_ADD` takes it.
fn parse_device_path(text: &str) -> Result<String, String> {
    check_device_path(text).map(|()| text.to_owned())
}

/// A valid cluster, fault domain or device name, with its NUL-padded form for the ABI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    abi: [u8; NAME_LEN],
}

impl Name {
    fn parse_as(text: &str, what: &str) -> Result<Self, String> {
        match check_name(text, what) {
            None => Ok(Self { abi: abi::pool_name(text.as_bytes()).expect("checked") }),
            Some(why) => Err(why),
        }
    }

    /// A cluster name.
    pub fn cluster(text: &str) -> Result<Self, String> {
        Self::parse_as(text, "cluster name")
    }

    /// A fault domain name.
    pub fn domain(text: &str) -> Result<Self, String> {
        Self::parse_as(text, "fault domain")
    }

    /// A shared device name.
    pub fn device(text: &str) -> Result<Self, String> {
        Self::parse_as(text, "device name")
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        abi::name_str(&self.abi)
    }

    /// The name, NUL-padded, as the ABI carries it.
    pub fn abi(&self) -> [u8; NAME_LEN] {
        self.abi
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid pool name, with its NUL-padded form for the ABI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolName {
    abi: [u8; NAME_LEN],
}

impl PoolName {
    /// Accepts what `abi::pool_name` accepts, without its truncation at a NUL.
    pub fn parse(text: &str) -> Result<Self, String> {
        match abi::pool_name(text.as_bytes()) {
            Some(name) if abi::name_str(&name) == text => Ok(Self { abi: name }),
            _ => Err(format!(
                "invalid pool name '{}': use 1 to {} of A-Z a-z 0-9 _ . -",
                text.escape_debug(),
                NAME_LEN - 1
            )),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        abi::name_str(&self.abi)
    }

    /// The name as `struct fvp_pool_req.name` carries it.
    pub fn abi(&self) -> [u8; NAME_LEN] {
        self.abi
    }
}

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options shared by every subcommand that prints a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Args)]
pub struct OutputArgs {
    /// Print a JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `/dev/fvp-control`, the node udev or devtmpfs creates for the module's misc device.
pub fn default_device() -> PathBuf {
    PathBuf::from("/dev").join(CONTROL_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("fvpctl").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn version_defaults_to_text_on_the_default_device() {
        let cli = parse(&["version"]).unwrap();
        assert_eq!(cli.command, Command::Version(OutputArgs { json: false }));
        assert_eq!(cli.device, PathBuf::from("/dev/fvp-control"));
    }

    #[test]
    fn status_accepts_json() {
        let cli = parse(&["status", "--json"]).unwrap();
        assert_eq!(cli.command, Command::Status(OutputArgs { json: true }));
    }

    #[test]
    fn version_accepts_json() {
        let cli = parse(&["version", "--json"]).unwrap();
        assert_eq!(cli.command, Command::Version(OutputArgs { json: true }));
    }

    #[test]
    fn device_is_global() {
        for args in [&["--device", "/tmp/x", "status"][..], &["status", "--device", "/tmp/x"][..]] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.device, PathBuf::from("/tmp/x"), "{args:?}");
            assert_eq!(cli.command, Command::Status(OutputArgs::default()));
        }
    }

    #[test]
    fn device_needs_a_value() {
        assert!(parse(&["version", "--device"]).is_err());
    }

    #[test]
    fn unknown_subcommand_is_rejected() {
        let err = parse(&["frobnicate"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSubcommand);
    }

    #[test]
    fn missing_subcommand_is_rejected() {
        // A bare `fvpctl` prints the help, still as a usage error.
        let err = parse(&[]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
        assert_eq!(err.exit_code(), 2);
        let err = parse(&["--device", "/tmp/x"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingSubcommand);
    }

    fn name(text: &str) -> PoolName {
        PoolName::parse(text).unwrap()
    }

    #[test]
    fn pool_names_are_validated() {
        for good in ["ram0", "a", "a.b-c_D9", &"x".repeat(31)] {
            let parsed = name(good);
            assert_eq!(parsed.as_str(), good);
            assert_eq!(parsed.to_string(), good);
            assert_eq!(&parsed.abi()[..good.len()], good.as_bytes());
            assert!(parsed.abi()[good.len()..].iter().all(|&b| b == 0));
        }
        for bad in ["", "bad name", "x/y", "a\0b", "é", "ram0\n", &"x".repeat(32), "a:b"] {
            let err = PoolName::parse(bad).unwrap_err();
            assert!(err.starts_with("invalid pool name"), "{bad:?}: {err}");
            assert!(err.ends_with("use 1 to 31 of A-Z a-z 0-9 _ . -"), "{err}");
        }
    }

    #[test]
    fn pool_create_takes_a_name_and_a_size() {
        let cli = parse(&["pool", "create", "ram0", "--ram", "64M"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Pool(PoolCommand::Create(CreateArgs {
                name: name("ram0"),
                ram: Some(64 << 20),
                flash: None,
                force: false,
                output: OutputArgs { json: false },
            }))
        );
        let cli = parse(&["pool", "create", "--ram=1.5GiB", "ram0", "--json"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Pool(PoolCommand::Create(CreateArgs {
                name: name("ram0"),
                ram: Some(3 << 29),
                flash: None,
                force: false,
                output: OutputArgs { json: true },
            }))
        );
    }

    #[test]
    fn pool_create_takes_ram_or_flash_but_not_both() {
        let cli = parse(&["pool", "create", "f0", "--flash", "/dev/vdb", "--force"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Pool(PoolCommand::Create(CreateArgs {
                name: name("f0"),
                ram: None,
                flash: Some(PathBuf::from("/dev/vdb")),
                force: true,
                output: OutputArgs { json: false },
            }))
        );
        assert!(parse(&["pool", "create", "f0", "--flash", "/dev/vdb", "--ram", "64M"]).is_err());
        let cli = parse(&["pool", "open", "f0", "--flash", "/dev/vdb"]).unwrap();
        assert!(matches!(cli.command, Command::Pool(PoolCommand::Open(_))));
        assert!(parse(&["pool", "open", "f0"]).is_err());
        assert!(matches!(parse(&["pool", "close", "f0"]).unwrap().command, Command::Pool(PoolCommand::Close(_))));
    }

    #[test]
    fn pool_create_refuses_bad_input() {
        let missing_size = parse(&["pool", "create", "ram0"]).unwrap_err();
        assert_eq!(missing_size.kind(), ErrorKind::MissingRequiredArgument);
        let missing_name = parse(&["pool", "create", "--ram", "64M"]).unwrap_err();
        assert_eq!(missing_name.kind(), ErrorKind::MissingRequiredArgument);
        for (size, why) in [
            ("64MB", "unknown unit"),
            ("0", "must not be zero"),
            ("1000", "not a multiple of 4096"),
            ("1.3K", "not a whole number of bytes"),
            ("lots", "invalid size"),
        ] {
            let err = parse(&["pool", "create", "ram0", "--ram", size]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{size}");
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(why), "{size}: {err}");
        }
        let err = parse(&["pool", "create", "bad/name", "--ram", "64M"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("invalid pool name 'bad/name'"), "{err}");
    }

    #[test]
    fn pool_resize_takes_a_name_and_a_total_size() {
        for (verb, build) in
            [("grow", PoolCommand::Grow as fn(ResizeArgs) -> PoolCommand), ("shrink", PoolCommand::Shrink)]
        {
            let cli = parse(&["pool", verb, "ram0", "2g"]).unwrap();
            assert_eq!(
                cli.command,
                Command::Pool(build(ResizeArgs { name: name("ram0"), size: 2 << 30, output: OutputArgs::default() }))
            );
            let err = parse(&["pool", verb, "ram0"]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument, "{verb}");
            for bad in ["12q", "0", "4097", "0.1k"] {
                let err = parse(&["pool", verb, "ram0", bad]).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::ValueValidation, "{verb} {bad}");
            }
            assert_eq!(
                parse(&["pool", verb, "ram0", "1G", "--json"]).unwrap().command,
                Command::Pool(build(ResizeArgs {
                    name: name("ram0"),
                    size: 1 << 30,
                    output: OutputArgs { json: true },
                }))
            );
        }
    }

    #[test]
    fn pool_destroy_and_list() {
        let cli = parse(&["pool", "destroy", "ram0"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Pool(PoolCommand::Destroy(DestroyArgs { name: name("ram0"), output: OutputArgs::default() }))
        );
        assert_eq!(parse(&["pool", "destroy"]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(parse(&["pool", "destroy", "ram0", "64M"]).unwrap_err().kind(), ErrorKind::UnknownArgument);
        let cli = parse(&["pool", "list", "--json"]).unwrap();
        assert_eq!(cli.command, Command::Pool(PoolCommand::List(OutputArgs { json: true })));
        assert_eq!(parse(&["pool"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["pool", "frobnicate"]).unwrap_err().kind(), ErrorKind::InvalidSubcommand);
    }

    fn stats(args: &[&str]) -> StatsArgs {
        match parse(&[&["stats"], args].concat()).unwrap().command {
            Command::Stats(stats) => stats,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stats_options() {
        assert_eq!(stats(&[]), StatsArgs { volume: None, watch: None, count: None, output: OutputArgs::default() });
        let s = stats(&["vol0", "--json"]);
        assert_eq!(s.volume.as_deref(), Some("vol0"));
        assert!(s.output.json);
        assert_eq!(stats(&["--watch"]).watch, Some(Duration::from_secs(1)));
        assert_eq!(stats(&["--watch", "5"]).watch, Some(Duration::from_secs(5)));
        assert_eq!(stats(&["--watch=0.5"]).watch, Some(Duration::from_millis(500)));
        let s = stats(&["vol0", "--watch", "2", "--count", "3"]);
        assert_eq!((s.volume.as_deref(), s.watch, s.count), (Some("vol0"), Some(Duration::from_secs(2)), Some(3)));
        let s = stats(&["--watch", "--json", "vol0"]);
        assert_eq!((s.volume.as_deref(), s.watch), (Some("vol0"), Some(Duration::from_secs(1))));
    }

    #[test]
    fn stats_refuses_bad_input() {
        for args in [
            &["stats", "--watch", "0"][..],
            &["stats", "--watch=abc"][..],
            &["stats", "--watch", "1", "--count", "0"][..],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{args:?}");
        }
        // A negative number is not taken as a value: it is an unknown option.
        assert_eq!(parse(&["stats", "--watch", "-1"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["stats", "--count", "2"]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(parse(&["stats", "a", "b"]).unwrap_err().kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn volume_drain() {
        let cli = parse(&["volume", "drain", "vol0"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Volume(VolumeCommand::Drain(DrainArgs {
                volume: "vol0".into(),
                timeout: None,
                output: OutputArgs::default(),
            }))
        );
        let cli = parse(&["volume", "drain", "vol0", "--timeout", "30", "--json"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Volume(VolumeCommand::Drain(DrainArgs {
                volume: "vol0".into(),
                timeout: Some(Duration::from_secs(30)),
                output: OutputArgs { json: true },
            }))
        );
        assert_eq!(parse(&["volume", "drain"]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        for bad in ["0", "soon", "-5"] {
            let err = parse(&["volume", "drain", "vol0", "--timeout", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        assert!(parse(&["volume", "drain", "vol0", "--timeout"]).is_err());
    }

    #[test]
    fn cluster_apply() {
        let cli = parse(&["cluster", "apply", "/etc/fvp/cluster.toml"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Cluster(ClusterCommand::Apply(ApplyArgs {
                file: "/etc/fvp/cluster.toml".into(),
                local_id: None,
                dry_run: false,
                output: OutputArgs::default(),
            }))
        );
        let cli = parse(&["cluster", "apply", "c.toml", "--local-id", "64", "--dry-run", "--json"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Cluster(ClusterCommand::Apply(ApplyArgs {
                file: "c.toml".into(),
                local_id: Some(64),
                dry_run: true,
                output: OutputArgs { json: true },
            }))
        );
        assert_eq!(parse(&["cluster", "apply"]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        for bad in ["0", "65", "x"] {
            let err = parse(&["cluster", "apply", "c.toml", "--local-id", bad]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad}");
            assert!(err.to_string().contains("use 1 to 64"), "{err}");
        }
    }

    #[test]
    fn discard_detached_takes_a_device_and_a_confirmation() {
        let cli = parse(&["volume", "discard-detached", "8:16", "--yes"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Volume(VolumeCommand::DiscardDetached(DiscardDetachedArgs {
                backing: "8:16".into(),
                yes: true,
                output: OutputArgs::default(),
            }))
        );
        assert!(parse(&["volume", "discard-detached"]).is_err());
    }

    #[test]
    fn cluster_set_and_show() {
        let cli = parse(&["cluster", "set", "--name", "lab", "--local-id", "2", "--secret-file", "/s"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Cluster(ClusterCommand::Set(ClusterSetArgs {
                name: Name::cluster("lab").unwrap(),
                local_id: 2,
                secret_file: "/s".into(),
                heartbeat_ms: 200,
                timeout_ms: 2000,
                transport: Transport::Authenticated,
                output: OutputArgs::default(),
            }))
        );
        let cli = parse(&[
            "cluster",
            "set",
            "--name",
            "lab",
            "--local-id",
            "2",
            "--secret-file",
            "/s",
            "--heartbeat-ms",
            "50",
            "--timeout-ms",
            "500",
        ])
        .unwrap();
        let Command::Cluster(ClusterCommand::Set(args)) = cli.command else { panic!("{:?}", cli.command) };
        assert_eq!((args.heartbeat_ms, args.timeout_ms), (50, 500));
        let set = ["cluster", "set", "--name", "lab", "--local-id", "2", "--secret-file", "/s", "--transport"];
        for (mode, transport) in [("authenticated", Transport::Authenticated), ("encrypted", Transport::Encrypted)] {
            let cli = parse(&[&set[..], &[mode]].concat()).unwrap();
            let Command::Cluster(ClusterCommand::Set(args)) = cli.command else { panic!("{:?}", cli.command) };
            assert_eq!(args.transport, transport);
        }
        for bad in ["plain", "ENCRYPTED", "1", ""] {
            let err = parse(&[&set[..], &[bad]].concat()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidValue, "{bad}");
            assert!(err.to_string().contains("[possible values: authenticated, encrypted]"), "{err}");
        }
        for (option, bad) in
            [("--heartbeat-ms", "9"), ("--heartbeat-ms", "10001"), ("--timeout-ms", "600001"), ("--timeout-ms", "0")]
        {
            let err =
                parse(&["cluster", "set", "--name", "lab", "--local-id", "2", "--secret-file", "/s", option, bad])
                    .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{option} {bad}");
        }
        let err = parse(&["cluster", "set", "--name", "my lab", "--local-id", "2", "--secret-file", "/s"]).unwrap_err();
        assert!(err.to_string().contains("invalid cluster name 'my lab'"), "{err}");
        assert_eq!(
            parse(&["cluster", "set", "--name", "lab", "--local-id", "2"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse(&["cluster", "show", "--json"]).unwrap().command,
            Command::Cluster(ClusterCommand::Show(OutputArgs { json: true }))
        );
    }

    #[test]
    fn host_commands() {
        let cli = parse(&["host", "add", "3", "--addr", "10.0.0.3:7790", "--domain", "rack-b"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Host(HostCommand::Add(HostAddArgs {
                id: 3,
                addr: "10.0.0.3:7790".parse().unwrap(),
                domain: Name::domain("rack-b").unwrap(),
                output: OutputArgs::default(),
            }))
        );
        for (args, why) in [
            (&["host", "add", "0", "--addr", "10.0.0.3:1", "--domain", "d"][..], "invalid host id '0'"),
            (&["host", "add", "3", "--addr", "10.0.0.3", "--domain", "d"][..], "expected IPv4:PORT"),
            (&["host", "add", "3", "--addr", "10.0.0.3:0", "--domain", "d"][..], "the port must not be 0"),
            (&["host", "add", "3", "--addr", "0.0.0.0:1", "--domain", "d"][..], "cannot be a host's address"),
            (&["host", "add", "3", "--addr", "10.0.0.3:1", "--domain", "a b"][..], "invalid fault domain 'a b'"),
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{args:?}");
            assert!(err.to_string().contains(why), "{args:?}: {err}");
        }
        assert_eq!(
            parse(&["host", "add", "3", "--addr", "10.0.0.3:1"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse(&["host", "remove", "3", "--json"]).unwrap().command,
            Command::Host(HostCommand::Remove(HostRemoveArgs { id: 3, output: OutputArgs { json: true } }))
        );
        assert_eq!(parse(&["host", "list"]).unwrap().command, Command::Host(HostCommand::List(OutputArgs::default())));
    }

    #[test]
    fn device_commands_do_not_clash_with_the_device_option() {
        let cli = parse(&["device", "add", "shared0", "/dev/vdb"]).unwrap();
        assert_eq!(cli.device, PathBuf::from("/dev/fvp-control"));
        assert_eq!(
            cli.command,
            Command::Device(DeviceCommand::Add(DeviceAddArgs {
                name: Name::device("shared0").unwrap(),
                path: "/dev/vdb".into(),
                uuid: None,
                output: OutputArgs::default(),
            }))
        );
        let cli = parse(&["--device", "/tmp/x", "device", "remove", "shared0"]).unwrap();
        assert_eq!(cli.device, PathBuf::from("/tmp/x"));
        assert_eq!(
            cli.command,
            Command::Device(DeviceCommand::Remove(DeviceRemoveArgs {
                name: Name::device("shared0").unwrap(),
                output: OutputArgs::default(),
            }))
        );
        let cli = parse(&["device", "list", "--json", "--device", "/tmp/y"]).unwrap();
        assert_eq!(cli.device, PathBuf::from("/tmp/y"));
        assert_eq!(cli.command, Command::Device(DeviceCommand::List(OutputArgs { json: true })));
        for (args, why) in [
            (&["device", "add", "shared0", "dev/vdb"][..], "is not absolute"),
            (&["device", "add", "shared0", ""][..], "empty"),
            (&["device", "add", "a/b", "/dev/vdb"][..], "invalid device name 'a/b'"),
            (&["device", "remove", ""][..], "invalid device name ''"),
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{args:?}");
            assert!(err.to_string().contains(why), "{args:?}: {err}");
        }
        let long = format!("/{}", "x".repeat(255));
        assert!(parse(&["device", "add", "d", &long]).unwrap_err().to_string().contains("at most 255"));
    }

    #[test]
    fn key_commands() {
        const ALICE_PUBLIC: &str = crate::keys::rfc7748::ALICE_PUBLIC;
        for (verb, build) in
            [("generate", KeyCommand::Generate as fn(KeyFileArgs) -> KeyCommand), ("public", KeyCommand::Public)]
        {
            assert_eq!(
                parse(&["key", verb, "/etc/fvp/host.key"]).unwrap().command,
                Command::Key(build(KeyFileArgs { file: "/etc/fvp/host.key".into(), output: OutputArgs::default() }))
            );
            assert_eq!(
                parse(&["key", verb, "k", "--json"]).unwrap().command,
                Command::Key(build(KeyFileArgs { file: "k".into(), output: OutputArgs { json: true } }))
            );
            assert_eq!(parse(&["key", verb]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        }
        assert_eq!(
            parse(&["key", "set", "--host", "3", "--public", ALICE_PUBLIC]).unwrap().command,
            Command::Key(KeyCommand::Set(KeySetArgs {
                host: 3,
                public: Some(PublicKey::parse(ALICE_PUBLIC).unwrap()),
                private_file: None,
                output: OutputArgs::default(),
            }))
        );
        assert_eq!(
            parse(&["key", "set", "--private-file", "/k", "--host", "2", "--json"]).unwrap().command,
            Command::Key(KeyCommand::Set(KeySetArgs {
                host: 2,
                public: None,
                private_file: Some("/k".into()),
                output: OutputArgs { json: true },
            }))
        );
        // Exactly one key, and a host.
        let set = ["key", "set", "--host", "2"];
        assert_eq!(parse(&set).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        let both = [&set[..], &["--public", ALICE_PUBLIC, "--private-file", "/k"]].concat();
        assert_eq!(parse(&both).unwrap_err().kind(), ErrorKind::ArgumentConflict);
        assert_eq!(
            parse(&["key", "set", "--public", ALICE_PUBLIC]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        for (bad, why) in [("abc", "expected 64 hex digits"), (&"0".repeat(64)[..], "the key is all zero")] {
            let err = parse(&[&set[..], &["--public", bad]].concat()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad}");
            assert!(err.to_string().contains(why), "{err}");
        }
        let err = parse(&["key", "set", "--host", "65", "--public", ALICE_PUBLIC]).unwrap_err();
        assert!(err.to_string().contains("invalid host id '65'"), "{err}");
    }

    #[test]
    fn names_of_each_kind() {
        assert_eq!(Name::cluster("lab").unwrap().as_str(), "lab");
        assert_eq!(Name::domain("rack-a").unwrap().to_string(), "rack-a");
        let n = Name::device("shared0").unwrap();
        assert_eq!(&n.abi()[..7], b"shared0");
        assert!(n.abi()[7..].iter().all(|&b| b == 0));
        assert_eq!(
            Name::device(&"x".repeat(32)).unwrap_err(),
            format!("invalid device name '{}': use 1 to 31 of A-Z a-z 0-9 _ . -", "x".repeat(32))
        );
    }

    #[test]
    fn unknown_option_is_rejected() {
        let err = parse(&["version", "--yaml"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
    }
}
