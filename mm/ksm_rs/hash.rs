// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The hash and the fingerprint of a page's contents.
//!
//! The trees are keyed by [`hash_page`] (`xxh64`, the function of `mm/ksm.c`'s checksum, with a
//! seed drawn at random at boot); pages of different contents whose hashes collide are told
//! apart by [`fingerprint`] (SipHash with a secret random key), which is only computed for
//! them. Both read the page as it is, racing writers included, as `calc_checksum()` does:
//! nothing is merged without a comparison of the contents after the page is write-protected.
//!
//! Cost: one pass over the page each (a fingerprint costs about four hashes).

use kernel::{
    bindings,
    mm::folio::{Folio, PageRef},
    page::PAGE_SIZE,
    prelude::*,
};

/// A page's content hash: `xxh64` with the engine's random seed. Its low 32 bits are the
/// checksum an [`Item`] keeps, as `calc_checksum()`.
pub(crate) type Hash = u64;

/// The checksum of a page of hash `hash`, as an [`Item`] keeps it.
pub(crate) fn checksum(hash: Hash) -> u32 {
    hash as u32
}

/// A page of zeroes, to compare candidates for the zero page with.
pub(crate) static ZEROES: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// The content hash of a page, with the engine's `seed`.
pub(crate) fn hash_bytes(bytes: &[u8], seed: u64) -> Hash {
    // SAFETY: `bytes` is valid for its length.
    unsafe { bindings::xxh64(bytes.as_ptr().cast(), bytes.len(), seed) }
}

/// The content hash of a page, which other mappings may be writing, with the engine's `seed`.
pub(crate) fn hash_page(page: &PageRef, seed: u64) -> Hash {
    page.with_mapped(|p| {
        // SAFETY: `p` is mapped for `PAGE_SIZE` bytes; `xxh64` reads them as plain bytes,
        // racing writers included, as `calc_checksum()` does.
        unsafe { bindings::xxh64(p.cast(), PAGE_SIZE, seed) }
    })
}

/// The hash of the contents of a small folio (see [`hash_page`]).
pub(crate) fn hash_folio(folio: &Folio, seed: u64) -> Hash {
    folio.with_page_mapped(0, |p| {
        // SAFETY: `p` is mapped for `PAGE_SIZE` bytes; `xxh64` reads them as plain bytes,
        // racing writers included, as `calc_checksum()` does.
        unsafe { bindings::xxh64(p.cast(), PAGE_SIZE, seed) }
    })
}

/// A keyed fingerprint of a page's contents: SipHash-2-4 with a secret random key, never 0.
///
/// `xxh64` is fast but not collision resistant, whatever its seed: flipping the top bit of an
/// input word changes the lane's state by one of two values, which the next word of the lane can
/// cancel, so that pages built that way share their hash with probability 1/2 for any seed. The
/// fingerprint is only computed for pages whose hash is shared by other contents, and tells them
/// apart: SipHash is a pseudo-random function, so without its key, contents that share a
/// fingerprint can only be found by chance (2^-64 per pair).
///
/// # Safety
///
/// `p` is valid for reading `PAGE_SIZE` bytes.
pub(crate) unsafe fn fingerprint(p: *const u8, key: &bindings::siphash_key_t) -> u64 {
    // SAFETY: Upheld by the caller; SipHash reads the bytes as they are, racing writers
    // included (a page that changes meanwhile is compared again before any merge). The
    // unaligned variant is the one every architecture builds (`siphash()` is inline).
    unsafe { bindings::__siphash_unaligned(p.cast(), PAGE_SIZE, key) }.max(1)
}

/// The [`fingerprint`] of a page.
pub(crate) fn page_fingerprint(page: &PageRef, key: &bindings::siphash_key_t) -> u64 {
    // SAFETY: A mapped page is `PAGE_SIZE` bytes.
    page.with_mapped(|p| unsafe { fingerprint(p, key) })
}

/// The [`fingerprint`] of the (small) folio `folio`.
pub(crate) fn folio_fingerprint(folio: &Folio, key: &bindings::siphash_key_t) -> u64 {
    // SAFETY: As in `page_fingerprint`.
    folio.with_page_mapped(0, |p| unsafe { fingerprint(p, key) })
}

#[kunit_tests(ksm_rs_hash)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    #[test]
    fn hash_is_of_the_contents() -> Result {
        let mut a = KVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)?;
        let b = KVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)?;
        // Equal contents, equal hash: the trees never miss a page mm/ksm.c would merge.
        let e = Engine::new();
        assert_eq!(hash_bytes(&a, e.seed), hash_bytes(&b, e.seed));
        assert_eq!(hash_bytes(&a, e.seed), e.zero_hash);
        // Another seed, another hash: which pages collide depends on the seed.
        assert_ne!(hash_bytes(&a, 1), hash_bytes(&a, 2));
        a[PAGE_SIZE - 1] = 1;
        assert_ne!(hash_bytes(&a, e.seed), hash_bytes(&b, e.seed));
        a[PAGE_SIZE - 1] = 0;
        a[0] = 1;
        assert_ne!(hash_bytes(&a, e.seed), hash_bytes(&b, e.seed));
        Ok(())
    }

    const P1: u64 = 0x9e37_79b1_85eb_ca87;

    const P2: u64 = 0xc2b2_ae3d_27d4_eb4f;

    /// The inverse of an odd number modulo 2^64 (Newton's iteration).
    fn inverse(a: u64) -> u64 {
        let mut x = a;
        for _ in 0..6 {
            x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        }
        x
    }

    fn word(p: &[u8], i: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&p[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    }

    fn set_word(p: &mut [u8], i: usize, v: u64) {
        p[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// `xxh64`'s lane states after the first `stripes` stripes of 32 bytes of `p`.
    fn lanes(p: &[u8], seed: u64, stripes: usize) -> [u64; 4] {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        for s in 0..stripes {
            for (l, lane) in v.iter_mut().enumerate() {
                let x = lane.wrapping_add(word(p, s * 4 + l).wrapping_mul(P2));
                *lane = x.rotate_left(31).wrapping_mul(P1);
            }
        }
        v
    }

    /// Sets the last stripe of `p` so that its lane states, hence its `xxh64` with `seed`, are
    /// `target`'s.
    fn aim(p: &mut [u8], seed: u64, target: [u64; 4]) {
        let last = PAGE_SIZE / 32 - 1;
        let v = lanes(p, seed, last);
        for l in 0..4 {
            let x = target[l].wrapping_mul(inverse(P1)).rotate_right(31);
            set_word(
                p,
                last * 4 + l,
                x.wrapping_sub(v[l]).wrapping_mul(inverse(P2)),
            );
        }
    }

    #[test]
    fn pages_of_one_hash_are_told_apart() -> Result {
        let e = Engine::new();
        assert_eq!(inverse(P2).wrapping_mul(P2), 1);
        // Seed 0 (mm/ksm.c's): any prefix, then 32 bytes chosen, gives any hash.
        let mut a = KVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)?;
        let mut b = KVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)?;
        a[0] = 1;
        b[0] = 2;
        let target = lanes(
            &KVec::from_elem(7u8, PAGE_SIZE, GFP_KERNEL)?,
            0,
            PAGE_SIZE / 32,
        );
        aim(&mut a, 0, target);
        aim(&mut b, 0, target);
        assert!(a[..] != b[..]);
        assert_eq!(hash_bytes(&a, 0), hash_bytes(&b, 0));
        // The fingerprint tells them apart.
        // SAFETY: Both are `PAGE_SIZE` bytes.
        let (fa, fb) = unsafe {
            (
                fingerprint(a.as_ptr(), &e.fp_key),
                fingerprint(b.as_ptr(), &e.fp_key),
            )
        };
        assert_ne!(fa, fb);
        // Any seed: flipping the top bit of a word changes its lane's state by +-2^30 P1, which
        // the lane's next word cancels for one of the two signs, whatever the seed.
        let mut plus = KVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)?;
        let mut minus = KVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)?;
        plus.copy_from_slice(&a);
        minus.copy_from_slice(&a);
        let (w, n) = (4 * 10, 4 * 11);
        let d = (1u64 << 30).wrapping_mul(P1).wrapping_mul(inverse(P2));
        for (v, sign) in [(&mut plus, 1u64), (&mut minus, 1u64.wrapping_neg())] {
            set_word(v, w, word(&a, w) ^ (1 << 63));
            set_word(v, n, word(&a, n).wrapping_sub(d.wrapping_mul(sign)));
        }
        for seed in [e.seed, 0, 1, 0x1234_5678_9abc_def0, !e.seed] {
            let h = hash_bytes(&a, seed);
            let same = [hash_bytes(&plus, seed) == h, hash_bytes(&minus, seed) == h];
            assert!(same[0] != same[1]);
        }
        // SAFETY: As above.
        let fs = unsafe {
            [
                fingerprint(plus.as_ptr(), &e.fp_key),
                fingerprint(minus.as_ptr(), &e.fp_key),
            ]
        };
        assert!(fs[0] != fa && fs[1] != fa && fs[0] != fs[1]);
        Ok(())
    }
}
