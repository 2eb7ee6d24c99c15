// SPDX-License-Identifier: GPL-2.0

//! Command-line syntax.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fvp_logic::abi::{self, CONTROL_NAME, NAME_LEN};

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
    /// Create, resize, destroy and list RAM pools.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Show pool and volume statistics, once or every few seconds.
    Stats(StatsArgs),
    /// Act on an fvp volume.
    #[command(subcommand)]
    Volume(VolumeCommand),
}

/// `fvpctl pool ...`.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum PoolCommand {
    /// Create a RAM pool.
    Create(CreateArgs),
    /// Grow a pool to SIZE (its new total size).
    Grow(ResizeArgs),
    /// Shrink a pool to SIZE (its new total size), evicting clean blocks.
    Shrink(ResizeArgs),
    /// Destroy a pool no volume uses.
    Destroy(DestroyArgs),
    /// List the pools.
    List(OutputArgs),
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

/// `fvpctl pool create NAME --ram SIZE`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct CreateArgs {
    /// Pool name: 1 to 31 of A-Z a-z 0-9 _ . -
    #[arg(value_parser = PoolName::parse)]
    pub name: PoolName,
    /// Size of the pool in RAM (e.g. 64M, 1.5G)
    #[arg(long, value_name = "SIZE", value_parser = parse_size, long_help = size_help!("Size of the pool in RAM"))]
    pub ram: u64,
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
        for args in [
            &["--device", "/tmp/x", "status"][..],
            &["status", "--device", "/tmp/x"][..],
        ] {
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
        assert_eq!(
            err.kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
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
        for bad in [
            "",
            "bad name",
            "x/y",
            "a\0b",
            "é",
            "ram0\n",
            &"x".repeat(32),
            "a:b",
        ] {
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
                ram: 64 << 20,
                output: OutputArgs { json: false },
            }))
        );
        let cli = parse(&["pool", "create", "--ram=1.5GiB", "ram0", "--json"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Pool(PoolCommand::Create(CreateArgs {
                name: name("ram0"),
                ram: 3 << 29,
                output: OutputArgs { json: true },
            }))
        );
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
        assert!(
            err.to_string().contains("invalid pool name 'bad/name'"),
            "{err}"
        );
    }

    #[test]
    fn pool_resize_takes_a_name_and_a_total_size() {
        for (verb, build) in [
            ("grow", PoolCommand::Grow as fn(ResizeArgs) -> PoolCommand),
            ("shrink", PoolCommand::Shrink),
        ] {
            let cli = parse(&["pool", verb, "ram0", "2g"]).unwrap();
            assert_eq!(
                cli.command,
                Command::Pool(build(ResizeArgs {
                    name: name("ram0"),
                    size: 2 << 30,
                    output: OutputArgs::default(),
                }))
            );
            let err = parse(&["pool", verb, "ram0"]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument, "{verb}");
            for bad in ["12q", "0", "4097", "0.1k"] {
                let err = parse(&["pool", verb, "ram0", bad]).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::ValueValidation, "{verb} {bad}");
            }
            assert_eq!(
                parse(&["pool", verb, "ram0", "1G", "--json"])
                    .unwrap()
                    .command,
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
            Command::Pool(PoolCommand::Destroy(DestroyArgs {
                name: name("ram0"),
                output: OutputArgs::default(),
            }))
        );
        assert_eq!(
            parse(&["pool", "destroy"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse(&["pool", "destroy", "ram0", "64M"])
                .unwrap_err()
                .kind(),
            ErrorKind::UnknownArgument
        );
        let cli = parse(&["pool", "list", "--json"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Pool(PoolCommand::List(OutputArgs { json: true }))
        );
        assert_eq!(parse(&["pool"]).unwrap_err().exit_code(), 2);
        assert_eq!(
            parse(&["pool", "frobnicate"]).unwrap_err().kind(),
            ErrorKind::InvalidSubcommand
        );
    }

    fn stats(args: &[&str]) -> StatsArgs {
        match parse(&[&["stats"], args].concat()).unwrap().command {
            Command::Stats(stats) => stats,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stats_options() {
        assert_eq!(
            stats(&[]),
            StatsArgs {
                volume: None,
                watch: None,
                count: None,
                output: OutputArgs::default()
            }
        );
        let s = stats(&["vol0", "--json"]);
        assert_eq!(s.volume.as_deref(), Some("vol0"));
        assert!(s.output.json);
        assert_eq!(stats(&["--watch"]).watch, Some(Duration::from_secs(1)));
        assert_eq!(stats(&["--watch", "5"]).watch, Some(Duration::from_secs(5)));
        assert_eq!(
            stats(&["--watch=0.5"]).watch,
            Some(Duration::from_millis(500))
        );
        let s = stats(&["vol0", "--watch", "2", "--count", "3"]);
        assert_eq!(
            (s.volume.as_deref(), s.watch, s.count),
            (Some("vol0"), Some(Duration::from_secs(2)), Some(3))
        );
        let s = stats(&["--watch", "--json", "vol0"]);
        assert_eq!(
            (s.volume.as_deref(), s.watch),
            (Some("vol0"), Some(Duration::from_secs(1)))
        );
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
        assert_eq!(
            parse(&["stats", "--watch", "-1"]).unwrap_err().exit_code(),
            2
        );
        assert_eq!(
            parse(&["stats", "--count", "2"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse(&["stats", "a", "b"]).unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
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
        assert_eq!(
            parse(&["volume", "drain"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        for bad in ["0", "soon", "-5"] {
            let err = parse(&["volume", "drain", "vol0", "--timeout", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        assert!(parse(&["volume", "drain", "vol0", "--timeout"]).is_err());
    }

    #[test]
    fn unknown_option_is_rejected() {
        let err = parse(&["version", "--yaml"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
    }
}
