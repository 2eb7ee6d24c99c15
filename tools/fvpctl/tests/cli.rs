// SPDX-License-Identifier: GPL-2.0

//! Runs the built `fvpctl` binary the way a user would, on machines without fvp.ko.

use std::process::{Command, Output};

fn fvpctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fvpctl"))
        .args(args)
        .output()
        .expect("fvpctl runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_subcommands_and_options() {
    let output = fvpctl(&["--help"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for word in ["version", "status", "--device"] {
        assert!(
            stdout.contains(word),
            "`{word}` missing from help:\n{stdout}"
        );
    }
}

#[test]
fn subcommand_help_lists_json() {
    let output = fvpctl(&["status", "--help"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("--json"));
}

#[test]
fn version_flag_prints_own_version() {
    let output = fvpctl(&["--version"]);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        concat!("fvpctl ", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn missing_device_is_explained() {
    for subcommand in ["version", "status"] {
        let output = fvpctl(&["--device", "/nonexistent/x", subcommand, "--json"]);
        assert_eq!(output.status.code(), Some(1), "{subcommand}");
        assert!(output.stdout.is_empty(), "{subcommand}");
        let message = stderr(&output);
        assert!(message.starts_with("fvpctl: "), "{message}");
        assert!(message.contains("/nonexistent/x"), "{message}");
        // Which of the two depends on whether this machine has fvp.ko loaded.
        assert!(
            message.contains("fvp module is not loaded (modprobe fvp / insmod fvp.ko)")
                || message.contains("fvp module is loaded but /nonexistent/x is missing"),
            "{message}"
        );
    }
}

#[test]
fn other_devices_are_refused() {
    // /dev/null has no ioctls at all, so FVP_IOC_VERSION fails with ENOTTY.
    let output = fvpctl(&["--device", "/dev/null", "version"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("/dev/null does not speak the fvp ABI"),
        "{message}"
    );
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [&[][..], &["frobnicate"][..], &["version", "--yaml"][..]] {
        let output = fvpctl(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}
