// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The hardened merge (`merge_fresh_frame`, a ksm_rs extension, off by default): a new KSM
//! page is a copy of the merged pages in a newly allocated frame, never one of their frames.
//!
//! `mm/ksm.c` makes the first of two identical pages the KSM page, in place: the frame a
//! process chose (for example one it found prone to bit flips, "templating" for Rowhammer) ends
//! up holding data it shares with, say, a victim's page of the same contents, which it can then
//! flip (Flip Feng Shui; VUsion calls this physical placement). With `merge_fresh_frame=1`,
//! both pages are replaced by a copy in a frame that the page allocator chooses: on the scanned
//! page's NUMA node (only there when `merge_across_nodes` is 0, where the node is part of the
//! semantics; else preferred), from its free lists, randomized with
//! `CONFIG_SHUFFLE_PAGE_ALLOCATOR` and `page_alloc.shuffle=1`. Neither candidate's frame can be
//! the KSM page. What the allocator does not guarantee is stated in
//! `Documentation/mm/ksm_rs.rst`: a process that can steer its free lists (for example by
//! freeing a templated frame right before ksmd allocates) can still influence where the copy
//! goes; the knob takes away the direct choice, not every influence.
//!
//! Only the creation of a KSM page changes (the unstable-tree merge of
//! `cmp_and_merge_page()`); merging into an existing KSM page is the same as before.
//!
//! # Cost
//!
//! Per KSM page created: one order-0 allocation (no more than one round of direct reclaim),
//! one memcg charge, one page copy, one hash of the copy (the code without the knob hashes the
//! KSM page too), and one `folio_add_lru`; the old frames of both pages are freed, so memory
//! use is the same once merged. Nothing when the knob is 0 (one relaxed load per KSM page
//! created). When the allocation or the charge fails, the pages are not merged this time and
//! nothing is counted or reported: they stay in the unstable tree's path and are tried again at
//! a later scan.
//!
//! # Locking and what else runs
//!
//! The new folio is known only to ksmd until it is first mapped ([`NewFolio`]), and off the LRU
//! lists until it is set up ([`UnlistedFolio`]): reclaim, compaction and migration cannot see
//! it meanwhile. Once mapped, a fault may copy it (write or unshare) and `munmap` or exit may
//! unmap it; our reference keeps it alive. It is mapped with the mmap lock (read) of each mm,
//! as [`Engine::merge_item`] always does, without holding its folio lock (mmap lock before folio
//! lock); its lock is taken afterwards, for [`Engine::stable_insert`] and [`Engine::append`],
//! as for a KSM page made in place.

use crate::{
    engine::{mm_key, Engine},
    hash::hash_folio,
    merge::Target,
    tunables::*,
};
use kernel::{
    mm::{
        folio::{NewFolio, PageRef, UnlistedFolio},
        MmWithUser,
    },
    sync::atomic::Relaxed,
};

/// Makes a KSM folio with no stable node yet that holds a copy of `page`, for `mm` (charged to
/// its memory cgroup, as `ksm_might_need_to_copy()` charges its copy): not mapped, not on the
/// LRU lists. `None` if no memory (or no memcg room) for it, or on a memory error in `page`.
fn fresh_ksm_folio(mm: &MmWithUser, page: &PageRef) -> Option<UnlistedFolio> {
    // With one tree per node, the KSM page must be on the node of the pages it replaces.
    let this_node_only = MERGE_ACROSS_NODES.load(Relaxed) == 0;
    let mut new = NewFolio::alloc_user_near(page.folio(), this_node_only).ok()?;
    new.charge(mm).ok()?;
    new.copy_from(page).ok()?;
    new.mark_uptodate();
    // Anonymous memory: swapped, not dropped, by reclaim.
    new.set_swapbacked();
    new.set_dirty();
    Some(new.into_ksm())
}

impl Engine {
    /// Merges the scanned page `page` at `addr` of `mm` with the identical unstable tree page
    /// `tree_page` at `taddr` of `tmm` into a new KSM page in a fresh frame, and puts it in the
    /// stable tree of the pages' merge domain (`merge_fresh_frame=1`). Both pages are small folios.
    ///
    /// Each page is replaced by the copy through [`Target::Ksm`], which compares the contents
    /// again after the page is write-protected and flushed: a page that changed after the copy
    /// is not merged. If the first is not merged, nothing is and the copy is freed; if only the
    /// first is, its merge is undone ([`Engine::break_cow`]) as for a KSM page made in place.
    pub(crate) fn merge_fresh(
        &mut self,
        mm: &MmWithUser,
        addr: usize,
        page: &PageRef,
        tmm: &MmWithUser,
        taddr: usize,
        tree_page: PageRef,
    ) {
        let (mmk, tmmk) = (mm_key(mm), mm_key(tmm));
        let Some(kfolio) = fresh_ksm_folio(mm, page) else {
            return;
        };
        let m = self.merge_item(mm, addr, page, &Target::Ksm(&kfolio), 1, 0);
        if m.mask == 0 {
            // Never mapped: dropping our reference frees it (`free_pages_prepare()` clears the
            // KSM `mapping` word as for any anonymous folio) and uncharges it.
            return;
        }
        let tm = self.merge_item(tmm, taddr, &tree_page, &Target::Ksm(&kfolio), 1, 0);
        drop(tree_page);
        if tm.mask == 0 {
            // A KSM page with a single mapping: break it. Should that fail (no memory, the VMA
            // changed), the page stays mapped as a KSM page without a node, as one made in place
            // would: it must be on the LRU lists then, like any mapped page.
            self.break_cow(mmk, addr, m.anon_vma);
            if kfolio.mapped() {
                kfolio.add_lru();
            }
            return;
        }
        // The copy cannot change: every mapping of it is read-only (and it has two).
        let hash = hash_folio(&kfolio, self.seed);
        let g = kfolio.lock();
        match self.stable_insert(&g, hash, self.dom_of(mmk)) {
            Some(node) => {
                self.append(&g, node, tmmk, taddr, tm.pgoff, tm.anon_vma);
                self.append(&g, node, mmk, addr, m.pgoff, m.anon_vma);
                drop(g);
            }
            None => {
                drop(g);
                self.break_cow(tmmk, taddr, tm.anon_vma);
                self.break_cow(mmk, addr, m.anon_vma);
            }
        }
        // Mapped (or freed when the last mapping goes): reclaim and migration may take it now.
        kfolio.add_lru();
    }
}
