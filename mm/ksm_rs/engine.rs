// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The merge engine: per-page items, the unstable and stable trees, merging and unmerging.
//!
//! # Design
//!
//! `mm/ksm.c` orders both trees by page contents, comparing whole pages (`memcmp`) at every
//! level of every search. Here both trees are ordered by a hash of the contents (64 bits of an
//! `xxh64`, as `mm/ksm.c` computes for its volatility check, with a random seed), so a search
//! reads the page once to hash it and once more only to confirm a candidate of equal hash. Equal
//! contents have equal hashes, so nothing that `mm/ksm.c` would merge is missed.
//!
//! `xxh64` is not collision resistant, seeded or not (see [`fingerprint`]): many pages of
//! different contents can be made to share a hash. Among the pages of one hash, those of one
//! contents are found by a keyed fingerprint (SipHash with a secret random key), computed only
//! for pages whose hash is shared by other contents:
//!
//! - Every tracked page has an [`Item`] (`struct ksm_rmap_item`), kept per address space in an
//!   address-ordered map, created lazily by the scan and freed when the scan finds the address
//!   no longer mapped.
//! - The unstable "tree" holds the items of pages whose checksum (the low 32 bits of the hash)
//!   did not change between two scans; it is emptied at the start of every full scan. As only
//!   equal checksums are looked for, it is a hash table: a bucket array of 8-byte heads,
//!   chained through the items themselves (the link word an item otherwise uses for its stable
//!   node), so that an entry costs no allocation, with one item per checksum. When a page of
//!   the same checksum has other contents, both go to the collision tree
//!   ([`Engine::collide`]), keyed by fingerprint, as do the later pages of that checksum.
//! - The stable tree holds one [`StableNode`] per KSM page, keyed by
//!   `(tree, hash, fingerprint, id)`: fingerprint 0 for the nodes of the first contents of a
//!   `(tree, hash)` group, the page's fingerprint for the others. Nodes of equal contents (a KSM
//!   page reached `max_page_sharing` and a duplicate was started) form a chain:
//!   `stable_node_chains` and `stable_node_dups` count them, by [`StableNode::class`].
//! - `tree` is the NUMA node of the page when `merge_across_nodes` is 0, else 0.
//!
//! A KSM folio points to its stable node from `folio->mapping` (with `FOLIO_MAPPING_KSM`), so
//! that the rest of mm calls [`rmap_walk_ksm`] and friends for it. A node is freed only once its
//! folio no longer points to it (the folio was freed or migrated): the "keyhole" of
//! `ksm_get_folio()`.
//!
//! # Cost
//!
//! Bounded whatever the page contents and however many sharers a KSM page has. Per scanned
//! page: one hash of the page; an item lookup in O(1) (the chunk of the last lookup) or
//! O(log m) for m tracked chunks; a stable tree search in O(log n) that compares the page with
//! at most two KSM pages (one per subgroup of one contents) and steps over at most
//! [`SUBGROUP_VISITS`] nodes without room (stale nodes are removed, each once); an unstable
//! lookup of one bucket (two items on average, one per checksum) or O(log c) in the collision
//! tree, comparing the page with at most [`COLLIDE_CANDIDATES`] pages, each the only one for
//! which another mm's mmap lock is taken; at most two fingerprints. Merging a run of up to
//! [`MERGE_BATCH`] pages allocates nothing. A stable node's mappings are added, removed and
//! counted in O(1) (an item keeps the index of its mapping, and the last mapping moves into a
//! freed index); [`rmap_walk`] is O(mappings). The chain counters cost O(log n).
//!
//! # Locking
//!
//! The engine belongs to ksmd's batch (the scanner mutex). A stable node's list of mappings is
//! changed and read only under its KSM folio's lock, which is also what [`rmap_walk_ksm`]'s
//! callers hold.

use crate::{items::ItemMap, tunables::*};
use core::{cell::UnsafeCell, ptr};
use kernel::{
    bindings,
    mm::{
        folio::{Folio, FolioLockGuard, PageRef},
        pgwalk::{MmapLockedVma, PMD_SIZE},
        pte::{self, MmuInvalidation, Pte, PteTable},
        virt::flags as vma_flags,
        Mm, MmWithUser, MmWithUserAsync, MmapReadGuard,
    },
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation},
    sync::{
        aref::ARef,
        atomic::{Acquire, Atomic, Relaxed, Release},
    },
};

/// A tracked page, as the unstable table links it: the engine's number for the address space
/// (`MmItems::id`) above [`REF_PAGE_BITS`], the page (user address >> `PAGE_SHIFT`) below.
type ItemRef = u64;
/// Bits of an [`ItemRef`] for the page: user addresses have at most 57 bits.
const REF_PAGE_BITS: u32 = 57 - PAGE_SHIFT as u32;
/// Key of the stable tree: (tree, content hash, fingerprint, node id); see [`StableNode::key`].
type SKey = (u32, Hash, u64, u64);
/// Key of the unstable table's collision tree: (tree, checksum, fingerprint, item); see
/// [`Engine::collide`].
type CKey = (u32, u32, u64, ItemRef);

/// One mapping of a KSM page (the stable side of `struct ksm_rmap_item`).
#[derive(Clone, Copy)]
struct Mapping {
    /// The address space (its key), to tell the mapping from forks of it in an rmap walk.
    mm: usize,
    /// The user address.
    addr: usize,
    /// The VMA's anon_vma, referenced (`get_anon_vma`) while the mapping is listed.
    anon_vma: *mut bindings::anon_vma,
}

/// A KSM page (`struct ksm_stable_node`).
pub(crate) struct StableNode {
    /// The page frame of the KSM folio; changed by migration (`folio_migrate_ksm`).
    kpfn: Atomic<usize>,
    /// The node's key in the stable tree: `(tree, hash, fingerprint, id)`. The fingerprint is 0
    /// for the nodes of the first contents of a `(tree, hash)` group; nodes of other contents
    /// with the same hash get the keyed [`fingerprint`] of their page, so that the nodes of one
    /// contents are next to each other and found in O(log n). Ids count down: newest first.
    key: SKey,
    /// The number of mappings, readable without the folio lock (`rmap_hlist_len`).
    len: Atomic<u32>,
    /// The node's contents class in its `(tree, hash, fingerprint)` subgroup: nodes of equal
    /// contents (a chain of `max_page_sharing` duplicates) have the same class, nodes whose
    /// contents only have the same hash and fingerprint (never seen: 2^-64 per pair) have
    /// different classes. Set at insertion, never changed.
    class: u32,
    /// The mappings. Only accessed under the KSM folio's lock.
    maps: UnsafeCell<KVec<Mapping>>,
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
    unsafe fn maps(&self) -> &mut KVec<Mapping> {
        // SAFETY: The folio lock serialises all access (safety requirement).
        unsafe { &mut *self.maps.get() }
    }

    /// The mappings, to read them.
    ///
    /// # Safety
    ///
    /// The caller holds the KSM folio's lock, or is the engine (which alone changes the list,
    /// under that lock).
    unsafe fn maps_ref(&self) -> &KVec<Mapping> {
        // SAFETY: Nobody changes the list meanwhile (safety requirement); others only read it.
        unsafe { &*self.maps.get() }
    }

    /// How many more mappings the list holds without allocating.
    ///
    /// # Safety
    ///
    /// As [`StableNode::maps_ref`].
    unsafe fn spare(&self) -> usize {
        // SAFETY: Upheld by the caller.
        let maps = unsafe { self.maps_ref() };
        maps.capacity() - maps.len()
    }
}

/// The addresses of a run's mask of pages (bit `i` for `addr + i * PAGE_SIZE`, see
/// [`merge_run`]).
fn run_addrs(addr: usize, mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        let i = mask.trailing_zeros() as usize;
        // Clears the lowest bit set.
        mask &= mask.checked_sub(1)?;
        Some(addr + i * PAGE_SIZE)
    })
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

/// A page's content hash: `xxh64` with the engine's random seed. Its low 32 bits are the
/// checksum an [`Item`] keeps, as `calc_checksum()`.
type Hash = u64;

/// The checksum of a page of hash `hash`, as an [`Item`] keeps it.
fn checksum(hash: Hash) -> u32 {
    hash as u32
}

/// A tracked page (`struct ksm_rmap_item`): 16 bytes.
#[derive(Clone, Copy)]
pub(crate) struct Item {
    /// When merged, the stable node's address; in the unstable table of the current scan, the
    /// next item of its bucket (an [`ItemRef`] + 1, 0 at the end) or, when [`Item::collide`],
    /// its page's [`fingerprint`]; else 0. See [`Item::node`].
    link: usize,
    /// When merged, the index of the item's mapping in its stable node's list; else the
    /// checksum of the contents at the last scan, when `hashed`.
    hash: u32,
    /// The small fields, see the `ITEM_*` masks.
    bits: u32,
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
const AGE_MAX: u8 = (1 << ITEM_AGE.1) - 1;
/// [`Item::bits`]: scans still to skip (smart scan; at most 8).
const ITEM_SKIPS: (u32, u32) = (28, 4);

// The node number fits in its field.
const _: () = assert!(bindings::MAX_NUMNODES <= 1 << ITEM_NID.1);

/// The bytes of metadata per tracked page, for `general_profit` and `ksm_process_profit`: the
/// item, packed with its neighbours (see [`crate::items`]; a dense region adds less than a byte
/// per page to it).
pub(crate) const ITEM_BYTES: usize = core::mem::size_of::<Item>();

impl Item {
    fn get(&self, (shift, width): (u32, u32)) -> u32 {
        (self.bits >> shift) & ((1 << width) - 1)
    }

    fn set(&mut self, (shift, width): (u32, u32), v: u32) {
        let mask = ((1 << width) - 1) << shift;
        self.bits = (self.bits & !mask) | ((v << shift) & mask);
    }

    /// The unstable tree the item is in, when [`Item::unstable`].
    fn nid(&self) -> u32 {
        self.get(ITEM_NID)
    }

    fn set_nid(&mut self, nid: u32) {
        self.set(ITEM_NID, nid);
    }

    /// The scan (modulo 256) that put the item in the unstable tree.
    fn seq(&self) -> u8 {
        self.get(ITEM_SEQ) as u8
    }

    fn set_seq(&mut self, seq: u8) {
        self.set(ITEM_SEQ, u32::from(seq));
    }

    /// Whether the item is counted in `pages_unshared`.
    fn unstable(&self) -> bool {
        self.get(ITEM_UNSTABLE) != 0
    }

    fn set_unstable(&mut self, on: bool) {
        self.set(ITEM_UNSTABLE, u32::from(on));
    }

    /// Whether [`Item::hash`] is valid.
    fn hashed(&self) -> bool {
        self.get(ITEM_HASHED) != 0
    }

    fn set_hashed(&mut self, on: bool) {
        self.set(ITEM_HASHED, u32::from(on));
    }

    /// Scans without merging (smart scan).
    fn age(&self) -> u8 {
        self.get(ITEM_AGE) as u8
    }

    fn set_age(&mut self, age: u8) {
        self.set(ITEM_AGE, u32::from(age));
    }

    /// Whether the unstable item is in the collision tree (its `link` is its fingerprint).
    fn collide(&self) -> bool {
        self.get(ITEM_COLLIDE) != 0
    }

    fn set_collide(&mut self, on: bool) {
        self.set(ITEM_COLLIDE, u32::from(on));
    }

    /// Scans still to skip (smart scan).
    fn skips(&self) -> u8 {
        self.get(ITEM_SKIPS) as u8
    }

    fn set_skips(&mut self, skips: u8) {
        self.set(ITEM_SKIPS, u32::from(skips));
    }

    /// The stable node when merged, else null.
    fn node(&self) -> *const StableNode {
        if self.unstable() {
            ptr::null()
        } else {
            self.link as *const StableNode
        }
    }

    /// Sets the stable node (null: not merged); the item is not in the unstable table.
    fn set_node(&mut self, node: *const StableNode) {
        self.set_unstable(false);
        self.set_collide(false);
        self.link = node as usize;
    }

    const fn new() -> Self {
        Self {
            link: 0,
            hash: 0,
            bits: 0,
        }
    }
}

/// The items of one address space.
struct MmItems {
    /// The `mm_struct`, kept allocated by its slot in the registry while it has items.
    mm: *mut bindings::mm_struct,
    /// The engine's number for it, in [`ItemRef`]s.
    id: u32,
    /// The items by page (user address >> `PAGE_SHIFT`).
    items: ItemMap<Item>,
}

/// What a page is merged with.
enum Target<'a> {
    /// Nothing yet: the page becomes a KSM page of its own.
    NewKsm,
    /// An existing KSM folio.
    Ksm(&'a Folio),
    /// The shared zero page (`ZERO_PAGE()` of the address).
    Zero,
}

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

/// The merge engine's state.
pub(crate) struct Engine {
    mms: RBTree<usize, MmItems>,
    /// The mm key of each [`MmItems::id`] in use (0: free).
    ids: KVec<usize>,
    /// Ids free for reuse.
    free_ids: KVec<u32>,
    /// The unstable table's buckets: the first item (an [`ItemRef`] + 1) or 0; a power of two
    /// long, or empty.
    unstable: KVVec<ItemRef>,
    /// The number of items in the unstable table's buckets.
    unstable_len: usize,
    /// The unstable items whose checksum is that of an item of other contents, by
    /// `(tree, checksum, fingerprint, item)`: once two pages of one checksum turn out to differ,
    /// the pages of that checksum are told apart by their keyed [`fingerprint`], so that a
    /// search compares one page, not every page of the checksum. Emptied with the table.
    collide: RBTree<CKey, ()>,
    /// The stable tree; a node lives in its tree entry, which does not move while in the tree.
    stable: RBTree<SKey, StableNode>,
    /// Room for the page references of a run of [`merge_run`] (empty between runs).
    run_pages: KVec<PageRef>,
    /// The full scan count, modulo 256 (`ksm_scan.seqnr`).
    seq: u8,
    next_id: u64,
    /// The seed of the content hash: random, drawn when the engine is created (at boot), so
    /// that which contents share a hash cannot be known, nor chosen, outside the kernel.
    /// `mm/ksm.c`'s checksum has seed 0: its trees are ordered by the contents.
    seed: u64,
    /// The key of [`fingerprint`], random as `seed`.
    fp_key: bindings::siphash_key_t,
    zero_hash: Hash,
}

// SAFETY: The raw pointers are to mm_structs, anon_vmas and stable nodes, used under the
// scanner lock that owns the engine.
unsafe impl Send for Engine {}

/// A page of zeroes, to compare candidates for the zero page with.
static ZEROES: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// The content hash of a page, with the engine's `seed`.
fn hash_bytes(bytes: &[u8], seed: u64) -> Hash {
    // SAFETY: `bytes` is valid for its length.
    unsafe { bindings::xxh64(bytes.as_ptr().cast(), bytes.len(), seed) }
}

/// The content hash of a page, which other mappings may be writing, with the engine's `seed`.
fn hash_page(page: &PageRef, seed: u64) -> Hash {
    page.with_mapped(|p| {
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
unsafe fn fingerprint(p: *const u8, key: &bindings::siphash_key_t) -> u64 {
    // SAFETY: Upheld by the caller; SipHash reads the bytes as they are, racing writers
    // included (a page that changes meanwhile is compared again before any merge). The
    // unaligned variant is the one every architecture builds (`siphash()` is inline).
    unsafe { bindings::__siphash_unaligned(p.cast(), PAGE_SIZE, key) }.max(1)
}

/// The [`fingerprint`] of a page.
fn page_fingerprint(page: &PageRef, key: &bindings::siphash_key_t) -> u64 {
    // SAFETY: A mapped page is `PAGE_SIZE` bytes.
    page.with_mapped(|p| unsafe { fingerprint(p, key) })
}

/// The [`fingerprint`] of the (small) folio `folio`.
fn folio_fingerprint(folio: &Folio, key: &bindings::siphash_key_t) -> u64 {
    // SAFETY: As in `page_fingerprint`.
    folio.with_page_mapped(0, |p| unsafe { fingerprint(p, key) })
}

/// Whether a page has the contents of a (small) KSM folio (`pages_identical`).
fn identical(a: &PageRef, b: &Folio) -> bool {
    a.same_as_page(b, 0)
}

/// The mm key and the page an [`ItemRef`] names, given the mm keys by id.
fn resolve(ids: &[usize], r: ItemRef) -> Option<(usize, usize)> {
    let mmk = *ids.get((r >> REF_PAGE_BITS) as usize)?;
    Some((mmk, (r & ((1 << REF_PAGE_BITS) - 1)) as usize))
}

/// The unstable table's bucket for `(tree, checksum)`, of `buckets` (a power of two).
fn bucket_of(tree: u32, sum: u32, buckets: usize) -> usize {
    // `sum` is from a seeded xxh64: its low bits are as good as any.
    (u64::from(sum) ^ u64::from(tree).wrapping_mul(0x9e37_79b9_7f4a_7c15)) as usize & (buckets - 1)
}

/// The tree a page of node `nid` goes to.
fn tree_of(nid: i32) -> u32 {
    if MERGE_ACROSS_NODES.load(Relaxed) != 0 {
        0
    } else {
        nid as u32
    }
}

/// Returns the first key at or after `from` in `tree`, if it is in the same group as `from`
/// (`same`): how the trees' entries of one hash (and tree) are visited, one by one, while the
/// tree may change between visits.
fn next_in_group<K: Ord + Copy, V>(
    tree: &RBTree<K, V>,
    from: &K,
    same: impl Fn(&K) -> bool,
) -> Option<K> {
    let c = tree.cursor_lower_bound(from)?;
    let k = *c.current().0;
    same(&k).then_some(k)
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

/// Smart scan: how many scans to skip a page that failed to merge `age` times (`skip_age`).
fn skip_age(age: u8) -> u8 {
    match age {
        0..=3 => 1,
        4..=5 => 2,
        6..=8 => 4,
        _ => 8,
    }
}

/// The key of an mm in the engine and the registry.
pub(crate) fn mm_key(mm: &Mm) -> usize {
    mm.as_raw() as usize
}

/// Adds `delta` to one of the `unsigned long` KSM counters of `mm`.
fn mm_add(mm: *mut bindings::mm_struct, rmap_items: isize, merging: isize) {
    // SAFETY: `mm` is kept allocated by its registry slot while it has items; C updates these
    // counters without locks too (ksmd is their only writer).
    unsafe {
        let m = &mut (*mm).__bindgen_anon_1;
        m.ksm_rmap_items = m.ksm_rmap_items.wrapping_add_signed(rmap_items);
        m.ksm_merging_pages = m.ksm_merging_pages.wrapping_add_signed(merging);
    }
}

fn counter_dec(c: &Atomic<u64>) {
    c.fetch_sub(1, Relaxed);
}

fn counter_inc(c: &Atomic<u64>) {
    c.fetch_add(1, Relaxed);
}

/// Takes a reference on the folio of a stable node, if it still is the node's
/// (`ksm_get_folio(KSM_GET_FOLIO_NOLOCK)`); `None` means the node is stale. The folio is looked
/// at through the "keyhole" of its `mapping`: freeing a KSM folio resets it, so a folio that
/// still points to the node is the node's.
fn node_folio(node: &StableNode) -> Option<ARef<Folio>> {
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
fn lock_node_folio<'a>(node: &StableNode, folio: &'a Folio) -> Option<FolioLockGuard<'a>> {
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

/// Finds the mergeable VMA at `addr` (`find_mergeable_vma`).
fn mergeable_vma<'a>(guard: &'a MmapReadGuard<'_>, addr: usize) -> Option<&'a MmapLockedVma> {
    let vma = guard.vma_at(addr)?;
    (vma.flags() & vma_flags::MERGEABLE != 0 && vma.has_anon_vma()).then_some(vma)
}

/// Takes a reference on the anonymous page mapped at `addr` of `mm`, if a mergeable VMA maps it
/// (what `scan_get_next_rmap_item()` and `get_mergeable_page()` take).
pub(crate) fn mergeable_page_at(mm: &MmWithUser, addr: usize) -> Option<PageRef> {
    let guard = mm.mmap_read_lock();
    mergeable_vma(&guard, addr)?.anon_page_at(addr)
}

/// Write-protects the page table entry that maps `page` at `addr` of `vma`, so that its
/// contents cannot change (`write_protect_page`). Fails if the page may be pinned (O_DIRECT,
/// GUP) or is not mapped there any more.
fn write_protect_page(
    vma: &MmapLockedVma,
    addr: usize,
    folio: &FolioLockGuard<'_>,
    page: &PageRef,
) -> Result {
    let mm = vma.mm();
    let _inv = MmuInvalidation::start(mm, addr, addr + PAGE_SIZE);
    let mut t = PteTable::lock(vma, addr, addr + PAGE_SIZE).ok_or(EFAULT)?;
    let mut entry = t.get(0);
    if !entry.present() || entry.pfn() != page.pfn() {
        return Err(EFAULT);
    }
    let anon_exclusive = page.anon_exclusive();
    if entry.write() || entry.dirty() || anon_exclusive || pte::tlb_flush_pending(mm) {
        let swapped = i32::from(folio.test_swapcache());
        t.flush_cache(0, 1);
        // Clear the entry and flush the TLB before looking at the reference count, so that no
        // GUP-fast or O_DIRECT can start after the check. No MMU notifier beyond the range
        // above: the entry is only downgraded to read-only.
        // SAFETY: The TLB is flushed right below and an entry is put back on every path.
        entry = unsafe { t.get_and_clear(0) };
        t.flush_tlb(0, 1);
        if folio.mapcount() + 1 + swapped != folio.ref_count() {
            // SAFETY: Restores the entry just cleared.
            unsafe { t.set(0, entry) };
            return Err(EFAULT);
        }
        // SAFETY: The folio is locked and the entry cleared and flushed.
        if anon_exclusive && !unsafe { page.try_share_anon_rmap() } {
            // SAFETY: Restores the entry just cleared.
            unsafe { t.set(0, entry) };
            return Err(EFAULT);
        }
        if entry.dirty() {
            folio.mark_dirty();
        }
        entry = entry.mkclean();
        if entry.write() {
            entry = entry.wrprotect();
        }
        // SAFETY: The same page, read-only and clean: a downgrade of the entry cleared above.
        unsafe { t.set(0, entry) };
    }
    Ok(())
}

/// The most pages of equal checksum and fingerprint [`Engine::unstable_search_insert`] compares.
const COLLIDE_CANDIDATES: usize = 8;

/// The most nodes without room [`Engine::subgroup_search`] steps over.
const SUBGROUP_VISITS: usize = 16;

/// The most pages [`merge_run`] replaces under one TLB flush.
pub(crate) const MERGE_BATCH: usize = 32;

/// Whether `page` has the contents of `target`.
fn has_target_contents(page: &PageRef, target: &Target<'_>) -> bool {
    match target {
        Target::Ksm(kfolio) => identical(page, kfolio),
        Target::Zero => page.is_zero(),
        Target::NewKsm => false,
    }
}

/// Replaces `page`, mapped at `addr` of `vma`, with the KSM folio or the zero page `target`
/// (`try_to_merge_one_page` + `replace_page`), and with it the pages mapped right after it in the
/// same page table, up to `max` pages in all: page `i` of the run is taken if bit `i` of `more`
/// is set (its item saw these contents at the last scan, see [`Engine::run_candidates`]) and it
/// is a small anonymous folio. The run ends at the first page that does not qualify.
///
/// All entries of the run are cleared under one page table lock and the TLB is flushed once for
/// all of them, where C flushes twice per page (write-protect, then replace). After the flush no
/// CPU can write to the pages and a GUP-fast that started before shows in their reference counts,
/// so each page is then checked (not pinned, still identical) and either replaced or put back as
/// it was. Returns the pages that now map the target, as a mask like `more` (bit 0 for `addr`).
///
/// `pages` is room for the run's page references that the caller keeps from one run to the next:
/// it is allocated once, and left empty on return (no reference outlives the run).
fn merge_run(
    vma: &MmapLockedVma,
    addr: usize,
    page: &PageRef,
    target: &Target<'_>,
    max: usize,
    more: u64,
    pages: &mut KVec<PageRef>,
) -> Result<u64> {
    let kfolio = match target {
        Target::Ksm(k) => Some(*k),
        Target::Zero => None,
        Target::NewKsm => return Err(EINVAL),
    };
    if kfolio.is_some_and(|k| page.as_raw() == k.page_raw(0)) {
        // A KSM page forked: already merged.
        return Ok(1);
    }
    let folio = page.folio();
    // A page of a large folio is split off it first (`PageRef::split_folio`), and only when it
    // is about to merge, as `try_to_merge_one_page()` does.
    if !folio.test_anon() || folio.test_large() {
        return Err(EFAULT);
    }
    let max = max.clamp(1, MERGE_BATCH);
    let same_node = MERGE_ACROSS_NODES.load(Relaxed) == 0;
    let table_end = (addr | (PMD_SIZE - 1)).saturating_add(1);
    let end = addr
        .saturating_add(max * PAGE_SIZE)
        .min(table_end)
        .min(vma.end());
    // Nothing can be allocated under the page table lock: the run's state is on the stack (a
    // few hundred bytes, as a `folio_batch`) and in the caller's `pages`, which only the first
    // run ever allocates.
    pages.clear();
    pages.reserve(MERGE_BATCH, GFP_KERNEL)?;
    let mut origs = [Pte::from_raw(bindings::pte_t::default()); MERGE_BATCH];
    let mut guards: [Option<FolioLockGuard<'_>>; MERGE_BATCH] = [const { None }; MERGE_BATCH];
    let mut n = 0;
    let mut merged = 0u64;
    // Started before the page table lock is taken: it may sleep.
    let _inv = MmuInvalidation::start(vma.mm(), addr, end);
    let mut t = PteTable::lock(vma, addr, end).ok_or(EFAULT)?;
    // Page 0 is the caller's (who holds a reference on it); the others are ours.
    if !t.get(0).present() || t.get(0).pfn() != page.pfn() {
        return Err(EFAULT);
    }
    for i in 1..t.len() {
        if more & (1 << i) == 0 {
            break;
        }
        let Some(p) = t.anon_page(i) else {
            break;
        };
        let f = p.folio();
        // Not compared yet: `more` says it had the target's contents at the last scan, and
        // the comparison that counts is the one after the flush.
        if f.test_large()
            || f.test_ksm()
            || (same_node && kfolio.is_some_and(|k| k.nid() != f.nid()))
        {
            break;
        }
        if pages.push_within_capacity(p).is_err() {
            break;
        }
    }
    // Lock the folios, the caller's page first; the run ends at one that is busy.
    for f in Iterator::chain(core::iter::once(folio), pages.iter().map(PageRef::folio)) {
        let Some(g) = f.try_lock() else {
            break;
        };
        guards[n] = Some(g);
        n += 1;
    }
    if n == 0 {
        drop(guards);
        pages.clear();
        return Err(EFAULT);
    }
    t.flush_cache(0, n);
    for (i, orig) in origs.iter_mut().enumerate().take(n) {
        // SAFETY: The TLB is flushed right below and every entry is put back in the loop after
        // it, still under the page table lock.
        *orig = unsafe { t.get_and_clear(i) };
    }
    t.flush_tlb(0, n);
    let mm = vma.mm();
    // The first `n` guards are the locked folios, the rest `None`.
    for (i, (g, &orig)) in guards.iter().flatten().zip(origs.iter()).enumerate() {
        let p = if i == 0 { page } else { &pages[i - 1] };
        // One reference is ours: the caller's on page 0, the run's on the others.
        let swapped = i32::from(g.test_swapcache());
        let ok = g.mapcount() + 1 + swapped == g.ref_count()
            && has_target_contents(p, target)
            // SAFETY: The folio is locked and its entry cleared and flushed.
            && (!p.anon_exclusive() || unsafe { p.try_share_anon_rmap() });
        if !ok {
            // SAFETY: Puts back the entry cleared above, as it was.
            unsafe { t.set(i, orig) };
            continue;
        }
        let a = t.address(i);
        if orig.dirty() {
            g.mark_dirty();
        }
        let newpte = match kfolio {
            Some(k) => {
                let kpage = k.page_raw(0);
                // The new mapping's reference, handed over to the page table.
                core::mem::forget(ARef::<Folio>::from(k));
                // SAFETY: The new entry is installed below under the page table lock we hold,
                // with the reference just taken; for a KSM folio the rmap only counts the
                // mapping (its stable node, not an anon_vma, finds the mappings), as
                // `replace_page()` in C.
                unsafe { pte::add_anon_rmap(k, kpage, vma, a) };
                // SAFETY: `kpage` is the first page of the referenced KSM folio.
                unsafe { pte::mk_pte(kpage, vma) }
            }
            None => {
                // SAFETY: The zero page is a valid page.
                let pfn = unsafe { bindings::page_to_pfn(pte::zero_page(a)) } as usize;
                // SAFETY: `ksm_zero_pages` and the mm's counter are `atomic_long_t`s
                // (`atomic64_t` on 64-bit), as `ksm_map_zero_page()` updates them; we replace an
                // anonymous page, so its `MM_ANONPAGES` count goes, as in C.
                unsafe {
                    bindings::atomic64_inc(crate::ksm_zero_pages_raw());
                    bindings::atomic64_inc(&raw mut (*mm.as_raw()).__bindgen_anon_1.ksm_zero_pages);
                    bindings::dec_mm_counter(mm.as_raw(), bindings::MM_ANONPAGES as i32);
                }
                // A dirty zero-page entry marks a zero page placed by KSM (`is_ksm_zero_pte`).
                Pte::from_pfn(pfn, pte::page_prot(vma))
                    .mkspecial()
                    .mkdirty()
            }
        };
        // SAFETY: The entry was cleared and flushed; `newpte` maps the KSM folio (referenced and
        // in its rmap, above) or is a special zero-page entry.
        unsafe { t.set(i, newpte) };
        // SAFETY: The entry that mapped `p` was just replaced under the page table lock.
        unsafe { pte::remove_rmap(g, p.as_raw(), vma) };
        if !g.mapped() {
            g.free_swap();
        }
        // Drop the old mapping's reference.
        // SAFETY: The page table held a reference on the folio for the entry just replaced; our
        // own reference keeps it alive until the guard and `p` are dropped.
        unsafe { bindings::folio_put(g.as_raw()) };
        merged |= 1 << i;
    }
    drop(t);
    drop(guards);
    pages.clear();
    Ok(merged)
}

/// Makes `page`, mapped at `addr` of `vma`, a KSM folio of its own that has no stable node yet
/// (`try_to_merge_one_page` with no `kpage`): write-protects it everywhere it is mapped.
fn make_ksm_page(vma: &MmapLockedVma, addr: usize, page: &PageRef) -> Result {
    // A page of a large folio is split off it first (`PageRef::split_folio`), and only when it
    // is about to merge, as `try_to_merge_one_page()` does.
    if !page.folio().test_anon() || page.folio().test_large() {
        return Err(EFAULT);
    }
    // Try-lock: better to scan on and come back than to wait here.
    let folio = page.folio().try_lock().ok_or(EFAULT)?;
    write_protect_page(vma, addr, &folio, page)?;
    // While we hold the folio lock, make it a KSM folio with no stable node yet:
    // `Engine::stable_insert()` sets the node.
    // SAFETY: The folio is locked and is anonymous, write-protected and not exclusive.
    unsafe { folio.set_mapping_word(bindings::FOLIO_MAPPING_KSM as usize) };
    folio.mark_accessed();
    // Reclaim frees clean folios with no dirty entries: make sure it is swapped.
    if !folio.test_dirty() {
        folio.mark_dirty();
    }
    Ok(())
}

/// Unshares every KSM page and KSM-placed zero page mapped in `[start, end)` of `vma`
/// (`break_ksm`), with a fault that copies it (`FAULT_FLAG_UNSHARE`). The caller holds the
/// mmap lock.
///
/// From madvise and prctl, where the mmap lock is held for writing, `mm/ksm.c` walks with
/// `PGWALK_WRLOCK`, which also write-locks the VMA. The read-locked walk is enough here: it only
/// reads entries under the page table lock, and the unshare fault is made for concurrency with
/// other faults. The only fault the VMA write lock would hold off (one under the VMA lock alone)
/// that can map a KSM page is a swap-in of one, behind the walk; with `PGWALK_WRLOCK` that
/// fault maps it right after the walk instead (`ksm_might_need_to_copy()` keeps a KSM folio
/// that has its stable node), and `mm/ksm.c` does not unshare swapped-out KSM pages either.
/// Nothing else maps KSM pages: ksmd needs the mmap lock, which the caller holds.
pub(crate) fn break_ksm(vma: &MmapLockedVma, start: usize, end: usize) -> Result {
    let mut addr = start;
    loop {
        kernel::task::cond_resched();
        let Some(a) = vma.next_ksm_page(addr, end)? else {
            return Ok(());
        };
        addr = a;
        // SAFETY: The VMA is valid and its mmap lock held (type invariant of `MmapLockedVma`); an
        // unshare fault without FAULT_FLAG_ALLOW_RETRY never drops the mmap lock.
        let ret = unsafe {
            bindings::handle_mm_fault(
                vma.as_ptr(),
                addr,
                bindings::fault_flag_FAULT_FLAG_UNSHARE | bindings::fault_flag_FAULT_FLAG_REMOTE,
                ptr::null_mut(),
            )
        };
        // Look again from the same address: the fault may back out (e.g. the accessed bit
        // changed under it), or wait for a migration to end. SIGBUS or SIGSEGV: racing
        // truncation or unmapping took the page away, and the rest with it.
        if ret & bindings::vm_fault_reason_VM_FAULT_OOM != 0 {
            return Err(ENOMEM);
        }
        if ret
            & (bindings::vm_fault_reason_VM_FAULT_SIGBUS
                | bindings::vm_fault_reason_VM_FAULT_SIGSEGV)
            != 0
        {
            return Ok(());
        }
    }
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
            unstable: KVVec::new(),
            unstable_len: 0,
            collide: RBTree::new(),
            stable: RBTree::new(),
            run_pages: KVec::new(),
            seq: 0,
            next_id: 0,
            seed,
            fp_key,
            zero_hash: hash_bytes(&ZEROES, seed),
        }
    }

    /// Starts a full scan: the unstable tree starts empty (`root_unstable_tree[nid] = RB_ROOT`).
    /// The items still linked carry the old `seq`, which tells they are not in it any more.
    pub(crate) fn start_scan(&mut self) {
        self.unstable.iter_mut().for_each(|h| *h = 0);
        self.unstable_len = 0;
        self.collide = RBTree::new();
        self.seq = self.seq.wrapping_add(1);
    }

    /// The item an [`ItemRef`] names.
    fn item_at<'a>(
        mms: &'a mut RBTree<usize, MmItems>,
        ids: &[usize],
        r: ItemRef,
    ) -> Option<&'a mut Item> {
        let (mmk, page) = resolve(ids, r)?;
        mms.get_mut(&mmk)?.items.get_mut(page)
    }

    /// The [`ItemRef`] of the page at `addr` of `mmk`.
    fn item_ref(&self, mmk: usize, addr: usize) -> Option<ItemRef> {
        let id = self.mms.get(&mmk)?.id;
        Some((u64::from(id) << REF_PAGE_BITS) | (addr >> PAGE_SHIFT) as u64)
    }

    /// The mm key and address an [`ItemRef`] names.
    fn ref_addr(&self, r: ItemRef) -> Option<(usize, usize)> {
        resolve(&self.ids, r).map(|(mmk, page)| (mmk, page << PAGE_SHIFT))
    }

    /// Links item `r`, of unstable tree `tree` and checksum `hash`, into the unstable table;
    /// false if the table cannot grow for it.
    fn unstable_link(&mut self, r: ItemRef, tree: u32, hash: u32) -> bool {
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
        true
    }

    /// Doubles the unstable table (512 buckets at first) and links its items again.
    fn unstable_grow(&mut self) -> bool {
        let n = (self.unstable.len() * 2).max(512);
        let Ok(mut table) = KVVec::from_elem(0, n, GFP_KERNEL) else {
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
                let b = bucket_of(it.nid(), it.hash, n);
                it.link = table[b] as usize;
                table[b] = r + 1;
            }
        }
        self.unstable = table;
        true
    }

    /// Unlinks item `r`, of unstable tree `tree` and checksum `hash`, from the unstable table's
    /// buckets.
    fn unstable_unlink(&mut self, r: ItemRef, tree: u32, hash: u32) {
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

    /// Whether `mm` has tracked pages.
    pub(crate) fn has_items(&self, mmk: usize) -> bool {
        self.mms.get(&mmk).is_some_and(|m| !m.items.is_empty())
    }

    fn item_mut(&mut self, mmk: usize, addr: usize) -> Option<&mut Item> {
        self.mms.get_mut(&mmk)?.items.get_mut(addr >> PAGE_SHIFT)
    }

    fn item(&mut self, mmk: usize, addr: usize) -> Option<Item> {
        self.item_mut(mmk, addr).map(|i| *i)
    }

    fn mm_ptr(&self, mmk: usize) -> Option<*mut bindings::mm_struct> {
        self.mms.get(&mmk).map(|m| m.mm)
    }

    /// Takes a user reference on a tracked mm, unless it is exiting.
    fn mm_user(&self, mmk: usize) -> Option<ARef<MmWithUserAsync>> {
        let mm = self.mm_ptr(mmk)?;
        // SAFETY: The mm is kept allocated by its registry slot while it has items.
        let mm = unsafe { Mm::from_raw(mm) };
        mm.mmget_not_zero().map(MmWithUser::into_mmput_async)
    }

    /// Returns the item for `addr` of `mm`, creating it (`get_next_rmap_item`).
    pub(crate) fn get_or_create_item(&mut self, mm: &Mm, addr: usize) -> Result {
        let mmk = mm_key(mm);
        if self.mms.get(&mmk).is_none() {
            let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
            let id = match self.free_ids.pop() {
                Some(id) => id,
                None => {
                    let id = self.ids.len();
                    if id >> (u64::BITS - REF_PAGE_BITS) != 0 {
                        return Err(ENOMEM);
                    }
                    self.ids.push(0, GFP_KERNEL)?;
                    id as u32
                }
            };
            self.ids[id as usize] = mmk;
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
                let _ = self.free_ids.push(m.id, GFP_KERNEL);
            }
        }
    }

    /// Takes an item out of the stable or unstable tree (`remove_rmap_item_from_tree`).
    ///
    /// O(1) in the number of mappings of its KSM page: the item knows the index of its mapping
    /// in the node's list, and the last mapping takes its place.
    fn remove_from_tree(&mut self, mmk: usize, addr: usize) {
        let Some(item) = self.item(mmk, addr) else {
            return;
        };
        let node = item.node();
        if !node.is_null() {
            // SAFETY: An item's node stays allocated while the item points to it.
            let node = unsafe { &*node };
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
            if let Some(mm) = self.mm_ptr(mmk) {
                mm_add(mm, 0, -1);
            }
            // SAFETY: The mapping held this reference.
            unsafe { bindings::put_anon_vma(m.anon_vma) };
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

    /// Takes the unstable item `r` (whose value is `item`) out of the unstable table's bucket or
    /// collision tree, if it is in this scan's.
    fn unstable_remove(&mut self, r: ItemRef, item: &Item) {
        if item.seq() != self.seq {
            return;
        }
        if item.collide() {
            self.collide
                .remove(&(item.nid(), item.hash, item.link as u64, r));
        } else {
            self.unstable_unlink(r, item.nid(), item.hash);
        }
    }

    /// Counts the stable nodes of one contents class in a `(tree, hash, fingerprint)` subgroup
    /// (a chain when more than one), up to `max`. Nodes of other classes (never seen: their
    /// contents would share a 64-bit hash and a 64-bit keyed fingerprint) are stepped over: the
    /// cost is O(`max` log n), whatever the length of the chain (`max_page_sharing=2` makes one
    /// duplicate per two mappings).
    fn group_len(&self, sub: (u32, Hash, u64), class: u32, max: usize) -> usize {
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
    fn classify(&mut self, tree: u32, hash: Hash, kfolio: &Folio) -> (u64, u32) {
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
            // A stale node (its KSM page is gone) is of no class that matters any more.
            if let Some(f) = node_folio(node) {
                if kfolio.page_eq(0, &f, 0) {
                    return (fp, node.class);
                }
            }
        }
        (fp, unused)
    }

    /// Removes a stale stable node (its folio is gone) and resets the items that pointed to it
    /// (`remove_node_from_stable_tree`).
    fn remove_node(&mut self, key: SKey) {
        // The address the items point to: the node's in the tree, before it moves out.
        let Some(p) = self.stable.get(&key).map(ptr::from_ref::<StableNode>) else {
            return;
        };
        let Some(node) = self.stable.remove(&key) else {
            return;
        };
        // SAFETY: The node is out of the tree and no folio points to it any more.
        let maps = unsafe { node.maps() };
        for (i, m) in maps.iter().enumerate() {
            if i == 0 {
                counter_dec(&COUNTERS.pages_shared);
            } else {
                counter_dec(&COUNTERS.pages_sharing);
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
        self.chain_changed((key.0, key.1, key.2), node.class, false);
        drop(node);
    }

    /// Updates the chain counters after a node of contents class `class` joined (`added`) or
    /// left the subgroup `sub`.
    fn chain_changed(&self, sub: (u32, Hash, u64), class: u32, added: bool) {
        // `chain_delta` tells 0, 1, 2 and more than 2 nodes apart: count up to 3.
        let (chains, dups) = chain_delta(self.group_len(sub, class, 3), added);
        COUNTERS
            .stable_node_chains
            .fetch_add(chains as u64, Relaxed);
        COUNTERS.stable_node_dups.fetch_add(dups as u64, Relaxed);
    }

    /// Makes the locked KSM folio `kfolio` a KSM page of the stable tree (`stable_tree_insert`).
    fn stable_insert(
        &mut self,
        kfolio: &FolioLockGuard<'_>,
        hash: Hash,
    ) -> Option<*const StableNode> {
        let tree = tree_of(kfolio.nid());
        let (fp, class) = self.classify(tree, hash, kfolio);
        // Ids count down, so that a subgroup is visited newest first.
        let key = (tree, hash, fp, (u64::MAX >> 1) - self.next_id);
        let maps = KVec::with_capacity(2, GFP_KERNEL).ok()?;
        let entry = RBTreeNode::new(
            key,
            StableNode {
                kpfn: Atomic::new(kfolio.pfn()),
                key,
                len: Atomic::new(0),
                class,
                maps: UnsafeCell::new(maps),
            },
            GFP_KERNEL,
        )
        .ok()?;
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

    /// Lists the item at `addr` of `mmk` as a mapping of `node`, whose folio is locked
    /// (`stable_tree_append`); capacity for it was reserved. O(1): the item keeps the index of
    /// its mapping.
    fn append(
        &mut self,
        _kfolio: &FolioLockGuard<'_>,
        node: *const StableNode,
        mmk: usize,
        addr: usize,
        anon_vma: *mut bindings::anon_vma,
    ) {
        // SAFETY: The node is alive: its folio is locked and points to it.
        let n = unsafe { &*node };
        // SAFETY: We hold the KSM folio's lock.
        let maps = unsafe { n.maps() };
        let m = Mapping {
            mm: mmk,
            addr,
            anon_vma,
        };
        let slot = maps.len();
        if self.item(mmk, addr).is_none()
            || u32::try_from(slot).is_err()
            || maps.push(m, GFP_KERNEL).is_err()
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
        if let Some(mm) = self.mm_ptr(mmk) {
            mm_add(mm, 0, 1);
        }
        if let Some(it) = self.item_mut(mmk, addr) {
            it.set_node(node);
            it.hash = slot as u32;
        }
    }

    /// Searches the stable tree for a KSM page with the contents of `page`
    /// (`stable_tree_search`). A KSM page that reached `max_page_sharing` is only returned if
    /// `page` is already mapped from it (a fork) or `bypass`.
    ///
    /// The nodes of `page`'s hash with fingerprint 0 are looked at first, then, if the group has
    /// nodes of other contents, those of `page`'s fingerprint: at most two subgroups of one
    /// contents each, and one page comparison per subgroup.
    fn stable_search(
        &mut self,
        page: &PageRef,
        hash: Hash,
        bypass: bool,
    ) -> Option<(ARef<Folio>, *const StableNode)> {
        let folio = page.folio();
        let own = folio_stable_node(folio);
        if !own.is_null() {
            // A KSM page forked: its own node (`page_node` in `stable_tree_search()`).
            return Some((ARef::from(folio), own));
        }
        let tree = tree_of(folio.nid());
        if let Some(found) = self.subgroup_search(page, (tree, hash, 0), bypass) {
            return Some(found);
        }
        let same = |k: &SKey| k.0 == tree && k.1 == hash;
        next_in_group(&self.stable, &(tree, hash, 1, 0), same)?;
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
        sub: (u32, Hash, u64),
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
    fn unstable_find(&mut self, tree: u32, sum: u32, me: ItemRef) -> Option<ItemRef> {
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
            if it.nid() == tree && it.hash == sum && r != me {
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
    fn collide_insert(&mut self, r: ItemRef, tree: u32, sum: u32, fp: u64, linked: bool) -> bool {
        let key = (tree, sum, fp, r);
        let Ok(entry) = RBTreeNode::new(key, (), GFP_KERNEL) else {
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

    /// Searches the unstable tree for a page with the contents of `page`, or inserts the item
    /// (`unstable_tree_search_insert`).
    ///
    /// The table is keyed by checksum, and holds one item per checksum in its buckets. When
    /// another page of the same checksum turns out to have other contents, both go to the
    /// collision tree, keyed by their [`fingerprint`], and so do the later pages of that
    /// checksum: whatever the contents, a search compares `page` with one page of equal
    /// checksum, or with the pages of equal checksum and fingerprint (one, but by chance), and
    /// takes the mmap lock of their mms only for that.
    fn unstable_search_insert(
        &mut self,
        mmk: usize,
        addr: usize,
        page: &PageRef,
        hash: Hash,
    ) -> Option<(ARef<MmWithUserAsync>, usize, PageRef)> {
        let nid = page.folio().nid();
        let tree = tree_of(nid);
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
        it.set_nid(tree);
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

    /// The pages after `addr` of `mmk` that a run of [`merge_run`] may take, as a bit mask (bit
    /// `i` for `addr + i * PAGE_SIZE`, `0 < i < max`): those whose item is not merged and whose
    /// contents hashed to `hash` at their last scan. A page that has those contents now is then a
    /// page whose checksum held still between two scans, which is what C asks before merging.
    fn run_candidates(&mut self, mmk: usize, addr: usize, hash: Hash, max: usize) -> u64 {
        let mut more = 0u64;
        let Some(m) = self.mms.get_mut(&mmk) else {
            return 0;
        };
        for i in 1..max.min(u64::BITS as usize) {
            let Some(it) = m.items.get_mut((addr >> PAGE_SHIFT) + i) else {
                break;
            };
            if !it.hashed() || it.hash != checksum(hash) || !it.node().is_null() {
                break;
            }
            more |= 1 << i;
        }
        more
    }

    /// Merges the page at `addr` of `mm` with `target`, with up to `max - 1` pages after it
    /// allowed by `more` (see [`merge_run`]) (`try_to_merge_with_ksm_page`). Returns the pages
    /// merged as a mask (see [`run_addrs`]; 0 on failure), taken out of the trees, and the VMA's
    /// anon_vma with a reference for each of them, for their mappings in the stable tree
    /// ([`Engine::append`]).
    fn merge_item(
        &mut self,
        mm: &MmWithUser,
        addr: usize,
        page: &PageRef,
        target: &Target<'_>,
        max: usize,
        more: u64,
    ) -> (u64, *mut bindings::anon_vma) {
        let guard = mm.mmap_read_lock();
        let Some(vma) = mergeable_vma(&guard, addr) else {
            return (0, ptr::null_mut());
        };
        let merged = match target {
            Target::NewKsm => u64::from(make_ksm_page(vma, addr, page).is_ok()),
            _ => merge_run(vma, addr, page, target, max, more, &mut self.run_pages).unwrap_or(0),
        };
        // SAFETY: The VMA has an anon_vma (checked by `mergeable_vma`), valid under the mmap
        // lock; the references we take keep it for the stable tree.
        let av = unsafe { (*vma.as_ptr()).anon_vma };
        let mmk = mm_key(mm);
        for a in run_addrs(addr, merged) {
            self.remove_from_tree(mmk, a);
            // SAFETY: As above.
            unsafe { bindings::get_anon_vma(av) };
        }
        (merged, av)
    }

    /// Undoes a merge of the item that was not listed (`break_cow`), dropping the anon_vma
    /// reference [`Engine::merge_item`] took for it.
    fn break_cow(&mut self, mmk: usize, addr: usize, anon_vma: *mut bindings::anon_vma) {
        // SAFETY: The caller's reference from `merge_item`.
        unsafe { bindings::put_anon_vma(anon_vma) };
        if let Some(mm) = self.mm_user(mmk) {
            let guard = mm.mmap_read_lock();
            if let Some(vma) = mergeable_vma(&guard, addr) {
                let _ = break_ksm(vma, addr, addr + PAGE_SIZE);
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
        let cur = folio_stable_node(page.folio());
        let mut bypass = false;
        let hash;
        if !cur.is_null() {
            if ptr::eq(item.node(), cur) {
                return;
            }
            // SAFETY: The folio maps the node and we hold a reference on the folio.
            let node = unsafe { &*cur };
            // A forked KSM page may go over the sharing limit.
            bypass = node.len.load(Relaxed) >= MAX_PAGE_SHARING.load(Relaxed) as u32;
            hash = node.key.1;
        } else {
            self.remove_from_tree(mmk, addr);
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
                        if merge_run(vma, addr, &page, zero, 1, 0, &mut self.run_pages)
                            .is_ok_and(|m| m != 0)
                        {
                            return;
                        }
                    }
                }
            }
            hash = h;
        }

        // First the stable tree.
        if let Some((kfolio, node)) = self.stable_search(&page, hash, bypass) {
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
                if unsafe { n.maps() }.reserve(max, GFP_KERNEL).is_err() {
                    return;
                }
                drop(g);
            }
            let (merged, av) = self.merge_item(mm, addr, &page, &Target::Ksm(&kfolio), max, more);
            if merged == 0 {
                return;
            }
            match lock_node_folio(n, &kfolio) {
                Some(g) => {
                    for a in run_addrs(addr, merged) {
                        self.append(&g, node, mmk, a, av);
                    }
                }
                None => {
                    for a in run_addrs(addr, merged) {
                        self.break_cow(mmk, a, av);
                    }
                }
            }
            return;
        }
        self.remove_from_tree(mmk, addr);

        // Then the unstable tree.
        let Some((tmm, taddr, mut tree_page)) = self.unstable_search_insert(mmk, addr, &page, hash)
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
        // Make this page a KSM page, then map the tree page's address to it.
        let (m, av) = self.merge_item(mm, addr, &page, &Target::NewKsm, 1, 0);
        if m == 0 {
            return;
        }
        let (tm, tav) = self.merge_item(&tmm, taddr, &tree_page, &Target::Ksm(page.folio()), 1, 0);
        if tm == 0 {
            // A KSM page with a single mapping: break it.
            self.break_cow(mmk, addr, av);
            return;
        }
        drop(tree_page);
        // The key is the hash of the KSM page as it is now, write-protected everywhere: `hash`
        // was taken before, and the page may have changed (in step with the tree page) since.
        let hash = hash_page(&page, self.seed);
        let kfolio = page.folio().lock();
        match self.stable_insert(&kfolio, hash) {
            Some(node) => {
                self.append(&kfolio, node, tmmk, taddr, tav);
                self.append(&kfolio, node, mmk, addr, av);
                drop(kfolio);
            }
            None => {
                drop(kfolio);
                self.break_cow(tmmk, taddr, tav);
                self.break_cow(mmk, addr, av);
            }
        }
    }

    /// Unshares every KSM page of `mm`'s mergeable VMAs (part of `run=2`).
    pub(crate) fn unmerge_mm(mm: &MmWithUser) -> Result {
        let guard = mm.mmap_read_lock();
        let mut addr = 0;
        while let Some(vma) = guard.find_vma(addr) {
            if vma.flags() & vma_flags::MERGEABLE != 0 && vma.has_anon_vma() {
                break_ksm(vma, vma.start(), vma.end())?;
            }
            addr = vma.end();
        }
        Ok(())
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

/// Walks the mappings of a locked KSM folio for the rmap code (`rmap_walk_ksm`).
///
/// # Safety
///
/// `folio` is a locked KSM folio and `rwc` a valid walk control.
pub(crate) unsafe fn rmap_walk(folio: &Folio, rwc: *mut bindings::rmap_walk_control) {
    let node = folio_stable_node(folio);
    if node.is_null() {
        return;
    }
    // SAFETY: The folio is locked (safety requirement), so its node is alive and its list stable.
    let maps = unsafe { (*node).maps_ref() };
    // SAFETY: `rwc` is valid (safety requirement).
    let rwc = unsafe { &mut *rwc };
    // First the VMAs that hold each mapping, then other mms' (forks since ksmd passed).
    for search_new_forks in [false, true] {
        for m in maps.iter() {
            kernel::task::cond_resched();
            let av = m.anon_vma;
            // SAFETY: The mapping holds a reference on `av`.
            if unsafe { bindings::anon_vma_trylock_read(av) } == 0 {
                if rwc.try_lock {
                    rwc.contended = true;
                    return;
                }
                // SAFETY: As above.
                unsafe { bindings::anon_vma_lock_read(av) };
            }
            // SAFETY: The anon_vma is read-locked, which protects its interval tree.
            let mut avc = unsafe {
                bindings::anon_vma_interval_tree_iter_first(&raw mut (*av).rb_root, 0, usize::MAX)
            };
            while !avc.is_null() {
                kernel::task::cond_resched();
                // SAFETY: `avc` is a chain entry of the locked anon_vma; its VMA is valid.
                let vma = unsafe { (*avc).vma };
                // SAFETY: As above.
                let (start, end, vm_mm) = unsafe {
                    (
                        (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_start,
                        (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_end,
                        (*vma).vm_mm as usize,
                    )
                };
                let visit = m.addr >= start && m.addr < end && (vm_mm == m.mm) != search_new_forks;
                // SAFETY: The callbacks are the rmap code's, called as `rmap_walk_ksm()` does.
                let skip = !visit || rwc.invalid_vma.is_some_and(|f| unsafe { f(vma, rwc.arg) });
                if !skip {
                    let more = match rwc.rmap_one {
                        // SAFETY: As above.
                        Some(f) => unsafe { f(folio.as_raw(), vma, m.addr, rwc.arg) },
                        None => true,
                    };
                    // SAFETY: As above.
                    let done = !more || rwc.done.is_some_and(|f| unsafe { f(folio.as_raw()) } != 0);
                    if done {
                        // SAFETY: Locked above.
                        unsafe { bindings::anon_vma_unlock_read(av) };
                        return;
                    }
                }
                // SAFETY: `avc` is a chain entry of the locked anon_vma.
                avc = unsafe { bindings::anon_vma_interval_tree_iter_next(avc, 0, usize::MAX) };
            }
            // SAFETY: Locked above.
            unsafe { bindings::anon_vma_unlock_read(av) };
        }
    }
}

/// Moves a KSM folio's stable node to the folio that replaces it on migration
/// (`folio_migrate_ksm`).
///
/// # Safety
///
/// Both folios are locked, and `newfolio->mapping` was copied from `folio`.
pub(crate) unsafe fn migrate(newfolio: &Folio, folio: &Folio) {
    let node = folio_stable_node(folio);
    if node.is_null() {
        return;
    }
    // SAFETY: The old folio is locked and points to the node, so it is alive.
    let node = unsafe { &*node };
    // Publish the new frame before the old folio stops pointing to the node (`smp_wmb` in C),
    // for `node_folio()`.
    node.kpfn.store(newfolio.pfn(), Release);
    // SAFETY: The old folio is locked (safety requirement); it keeps the KSM flag without a node.
    unsafe { folio.set_mapping_word(bindings::FOLIO_MAPPING_KSM as usize) };
}

/// `ERR_PTR(-err)`.
fn err_ptr<T>(err: u32) -> *mut T {
    (-(err as isize)) as *mut T
}

/// Returns the folio that swap-in may map at `addr` of `vma`, copying `folio` when it cannot be
/// mapped there as it is (`ksm_might_need_to_copy`): a KSM folio without its stable node (or
/// while `run=2` unmerges), or an anonymous folio of another anon_vma or index (a KSM page
/// swapped out and read back for another mapping). `NULL` when no memory for the copy,
/// `ERR_PTR(-EHWPOISON)` for a poisoned page.
///
/// # Safety
///
/// `folio` is a locked, referenced swap-cache folio and `vma` the VMA of `addr`, with the mmap
/// or VMA lock held, as in `do_swap_page()`.
pub(crate) unsafe fn might_need_to_copy(
    folio: &Folio,
    vma: *mut bindings::vm_area_struct,
    addr: usize,
) -> *mut bindings::folio {
    let raw = folio.as_raw();
    if folio.test_large() {
        return raw;
    }
    if folio.test_ksm() {
        if !folio_stable_node(folio).is_null() && RUN.load(Relaxed) & RUN_UNMERGE == 0 {
            // No need to copy it.
            return raw;
        }
    } else {
        // SAFETY: The folio is locked (safety requirement).
        let av = unsafe { bindings::folio_anon_vma(raw) };
        if av.is_null() {
            return raw;
        }
        // SAFETY: `vma` is valid and, being where an anonymous page is swapped in, has an
        // anon_vma; `av` is valid while the folio is locked and mapped or in the swap cache.
        let same = unsafe {
            bindings::folio_index(raw) == bindings::linear_page_index(vma, addr)
                && (*av).root == (*(*vma).anon_vma).root
        };
        if same {
            return raw;
        }
    }
    let page = folio.page_raw(0);
    // SAFETY: `page` is the folio's page.
    if unsafe { bindings::PageHWPoison(page) } {
        return err_ptr(bindings::EHWPOISON);
    }
    // SAFETY: As above.
    if !unsafe { bindings::folio_test_uptodate(raw) } {
        // Let `do_swap_page()` report the error.
        return raw;
    }
    // SAFETY: `vma` and `addr` are valid (safety requirement).
    let new = unsafe { bindings::vma_alloc_folio(bindings::GFP_HIGHUSER_MOVABLE, 0, vma, addr) };
    if new.is_null() {
        return new;
    }
    // SAFETY: `new` is a new folio we own; `vma` is valid.
    if unsafe { bindings::mem_cgroup_charge(new, (*vma).vm_mm, bindings::GFP_KERNEL) } != 0 {
        // SAFETY: Drops our reference on the new folio.
        unsafe { bindings::folio_put(new) };
        return ptr::null_mut();
    }
    // SAFETY: Both pages are valid; the new one is ours.
    if unsafe { bindings::copy_mc_user_highpage(bindings::folio_page(new, 0), page, addr, vma) }
        != 0
    {
        // SAFETY: Drops our reference on the new folio.
        unsafe { bindings::folio_put(new) };
        return err_ptr(bindings::EHWPOISON);
    }
    // SAFETY: The new folio is ours alone: not mapped, not on an LRU list yet.
    unsafe {
        bindings::folio_set_dirty(new);
        bindings::__folio_mark_uptodate(new);
        bindings::__folio_set_locked(new);
        #[cfg(CONFIG_SWAP)]
        bindings::count_vm_event(bindings::vm_event_item_KSM_SWPIN_COPY);
    }
    new
}

/// Collects the processes that map the poisoned KSM page `page`, for memory-failure handling
/// (`collect_procs_ksm`).
///
/// # Safety
///
/// `folio` is a locked KSM folio, `page` a page of it and `to_kill` the kill list of
/// `memory-failure.c`.
#[cfg(CONFIG_MEMORY_FAILURE)]
pub(crate) unsafe fn collect_procs(
    folio: &Folio,
    page: *const bindings::page,
    to_kill: *mut bindings::list_head,
    force_early: i32,
) {
    let node = folio_stable_node(folio);
    if node.is_null() {
        return;
    }
    // SAFETY: The folio is locked (safety requirement), so its node is alive and its list stable.
    let maps = unsafe { (*node).maps_ref() };
    for m in maps.iter() {
        let av = m.anon_vma;
        // SAFETY: The mapping holds a reference on `av`; `init_task` heads the task list, which
        // `next_task` walks under RCU; the anon_vma's interval tree is read-locked.
        unsafe {
            bindings::anon_vma_lock_read(av);
            bindings::rcu_read_lock();
            let head = &raw mut bindings::init_task;
            let mut tsk = bindings::next_task(head);
            while tsk != head {
                let t = bindings::task_early_kill(tsk, force_early);
                if !t.is_null() {
                    let mut avc = bindings::anon_vma_interval_tree_iter_first(
                        &raw mut (*av).rb_root,
                        0,
                        usize::MAX,
                    );
                    while !avc.is_null() {
                        let vma = (*avc).vma;
                        if (*vma).vm_mm == (*t).mm {
                            bindings::add_to_kill_ksm(t, page, vma, to_kill, m.addr);
                        }
                        avc = bindings::anon_vma_interval_tree_iter_next(avc, 0, usize::MAX);
                    }
                }
                tsk = bindings::next_task(tsk);
            }
            bindings::rcu_read_unlock();
            bindings::anon_vma_unlock_read(av);
        }
    }
}

impl Engine {
    /// Forgets the KSM pages whose frames were in `[start_pfn, end_pfn)`, memory that went
    /// offline (`ksm_check_stable_tree`): their `struct page`s are about to go.
    pub(crate) fn remove_nodes_in_range(&mut self, start_pfn: usize, end_pfn: usize) {
        let mut key = (0, 0, 0, 0);
        loop {
            let (k, kpfn) = {
                let Some(c) = self.stable.cursor_lower_bound(&key) else {
                    return;
                };
                let (k, v) = c.current();
                (*k, v.kpfn.load(Relaxed))
            };
            key = (k.0, k.1, k.2, k.3 + 1);
            if (start_pfn..end_pfn).contains(&kpfn) {
                // Do not look at the folio: its memory is gone.
                self.remove_node(k);
            }
            kernel::task::cond_resched();
        }
    }
}

#[kunit_tests(ksm_rs_engine)]
mod tests {
    use super::*;

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

    /// Fills `e` with `mms` address spaces of `pages` items each, all of checksum `hash`.
    fn fill(e: &mut Engine, mms: usize, pages: usize, hash: u32) -> Result {
        for m in 1..=mms {
            // Keys are only compared and looked up here: any distinct value will do.
            let mmk = m << 12;
            let id = e.ids.len() as u32;
            e.ids.push(mmk, GFP_KERNEL)?;
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
    fn linked(e: &mut Engine, tree: u32, hash: u32) -> Result<KVec<(usize, usize)>> {
        let mut out = KVec::new();
        let mut cur = e.unstable[bucket_of(tree, hash, e.unstable.len())];
        while cur != 0 {
            let it = Engine::item_at(&mut e.mms, &e.ids, cur - 1).ok_or(EINVAL)?;
            let link = it.link as u64;
            if it.nid() == tree && it.hash == hash {
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
                let tree = u32::from(p % 3 == 0);
                let r = e.item_ref(mmk, addr).ok_or(EINVAL)?;
                let seq = e.seq;
                let it = e.item_mut(mmk, addr).ok_or(EINVAL)?;
                it.set_unstable(true);
                it.set_seq(seq);
                it.set_nid(tree);
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
                assert_eq!(u32::from(p % 3 == 0), tree);
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
        // A new scan starts empty.
        e.start_scan();
        assert_eq!(e.unstable_len, 0);
        assert!(e.unstable.iter().all(|&h| h == 0));
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
                maps: UnsafeCell::new(KVec::new()),
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
