// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The stable tree and its chains: one [`StableNode`] per KSM page (`struct ksm_stable_node`).
//!
//! Keyed by `(tree, hash, fingerprint, id)`: the nodes of the first contents of a
//! `(tree, hash)` group have fingerprint 0, those of other contents with the same hash the
//! keyed fingerprint of their page, so that each `(tree, hash, fingerprint)` subgroup has one
//! contents. Within a subgroup, ids count down: the newest node first. Nodes of equal contents
//! are a `max_page_sharing` chain (`stable_node_chains`, `stable_node_dups`).
//!
//! A KSM folio points to its node from `folio->mapping` with `FOLIO_MAPPING_KSM`; the node is
//! freed only once its folio no longer points to it (the "keyhole" of `ksm_get_folio()`,
//! [`node_folio`]). The node lists the page's mappings; an item keeps the index of its mapping,
//! so that adding, removing and counting one is O(1).
//!
//! Cost: a search is O(log n) and compares the page with at most two KSM pages (one per
//! subgroup), stepping over at most [`SUBGROUP_VISITS`] nodes without room.
//!
//! # Locking
//!
//! The tree belongs to ksmd's batch (the scanner mutex). A node's list of mappings is changed
//! and read only under its KSM folio's lock, which [`crate::rmap::rmap_walk`]'s callers hold;
//! `kpfn` changes under that lock too, by migration, and is read with acquire ordering.

use crate::{
    domain::{retree, tree_of, Tree},
    engine::{counter_dec, counter_inc, mm_add, next_in_group, Engine},
    hash::{checksum, folio_fingerprint, page_fingerprint, Hash},
    item::Item,
    merge::identical,
    trace,
    tunables::*,
};
use core::{cell::UnsafeCell, ptr};
use kernel::{
    alloc::KVVec,
    bindings,
    mm::folio::{Folio, FolioLockGuard, PageRef},
    prelude::*,
    rbtree::RBTreeNode,
    sync::{
        aref::ARef,
        atomic::{Acquire, Atomic, Relaxed},
    },
    time::msecs_to_jiffies,
};

/// Key of the stable tree: (tree, content hash, fingerprint, node id); see [`StableNode::key`].
pub(crate) type SKey = (Tree, Hash, u64, u64);

/// One mapping of a KSM page (the stable side of `struct ksm_rmap_item`).
#[derive(Clone, Copy)]
pub(crate) struct Mapping {
    /// The address space (its key), to tell the mapping from forks of it in an rmap walk.
    pub(crate) mm: usize,
    /// The user address.
    pub(crate) addr: usize,
    /// The page offset of `addr` in its VMA (`linear_page_index()`): where an rmap walk looks
    /// in the anon_vma's interval tree for the VMAs that may map the page, rather than at every
    /// VMA of the anon_vma.
    pub(crate) pgoff: usize,
    /// The VMA's anon_vma, referenced (`get_anon_vma`) while the mapping is listed.
    pub(crate) anon_vma: *mut bindings::anon_vma,
}

/// A KSM page (`struct ksm_stable_node`).
pub(crate) struct StableNode {
    /// The page frame of the KSM folio; changed by migration (`folio_migrate_ksm`).
    pub(crate) kpfn: Atomic<usize>,
    /// The node's key in the stable tree: `(tree, hash, fingerprint, id)`. The fingerprint is 0
    /// for the nodes of the first contents of a `(tree, hash)` group; nodes of other contents
    /// with the same hash get the keyed [`fingerprint`] of their page, so that the nodes of one
    /// contents are next to each other and found in O(log n). Ids count down: newest first.
    pub(crate) key: SKey,
    /// The number of mappings, readable without the folio lock (`rmap_hlist_len`).
    pub(crate) len: Atomic<u32>,
    /// The node's contents class in its `(tree, hash, fingerprint)` subgroup: nodes of equal
    /// contents (a chain of `max_page_sharing` duplicates) have the same class, nodes whose
    /// contents only have the same hash and fingerprint (never seen: 2^-64 per pair) have
    /// different classes. Set at insertion, never changed.
    class: u32,
    /// The mappings. Only accessed under the KSM folio's lock. `kvmalloc`ed: with
    /// `max_page_sharing` raised, a KSM page may have hundreds of thousands of mappings, more
    /// than `kmalloc` can reliably give in one piece.
    maps: UnsafeCell<KVVec<Mapping>>,
}

// SAFETY: `maps` is only accessed under the folio lock of the KSM folio (see the accessors);
// the other fields are atomics or immutable.
unsafe impl Sync for StableNode {}

// SAFETY: As above; the raw anon_vma pointers are references that may be dropped anywhere.
unsafe impl Send for StableNode {}

impl StableNode {
    /// The `folio->mapping` word of a KSM folio that points to this node.
    fn mapping_word(&self) -> usize {
        ptr::from_ref(self) as usize | bindings::FOLIO_MAPPING_KSM as usize
    }

    /// The mappings.
    ///
    /// # Safety
    ///
    /// The caller holds the KSM folio's lock, or the node is unreachable from any folio.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn maps(&self) -> &mut KVVec<Mapping> {
        // SAFETY: The folio lock serialises all access (safety requirement).
        unsafe { &mut *self.maps.get() }
    }

    /// The mappings, to read them.
    ///
    /// # Safety
    ///
    /// The caller holds the KSM folio's lock, or is the engine (which alone changes the list,
    /// under that lock).
    pub(crate) unsafe fn maps_ref(&self) -> &KVVec<Mapping> {
        // SAFETY: Nobody changes the list meanwhile (safety requirement); others only read it.
        unsafe { &*self.maps.get() }
    }

    /// How many more mappings the list holds without allocating.
    ///
    /// # Safety
    ///
    /// As [`StableNode::maps_ref`].
    pub(crate) unsafe fn spare(&self) -> usize {
        // SAFETY: Upheld by the caller.
        let maps = unsafe { self.maps_ref() };
        maps.capacity() - maps.len()
    }
}

/// Returns the stable node of a KSM folio (`folio_stable_node`): null for a KSM folio that is
/// still being set up, and for other folios.
pub(crate) fn folio_stable_node(folio: &Folio) -> *const StableNode {
    let word = folio.mapping_word();
    if word & bindings::FOLIO_MAPPING_FLAGS as usize != bindings::FOLIO_MAPPING_KSM as usize {
        return ptr::null();
    }
    (word & !(bindings::FOLIO_MAPPING_FLAGS as usize)) as *const StableNode
}

/// How `stable_node_chains` and `stable_node_dups` change when a group of stable nodes with
/// equal contents grew to (`added`) or shrank to `len` nodes: a group of two or more is a chain
/// whose nodes are all dups.
fn chain_delta(len: usize, added: bool) -> (i64, i64) {
    match (added, len) {
        (true, 2) => (1, 2),
        (true, n) if n > 2 => (0, 1),
        (false, 1) => (-1, -2),
        (false, n) if n >= 2 => (0, -1),
        _ => (0, 0),
    }
}

/// Takes a reference on the folio of a stable node, if it still is the node's
/// (`ksm_get_folio(KSM_GET_FOLIO_NOLOCK)`); `None` means the node is stale. The folio is looked
/// at through the "keyhole" of its `mapping`: freeing a KSM folio resets it, so a folio that
/// still points to the node is the node's.
pub(crate) fn node_folio(node: &StableNode) -> Option<ARef<Folio>> {
    let expected = node.mapping_word();
    loop {
        let kpfn = node.kpfn.load(Acquire);
        // SAFETY: `kpfn` was the frame of a folio and memory going offline removes the nodes
        // that point into it first (`Engine::remove_nodes_in_range`).
        let folio = unsafe { Folio::from_pfn(kpfn) };
        if folio.mapping_word() == expected {
            // A zero count usually means free (the node is stale), but a swap-cache folio may
            // have its count frozen for a moment while still ours: wait for that one.
            let got = loop {
                if let Some(f) = folio.try_get() {
                    break Some(f);
                }
                if !folio.test_swapcache() {
                    break None;
                }
                core::hint::spin_loop();
            };
            if let Some(f) = got {
                if f.mapping_word() == expected {
                    return Some(f);
                }
            }
        }
        // Stale, unless migration moved the node to a new folio meanwhile (the `smp_rmb()` of
        // `ksm_get_folio()`: the acquire load pairs with `migrate()`'s release store).
        if node.kpfn.load(Acquire) == kpfn {
            return None;
        }
    }
}

/// Locks `folio`, a folio of a stable node, and checks it still is the node's.
pub(crate) fn lock_node_folio<'a>(
    node: &StableNode,
    folio: &'a Folio,
) -> Option<FolioLockGuard<'a>> {
    let guard = folio.lock();
    (guard.mapping_word() == node.mapping_word()).then_some(guard)
}

/// Runs `f` with the folio of a stable node locked (`ksm_get_folio(KSM_GET_FOLIO_LOCK)`);
/// `None` means the node is stale: its KSM page is gone.
///
/// `folio_lock()` may sleep while the folio migrates: `folio_migrate_ksm()` then moves the node
/// to the new folio, and the old one, once unlocked, no longer points to it. That node is not
/// stale: as the `stale:` label of `ksm_get_folio()`, look again at the frame the node now
/// names.
fn with_node_locked<R>(node: &StableNode, f: impl FnOnce(&FolioLockGuard<'_>) -> R) -> Option<R> {
    loop {
        let kfolio = node_folio(node)?;
        let kpfn = kfolio.pfn();
        if let Some(g) = lock_node_folio(node, &kfolio) {
            return Some(f(&g));
        }
        // The acquire load pairs with `migrate()`'s release store of the new frame, which comes
        // before the old folio (whose lock we held) stopped pointing to the node.
        if node.kpfn.load(Acquire) == kpfn {
            return None;
        }
    }
}

/// The most nodes without room [`Engine::subgroup_search`] steps over.
pub(crate) const SUBGROUP_VISITS: usize = 16;

/// The most nodes a search sweeps for stale duplicates of chains ([`Engine::prune_chains`]).
pub(crate) const PRUNE_BATCH: usize = 16;

/// The time in jiffies.
fn jiffies() -> usize {
    // SAFETY: `jiffies` is always readable, and a `usize` is read whole.
    unsafe { ptr::addr_of!(bindings::jiffies).read_volatile() }
}

impl Engine {
    /// Takes the merged item at `addr` of `mmk` (whose value is `item`) out of its stable node's
    /// list of mappings (the stable half of `remove_rmap_item_from_tree`).
    ///
    /// O(1) in the number of mappings of its KSM page: the item knows the index of its mapping
    /// in the node's list, and the last mapping takes its place.
    pub(crate) fn stable_remove(
        &mut self,
        mmk: usize,
        addr: usize,
        item: &Item,
        node: &StableNode,
    ) {
        let slot = item.hash as usize;
        let locked = with_node_locked(node, |_guard| {
            // SAFETY: We hold the KSM folio's lock.
            let maps = unsafe { node.maps() };
            let at = |m: &Mapping| m.mm == mmk && m.addr == addr;
            // Not at its index cannot happen; if it did, a search would find it.
            let i = match maps.get(slot) {
                Some(m) if at(m) => Some(slot),
                _ => maps.iter().position(at),
            };
            let removed = i.and_then(|i| {
                let last = maps.pop()?;
                if i == maps.len() {
                    return Some((last, None));
                }
                Some((core::mem::replace(&mut maps[i], last), Some((last, i))))
            });
            node.len.store(maps.len() as u32, Relaxed);
            (removed, maps.is_empty())
        });
        let Some((removed, empty)) = locked else {
            // The KSM page is gone: drop the node, which resets this item too.
            self.remove_node(node.key);
            return;
        };
        if let Some(it) = self.item_mut(mmk, addr) {
            it.set_node(ptr::null());
            it.hash = checksum(node.key.1);
        }
        let Some((m, moved)) = removed else {
            // Not listed (cannot happen): keep the counts as they are.
            return;
        };
        // The last mapping moved to the freed index: tell its item.
        if let Some((last, i)) = moved {
            if let Some(it) = self.item_mut(last.mm, last.addr) {
                if ptr::eq(it.node(), node) {
                    it.hash = i as u32;
                }
            }
        }
        if empty {
            counter_dec(&COUNTERS.pages_shared);
        } else {
            counter_dec(&COUNTERS.pages_sharing);
        }
        self.domain_mapping(node.key.0, empty, false);
        if let Some(mm) = self.mm_ptr(mmk) {
            mm_add(mm, 0, -1);
        }
        // SAFETY: The mapping held this reference.
        unsafe { bindings::put_anon_vma(m.anon_vma) };
    }

    /// Counts the stable nodes of one contents class in a `(tree, hash, fingerprint)` subgroup
    /// (a chain when more than one), up to `max`. Nodes of other classes (never seen: their
    /// contents would share a 64-bit hash and a 64-bit keyed fingerprint) are stepped over: the
    /// cost is O(`max` log n), whatever the length of the chain (`max_page_sharing=2` makes one
    /// duplicate per two mappings).
    fn group_len(&self, sub: (Tree, Hash, u64), class: u32, max: usize) -> usize {
        let mut n = 0;
        let mut key = (sub.0, sub.1, sub.2, 0);
        while n < max {
            let Some(k) = next_in_group(&self.stable, &key, |k| (k.0, k.1, k.2) == sub) else {
                break;
            };
            if self.stable.get(&k).is_some_and(|node| node.class == class) {
                n += 1;
            }
            key.3 = k.3 + 1;
        }
        n
    }

    /// The fingerprint (see [`StableNode::key`]) and contents class (see [`StableNode::class`])
    /// of a new KSM page `kfolio` of group `(tree, hash)`.
    ///
    /// The nodes of fingerprint 0 have one contents, that of the first KSM page of the group:
    /// one comparison with the newest of them tells whether `kfolio` joins them. Otherwise, if
    /// the group has other nodes, `kfolio` is fingerprinted, and its class is that of a node of
    /// the same contents in its subgroup (the newest is looked at first, and a new KSM page that
    /// joins a chain has the contents of its newest node), else one that no node there has.
    /// Stale nodes met on the way are removed.
    fn classify(&mut self, tree: Tree, hash: Hash, kfolio: &Folio) -> (u64, u32) {
        let mut key = (tree, hash, 0, 0);
        while let Some(k) =
            next_in_group(&self.stable, &key, |k| (k.0, k.1, k.2) == (tree, hash, 0))
        {
            key.3 = k.3 + 1;
            let Some(node) = self.stable.get(&k) else {
                break;
            };
            match node_folio(node) {
                None => self.remove_node(k),
                Some(f) if kfolio.page_eq(0, &f, 0) => return (0, node.class),
                Some(_) => break,
            }
        }
        let same = |k: &SKey| k.0 == tree && k.1 == hash;
        if next_in_group(&self.stable, &(tree, hash, 0, 0), same).is_none() {
            // The first KSM page of the group.
            return (0, 0);
        }
        let fp = folio_fingerprint(kfolio, &self.fp_key);
        let mut key = (tree, hash, fp, 0);
        let mut unused = 0;
        while let Some(k) =
            next_in_group(&self.stable, &key, |k| (k.0, k.1, k.2) == (tree, hash, fp))
        {
            key.3 = k.3 + 1;
            let Some(node) = self.stable.get(&k) else {
                break;
            };
            unused = unused.max(node.class.saturating_add(1));
            match node_folio(node) {
                // Stale: its KSM page is gone, and so is the node, once.
                None => self.remove_node(k),
                Some(f) if kfolio.page_eq(0, &f, 0) => return (fp, node.class),
                Some(_) => {}
            }
        }
        (fp, unused)
    }

    /// Removes a stale stable node (its folio is gone) and resets the items that pointed to it
    /// (`remove_node_from_stable_tree`).
    pub(crate) fn remove_node(&mut self, key: SKey) {
        // The address the items point to: the node's in the tree, before it moves out.
        let Some(p) = self.stable.get(&key).map(ptr::from_ref::<StableNode>) else {
            return;
        };
        let Some(node) = self.stable.remove(&key) else {
            return;
        };
        // SAFETY: The node is out of the tree and no folio points to it any more.
        let maps = unsafe { node.maps() };
        let kpfn = node.kpfn.load(Relaxed);
        let traced = trace::remove_rmap_item_enabled();
        for (i, m) in maps.iter().enumerate() {
            self.domain_mapping(key.0, i == 0, false);
            if i == 0 {
                counter_dec(&COUNTERS.pages_shared);
            } else {
                counter_dec(&COUNTERS.pages_sharing);
                if traced {
                    let item = self.item_ref(m.mm, m.addr).unwrap_or(0);
                    trace::remove_rmap_item(kpfn, item, m.mm as *mut bindings::mm_struct);
                }
            }
            if let Some(mm) = self.mm_ptr(m.mm) {
                mm_add(mm, 0, -1);
            }
            // SAFETY: The mapping held this reference.
            unsafe { bindings::put_anon_vma(m.anon_vma) };
            if let Some(it) = self.item_mut(m.mm, m.addr) {
                if ptr::eq(it.node(), p) {
                    it.set_node(ptr::null());
                    it.hash = checksum(key.1);
                }
            }
        }
        trace::remove_ksm_page(kpfn);
        self.domain_node_removed(key.0);
        self.chain_changed((key.0, key.1, key.2), node.class, false);
        drop(node);
    }

    /// Updates the chain counters after a node of contents class `class` joined (`added`) or
    /// left the subgroup `sub`.
    fn chain_changed(&self, sub: (Tree, Hash, u64), class: u32, added: bool) {
        // `chain_delta` tells 0, 1, 2 and more than 2 nodes apart: count up to 3.
        let (chains, dups) = chain_delta(self.group_len(sub, class, 3), added);
        COUNTERS
            .stable_node_chains
            .fetch_add(chains as u64, Relaxed);
        COUNTERS.stable_node_dups.fetch_add(dups as u64, Relaxed);
    }

    /// Makes the locked KSM folio `kfolio` a KSM page of the stable tree of merge domain `dom`
    /// (`stable_tree_insert`).
    pub(crate) fn stable_insert(
        &mut self,
        kfolio: &FolioLockGuard<'_>,
        hash: Hash,
        dom: u64,
    ) -> Option<*const StableNode> {
        let tree = tree_of(kfolio.nid(), dom);
        let (fp, class) = self.classify(tree, hash, kfolio);
        // Ids count down, so that a subgroup is visited newest first.
        let key = (tree, hash, fp, (u64::MAX >> 1) - self.next_id);
        let maps = KVVec::with_capacity(2, crate::scan_gfp()).ok()?;
        let entry = RBTreeNode::new(
            key,
            StableNode {
                kpfn: Atomic::new(kfolio.pfn()),
                key,
                len: Atomic::new(0),
                class,
                maps: UnsafeCell::new(maps),
            },
            crate::scan_gfp(),
        )
        .ok()?;
        self.domain_node_added(tree).ok()?;
        self.next_id += 1;
        self.stable.insert(entry);
        let node = self.stable.get(&key)?;
        let p = ptr::from_ref::<StableNode>(node);
        // SAFETY: The folio is locked, anonymous and write-protected everywhere: it becomes a
        // KSM folio pointing to its stable node, which stays where it is in the tree until the
        // folio no longer points to it.
        unsafe { kfolio.set_mapping_word(node.mapping_word()) };
        self.chain_changed((tree, hash, fp), class, true);
        Some(p)
    }

    /// Moves the stable node `old` of the KSM folio of `page` to the tree of the NUMA node the
    /// folio is on now, if migration took it to another one while `merge_across_nodes` is 0
    /// (`mm/ksm.c` moves such a node to its `migrate_nodes` list when ksmd scans one of its
    /// mappings, and into its new node's tree at the next search). Returns the folio's node:
    /// `old` if it stayed, else the new one.
    ///
    /// The node moves with its list of mappings, under the folio's lock, which every reader of
    /// the node through the folio holds (rmap walks, migration, memory failure); the items of
    /// the mappings are pointed to the new node. O(log n + mappings), once per migration, which
    /// itself remapped every mapping.
    pub(crate) fn follow_migration(
        &mut self,
        page: &PageRef,
        old: *const StableNode,
    ) -> *const StableNode {
        // SAFETY: The folio (referenced) points to the node, so it is alive.
        let node = unsafe { &*old };
        let kfolio = page.folio();
        if MERGE_ACROSS_NODES.load(Relaxed) != 0 || retree(node.key.0, kfolio.nid()) == node.key.0 {
            return old;
        }
        let Some(g) = lock_node_folio(node, kfolio) else {
            return old;
        };
        let (old_key, old_class) = (node.key, node.class);
        // Locked, the folio cannot migrate again; the frame tells it is the node's page.
        let tree = retree(old_key.0, g.nid());
        if node.kpfn.load(Relaxed) != g.pfn() || tree == old_key.0 {
            return old;
        }
        let hash = old_key.1;
        let (fp, class) = self.classify(tree, hash, &g);
        let key = (tree, hash, fp, (u64::MAX >> 1) - self.next_id);
        let entry = RBTreeNode::new(
            key,
            StableNode {
                kpfn: Atomic::new(g.pfn()),
                key,
                len: Atomic::new(node.len.load(Relaxed)),
                class,
                maps: UnsafeCell::new(KVVec::new()),
            },
            crate::scan_gfp(),
        );
        let Ok(entry) = entry else {
            // Stays where it is: found by the pages of its old node's tree only.
            return old;
        };
        self.next_id += 1;
        self.stable.insert(entry);
        let Some(p) = self.stable.get(&key).map(ptr::from_ref::<StableNode>) else {
            return old;
        };
        // SAFETY: The node is in the tree, so alive.
        let new = unsafe { &*p };
        // SAFETY: We hold the folio's lock, for both nodes' lists.
        unsafe { core::mem::swap(node.maps(), new.maps()) };
        node.len.store(0, Relaxed);
        // SAFETY: The folio is locked and its mappings are now listed by the new node, which
        // stays where it is in the tree until the folio no longer points to it.
        unsafe { g.set_mapping_word(new.mapping_word()) };
        // SAFETY: As above.
        for m in unsafe { new.maps_ref() }.iter() {
            if let Some(it) = self.item_mut(m.mm, m.addr) {
                if ptr::eq(it.node(), old) {
                    it.set_node(p);
                }
            }
        }
        drop(g);
        // No folio or item points to the old node any more, and its list is empty.
        drop(self.stable.remove(&old_key));
        self.chain_changed((old_key.0, hash, old_key.2), old_class, false);
        self.chain_changed((tree, hash, fp), class, true);
        p
    }

    /// Lists the item at `addr` of `mmk` as a mapping of `node`, whose folio is locked
    /// (`stable_tree_append`); capacity for it was reserved. O(1): the item keeps the index of
    /// its mapping.
    pub(crate) fn append(
        &mut self,
        _kfolio: &FolioLockGuard<'_>,
        node: *const StableNode,
        mmk: usize,
        addr: usize,
        pgoff: usize,
        anon_vma: *mut bindings::anon_vma,
    ) {
        // SAFETY: The node is alive: its folio is locked and points to it.
        let n = unsafe { &*node };
        // SAFETY: We hold the KSM folio's lock.
        let maps = unsafe { n.maps() };
        let m = Mapping {
            mm: mmk,
            addr,
            pgoff,
            anon_vma,
        };
        let slot = maps.len();
        if self.item(mmk, addr).is_none()
            || u32::try_from(slot).is_err()
            || maps.push(m, crate::scan_gfp()).is_err()
        {
            // SAFETY: The caller's reference, which the mapping would have held.
            unsafe { bindings::put_anon_vma(anon_vma) };
            return;
        }
        n.len.store(maps.len() as u32, Relaxed);
        if maps.len() == 1 {
            counter_inc(&COUNTERS.pages_shared);
        } else {
            counter_inc(&COUNTERS.pages_sharing);
        }
        self.domain_mapping(n.key.0, maps.len() == 1, true);
        if let Some(mm) = self.mm_ptr(mmk) {
            mm_add(mm, 0, 1);
        }
        if let Some(it) = self.item_mut(mmk, addr) {
            it.set_node(node);
            it.hash = slot as u32;
        }
    }

    /// Drops the stale duplicates of chains (nodes whose KSM page was freed, in a subgroup of
    /// two nodes or more), at the pace of `stable_node_chains_prune_millisecs`: a sweep of the
    /// stable tree starts when a search comes that long after the last sweep ended, and goes
    /// on at the searches that follow, [`PRUNE_BATCH`] nodes at a time.
    ///
    /// `mm/ksm.c` prunes the chains on the path of a search (`chain_prune()`), each at most once
    /// per period; its trees are ordered by contents, where these are ordered by hash, so the
    /// chains a search passes are not the same here, and the sweep visits them all instead.
    /// As in `mm/ksm.c`, nothing is pruned while no page searches the tree (every scanned page
    /// that is not a KSM page does, in `mm/ksm.c`, whether or not its contents changed: it is
    /// called for those). Cost per page: one load while there is no chain (most of the time),
    /// else one jiffies comparison between sweeps and, during one, a descent and
    /// [`PRUNE_BATCH`] steps in key order, O(log n + `PRUNE_BATCH`); a sweep of n nodes thus
    /// takes n / `PRUNE_BATCH` scanned pages, at most once per period.
    pub(crate) fn prune_chains(&mut self) {
        let from = match self.prune_at {
            Some(at) => at,
            None => {
                // No chain, nothing to prune: most of the time, one load per page.
                if COUNTERS.stable_node_dups.load(Relaxed) == 0 {
                    return;
                }
                let period = STABLE_NODE_CHAINS_PRUNE_MILLISECS.load(Relaxed);
                if jiffies().wrapping_sub(self.pruned) < msecs_to_jiffies(period) {
                    return;
                }
                (0, 0, 0, 0)
            }
        };
        // One descent, then the nodes in key order; the stale ones go after the walk.
        let mut stale = [(0, 0, 0, 0); PRUNE_BATCH];
        let mut n = 0;
        let mut next = None;
        let mut c = self.stable.cursor_lower_bound_mut(&from);
        for _ in 0..PRUNE_BATCH {
            let Some(cur) = c else {
                break;
            };
            let (&k, v) = cur.current();
            let sub = |o: &SKey| (o.0, o.1, o.2) == (k.0, k.1, k.2);
            let chained = cur.peek_prev().is_some_and(|(o, _)| sub(o))
                || cur.peek_next().is_some_and(|(o, _)| sub(o));
            if chained && node_folio(v).is_none() {
                stale[n] = k;
                n += 1;
            }
            next = Some((k.0, k.1, k.2, k.3 + 1));
            c = cur.move_next();
        }
        let done = c.is_none();
        for &k in &stale[..n] {
            self.remove_node(k);
        }
        if done {
            self.prune_at = None;
            self.pruned = jiffies();
        } else {
            self.prune_at = next;
        }
    }

    /// Searches the stable tree of merge domain `dom` for a KSM page with the contents of `page`
    /// (`stable_tree_search`). A KSM page that reached `max_page_sharing` is only returned if
    /// `page` is already mapped from it (a fork) or `bypass`.
    ///
    /// The nodes of `page`'s hash with fingerprint 0 are looked at first, then, if the group has
    /// nodes of other contents, those of `page`'s fingerprint: at most two subgroups of one
    /// contents each, and one page comparison per subgroup.
    pub(crate) fn stable_search(
        &mut self,
        page: &PageRef,
        hash: Hash,
        bypass: bool,
        dom: u64,
    ) -> Option<(ARef<Folio>, *const StableNode)> {
        let folio = page.folio();
        let own = folio_stable_node(folio);
        if !own.is_null() {
            // A KSM page forked: its own node (`page_node` in `stable_tree_search()`).
            return Some((ARef::from(folio), own));
        }
        let tree = tree_of(folio.nid(), dom);
        let same = |k: &SKey| k.0 == tree && k.1 == hash;
        // One lookup for a page of a hash no KSM page has: most pages.
        let first = next_in_group(&self.stable, &(tree, hash, 0, 0), same)?;
        if first.2 == 0 {
            if let Some(found) = self.subgroup_search(page, (tree, hash, 0), bypass) {
                return Some(found);
            }
            next_in_group(&self.stable, &(tree, hash, 1, 0), same)?;
        }
        let fp = page_fingerprint(page, &self.fp_key);
        self.subgroup_search(page, (tree, hash, fp), bypass)
    }

    /// Searches the subgroup `sub` of the stable tree, whose nodes all have one contents, for a
    /// KSM page with the contents of `page` and room for it (see [`Engine::stable_search`]).
    ///
    /// Newest first, as a chain's node with room is the one started last; at most
    /// [`SUBGROUP_VISITS`] nodes without room are stepped over (stale ones are removed), so that
    /// a long chain costs no more: when they are all full, `page` starts a new duplicate.
    fn subgroup_search(
        &mut self,
        page: &PageRef,
        sub: (Tree, Hash, u64),
        bypass: bool,
    ) -> Option<(ARef<Folio>, *const StableNode)> {
        let folio = page.folio();
        let max = MAX_PAGE_SHARING.load(Relaxed) as u32;
        let mut key = (sub.0, sub.1, sub.2, 0);
        let mut visits = 0;
        while visits < SUBGROUP_VISITS {
            let k = next_in_group(&self.stable, &key, |k| (k.0, k.1, k.2) == sub)?;
            key.3 = k.3 + 1;
            let p = ptr::from_ref::<StableNode>(self.stable.get(&k)?);
            // SAFETY: The node is in the tree, so alive.
            let node = unsafe { &*p };
            let len = node.len.load(Relaxed);
            // A candidate has at least one mapping listed (`__is_page_sharing_candidate`): a
            // node whose mappings all went (its page still mapped by forks, or in the swap
            // cache) takes none until forks are scanned into it.
            if (!bypass && len >= max) || len == 0 {
                visits += 1;
                continue;
            }
            let Some(kfolio) = node_folio(node) else {
                // Each node is removed once: this costs its insertion, not the search.
                self.remove_node(k);
                continue;
            };
            if MERGE_ACROSS_NODES.load(Relaxed) == 0 && kfolio.nid() != folio.nid() {
                visits += 1;
                continue;
            }
            // The subgroup's nodes have one contents: if this one differs, they all do.
            return identical(page, &kfolio).then_some((kfolio, p));
        }
        None
    }

    /// Forgets every KSM page that is no longer mapped (`remove_all_stable_nodes`); KSM pages
    /// still mapped somewhere stay. Returns whether the stable tree is empty.
    pub(crate) fn remove_unmapped_stable_nodes(&mut self) -> bool {
        let mut key = (0, 0, 0, 0);
        loop {
            let (k, p) = {
                let Some(c) = self.stable.cursor_lower_bound(&key) else {
                    return self.stable.is_empty();
                };
                let (k, v) = c.current();
                (*k, ptr::from_ref::<StableNode>(v))
            };
            key = (k.0, k.1, k.2, k.3 + 1);
            // SAFETY: The node is in the tree, so alive.
            let node = unsafe { &*p };
            let detached = with_node_locked(node, |g| {
                if g.mapped() {
                    return false;
                }
                // Not mapped (e.g. only in the swap cache): detach the node, the folio stays a
                // KSM folio without one, as `remove_stable_node()` does.
                // SAFETY: The folio is locked; a KSM folio with no stable node is valid.
                unsafe { g.set_mapping_word(bindings::FOLIO_MAPPING_KSM as usize) };
                true
            });
            if detached == Some(false) {
                continue;
            }
            // Stale, or detached from its folio just now.
            self.remove_node(k);
            kernel::task::cond_resched();
        }
    }
}

#[kunit_tests(ksm_rs_stable)]
mod tests {
    use super::*;
    use kernel::rbtree::RBTree;

    /// The keys of `t` from `from` on while `same`.
    fn walk(t: &RBTree<SKey, ()>, from: SKey, same: impl Fn(&SKey) -> bool) -> Result<KVec<SKey>> {
        let mut seen = KVec::new();
        let mut key = from;
        while let Some(k) = next_in_group(t, &key, &same) {
            seen.push(k, GFP_KERNEL)?;
            key = (k.0, k.1, k.2, k.3 + 1);
        }
        Ok(seen)
    }

    #[test]
    fn groups_are_visited_in_key_order() -> Result {
        let mut t: RBTree<SKey, ()> = RBTree::new();
        // Group (0, 7): the first contents (fingerprint 0, two nodes), and two other contents
        // of the same hash, told apart by their fingerprints 3 and 5.
        for k in [
            (0, 7, 0, 2),
            (0, 7, 5, 1),
            (0, 7, 0, 1),
            (0, 7, 3, 9),
            (0, 8, 0, 1),
            (1, 7, 0, 1),
            (0, 6, 0, 9),
        ] {
            t.insert(RBTreeNode::new(k, (), GFP_KERNEL)?);
        }
        let group = walk(&t, (0, 7, 0, 0), |k| k.0 == 0 && k.1 == 7)?;
        assert_eq!(
            &group[..],
            &[(0, 7, 0, 1), (0, 7, 0, 2), (0, 7, 3, 9), (0, 7, 5, 1)]
        );
        // A subgroup is found with one lookup, whatever the size of the group.
        let sub = walk(&t, (0, 7, 5, 0), |k| (k.0, k.1, k.2) == (0, 7, 5))?;
        assert_eq!(&sub[..], &[(0, 7, 5, 1)]);
        assert_eq!(
            walk(&t, (0, 7, 4, 0), |k| (k.0, k.1, k.2) == (0, 7, 4))?.len(),
            0
        );
        // Whether the group has other contents than the first: a node from fingerprint 1 on.
        let same = |k: &SKey| k.0 == 0 && k.1 == 7;
        assert_eq!(next_in_group(&t, &(0, 7, 1, 0), same), Some((0, 7, 3, 9)));
        assert_eq!(next_in_group(&t, &(0, 8, 1, 0), |k| k.1 == 8), None);
        // A group nobody is in.
        assert_eq!(next_in_group(&t, &(2, 7, 0, 0), |k| k.0 == 2), None);
        Ok(())
    }

    #[test]
    fn chains_count_like_mm_ksm_c() {
        // A second KSM page of the same contents makes a chain of two dups ...
        assert_eq!(chain_delta(1, true), (0, 0));
        assert_eq!(chain_delta(2, true), (1, 2));
        assert_eq!(chain_delta(3, true), (0, 1));
        // ... and the chain goes when one node is left.
        assert_eq!(chain_delta(2, false), (0, -1));
        assert_eq!(chain_delta(1, false), (-1, -2));
        assert_eq!(chain_delta(0, false), (0, 0));
        // A group is only counted up to 3 nodes: longer ones change the counters alike.
        for n in 4..64 {
            assert_eq!(chain_delta(n, true), chain_delta(3, true));
            assert_eq!(chain_delta(n, false), chain_delta(3, false));
        }
    }

    #[test]
    fn chains_are_counted_by_contents_class() -> Result {
        let mut e = Engine::new();
        // Subgroup (0, 7, 4): classes 0, 1, 0, 1, 0 (two contents of one hash and fingerprint);
        // (0, 7, 0) and (0, 8, 0): class 0.
        for (id, key, class) in [
            (5, (0, 7, 4), 0),
            (4, (0, 7, 4), 1),
            (3, (0, 7, 4), 0),
            (2, (0, 7, 4), 1),
            (1, (0, 7, 4), 0),
            (6, (0, 7, 0), 0),
            (9, (0, 8, 0), 0),
        ] {
            let k = (key.0, key.1, key.2, id);
            let node = StableNode {
                kpfn: Atomic::new(0),
                key: k,
                len: Atomic::new(0),
                class,
                maps: UnsafeCell::new(KVVec::new()),
            };
            e.stable.insert(RBTreeNode::new(k, node, GFP_KERNEL)?);
        }
        assert_eq!(e.group_len((0, 7, 4), 0, 3), 3);
        assert_eq!(e.group_len((0, 7, 4), 1, 3), 2);
        assert_eq!(e.group_len((0, 7, 4), 2, 3), 0);
        assert_eq!(e.group_len((0, 7, 4), 0, 2), 2);
        assert_eq!(e.group_len((0, 7, 0), 0, 3), 1);
        assert_eq!(e.group_len((0, 8, 0), 0, 3), 1);
        assert_eq!(e.group_len((1, 7, 0), 0, 3), 0);
        // Two nodes of different contents with one hash are no chain: each class of one node
        // changes no counter.
        assert_eq!(chain_delta(e.group_len((0, 8, 0), 0, 3), true), (0, 0));
        assert_eq!(chain_delta(e.group_len((0, 7, 0), 0, 3), true), (0, 0));
        Ok(())
    }
}
