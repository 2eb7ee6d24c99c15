// SPDX-License-Identifier: GPL-2.0

//! CRC-32C (Castagnoli), the checksum of fvp's handshake messages and of the flash
//! pool's on-disk format: reflected polynomial `0x82F63B78`, initial value `!0`, final
//! xor `!0` (the CRC of iSCSI, ext4 and btrfs).
//!
//! In the kernel (`cfg(MODULE)`) the kernel computes it: `crc32c()` of libcrc32c, which
//! uses the crypto API's "crc32c" (accelerated where the CPU can), through
//! `fvp_kernel::crypto::crc32c_update`. On the host (tests, fvpctl, fuzzing) the `crc`
//! crate does. The wire format and the flash format call [`Crc32c`] alone, so the same
//! code checks them in both places; the tests below pin both to RFC 3720's vectors.

/// The reflected Castagnoli polynomial.
pub const POLY: u32 = 0x82F6_3B78;

/// An incremental CRC-32C computation.
///
/// `Crc32c::new().update(a).update(b).finish()` equals `crc32c(a ++ b)`.
#[derive(Clone)]
pub struct Crc32c {
    /// The running register, before the final xor.
    #[cfg(MODULE)]
    state: u32,
    #[cfg(not(MODULE))]
    digest: crc::Digest<'static, u32>,
}

/// The `crc` crate's CRC-32C.
#[cfg(not(MODULE))]
static CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    /// A computation over no bytes yet.
    pub fn new() -> Self {
        #[cfg(MODULE)]
        return Crc32c { state: !0 };
        #[cfg(not(MODULE))]
        return Crc32c { digest: CASTAGNOLI.digest() };
    }

    /// Feeds `data`; returns `self` for chaining.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        #[cfg(MODULE)]
        {
            self.state = crate::fvp_kernel::crypto::crc32c_update(self.state, data);
        }
        #[cfg(not(MODULE))]
        self.digest.update(data);
        self
    }

    /// The CRC of everything fed so far. The computation may go on afterwards.
    pub fn finish(&self) -> u32 {
        #[cfg(MODULE)]
        return !self.state;
        #[cfg(not(MODULE))]
        return self.digest.clone().finalize();
    }
}

impl core::fmt::Debug for Crc32c {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Crc32c({:#010x} so far)", self.finish())
    }
}

/// The CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    Crc32c::new().update(data).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Bit-at-a-time reference.
    fn reference(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    /// RFC 3720, appendix B.4. The RFC prints the CRC in wire order (little endian).
    #[test]
    fn rfc3720_vectors() {
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&dec), 0x113F_DB5C);
        let iscsi_read: [u8; 48] = [
            0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(crc32c(&iscsi_read), 0xD9963A56);
    }

    #[test]
    fn matches_bitwise_reference() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(crc32c(&data[..len]), reference(&data[..len]), "len {len}");
        }
    }

    proptest! {
        #[test]
        fn incremental_equals_one_shot(data in proptest::collection::vec(any::<u8>(), 0..300),
                                       cuts in proptest::collection::vec(0usize..300, 0..5)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut c = Crc32c::new();
            let mut at = 0;
            for cut in cuts {
                c.update(&data[at..cut]);
                at = cut;
            }
            c.update(&data[at..]);
            prop_assert_eq!(c.finish(), crc32c(&data));
            prop_assert_eq!(crc32c(&data), reference(&data));
        }
    }
}
