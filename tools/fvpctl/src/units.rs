// SPDX-License-Identifier: GPL-2.0

//! Sizes and durations as people write and read them.

use std::time::Duration;

/// Pools are made of pages of this size; every pool size is a multiple of it.
pub const PAGE_SIZE: u64 = 4096;

/// Units `parse_size` accepts, lower-cased, with their multipliers. All binary.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1 << 30),
    ("gib", 1 << 30),
    ("t", 1 << 40),
    ("tib", 1 << 40),
];

/// What `parse_size` says after "use": the units it knows.
const UNIT_HELP: &str = "K, KiB, M, MiB, G, GiB, T or TiB (binary, any case)";

/// Parses a pool size: a number of bytes, or a decimal number followed by a binary unit
/// (`64M`, `1.5GiB`, `4096`). The result must be a whole number of bytes and a non-zero
/// multiple of [`PAGE_SIZE`].
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty size: expected e.g. 4096, 64M or 1.5GiB".to_owned());
    }
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.trim_start();
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    let digits_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(whole) || (number.contains('.') && !digits_ok(fraction)) {
        return Err(format!(
            "invalid size '{text}': expected a number with an optional unit, e.g. 4096, 64M or 1.5GiB"
        ));
    }
    let multiplier = UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|&(_, multiplier)| multiplier)
        .ok_or_else(|| format!("unknown unit '{unit}' in '{text}': use {UNIT_HELP}"))?;

    // Exact arithmetic: value = whole.fraction * multiplier, which must be an integer.
    let fraction = fraction.trim_end_matches('0');
    let too_large = || format!("size '{text}' is too large");
    let mut scaled: u128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        scaled = scaled.checked_mul(10).and_then(|v| v.checked_add(u128::from(digit - b'0'))).ok_or_else(too_large)?;
    }
    let denominator =
        u32::try_from(fraction.len()).ok().and_then(|len| 10u128.checked_pow(len)).ok_or_else(too_large)?;
    let numerator = scaled.checked_mul(u128::from(multiplier)).ok_or_else(too_large)?;
    if !numerator.is_multiple_of(denominator) {
        return Err(format!("size '{text}' is not a whole number of bytes"));
    }
    let bytes = u64::try_from(numerator / denominator).map_err(|_| too_large())?;
    if bytes == 0 {
        return Err("size must not be zero".to_owned());
    }
    if !bytes.is_multiple_of(PAGE_SIZE) {
        return Err(format!("size '{text}' ({bytes} bytes) is not a multiple of {PAGE_SIZE} bytes (the page size)"));
    }
    Ok(bytes)
}

/// Binary units for output, largest first.
const OUTPUT_UNITS: &[(&str, u64)] = &[("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];

/// A byte count for people: `64 MiB` when exact, `1.5 MiB` (one decimal) otherwise,
/// `512 B` below 1 KiB.
pub fn format_bytes(bytes: u64) -> String {
    for &(name, size) in OUTPUT_UNITS {
        if bytes >= size {
            return if bytes.is_multiple_of(size) {
                format!("{} {name}", bytes / size)
            } else {
                format!("{:.1} {name}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} B")
}

/// A throughput for people: `12.3 MiB/s`, `512 B/s`.
pub fn format_rate(bytes_per_second: f64) -> String {
    for &(name, size) in OUTPUT_UNITS {
        if bytes_per_second >= size as f64 {
            return format!("{:.1} {name}/s", bytes_per_second / size as f64);
        }
    }
    format!("{bytes_per_second:.0} B/s")
}

/// Parses a positive number of seconds, such as `1`, `0.5` or `30`.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.trim().parse().map_err(|_| format!("invalid number of seconds '{text}'"))?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("'{text}' is not a positive number of seconds"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("'{text}' seconds is too long"))
}

/// A duration for people: `5 s`, `0.5 s`.
pub fn format_seconds(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{seconds:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1 << 10;
    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;
    const T: u64 = 1 << 40;

    #[test]
    fn plain_bytes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("8192"), Ok(8192));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size("4096b"), Ok(4096));
        assert_eq!(parse_size("0004096"), Ok(4096));
        assert_eq!(parse_size(" 4096 "), Ok(4096));
        assert_eq!(parse_size("4096.0"), Ok(4096));
    }

    #[test]
    fn every_unit_in_every_case() {
        for (units, multiplier) in [
            (&["K", "k", "KiB", "kib", "KIB", "kIb"][..], K),
            (&["M", "m", "MiB", "mib", "MIB"][..], M),
            (&["G", "g", "GiB", "gib", "GIB"][..], G),
            (&["T", "t", "TiB", "tib", "TIB"][..], T),
        ] {
            for unit in units {
                assert_eq!(parse_size(&format!("4{unit}")), Ok(4 * multiplier), "4{unit}");
                assert_eq!(parse_size(&format!("4 {unit}")), Ok(4 * multiplier), "4 {unit}");
            }
        }
        assert_eq!(parse_size("64M"), Ok(64 * M));
        assert_eq!(parse_size("1G"), Ok(G));
        assert_eq!(parse_size("2T"), Ok(2 * T));
    }

    #[test]
    fn decimals_that_make_whole_bytes() {
        assert_eq!(parse_size("1.5G"), Ok(3 * G / 2));
        assert_eq!(parse_size("0.5M"), Ok(M / 2));
        assert_eq!(parse_size("0.25GiB"), Ok(G / 4));
        assert_eq!(parse_size("1.50000000000000000000000000000000000000000G"), Ok(3 * G / 2));
        // 1/256 MiB = 4 KiB.
        assert_eq!(parse_size("0.00390625M"), Ok(4 * K));
        assert_eq!(parse_size("12.0K"), Ok(12 * K));
    }

    #[test]
    fn decimals_that_do_not_make_whole_bytes() {
        for text in ["1.3K", "0.1M", "4096.5", "0.333G"] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("not a whole number of bytes"), "{text}: {err}");
        }
    }

    #[test]
    fn zero_is_refused() {
        for text in ["0", "0K", "0.0G", "000"] {
            assert_eq!(parse_size(text), Err("size must not be zero".to_owned()), "{text}");
        }
    }

    #[test]
    fn unaligned_sizes_are_refused() {
        for text in ["1", "1000", "4095", "4097", "1K", "6K", "0.5K", "1.5K"] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("not a multiple of 4096 bytes"), "{text}: {err}");
        }
        assert_eq!(
            parse_size("1000").unwrap_err(),
            "size '1000' (1000 bytes) is not a multiple of 4096 bytes (the page size)"
        );
        assert_eq!(parse_size("8K"), Ok(8 * K));
    }

    #[test]
    fn unknown_units_are_refused() {
        for text in ["4KB", "4MB", "4 GB", "4P", "4PiB", "4x", "4Ki", "4 K B", "4K!"] {
            let err = parse_size(text).unwrap_err();
            assert!(err.starts_with("unknown unit"), "{text}: {err}");
            assert!(err.contains("KiB"), "{text}: {err}");
        }
        assert_eq!(
            parse_size("4KB").unwrap_err(),
            "unknown unit 'KB' in '4KB': use K, KiB, M, MiB, G, GiB, T or TiB (binary, any case)"
        );
    }

    #[test]
    fn malformed_numbers_are_refused() {
        for text in ["", "  ", "M", "abc", ".5M", "1.M", "1..5M", "1.2.3M", "-4096", "+4096", "1e3K", "0x1000"] {
            assert!(parse_size(text).is_err(), "{text:?}");
        }
        assert!(parse_size("").unwrap_err().starts_with("empty size"));
        assert!(parse_size("abc").unwrap_err().starts_with("invalid size 'abc'"));
    }

    #[test]
    fn huge_sizes_are_refused_not_wrapped() {
        // 2^64 bytes does not fit a u64.
        assert!(parse_size("16777216T").unwrap_err().contains("too large"));
        assert_eq!(parse_size("16777215T"), Ok(16_777_215 * T));
        assert!(parse_size("18446744073709551616").unwrap_err().contains("too large"));
        assert!(parse_size(&"9".repeat(60)).unwrap_err().contains("too large"));
        let long_fraction = format!("1.{}1G", "0".repeat(60));
        assert!(parse_size(&long_fraction).is_err());
        // The largest multiple of 4096 in a u64.
        assert_eq!(parse_size("18446744073709547520"), Ok(u64::MAX - 4095));
    }

    #[test]
    fn bytes_are_formatted_exactly_when_possible() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(4096), "4 KiB");
        assert_eq!(format_bytes(64 * M), "64 MiB");
        assert_eq!(format_bytes(3 * G / 2), "1.5 GiB");
        assert_eq!(format_bytes(1536 * M), "1.5 GiB");
        assert_eq!(format_bytes(G), "1 GiB");
        assert_eq!(format_bytes(2 * T), "2 TiB");
        assert_eq!(format_bytes(1024 * T), "1024 TiB");
        assert_eq!(format_bytes(1_258_291), "1.2 MiB");
    }

    #[test]
    fn sizes_round_trip_through_their_format() {
        for bytes in [4096, 64 * M, 3 * G / 2, G, 2 * T, 12 * K] {
            let text = format_bytes(bytes);
            assert_eq!(parse_size(&text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn rates_are_formatted() {
        assert_eq!(format_rate(0.0), "0 B/s");
        assert_eq!(format_rate(512.4), "512 B/s");
        assert_eq!(format_rate(1024.0), "1.0 KiB/s");
        assert_eq!(format_rate(12.3 * M as f64), "12.3 MiB/s");
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("30"), Ok(Duration::from_secs(30)));
        for text in ["0", "-1", "abc", "", "inf", "NaN", "1e30"] {
            assert!(parse_seconds(text).is_err(), "{text}");
        }
        assert_eq!(format_seconds(Duration::from_secs(5)), "5 s");
        assert_eq!(format_seconds(Duration::from_millis(1500)), "1.5 s");
    }
}
