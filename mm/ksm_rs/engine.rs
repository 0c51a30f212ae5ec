// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The merge engine: what ksmd does with each page it scans (`cmp_and_merge_page`), and the
//! state that serves it.
//!
//! `mm/ksm.c` orders both trees by page contents, comparing whole pages (`memcmp`) at every
//! level of every search. Here both trees are keyed by a hash of the contents (64 bits of
//! `xxh64`, the function of `mm/ksm.c`'s checksum, with a random seed), so a search reads the
//! page once to hash it and once more only to confirm a candidate of equal hash. Equal contents
//! have equal hashes, so nothing that `mm/ksm.c` would merge is missed; pages of different
//! contents that share a hash (which anyone can make, seeded or not) are told apart by a keyed
//! fingerprint. The parts, one file each:
//!
//! - [`crate::item`]: the item of a tracked page (`struct ksm_rmap_item`), per address space in
//!   an address-ordered map ([`crate::items`]);
//! - [`crate::hash`]: the hash and the fingerprint of a page;
//! - [`crate::unstable`]: the unstable tree (a hash table of items, and a collision tree);
//! - [`crate::stable`]: the stable tree of KSM pages and its `max_page_sharing` chains;
//! - [`crate::merge`]: write-protecting pages, making KSM pages, replacing pages by them;
//! - [`crate::unmerge`]: breaking the sharing (`break_ksm`);
//! - [`crate::rmap`]: the reverse side, for reclaim, migration, swap-in, memory failure and
//!   hot-remove.
//!
//! # Cost
//!
//! Bounded whatever the page contents and however many sharers a KSM page has. Per scanned
//! page: one hash of the page; an item lookup in O(1) (the chunk of the last lookup) or
//! O(log m) for m tracked chunks; a stable tree search in O(log n) that compares the page with
//! at most two KSM pages and steps over at most [`crate::stable::SUBGROUP_VISITS`] nodes without
//! room (stale nodes are removed, each once); an unstable lookup of one bucket (two items on
//! average) or O(log c) in the collision tree, comparing the page with at most
//! [`crate::unstable::COLLIDE_CANDIDATES`] pages, each the only one for which another mm's mmap
//! lock is taken; at most two fingerprints. Merging a run of up to
//! [`crate::merge::MERGE_BATCH`] pages allocates nothing. A stable node's mappings are added,
//! removed and counted in O(1); an rmap walk is O(mappings). The chain counters cost O(log n).
//!
//! # Locking
//!
//! The engine belongs to ksmd's batch (the scanner mutex, `ksm_thread_mutex`). Merging takes
//! the mmap lock of the page's mm (read), then folio locks; a stable node's list of mappings is
//! changed and read only under its KSM folio's lock, which is also what the rmap walk's callers
//! hold.

use crate::{
    domain::{DomainCounts, Domains},
    hash::{checksum, hash_bytes, hash_page, Hash, ZEROES},
    item::{resolve, skip_age, Item, ItemRef, MmItems, AGE_MAX, REF_PAGE_BITS},
    items::ItemMap,
    merge::{merge_run, mergeable_vma, Target, MERGE_BATCH},
    stable::{folio_stable_node, lock_node_folio, SKey, StableNode},
    tunables::*,
    unstable::CKey,
};
use core::ptr;
use kernel::{
    bindings,
    mm::{
        folio::{Folio, PageRef},
        Mm, MmWithUser, MmWithUserAsync,
    },
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
    },
};

/// The merge engine's state.
pub(crate) struct Engine {
    pub(crate) mms: RBTree<usize, MmItems>,
    /// The mm key of each [`MmItems::id`] in use (0: free).
    pub(crate) ids: KVec<usize>,
    /// Ids free for reuse.
    pub(crate) free_ids: KVec<u32>,
    /// The domains of each [`MmItems::id`] in use (see [`crate::domain`]).
    pub(crate) doms: KVec<Domains>,
    /// The counts of each merge domain with stable nodes, by domain.
    pub(crate) domains: RBTree<u64, DomainCounts>,
    /// The unstable table's buckets: the first item (an [`ItemRef`] + 1) or 0; a power of two
    /// long, or empty.
    pub(crate) unstable: KVVec<ItemRef>,
    /// The number of items in the unstable table's buckets.
    pub(crate) unstable_len: usize,
    /// The most items the buckets held in this scan, to size the table for the next one.
    pub(crate) unstable_peak: usize,
    /// The unstable items whose checksum is that of an item of other contents, by
    /// `(tree, checksum, fingerprint, item)`: once two pages of one checksum turn out to differ,
    /// the pages of that checksum are told apart by their keyed [`fingerprint`], so that a
    /// search compares one page, not every page of the checksum. Emptied with the table.
    pub(crate) collide: RBTree<CKey, ()>,
    /// The stable tree; a node lives in its tree entry, which does not move while in the tree.
    pub(crate) stable: RBTree<SKey, StableNode>,
    /// Room for the page references of a run of [`merge_run`] (empty between runs).
    pub(crate) run_pages: KVec<PageRef>,
    /// The full scan count, modulo 256 (`ksm_scan.seqnr`).
    pub(crate) seq: u8,
    /// The sweep of the stable tree for stale duplicates of chains (see
    /// [`Engine::prune_chains`]): where it is, or `None` between sweeps.
    pub(crate) prune_at: Option<SKey>,
    /// When the last sweep ended (jiffies).
    pub(crate) pruned: usize,
    pub(crate) next_id: u64,
    /// The seed of the content hash: random, drawn when the engine is created (at boot), so
    /// that which contents share a hash cannot be known, nor chosen, outside the kernel.
    /// `mm/ksm.c`'s checksum has seed 0: its trees are ordered by the contents.
    pub(crate) seed: u64,
    /// The key of [`fingerprint`], random as `seed`.
    pub(crate) fp_key: bindings::siphash_key_t,
    pub(crate) zero_hash: Hash,
}

// SAFETY: The raw pointers are to mm_structs, anon_vmas and stable nodes, used under the
// scanner lock that owns the engine.
unsafe impl Send for Engine {}

/// Returns the first key at or after `from` in `tree`, if it is in the same group as `from`
/// (`same`): how the trees' entries of one hash (and tree) are visited, one by one, while the
/// tree may change between visits.
pub(crate) fn next_in_group<K: Ord + Copy, V>(
    tree: &RBTree<K, V>,
    from: &K,
    same: impl Fn(&K) -> bool,
) -> Option<K> {
    let c = tree.cursor_lower_bound(from)?;
    let k = *c.current().0;
    same(&k).then_some(k)
}

/// The key of an mm in the engine and the registry.
pub(crate) fn mm_key(mm: &Mm) -> usize {
    mm.as_raw() as usize
}

/// Adds `delta` to one of the `unsigned long` KSM counters of `mm`.
pub(crate) fn mm_add(mm: *mut bindings::mm_struct, rmap_items: isize, merging: isize) {
    // SAFETY: `mm` is kept allocated by its registry slot while it has items; C updates these
    // counters without locks too (ksmd is their only writer).
    unsafe {
        let m = &mut (*mm).__bindgen_anon_1;
        m.ksm_rmap_items = m.ksm_rmap_items.wrapping_add_signed(rmap_items);
        m.ksm_merging_pages = m.ksm_merging_pages.wrapping_add_signed(merging);
    }
}

pub(crate) fn counter_dec(c: &Atomic<u64>) {
    c.fetch_sub(1, Relaxed);
}

pub(crate) fn counter_inc(c: &Atomic<u64>) {
    c.fetch_add(1, Relaxed);
}

impl Engine {
    /// Creates an empty engine.
    pub(crate) fn new() -> Self {
        // SAFETY: May be called in any context; before the random pool is initialised it still
        // returns a value, only not one of full entropy.
        let seed = unsafe { bindings::get_random_u64() };
        // SAFETY: As above.
        let fp_key = unsafe {
            bindings::siphash_key_t {
                key: [bindings::get_random_u64(), bindings::get_random_u64()],
            }
        };
        Self {
            mms: RBTree::new(),
            ids: KVec::new(),
            free_ids: KVec::new(),
            doms: KVec::new(),
            domains: RBTree::new(),
            unstable: KVVec::new(),
            unstable_len: 0,
            unstable_peak: 0,
            collide: RBTree::new(),
            stable: RBTree::new(),
            run_pages: KVec::new(),
            seq: 0,
            prune_at: None,
            pruned: 0,
            next_id: 0,
            seed,
            fp_key,
            zero_hash: hash_bytes(&ZEROES, seed),
        }
    }

    /// Starts a full scan: the unstable tree starts empty (`root_unstable_tree[nid] = RB_ROOT`).
    /// The items still linked carry the old `seq`, which tells they are not in it any more.
    pub(crate) fn start_scan(&mut self) {
        self.unstable_clear();
        self.seq = self.seq.wrapping_add(1);
    }

    /// The item an [`ItemRef`] names.
    pub(crate) fn item_at<'a>(
        mms: &'a mut RBTree<usize, MmItems>,
        ids: &[usize],
        r: ItemRef,
    ) -> Option<&'a mut Item> {
        let (mmk, page) = resolve(ids, r)?;
        mms.get_mut(&mmk)?.items.get_mut(page)
    }

    /// The [`ItemRef`] of the page at `addr` of `mmk`.
    pub(crate) fn item_ref(&self, mmk: usize, addr: usize) -> Option<ItemRef> {
        let id = self.mms.get(&mmk)?.id;
        Some((u64::from(id) << REF_PAGE_BITS) | (addr >> PAGE_SHIFT) as u64)
    }

    /// The mm key and address an [`ItemRef`] names.
    pub(crate) fn ref_addr(&self, r: ItemRef) -> Option<(usize, usize)> {
        resolve(&self.ids, r).map(|(mmk, page)| (mmk, page << PAGE_SHIFT))
    }

    /// Whether `mm` has tracked pages.
    pub(crate) fn has_items(&self, mmk: usize) -> bool {
        self.mms.get(&mmk).is_some_and(|m| !m.items.is_empty())
    }

    pub(crate) fn item_mut(&mut self, mmk: usize, addr: usize) -> Option<&mut Item> {
        self.mms.get_mut(&mmk)?.items.get_mut(addr >> PAGE_SHIFT)
    }

    pub(crate) fn item(&mut self, mmk: usize, addr: usize) -> Option<Item> {
        self.item_mut(mmk, addr).map(|i| *i)
    }

    pub(crate) fn mm_ptr(&self, mmk: usize) -> Option<*mut bindings::mm_struct> {
        self.mms.get(&mmk).map(|m| m.mm)
    }

    /// Takes a user reference on a tracked mm, unless it is exiting.
    pub(crate) fn mm_user(&self, mmk: usize) -> Option<ARef<MmWithUserAsync>> {
        let mm = self.mm_ptr(mmk)?;
        // SAFETY: The mm is kept allocated by its registry slot while it has items.
        let mm = unsafe { Mm::from_raw(mm) };
        mm.mmget_not_zero().map(MmWithUser::into_mmput_async)
    }

    /// The merge domain of the current `merge_scope` of the mm of id `id` (see
    /// [`crate::domain`]).
    pub(crate) fn dom_of_id(doms: &[Domains], id: u64) -> u64 {
        doms.get(id as usize).map_or(0, Domains::current)
    }

    /// The merge domain of tracked mm `mmk`: 0 at the default scope (`global`), without a
    /// lookup.
    pub(crate) fn dom_of(&self, mmk: usize) -> u64 {
        if MERGE_SCOPE.load(Relaxed) == SCOPE_GLOBAL {
            return 0;
        }
        self.mms
            .get(&mmk)
            .map_or(0, |m| Self::dom_of_id(&self.doms, u64::from(m.id)))
    }

    /// Returns the item for `addr` of `mm`, creating it (`get_next_rmap_item`); `domains` gives
    /// the mm's merge domains, should it have no item yet.
    pub(crate) fn get_or_create_item(
        &mut self,
        mm: &Mm,
        addr: usize,
        domains: impl FnOnce() -> Domains,
    ) -> Result {
        let mmk = mm_key(mm);
        if self.mms.get(&mmk).is_none() {
            let node = RBTreeNodeReservation::new(crate::scan_gfp())?;
            let id = match self.free_ids.pop() {
                Some(id) => id,
                None => {
                    let id = self.ids.len();
                    if id >> (u64::BITS - REF_PAGE_BITS) != 0 {
                        return Err(ENOMEM);
                    }
                    self.ids.reserve(1, crate::scan_gfp())?;
                    self.doms.reserve(1, crate::scan_gfp())?;
                    self.ids.push(0, crate::scan_gfp())?;
                    self.doms.push(Domains::default(), crate::scan_gfp())?;
                    id as u32
                }
            };
            self.ids[id as usize] = mmk;
            self.doms[id as usize] = domains();
            self.mms.insert(node.into_node(
                mmk,
                MmItems {
                    mm: mm.as_raw(),
                    id,
                    items: ItemMap::new(),
                },
            ));
        }
        if self.item_mut(mmk, addr).is_some() {
            return Ok(());
        }
        let m = self.mms.get_mut(&mmk).ok_or(EINVAL)?;
        m.items.insert(addr >> PAGE_SHIFT, Item::new())?;
        mm_add(m.mm, 1, 0);
        counter_inc(&COUNTERS.rmap_items);
        Ok(())
    }

    /// Frees the items of `mm` in `[start, end)` (addresses the scan found unmapped, or all of
    /// an exiting mm's).
    pub(crate) fn remove_items(&mut self, mmk: usize, start: usize, end: usize) {
        let (ps, pe) = (start >> PAGE_SHIFT, end.div_ceil(PAGE_SIZE));
        if ps >= pe {
            return;
        }
        // First out of the trees, one by one ...
        let mut from = ps;
        while let Some(page) = self.mms.get(&mmk).and_then(|m| m.items.first_in(from, pe)) {
            self.remove_from_tree(mmk, page << PAGE_SHIFT);
            from = page + 1;
            kernel::task::cond_resched();
        }
        // ... then out of the map, a chunk at a time.
        let Some(m) = self.mms.get_mut(&mmk) else {
            return;
        };
        let n = m.items.remove_range(ps, pe);
        mm_add(m.mm, -(n as isize), 0);
        COUNTERS.rmap_items.fetch_sub(n as u64, Relaxed);
        if m.items.is_empty() {
            if let Some(m) = self.mms.remove(&mmk) {
                self.ids[m.id as usize] = 0;
                // Should there be no memory for it, the id is not used again.
                let _ = self.free_ids.push(m.id, crate::scan_gfp());
            }
        }
    }

    /// Takes an item out of the stable or unstable tree (`remove_rmap_item_from_tree`).
    ///
    /// O(1) in the number of mappings of its KSM page: the item knows the index of its mapping
    /// in the node's list, and the last mapping takes its place.
    pub(crate) fn remove_from_tree(&mut self, mmk: usize, addr: usize) {
        let Some(item) = self.item(mmk, addr) else {
            return;
        };
        let node = item.node();
        if !node.is_null() {
            // SAFETY: An item's node stays allocated while the item points to it.
            let node = unsafe { &*node };
            self.stable_remove(mmk, addr, &item, node);
        } else if item.unstable() {
            if let Some(r) = self.item_ref(mmk, addr) {
                self.unstable_remove(r, &item);
            }
            counter_dec(&COUNTERS.pages_unshared);
            if let Some(it) = self.item_mut(mmk, addr) {
                it.set_node(ptr::null());
            }
        }
    }

    /// Smart scan: whether to skip the page this time (`should_skip_rmap_item`).
    pub(crate) fn should_skip(&mut self, mmk: usize, addr: usize, folio: &Folio) -> bool {
        if !SMART_SCAN.load(Relaxed) || folio.test_ksm() {
            return false;
        }
        let Some(it) = self.item_mut(mmk, addr) else {
            return false;
        };
        let age = it.age();
        if age < AGE_MAX {
            it.set_age(age + 1);
        }
        if age < 3 {
            return false;
        }
        if it.skips() == 0 {
            it.set_skips(skip_age(age));
            return false;
        }
        it.set_skips(it.skips() - 1);
        counter_inc(&COUNTERS.pages_skipped);
        self.remove_from_tree(mmk, addr);
        true
    }

    /// Tries to merge a scanned page (`cmp_and_merge_page`); `page` is the only reference the
    /// scan holds, as in `mm/ksm.c`.
    pub(crate) fn cmp_and_merge(&mut self, mm: &MmWithUser, addr: usize, mut page: PageRef) {
        let mmk = mm_key(mm);
        let Some(item) = self.item(mmk, addr) else {
            return;
        };
        let mut cur = folio_stable_node(page.folio());
        let mut bypass = false;
        let hash;
        if !cur.is_null() {
            // The item (read before) is the page's mapping of its KSM page: if the node moved,
            // it moved with it.
            if ptr::eq(item.node(), cur) {
                self.follow_migration(&page, cur);
                return;
            }
            cur = self.follow_migration(&page, cur);
            // SAFETY: The folio maps the node and we hold a reference on the folio.
            let node = unsafe { &*cur };
            // A forked KSM page may go over the sharing limit.
            bypass = node.len.load(Relaxed) >= MAX_PAGE_SHARING.load(Relaxed) as u32;
            hash = node.key.1;
        } else {
            self.remove_from_tree(mmk, addr);
            self.prune_chains();
            let h = hash_page(&page, self.seed);
            let Some(it) = self.item_mut(mmk, addr) else {
                return;
            };
            let changed = !it.hashed() || it.hash != checksum(h);
            it.hash = checksum(h);
            it.set_hashed(true);
            // A page whose contents changed since the last scan is volatile: not a candidate.
            if changed {
                return;
            }
            if USE_ZERO_PAGES.load(Relaxed) && h == self.zero_hash {
                // Same hash as an empty page: try the zero page (`try_to_merge_with_zero_page`).
                if page.split_folio().is_err() {
                    return;
                }
                let guard = mm.mmap_read_lock();
                match mergeable_vma(&guard, addr) {
                    // The VMA went away: nothing to merge.
                    None => return,
                    Some(vma) => {
                        let zero = &Target::Zero;
                        let merged = merge_run(vma, addr, &page, zero, 1, 0, &mut self.run_pages)
                            .unwrap_or(0);
                        drop(guard);
                        self.trace_merges(mmk, addr, &page, zero, merged);
                        if merged != 0 {
                            return;
                        }
                    }
                }
            }
            hash = h;
        }

        // First the stable tree.
        let dom = self.dom_of(mmk);
        if let Some((kfolio, node)) = self.stable_search(&page, hash, bypass, dom) {
            let item_node = self.item(mmk, addr).map_or(ptr::null(), |i| i.node());
            if ptr::eq(kfolio.as_raw(), page.folio().as_raw()) && ptr::eq(item_node, node) {
                return;
            }
            self.remove_from_tree(mmk, addr);
            // SAFETY: The node is alive while its folio (referenced) points to it.
            let n = unsafe { &*node };
            // The run may fill the node up to `max_page_sharing`; a forked KSM page over the
            // limit (`bypass`) goes alone.
            let room = (MAX_PAGE_SHARING.load(Relaxed) as usize)
                .saturating_sub(n.len.load(Relaxed) as usize);
            let max = if bypass {
                1
            } else {
                room.clamp(1, MERGE_BATCH)
            };
            let more = self.run_candidates(mmk, addr, hash, max);
            // At most the pages `more` allows, which are contiguous from the scanned one.
            let max = 1 + more.count_ones() as usize;
            if page.split_folio().is_err() {
                return;
            }
            // Room in the node's list before merging, so that listing cannot fail. The list
            // grows by doubling: the folio lock is taken for it only now and then.
            // SAFETY: We are the engine.
            if unsafe { n.spare() } < max {
                let Some(g) = lock_node_folio(n, &kfolio) else {
                    return;
                };
                // SAFETY: We hold the KSM folio's lock.
                if unsafe { n.maps() }.reserve(max, crate::scan_gfp()).is_err() {
                    return;
                }
                drop(g);
            }
            let merged = self.merge_item(mm, addr, &page, &Target::Ksm(&kfolio), max, more);
            if merged.mask == 0 {
                return;
            }
            match lock_node_folio(n, &kfolio) {
                Some(g) => {
                    for (a, pgoff) in merged.pages() {
                        self.append(&g, node, mmk, a, pgoff, merged.anon_vma);
                    }
                }
                None => {
                    for (a, _) in merged.pages() {
                        self.break_cow(mmk, a, merged.anon_vma);
                    }
                }
            }
            return;
        }
        self.remove_from_tree(mmk, addr);

        // Then the unstable tree.
        let Some((tmm, taddr, mut tree_page)) =
            self.unstable_search_insert(mmk, addr, &page, hash, dom)
        else {
            return;
        };
        let tmmk = mm_key(&tmm);
        if ptr::eq(tree_page.folio(), page.folio()) {
            // Two pages of one large folio (the `split` case of `cmp_and_merge_page()`): neither
            // can be split while the other is referenced. Split it now, merge them next time.
            drop(tree_page);
            let _ = page.split_folio();
            return;
        }
        if page.split_folio().is_err() || tree_page.split_folio().is_err() {
            return;
        }
        if MERGE_FRESH_FRAME.load(Relaxed) {
            // Both pages go to a copy in a new frame (`merge_fresh_frame`).
            self.merge_fresh(mm, addr, &page, &tmm, taddr, tree_page);
            return;
        }
        // Make this page a KSM page, then map the tree page's address to it.
        let m = self.merge_item(mm, addr, &page, &Target::NewKsm, 1, 0);
        if m.mask == 0 {
            return;
        }
        let tm = self.merge_item(&tmm, taddr, &tree_page, &Target::Ksm(page.folio()), 1, 0);
        if tm.mask == 0 {
            // A KSM page with a single mapping: break it.
            self.break_cow(mmk, addr, m.anon_vma);
            return;
        }
        drop(tree_page);
        // The key is the hash of the KSM page as it is now, write-protected everywhere: `hash`
        // was taken before, and the page may have changed (in step with the tree page) since.
        let hash = hash_page(&page, self.seed);
        let kfolio = page.folio().lock();
        match self.stable_insert(&kfolio, hash, dom) {
            Some(node) => {
                self.append(&kfolio, node, tmmk, taddr, tm.pgoff, tm.anon_vma);
                self.append(&kfolio, node, mmk, addr, m.pgoff, m.anon_vma);
                drop(kfolio);
            }
            None => {
                drop(kfolio);
                self.break_cow(tmmk, taddr, tm.anon_vma);
                self.break_cow(mmk, addr, m.anon_vma);
            }
        }
    }
}
