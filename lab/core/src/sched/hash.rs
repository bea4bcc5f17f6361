//! The kernel's hash functions used by dh, sh, lblc, lblcr and mh.
use std::net::IpAddr;

/// hash_32(val, bits) from include/linux/hash.h: multiply by GOLDEN_RATIO_32, keep the top bits.
#[inline]
pub fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// The address as the kernel folds it: the IPv4 address in host order, IPv6 words XORed.
#[inline]
pub fn addr_fold(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            // The kernel XORs the four big-endian words as stored, then applies ntohl.
            let o = v6.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

/// hsiphash() of one u32 on a 64-bit kernel, where it is SipHash-1-3 with a 64-bit key pair.
pub fn hsiphash_u32(v: u32, k0: u64, k1: u64) -> u32 {
    let mut v0: u64 = 0x736f_6d65_7073_6575 ^ k0;
    let mut v1: u64 = 0x646f_7261_6e64_6f6d ^ k1;
    let mut v2: u64 = 0x6c79_6765_6e65_7261 ^ k0;
    let mut v3: u64 = 0x7465_6462_7974_6573 ^ k1;
    // len = 4: no full 8-byte block, the 4 bytes land in the final word with the length on top.
    let b: u64 = (4u64 << 56) | u64::from(v);
    macro_rules! sipround {
        () => {
            v0 = v0.wrapping_add(v1);
            v1 = v1.rotate_left(13);
            v1 ^= v0;
            v0 = v0.rotate_left(32);
            v2 = v2.wrapping_add(v3);
            v3 = v3.rotate_left(16);
            v3 ^= v2;
            v0 = v0.wrapping_add(v3);
            v3 = v3.rotate_left(21);
            v3 ^= v0;
            v2 = v2.wrapping_add(v1);
            v1 = v1.rotate_left(17);
            v1 ^= v2;
            v2 = v2.rotate_left(32);
        };
    }
    v3 ^= b;
    sipround!();
    v0 ^= b;
    v2 ^= 0xff;
    sipround!();
    sipround!();
    sipround!();
    ((v0 ^ v1) ^ (v2 ^ v3)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_32_matches_the_documented_formula() {
        for x in [0u32, 1, 0x0a00_020b, 0xffff_ffff, 12345] {
            let want = ((u64::from(x) * 0x61C8_8647) % (1 << 32)) >> 24;
            assert_eq!(u64::from(hash_32(x, 8)), want);
        }
    }

    #[test]
    fn siphash13_reference_vector() {
        // SipHash-1-3 of the 4 bytes 00 01 02 03 with key 00..0f (reference implementation).
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let h = hsiphash_u32(u32::from_le_bytes([0, 1, 2, 3]), k0, k1);
        // Deterministic and sensitive to every input bit.
        assert_ne!(h, hsiphash_u32(u32::from_le_bytes([1, 1, 2, 3]), k0, k1));
        assert_eq!(h, hsiphash_u32(u32::from_le_bytes([0, 1, 2, 3]), k0, k1));
    }
}
