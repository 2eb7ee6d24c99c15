// SPDX-License-Identifier: GPL-2.0

//! Renders reports as text for people or as JSON for scripts.

use fvp_logic::abi::{Status, Version, FEATURE_PASSTHROUGH};
use serde::Serialize;

/// fvpctl's own version.
pub const FVPCTL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Names of the feature bits this fvpctl knows.
const FEATURE_NAMES: &[(u64, &str)] = &[(FEATURE_PASSTHROUGH, "passthrough")];

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

    /// `fvp module 0.1.0 (abi 1)`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn module_0_1_0() -> Version {
        Version::new(0, 1, 0, FEATURE_PASSTHROUGH, "0.1.0")
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
                    "abi_version": 1,
                    "features": ["passthrough"],
                    "features_mask": 1,
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
        assert_eq!(value["module"]["abi_version"], 1);
        assert_eq!(
            value["status"],
            json!({"volumes": 3, "bios_mapped": 1u64 << 40})
        );
    }

    #[test]
    fn version_text_names_both_sides() {
        assert_eq!(
            version_text(&module_0_1_0()),
            format!("fvpctl {FVPCTL_VERSION}\nfvp module 0.1.0 (abi 1)\nfeatures: passthrough")
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
            "fvp module 0.1.0 (abi 1)\nvolumes: 2\nbios mapped: 12345"
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
}
