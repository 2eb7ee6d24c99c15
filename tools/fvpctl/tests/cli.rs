// SPDX-License-Identifier: GPL-2.0

//! Runs the built `fvpctl` binary the way a user would, on machines without fvp.ko.

use std::process::{Command, Output};

fn fvpctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fvpctl")).args(args).output().expect("fvpctl runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_subcommands_and_options() {
    let output = fvpctl(&["--help"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for word in ["version", "status", "pool", "stats", "volume", "cluster", "host", "device", "key", "--device"] {
        assert!(stdout.contains(word), "`{word}` missing from help:\n{stdout}");
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
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), concat!("fvpctl ", env!("CARGO_PKG_VERSION")));
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
    assert!(message.contains("/dev/null does not speak the fvp ABI"), "{message}");
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [&[][..], &["frobnicate"][..], &["version", "--yaml"][..]] {
        let output = fvpctl(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn pool_and_volume_help_list_their_subcommands() {
    for (args, words) in [
        (&["pool", "--help"][..], &["create", "grow", "shrink", "destroy", "list"][..]),
        (&["volume", "--help"][..], &["drain"][..]),
        (&["stats", "--help"][..], &["--watch", "--json", "--count", "[VOLUME]"][..]),
        (&["pool", "create", "--help"][..], &["--ram <SIZE>", "KiB", "4096"][..]),
        (&["volume", "drain", "--help"][..], &["--timeout <SECS>"][..]),
        (&["cluster", "--help"][..], &["apply", "set", "show"][..]),
        (
            &["cluster", "apply", "--help"][..],
            &["<FILE>", "--local-id <ID>", "--dry-run", "[[host]]", "secret_file"][..],
        ),
        (
            &["cluster", "set", "--help"][..],
            &["--name", "--local-id", "--secret-file", "--heartbeat-ms", "--timeout-ms"][..],
        ),
        (&["host", "--help"][..], &["add", "remove", "list"][..]),
        (&["host", "add", "--help"][..], &["--addr <IP:PORT>", "--domain <NAME>", "<ID>"][..]),
        (&["device", "--help"][..], &["add", "remove", "list"][..]),
        (&["device", "add", "--help"][..], &["<NAME>", "<PATH>"][..]),
    ] {
        let output = fvpctl(args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        for word in words {
            assert!(stdout.contains(word), "{args:?}: `{word}` missing:\n{stdout}");
        }
    }
}

#[test]
fn bad_pool_arguments_are_usage_errors() {
    for (args, why) in [
        (&["pool", "create", "ram0"][..], "--ram <SIZE>"),
        (&["pool", "create", "ram0", "--ram", "64MB"][..], "unknown unit 'MB'"),
        (&["pool", "create", "ram0", "--ram", "0"][..], "size must not be zero"),
        (&["pool", "create", "ram0", "--ram", "1000"][..], "not a multiple of 4096 bytes"),
        (&["pool", "create", "ram0", "--ram", "1.1M"][..], "not a whole number of bytes"),
        (&["pool", "create", "no/slash", "--ram", "64M"][..], "invalid pool name 'no/slash'"),
        (&["pool", "grow", "ram0"][..], "<SIZE>"),
        (&["pool", "shrink", "ram0", "12x"][..], "unknown unit 'x'"),
        (&["pool", "destroy"][..], "<NAME>"),
        (&["volume", "drain"][..], "<VOLUME>"),
        (&["volume", "drain", "v", "--timeout", "0"][..], "not a positive number of seconds"),
        (&["stats", "--watch", "x"][..], "invalid number of seconds 'x'"),
        (&["stats", "--count", "3"][..], "--watch"),
        (&["cluster", "apply"][..], "<FILE>"),
        (&["cluster", "apply", "c.toml", "--local-id", "0"][..], "invalid host id '0': use 1 to 64"),
        (&["host", "add", "65", "--addr", "10.0.0.1:1", "--domain", "d"][..], "invalid host id '65'"),
        (&["host", "add", "1", "--addr", "10.0.0.1", "--domain", "d"][..], "expected IPv4:PORT"),
        (&["host", "remove"][..], "<ID>"),
        (&["device", "add", "shared0", "vdb"][..], "is not absolute"),
        (&["device", "remove", "no/slash"][..], "invalid device name"),
    ] {
        let output = fvpctl(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let message = stderr(&output);
        assert!(message.contains(why), "{args:?}: `{why}` missing from:\n{message}");
    }
}

#[test]
fn new_commands_refuse_other_devices() {
    for args in [
        &["pool", "list"][..],
        &["pool", "create", "ram0", "--ram", "64M"][..],
        &["pool", "grow", "ram0", "1G"][..],
        &["pool", "destroy", "ram0"][..],
        &["stats", "--json"][..],
        &["volume", "drain", "v"][..],
        &["cluster", "show"][..],
        &["cluster", "set", "--name", "lab", "--local-id", "1", "--secret-file", "/s"][..],
        &["host", "list", "--json"][..],
        &["host", "add", "1", "--addr", "10.0.0.1:7790", "--domain", "d"][..],
        &["host", "remove", "1"][..],
        &["device", "list"][..],
        &["device", "add", "shared0", "/dev/vdb"][..],
        &["device", "remove", "shared0"][..],
    ] {
        let output = fvpctl(&[&["--device", "/dev/null"][..], args].concat());
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let message = stderr(&output);
        assert!(message.contains("/dev/null does not speak the fvp ABI"), "{args:?}: {message}");
    }
}

/// A fresh directory for one test's files.
fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fvpctl-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Host 2's key is `host.key`'s (made by the test); host 1's is RFC 7748's Bob's.
const CLUSTER: &str = r#"name = "lab"
secret = "at-least-16-bytes-secret"
key_file = "host.key"
[[host]]
id = 1
addr = "192.0.2.1:7790"
domain = "rack-a"
key = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
[[host]]
id = 2
addr = "192.0.2.2:7790"
domain = "rack-b"
key = "HOST2KEY"
[[device]]
name = "shared0"
path = "/dev/disk/by-id/virtio-fvp-shared"
"#;

/// The uid of `path`'s owner.
fn owner(path: &std::path::Path) -> u32 {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(path).unwrap())
}

#[test]
fn keys_are_generated_once_and_read_back() {
    let dir = scratch_dir("keys");
    let key = dir.join("host.key");
    let file = key.to_str().unwrap();
    // No module needed.
    let output = fvpctl(&["--device", "/nonexistent/x", "key", "generate", file]);
    assert!(output.status.success(), "{}", stderr(&output));
    let public = String::from_utf8(output.stdout).unwrap();
    assert_eq!(public.len(), 65, "{public}");
    assert!(public[..64].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{public}");
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    // Never overwritten.
    let content = std::fs::read(&key).unwrap();
    let output = fvpctl(&["key", "generate", file]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("cannot create private key file {file}: it exists")),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(&key).unwrap(), content);
    // Read back: only as root's file.
    let output = fvpctl(&["key", "public", file, "--json"]);
    if owner(&key) == 0 {
        assert!(output.status.success(), "{}", stderr(&output));
        let json = String::from_utf8(output.stdout).unwrap();
        assert_eq!(json, format!("{{\"file\":\"{file}\",\"public_key\":\"{}\"}}\n", public.trim_end()));
    } else {
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains("not by root"), "{}", stderr(&output));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cluster_files_are_checked_before_the_device_is_opened() {
    let dir = scratch_dir("apply");
    let output = fvpctl(&["key", "generate", &dir.join("host.key").to_string_lossy()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let cluster = CLUSTER.replace("HOST2KEY", String::from_utf8(output.stdout).unwrap().trim_end());
    let root = owner(&dir.join("host.key")) == 0;
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, cluster.replace("id = 2", "id = 1").replace("rack-b", "rack b")).unwrap();
    let file = bad.to_str().unwrap();
    // Not even a device: the file's mistakes come first, every one with its line.
    let output = fvpctl(&["--device", "/nonexistent/x", "cluster", "apply", file, "--local-id", "1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "{file}:10: host id 1 is already used by the host on line 4\n\
             {file}:12: invalid fault domain 'rack b'"
        )),
        "{message}"
    );
    assert!(message.starts_with("fvpctl: "), "{message}");
    let output = fvpctl(&["cluster", "apply", &dir.join("missing.toml").to_string_lossy()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("missing.toml: cannot read: "), "{}", stderr(&output));

    // A good file, and this host named: then the device is asked.
    let good = dir.join("good.toml");
    std::fs::write(&good, &cluster).unwrap();
    let file = good.to_str().unwrap();
    let output = fvpctl(&["--device", "/dev/null", "cluster", "apply", file, "--local-id", "2"]);
    assert_eq!(output.status.code(), Some(1));
    if !root {
        // Not root: key files are refused (the rest needs root's).
        assert!(stderr(&output).contains("host.key: owned by uid"), "{}", stderr(&output));
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    assert!(stderr(&output).contains("/dev/null does not speak the fvp ABI"), "{}", stderr(&output));
    let output = fvpctl(&["--device", "/dev/null", "cluster", "apply", file, "--local-id", "3"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), format!("fvpctl: {file}: --local-id 3: no [[host]] has id 3\n"));
    // Host 1 is not this host's key's.
    let output = fvpctl(&["--device", "/dev/null", "cluster", "apply", file, "--local-id", "1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(&format!(
            "fvpctl: {file}:4: key_file's public key is not the key listed for host 1: the public key of {}",
            dir.join("host.key").display()
        )),
        "{}",
        stderr(&output)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
