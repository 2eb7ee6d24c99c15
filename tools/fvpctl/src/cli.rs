// SPDX-License-Identifier: GPL-2.0

//! Command-line syntax.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use fvp_logic::abi::CONTROL_NAME;

/// Query the fvp block caching module through its control device.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Show the versions of fvpctl and of the loaded module, and the module's features.
    Version(OutputArgs),
    /// Show the module's version and module-wide counters.
    Status(OutputArgs),
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

    #[test]
    fn unknown_option_is_rejected() {
        let err = parse(&["version", "--yaml"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
    }
}
