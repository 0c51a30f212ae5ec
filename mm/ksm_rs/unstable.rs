// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The unstable tree: pages whose checksum held still between two scans, not merged yet.
//!
//! As only equal checksums are looked for, it is a hash table: a power-of-two array of 8-byte
//! bucket heads, chained through the items themselves (no allocation per entry), with one item
//! per checksum in the buckets. When a page of the same checksum turns out to have other
//! contents, both go to the collision tree, keyed by `(tree, checksum, fingerprint, item)`, and
//! so do the later pages of that checksum. Both are emptied at the start of every full scan.
//!
//! Cost: a search walks one bucket (two items on average: its index comes from the seeded
//! hash) or looks up the collision tree in O(log c), and compares the page with one page (at
//! most [`COLLIDE_CANDIDATES`] when pages of one fingerprint changed since), taking the mmap
//! lock of that page's mm only for it.
//!
//! # Locking
//!
//! The table belongs to ksmd's batch (the scanner mutex). A candidate page is looked up under
//! its mm's mmap lock (read), with a user reference on the mm, as `get_mergeable_page()` does.

use crate::{
    domain::{tree_nid, tree_of, Domains, Tree, NID_BITS},
    engine::{counter_inc, next_in_group, Engine},
    hash::{checksum, page_fingerprint, Hash},
    item::{Item, ItemRef, REF_PAGE_BITS},
    merge::mergeable_page_at,
    tunables::*,
};
use core::ptr;
use kernel::{
    alloc::KVVec,
    mm::{folio::PageRef, MmWithUserAsync},
    page::PAGE_SHIFT,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{aref::ARef, atomic::Relaxed},
};

/// Key of the unstable table's collision tree: (tree, checksum, fingerprint, item); see
/// [`Engine::collide`].
pub(crate) type CKey = (Tree, u32, u64, ItemRef);

/// What [`Engine::unstable_compare`] found.
enum Compared {
    /// The same contents: the item's mm (a user reference), address and page.
    Same(ARef<MmWithUserAsync>, usize, PageRef),
    /// Other contents: the item's page.
    Differs(PageRef),
    /// The item's page is not there or cannot be merged.
    Gone,
    /// The search ends without a merge (`page` itself, or across nodes).
    Stop,
}

/// The unstable table's bucket for `(tree, checksum)`, of `buckets` (a power of two).
fn bucket_of(tree: Tree, sum: u32, buckets: usize) -> usize {
    // `sum` is from a seeded xxh64: its low bits are as good as any; the tree's are mixed in
    // whole, so that the pages of many merge domains spread over the buckets too.
    let t = tree.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (u64::from(sum) ^ t ^ (t >> 32)) as usize & (buckets - 1)
}

/// The unstable tree of item `r` (of value `it`) when it is in one: its mm's merge domain, and
/// the NUMA node part that the item keeps.
fn item_tree(doms: &[Domains], r: ItemRef, it: &Item) -> Tree {
    (Engine::dom_of_id(doms, r >> REF_PAGE_BITS) << NID_BITS) | u64::from(it.nid())
}

/// The fewest buckets of the unstable table, once it has any.
const MIN_BUCKETS: usize = 512;

/// The most pages of equal checksum and fingerprint [`Engine::unstable_search_insert`] compares.
pub(crate) const COLLIDE_CANDIDATES: usize = 8;

impl Engine {
    /// Links item `r`, of unstable tree `tree` and checksum `hash`, into the unstable table;
    /// false if the table cannot grow for it.
    fn unstable_link(&mut self, r: ItemRef, tree: Tree, hash: u32) -> bool {
        // Chains of two on average at most: a bucket head costs 8 bytes, an item in a chain
        // one lookup in its chunk.
        if self.unstable_len >= 2 * self.unstable.len() && !self.unstable_grow() {
            return false;
        }
        let b = bucket_of(tree, hash, self.unstable.len());
        let head = self.unstable[b];
        let Some(it) = Self::item_at(&mut self.mms, &self.ids, r) else {
            return false;
        };
        it.link = head as usize;
        self.unstable[b] = r + 1;
        self.unstable_len += 1;
        self.unstable_peak = self.unstable_peak.max(self.unstable_len);
        true
    }

    /// Empties the unstable table and the collision tree, for a new full scan.
    ///
    /// Clearing the buckets costs their number, so a table much larger than the scan that
    /// ends needed (fewer than one item per 8 buckets: many pages went, or stopped being
    /// candidates) is replaced by one of a size for it, and the cost of a full scan stays in
    /// proportion to the pages it scans (one page in a 32 TiB area, say).
    pub(crate) fn unstable_clear(&mut self) {
        let n = self.unstable.len();
        if n > MIN_BUCKETS && self.unstable_peak < n / 8 {
            let want = (self.unstable_peak * 2)
                .next_power_of_two()
                .max(MIN_BUCKETS);
            if let Ok(table) = KVVec::from_elem(0, want, crate::scan_gfp()) {
                self.unstable = table;
            }
        }
        self.unstable.iter_mut().for_each(|h| *h = 0);
        self.unstable_len = 0;
        self.unstable_peak = 0;
        self.collide = RBTree::new();
    }

    /// Doubles the unstable table ([`MIN_BUCKETS`] at first) and links its items again.
    fn unstable_grow(&mut self) -> bool {
        let n = (self.unstable.len() * 2).max(MIN_BUCKETS);
        let Ok(mut table) = KVVec::from_elem(0, n, crate::scan_gfp()) else {
            return false;
        };
        for &head in self.unstable.iter() {
            let mut cur = head;
            while cur != 0 {
                let r = cur - 1;
                let Some(it) = Self::item_at(&mut self.mms, &self.ids, r) else {
                    break;
                };
                cur = it.link as u64;
                let b = bucket_of(item_tree(&self.doms, r, it), it.hash, n);
                it.link = table[b] as usize;
                table[b] = r + 1;
            }
        }
        self.unstable = table;
        true
    }

    /// Unlinks item `r`, of unstable tree `tree` and checksum `hash`, from the unstable table's
    /// buckets.
    fn unstable_unlink(&mut self, r: ItemRef, tree: Tree, hash: u32) {
        if self.unstable.is_empty() {
            return;
        }
        let b = bucket_of(tree, hash, self.unstable.len());
        let Some(next) = Self::item_at(&mut self.mms, &self.ids, r).map(|it| it.link as u64) else {
            return;
        };
        if self.unstable[b] == r + 1 {
            self.unstable[b] = next;
            self.unstable_len -= 1;
            return;
        }
        let mut cur = self.unstable[b];
        while cur != 0 {
            let Some(it) = Self::item_at(&mut self.mms, &self.ids, cur - 1) else {
                return;
            };
            if it.link as u64 == r + 1 {
                it.link = next as usize;
                self.unstable_len -= 1;
                return;
            }
            cur = it.link as u64;
        }
    }

    /// Takes the unstable item `r` (whose value is `item`) out of the unstable table's bucket or
    /// collision tree, if it is in this scan's.
    pub(crate) fn unstable_remove(&mut self, r: ItemRef, item: &Item) {
        if item.seq() != self.seq {
            return;
        }
        let tree = item_tree(&self.doms, r, item);
        if item.collide() {
            self.collide.remove(&(tree, item.hash, item.link as u64, r));
        } else {
            self.unstable_unlink(r, tree, item.hash);
        }
    }

    /// Gets the page at a tracked address if it can be merged (`get_mergeable_page`), with the
    /// user reference on its mm that was taken to look, for the merge that may follow.
    fn mergeable_page(&self, mmk: usize, addr: usize) -> Option<(ARef<MmWithUserAsync>, PageRef)> {
        let mm = self.mm_user(mmk)?;
        let page = mergeable_page_at(&mm, addr)?;
        Some((mm, page))
    }

    /// The first item of this scan's unstable table in the bucket of `(tree, sum)` with that
    /// tree and checksum, other than `me`. The buckets hold at most one item per tree and
    /// checksum (the others are in the collision tree), so this is one walk of a bucket of two
    /// items on average, whatever the contents.
    fn unstable_find(&mut self, tree: Tree, sum: u32, me: ItemRef) -> Option<ItemRef> {
        if self.unstable.is_empty() {
            return None;
        }
        let seq = self.seq;
        let mut cur = self.unstable[bucket_of(tree, sum, self.unstable.len())];
        while cur != 0 {
            let r = cur - 1;
            let it = Self::item_at(&mut self.mms, &self.ids, r)?;
            // Only items of this scan are linked (see `Item::link`).
            if !it.unstable() || it.seq() != seq {
                return None;
            }
            cur = it.link as u64;
            if it.hash == sum && r != me && item_tree(&self.doms, r, it) == tree {
                return Some(r);
            }
        }
        None
    }

    /// Compares `page` (of node `nid`) with the page of the unstable item `r`
    /// (`get_mergeable_page` and `memcmp_pages` in `unstable_tree_search_insert`).
    fn unstable_compare(&self, r: ItemRef, page: &PageRef, nid: i32) -> Compared {
        let Some((tmmk, taddr)) = self.ref_addr(r) else {
            return Compared::Gone;
        };
        let Some((tmm, tree_page)) = self.mergeable_page(tmmk, taddr) else {
            return Compared::Gone;
        };
        if tree_page.as_raw() == page.as_raw() {
            // Do not substitute a KSM page for a forked page.
            return Compared::Stop;
        }
        if !tree_page.same_contents(page) {
            return Compared::Differs(tree_page);
        }
        if MERGE_ACROSS_NODES.load(Relaxed) == 0 && tree_page.folio().nid() != nid {
            return Compared::Stop;
        }
        Compared::Same(tmm, taddr, tree_page)
    }

    /// Puts the unstable item `r`, of tree `tree` and checksum `sum`, in the collision tree with
    /// fingerprint `fp`, out of its bucket if `linked`; false if there is no memory for it.
    fn collide_insert(&mut self, r: ItemRef, tree: Tree, sum: u32, fp: u64, linked: bool) -> bool {
        let key = (tree, sum, fp, r);
        let Ok(entry) = RBTreeNode::new(key, (), crate::scan_gfp()) else {
            return false;
        };
        if linked {
            self.unstable_unlink(r, tree, sum);
        }
        let Some(it) = Self::item_at(&mut self.mms, &self.ids, r) else {
            return false;
        };
        it.set_collide(true);
        it.link = fp as usize;
        self.collide.insert(entry);
        true
    }

    /// Searches the unstable tree of merge domain `dom` for a page with the contents of `page`,
    /// or inserts the item (`unstable_tree_search_insert`).
    ///
    /// The table is keyed by checksum, and holds one item per checksum in its buckets. When
    /// another page of the same checksum turns out to have other contents, both go to the
    /// collision tree, keyed by their [`fingerprint`], and so do the later pages of that
    /// checksum: whatever the contents, a search compares `page` with one page of equal
    /// checksum, or with the pages of equal checksum and fingerprint (one, but by chance), and
    /// takes the mmap lock of their mms only for that.
    pub(crate) fn unstable_search_insert(
        &mut self,
        mmk: usize,
        addr: usize,
        page: &PageRef,
        hash: Hash,
        dom: u64,
    ) -> Option<(ARef<MmWithUserAsync>, usize, PageRef)> {
        let nid = page.folio().nid();
        let tree = tree_of(nid, dom);
        let sum = checksum(hash);
        let seq = self.seq;
        let me = self.item_ref(mmk, addr)?;
        let mut fp = None;
        let same = |k: &CKey| k.0 == tree && k.1 == sum;
        if next_in_group(&self.collide, &(tree, sum, 0, 0), same).is_some() {
            let f = page_fingerprint(page, &self.fp_key);
            fp = Some(f);
            let mut key = (tree, sum, f, 0);
            // Pages of one fingerprint had one contents, but may have changed since or fail to
            // merge (pinned): a few are compared, not all.
            for _ in 0..COLLIDE_CANDIDATES {
                let Some(k) = next_in_group(&self.collide, &key, |k| {
                    k.0 == tree && k.1 == sum && k.2 == f
                }) else {
                    break;
                };
                key.3 = k.3 + 1;
                if k.3 == me {
                    continue;
                }
                match self.unstable_compare(k.3, page, nid) {
                    Compared::Same(tmm, taddr, tree_page) => return Some((tmm, taddr, tree_page)),
                    Compared::Stop => return None,
                    Compared::Differs(_) | Compared::Gone => {}
                }
            }
        } else if let Some(r) = self.unstable_find(tree, sum, me) {
            match self.unstable_compare(r, page, nid) {
                Compared::Same(tmm, taddr, tree_page) => return Some((tmm, taddr, tree_page)),
                Compared::Stop => return None,
                // Its page is gone or cannot merge now: this page takes its place in the
                // bucket (it stays counted in `pages_unshared` until the scan reaches it).
                Compared::Gone => self.unstable_unlink(r, tree, sum),
                Compared::Differs(tree_page) => {
                    // Other contents, same checksum: from now on the pages of this checksum
                    // are told apart by their fingerprints.
                    let tf = page_fingerprint(&tree_page, &self.fp_key);
                    drop(tree_page);
                    if !self.collide_insert(r, tree, sum, tf, true) {
                        return None;
                    }
                    fp = Some(page_fingerprint(page, &self.fp_key));
                }
            }
        }
        let it = self.item_mut(mmk, addr)?;
        it.set_unstable(true);
        it.set_seq(seq);
        it.set_nid(tree_nid(tree));
        it.hash = sum;
        let inserted = match fp {
            Some(f) => self.collide_insert(me, tree, sum, f, false),
            None => self.unstable_link(me, tree, sum),
        };
        if !inserted {
            if let Some(it) = self.item_mut(mmk, addr) {
                it.set_node(ptr::null());
            }
            return None;
        }
        counter_inc(&COUNTERS.pages_unshared);
        None
    }
}

#[kunit_tests(ksm_rs_unstable)]
mod tests {
    use super::*;
    use crate::{item::MmItems, items::ItemMap};

    /// Fills `e` with `mms` address spaces of `pages` items each, all of checksum `hash`.
    fn fill(e: &mut Engine, mms: usize, pages: usize, hash: u32) -> Result {
        for m in 1..=mms {
            // Keys are only compared and looked up here: any distinct value will do.
            let mmk = m << 12;
            let id = e.ids.len() as u32;
            e.ids.push(mmk, GFP_KERNEL)?;
            // Each its own process domain.
            let d = Domains {
                cgroup: 1,
                process: m as u64,
            };
            e.doms.push(d, GFP_KERNEL)?;
            let mut items = ItemMap::new();
            for p in 0..pages {
                let mut it = Item::new();
                it.hash = hash;
                items.insert(p, it)?;
            }
            let node = RBTreeNode::new(
                mmk,
                MmItems {
                    mm: ptr::null_mut(),
                    id,
                    items,
                },
                GFP_KERNEL,
            )?;
            e.mms.insert(node);
        }
        Ok(())
    }

    /// The items of the unstable table with `(tree, hash)`, as (mm key, address).
    fn linked(e: &mut Engine, tree: Tree, hash: u32) -> Result<KVec<(usize, usize)>> {
        let mut out = KVec::new();
        let mut cur = e.unstable[bucket_of(tree, hash, e.unstable.len())];
        while cur != 0 {
            let it = Engine::item_at(&mut e.mms, &e.ids, cur - 1).ok_or(EINVAL)?;
            let link = it.link as u64;
            if item_tree(&e.doms, cur - 1, it) == tree && it.hash == hash {
                out.push(e.ref_addr(cur - 1).ok_or(EINVAL)?, GFP_KERNEL)?;
            }
            cur = link;
        }
        Ok(out)
    }

    #[test]
    fn unstable_table_links_through_items() -> Result {
        let mut e = Engine::new();
        e.start_scan();
        // 3 mms x 700 pages: more than twice the first 512 buckets, so the table grows.
        fill(&mut e, 3, 700, 0)?;
        for m in 1..=3usize {
            for p in 0..700usize {
                let (mmk, addr) = (m << 12, p << PAGE_SHIFT);
                // Two hashes, two trees.
                let hash = (p % 2) as u32 + 1;
                let tree = u64::from(p % 3 == 0);
                let r = e.item_ref(mmk, addr).ok_or(EINVAL)?;
                let seq = e.seq;
                let it = e.item_mut(mmk, addr).ok_or(EINVAL)?;
                it.set_unstable(true);
                it.set_seq(seq);
                it.set_nid(tree as u32);
                it.hash = hash;
                assert!(e.unstable_link(r, tree, hash));
            }
        }
        assert_eq!(e.unstable_len, 2100);
        assert!(2 * e.unstable.len() >= 2100 && e.unstable.len().is_power_of_two());
        // Every item is found under its own key, and only there.
        let mut total = 0;
        for (tree, hash) in [(0, 1), (0, 2), (1, 1), (1, 2)] {
            let l = linked(&mut e, tree, hash)?;
            for &(mmk, addr) in l.iter() {
                let p = addr >> PAGE_SHIFT;
                assert!((1..=3).contains(&(mmk >> 12)));
                assert_eq!((p % 2) as u32 + 1, hash);
                assert_eq!(u64::from(p % 3 == 0), tree);
            }
            total += l.len();
        }
        assert_eq!(total, 2100);
        // Unlinking: the head of a chain, the middle, the tail.
        let before = linked(&mut e, 1, 1)?;
        for &i in &[0, before.len() / 2, before.len() - 1] {
            let (mmk, addr) = before[i];
            let r = e.item_ref(mmk, addr).ok_or(EINVAL)?;
            e.unstable_unlink(r, 1, 1);
        }
        let after = linked(&mut e, 1, 1)?;
        assert_eq!(after.len(), before.len() - 3);
        assert!(!after.contains(&before[0]) && !after.contains(&before[before.len() - 1]));
        assert_eq!(e.unstable_len, 2097);
        // A new scan starts empty, with the table the last one needed ...
        let buckets = e.unstable.len();
        e.start_scan();
        assert_eq!(e.unstable_len, 0);
        assert_eq!(e.unstable.len(), buckets);
        assert!(e.unstable.iter().all(|&h| h == 0));
        // ... and a scan that needed far fewer buckets than there are leaves a smaller table.
        e.start_scan();
        assert_eq!(e.unstable.len(), MIN_BUCKETS);
        Ok(())
    }

    #[test]
    fn colliding_items_go_to_the_collision_tree() -> Result {
        let mut e = Engine::new();
        e.start_scan();
        fill(&mut e, 1, 4, 5)?;
        let mmk = 1 << 12;
        let mut refs = [0; 4];
        for (p, r) in refs.iter_mut().enumerate() {
            *r = e.item_ref(mmk, p << PAGE_SHIFT).ok_or(EINVAL)?;
            let seq = e.seq;
            let it = e.item_mut(mmk, p << PAGE_SHIFT).ok_or(EINVAL)?;
            it.set_unstable(true);
            it.set_seq(seq);
            it.set_nid(0);
        }
        // Item 0 is the bucket's one item of checksum 5, until item 1 turns out to differ:
        // both go to the collision tree, and so does item 2, whose contents are item 0's.
        assert!(e.unstable_link(refs[0], 0, 5));
        assert_eq!(e.unstable_find(0, 5, refs[3]), Some(refs[0]));
        assert_eq!(e.unstable_find(0, 5, refs[0]), None);
        assert!(e.collide_insert(refs[0], 0, 5, 11, true));
        assert!(e.collide_insert(refs[1], 0, 5, 22, false));
        assert!(e.collide_insert(refs[2], 0, 5, 11, false));
        assert_eq!(e.unstable_find(0, 5, refs[3]), None);
        assert_eq!(e.unstable_len, 0);
        let mut seen = KVec::new();
        let mut key = (0, 5, 11, 0);
        while let Some(k) = next_in_group(&e.collide, &key, |k| (k.0, k.1, k.2) == (0, 5, 11)) {
            seen.push(k.3, GFP_KERNEL)?;
            key.3 = k.3 + 1;
        }
        assert_eq!(&seen[..], &[refs[0], refs[2]]);
        // An item leaves the collision tree with its key, kept in the item.
        let it0 = e.item(mmk, 0).ok_or(EINVAL)?;
        assert!(it0.collide() && it0.link == 11 && it0.node().is_null());
        e.unstable_remove(refs[0], &it0);
        assert!(e.collide.get(&(0, 5, 11, refs[0])).is_none());
        assert!(e.collide.get(&(0, 5, 11, refs[2])).is_some());
        // A new scan starts with none.
        e.start_scan();
        assert!(e.collide.is_empty());
        Ok(())
    }

    #[test]
    fn pages_of_other_domains_are_not_found() -> Result {
        let scope = MERGE_SCOPE.load(Relaxed);
        let mut e = Engine::new();
        e.start_scan();
        // Two mms of the same cgroup, each its own process domain, with pages of checksum 9.
        fill(&mut e, 2, 1, 9)?;
        let (a, b) = (
            e.item_ref(1 << 12, 0).ok_or(EINVAL)?,
            e.item_ref(2 << 12, 0).ok_or(EINVAL)?,
        );
        for scope_now in [SCOPE_PROCESS, SCOPE_CGROUP] {
            MERGE_SCOPE.store(scope_now, Relaxed);
            e.start_scan();
            let (ta, tb) = (tree_of(0, e.dom_of(1 << 12)), tree_of(0, e.dom_of(2 << 12)));
            let seq = e.seq;
            let it = e.item_mut(1 << 12, 0).ok_or(EINVAL)?;
            it.set_unstable(true);
            it.set_seq(seq);
            it.set_nid(tree_nid(ta));
            assert!(e.unstable_link(a, ta, 9));
            // Only in its own domain: b finds a under `cgroup`, not under `process`.
            let found = e.unstable_find(tb, 9, b);
            assert_eq!(found.is_some(), scope_now == SCOPE_CGROUP);
            assert_eq!(e.unstable_find(ta, 9, b), Some(a));
            let it = e.item(1 << 12, 0).ok_or(EINVAL)?;
            e.unstable_remove(a, &it);
            assert_eq!(e.unstable_len, 0);
        }
        MERGE_SCOPE.store(scope, Relaxed);
        Ok(())
    }
}
