// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The item of a tracked page (`struct ksm_rmap_item`) and the per-address-space record of the
//! items.
//!
//! An [`Item`] is 16 bytes: a link word (the stable node of a merged item, the next item of an
//! unstable bucket, or the fingerprint of an item in the unstable collision tree), 32 bits for
//! the checksum or, when merged, the index of the item's mapping in its stable node, and 32 bits
//! of small fields. Items live in an [`ItemMap`] per address space ([`MmItems`]); an
//! [`ItemRef`] names one by the engine's number for its address space and its page.
//!
//! # Locking
//!
//! Items belong to the merge engine, that is to ksmd's batch (the scanner mutex).

use crate::{items::ItemMap, stable::StableNode};
use core::ptr;
use kernel::{bindings, page::PAGE_SHIFT, prelude::*};

/// A tracked page, as the unstable table links it: the engine's number for the address space
/// (`MmItems::id`) above [`REF_PAGE_BITS`], the page (user address >> `PAGE_SHIFT`) below.
pub(crate) type ItemRef = u64;

/// Bits of an [`ItemRef`] for the page: user addresses have at most 57 bits.
pub(crate) const REF_PAGE_BITS: u32 = 57 - PAGE_SHIFT as u32;

/// A tracked page (`struct ksm_rmap_item`): 16 bytes.
#[derive(Clone, Copy)]
pub(crate) struct Item {
    /// When merged, the stable node's address; in the unstable table of the current scan, the
    /// next item of its bucket (an [`ItemRef`] + 1, 0 at the end) or, when [`Item::collide`],
    /// its page's [`fingerprint`]; else 0. See [`Item::node`].
    pub(crate) link: usize,
    /// When merged, the index of the item's mapping in its stable node's list; else the
    /// checksum of the contents at the last scan, when `hashed`.
    pub(crate) hash: u32,
    /// The small fields, see the `ITEM_*` masks.
    pub(crate) bits: u32,
}

/// [`Item::bits`]: the unstable tree the item is in, when `unstable` (a NUMA node).
const ITEM_NID: (u32, u32) = (0, 10);

/// [`Item::bits`]: the scan that put the item in the unstable tree (`seqnr`).
const ITEM_SEQ: (u32, u32) = (10, 8);

/// [`Item::bits`]: the item is counted in `pages_unshared` (in the unstable tree of `seq`).
const ITEM_UNSTABLE: (u32, u32) = (18, 1);

/// [`Item::bits`]: `hash` is valid.
const ITEM_HASHED: (u32, u32) = (19, 1);

/// [`Item::bits`]: scans without merging (smart scan), saturating at [`AGE_MAX`].
const ITEM_AGE: (u32, u32) = (20, 7);

/// [`Item::bits`]: the item is in the unstable table's collision tree, not in a bucket.
const ITEM_COLLIDE: (u32, u32) = (27, 1);

/// The most [`Item::age`] counts: [`skip_age`] is the same for all ages from 9 on.
pub(crate) const AGE_MAX: u8 = (1 << ITEM_AGE.1) - 1;

/// [`Item::bits`]: scans still to skip (smart scan; at most 8).
const ITEM_SKIPS: (u32, u32) = (28, 4);

// The node number fits in its field.
const _: () = assert!(bindings::MAX_NUMNODES <= 1 << ITEM_NID.1);

/// The bytes of metadata per tracked page, for `general_profit` and `ksm_process_profit`: the
/// item, packed with its neighbours (see [`crate::items`]; a dense region adds less than a byte
/// per page to it).
pub(crate) const ITEM_BYTES: usize = core::mem::size_of::<Item>();

impl Item {
    pub(crate) fn get(&self, (shift, width): (u32, u32)) -> u32 {
        (self.bits >> shift) & ((1 << width) - 1)
    }

    pub(crate) fn set(&mut self, (shift, width): (u32, u32), v: u32) {
        let mask = ((1 << width) - 1) << shift;
        self.bits = (self.bits & !mask) | ((v << shift) & mask);
    }

    /// The unstable tree the item is in, when [`Item::unstable`].
    pub(crate) fn nid(&self) -> u32 {
        self.get(ITEM_NID)
    }

    pub(crate) fn set_nid(&mut self, nid: u32) {
        self.set(ITEM_NID, nid);
    }

    /// The scan (modulo 256) that put the item in the unstable tree.
    pub(crate) fn seq(&self) -> u8 {
        self.get(ITEM_SEQ) as u8
    }

    pub(crate) fn set_seq(&mut self, seq: u8) {
        self.set(ITEM_SEQ, u32::from(seq));
    }

    /// Whether the item is counted in `pages_unshared`.
    pub(crate) fn unstable(&self) -> bool {
        self.get(ITEM_UNSTABLE) != 0
    }

    pub(crate) fn set_unstable(&mut self, on: bool) {
        self.set(ITEM_UNSTABLE, u32::from(on));
    }

    /// Whether [`Item::hash`] is valid.
    pub(crate) fn hashed(&self) -> bool {
        self.get(ITEM_HASHED) != 0
    }

    pub(crate) fn set_hashed(&mut self, on: bool) {
        self.set(ITEM_HASHED, u32::from(on));
    }

    /// Scans without merging (smart scan).
    pub(crate) fn age(&self) -> u8 {
        self.get(ITEM_AGE) as u8
    }

    pub(crate) fn set_age(&mut self, age: u8) {
        self.set(ITEM_AGE, u32::from(age));
    }

    /// Whether the unstable item is in the collision tree (its `link` is its fingerprint).
    pub(crate) fn collide(&self) -> bool {
        self.get(ITEM_COLLIDE) != 0
    }

    pub(crate) fn set_collide(&mut self, on: bool) {
        self.set(ITEM_COLLIDE, u32::from(on));
    }

    /// Scans still to skip (smart scan).
    pub(crate) fn skips(&self) -> u8 {
        self.get(ITEM_SKIPS) as u8
    }

    pub(crate) fn set_skips(&mut self, skips: u8) {
        self.set(ITEM_SKIPS, u32::from(skips));
    }

    /// The stable node when merged, else null.
    pub(crate) fn node(&self) -> *const StableNode {
        if self.unstable() {
            ptr::null()
        } else {
            self.link as *const StableNode
        }
    }

    /// Sets the stable node (null: not merged); the item is not in the unstable table.
    pub(crate) fn set_node(&mut self, node: *const StableNode) {
        self.set_unstable(false);
        self.set_collide(false);
        self.link = node as usize;
    }

    pub(crate) const fn new() -> Self {
        Self {
            link: 0,
            hash: 0,
            bits: 0,
        }
    }
}

/// The items of one address space.
pub(crate) struct MmItems {
    /// The `mm_struct`, kept allocated by its slot in the registry while it has items.
    pub(crate) mm: *mut bindings::mm_struct,
    /// The engine's number for it, in [`ItemRef`]s.
    pub(crate) id: u32,
    /// The items by page (user address >> `PAGE_SHIFT`).
    pub(crate) items: ItemMap<Item>,
}

/// The mm key and the page an [`ItemRef`] names, given the mm keys by id.
pub(crate) fn resolve(ids: &[usize], r: ItemRef) -> Option<(usize, usize)> {
    let mmk = *ids.get((r >> REF_PAGE_BITS) as usize)?;
    Some((mmk, (r & ((1 << REF_PAGE_BITS) - 1)) as usize))
}

/// Smart scan: how many scans to skip a page that failed to merge `age` times (`skip_age`).
pub(crate) fn skip_age(age: u8) -> u8 {
    match age {
        0..=3 => 1,
        4..=5 => 2,
        6..=8 => 4,
        _ => 8,
    }
}

#[kunit_tests(ksm_rs_item)]
mod tests {
    use super::*;

    #[test]
    fn smart_scan_backs_off() {
        let skips: [u8; 12] = core::array::from_fn(|i| skip_age(i as u8));
        assert_eq!(skips, [1, 1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8]);
        assert_eq!(skip_age(u8::MAX), 8);
    }

    #[test]
    fn item_fields_keep_their_values() {
        let mut it = Item::new();
        it.set_nid(bindings::MAX_NUMNODES - 1);
        it.set_seq(u8::MAX);
        it.set_age(AGE_MAX);
        it.set_collide(true);
        it.set_skips(skip_age(u8::MAX));
        it.set_hashed(true);
        assert!(!it.unstable());
        it.set_unstable(true);
        assert_eq!(it.nid(), bindings::MAX_NUMNODES - 1);
        assert_eq!((it.seq(), it.age(), it.skips()), (u8::MAX, AGE_MAX, 8));
        assert!(it.hashed() && it.unstable() && it.collide());
        // Each field changes alone.
        it.set_seq(0);
        it.set_nid(0);
        assert_eq!(
            (it.nid(), it.seq(), it.age(), it.skips()),
            (0, 0, AGE_MAX, 8)
        );
        assert!(it.hashed() && it.unstable() && it.collide());
        it.set_skips(0);
        it.set_age(3);
        assert_eq!((it.age(), it.skips()), (3, 0));
        assert!(it.hashed() && it.unstable() && it.collide());
        it.set_collide(false);
        assert!(it.hashed() && it.unstable() && !it.collide());
        assert_eq!((it.age(), it.skips(), it.seq()), (3, 0, 0));
        // Ages from 9 on back off alike: saturating at AGE_MAX changes nothing.
        assert_eq!(skip_age(AGE_MAX), skip_age(u8::MAX));
        // An unstable item has no stable node, whatever its link.
        it.link = 0x1230;
        assert!(it.node().is_null());
        it.set_node(ptr::null());
        assert!(!it.unstable() && it.hashed());
    }

    #[test]
    fn metadata_per_tracked_page() {
        // C's ksm_rmap_item is 64 bytes, its tree node included; ours is 16 (512 of them fill
        // a chunk of 8 KiB), and an entry of the unstable table costs half a bucket head, 4 bytes
        // (8 at most, as the table doubles).
        assert_eq!(core::mem::size_of::<Item>(), 16);
        assert_eq!(ITEM_BYTES, 16);
    }
}
