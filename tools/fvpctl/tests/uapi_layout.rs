// SPDX-License-Identifier: GPL-2.0

//! Checks `fvp_logic::abi` against `include/uapi/linux/fvp.h`, the ABI's source of truth.
//!
//! A C compiler builds a program that prints every size, offset, alignment and constant
//! the header defines; the test compares each with the value the Rust side uses.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use fvp_logic::abi::{self, Status, Version};

/// Prints `key=value` lines. The `struct.field.*` keys must match `rust_layout`.
const PROBE_C: &str = r#"
#include <stddef.h>
#include <stdio.h>
#include <uapi/linux/fvp.h>

#define STRUCT(s)							\
	printf(#s ".size=%zu\n", sizeof(struct s));			\
	printf(#s ".align=%zu\n", _Alignof(struct s))
#define FIELD(s, f)							\
	printf(#s "." #f ".offset=%zu\n", offsetof(struct s, f));	\
	printf(#s "." #f ".size=%zu\n", sizeof(((struct s *)0)->f))
#define NUMBER(c) printf(#c "=%llu\n", (unsigned long long)(c))

int main(void)
{
	STRUCT(fvp_version);
	FIELD(fvp_version, abi_version);
	FIELD(fvp_version, module_major);
	FIELD(fvp_version, module_minor);
	FIELD(fvp_version, module_patch);
	FIELD(fvp_version, features);
	FIELD(fvp_version, version);

	STRUCT(fvp_status);
	FIELD(fvp_status, volumes);
	FIELD(fvp_status, reserved);
	FIELD(fvp_status, bios_mapped);

	NUMBER(FVP_IOC_VERSION);
	NUMBER(FVP_IOC_STATUS);
	NUMBER(FVP_ABI_VERSION);
	NUMBER(FVP_IOCTL_MAGIC);
	NUMBER(FVP_FEATURE_PASSTHROUGH);
	NUMBER(FVP_VERSION_STR_LEN);
	printf("FVP_CONTROL_NAME=%s\n", FVP_CONTROL_NAME);
	return 0;
}
"#;

/// The size of a field, named by a closure that borrows it.
fn field_size<S, F>(_field: fn(&S) -> &F) -> usize {
    size_of::<F>()
}

/// The Rust side's view of everything `PROBE_C` prints.
fn rust_layout() -> BTreeMap<String, String> {
    let mut layout = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        layout.insert(key.to_owned(), value);
    };
    macro_rules! strukt {
        ($c:literal, $rust:ty) => {
            put(concat!($c, ".size"), size_of::<$rust>().to_string());
            put(concat!($c, ".align"), align_of::<$rust>().to_string());
        };
    }
    macro_rules! field {
        ($c:literal, $rust:ty, $field:ident) => {
            let key = concat!($c, ".", stringify!($field));
            put(
                &format!("{key}.offset"),
                offset_of!($rust, $field).to_string(),
            );
            put(
                &format!("{key}.size"),
                field_size(|s: &$rust| &s.$field).to_string(),
            );
        };
    }

    strukt!("fvp_version", Version);
    field!("fvp_version", Version, abi_version);
    field!("fvp_version", Version, module_major);
    field!("fvp_version", Version, module_minor);
    field!("fvp_version", Version, module_patch);
    field!("fvp_version", Version, features);
    field!("fvp_version", Version, version);
    // The structures travel as byte arrays of these sizes.
    assert_eq!(Version::SIZE, size_of::<Version>());
    assert_eq!(Status::SIZE, size_of::<Status>());

    strukt!("fvp_status", Status);
    field!("fvp_status", Status, volumes);
    field!("fvp_status", Status, reserved);
    field!("fvp_status", Status, bios_mapped);

    put("FVP_IOC_VERSION", abi::IOC_VERSION.to_string());
    put("FVP_IOC_STATUS", abi::IOC_STATUS.to_string());
    put("FVP_ABI_VERSION", abi::ABI_VERSION.to_string());
    put("FVP_IOCTL_MAGIC", abi::IOCTL_MAGIC.to_string());
    put(
        "FVP_FEATURE_PASSTHROUGH",
        abi::FEATURE_PASSTHROUGH.to_string(),
    );
    put("FVP_VERSION_STR_LEN", abi::VERSION_STR_LEN.to_string());
    put("FVP_CONTROL_NAME", abi::CONTROL_NAME.to_owned());
    layout
}

/// The repository's root, found from this crate's place in it.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Compiles and runs `PROBE_C`, returning what it printed.
fn c_layout() -> BTreeMap<String, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("uapi_layout");
    fs::create_dir_all(&dir).expect("create the probe's directory");
    let source = dir.join("probe.c");
    let binary = dir.join("probe");
    fs::write(&source, PROBE_C).expect("write the probe");

    // `-I include` makes the header reachable as <uapi/linux/fvp.h>, while the
    // <linux/*.h> it includes still come from the system (linux-libc-dev).
    let include = repo_root().join("include");
    let compiled = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output();
    let compiled = match compiled {
        Err(err) if err.kind() == ErrorKind::NotFound => panic!(
            "`cc` not found: this test needs a C compiler (e.g. apt-get install gcc) \
             to check the Rust ABI against include/uapi/linux/fvp.h"
        ),
        result => result.expect("run cc"),
    };
    assert!(
        compiled.status.success(),
        "cc failed to build the probe of {}:\n{}",
        include.join("uapi/linux/fvp.h").display(),
        String::from_utf8_lossy(&compiled.stderr)
    );

    let ran = Command::new(&binary).output().expect("run the probe");
    assert!(ran.status.success(), "the probe failed: {:?}", ran.status);
    String::from_utf8(ran.stdout)
        .expect("the probe prints UTF-8")
        .lines()
        .map(|line| {
            let (key, value) = line.split_once('=').expect("the probe prints key=value");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn rust_abi_matches_the_c_header() {
    let c = c_layout();
    let rust = rust_layout();
    let keys: BTreeSet<&String> = c.keys().chain(rust.keys()).collect();
    let mismatches: Vec<String> = keys
        .into_iter()
        .filter(|key| c.get(*key) != rust.get(*key))
        .map(|key| format!("{key}: C {:?}, Rust {:?}", c.get(key), rust.get(key)))
        .collect();
    assert!(
        mismatches.is_empty(),
        "fvp_logic::abi disagrees with include/uapi/linux/fvp.h:\n  {}",
        mismatches.join("\n  ")
    );
    // Two structures (size, alignment, and offset and size of 6 + 3 fields) and
    // 7 constants: catches a probe and a table that both lost the same lines.
    assert_eq!(c.len(), 2 * 2 + 2 * (6 + 3) + 7, "{c:#?}");
}
