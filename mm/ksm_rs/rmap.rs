// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The reverse side: what the rest of mm calls for KSM folios. The walk of a KSM page's mappings
//! for reclaim, migration and the like (`rmap_walk_ksm`), migration of a KSM folio
//! (`folio_migrate_ksm`), swap-in (`ksm_might_need_to_copy`), memory failure
//! (`collect_procs_ksm`) and memory hot-remove (`ksm_check_stable_tree`).
//!
//! Cost: an rmap walk is O(mappings), each mapping found in its anon_vma's interval tree at the
//! mapping's address.
//!
//! # Locking
//!
//! The callers hold the KSM folio's lock, which keeps the node's list of mappings stable; each
//! mapping's anon_vma is read-locked for its part of the walk. Hot-remove runs with ksmd's batch
//! excluded (the scanner mutex).

use crate::{engine::Engine, stable::folio_stable_node, tunables::*};
use core::ptr;
use kernel::{
    bindings,
    mm::folio::Folio,
    sync::atomic::{Relaxed, Release},
};

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
            // Only the VMAs whose range of page offsets holds the mapping's: with many VMAs
            // sharing one anon_vma (`mprotect` splits), the others cannot map the page there.
            let pgoff = m.pgoff;
            // SAFETY: The anon_vma is read-locked, which protects its interval tree.
            let mut avc = unsafe {
                bindings::anon_vma_interval_tree_iter_first(&raw mut (*av).rb_root, pgoff, pgoff)
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
                avc = unsafe { bindings::anon_vma_interval_tree_iter_next(avc, pgoff, pgoff) };
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
                    // The VMAs that may map the page, as in `rmap_walk`.
                    let mut avc = bindings::anon_vma_interval_tree_iter_first(
                        &raw mut (*av).rb_root,
                        m.pgoff,
                        m.pgoff,
                    );
                    while !avc.is_null() {
                        let vma = (*avc).vma;
                        if (*vma).vm_mm == (*t).mm {
                            bindings::add_to_kill_ksm(t, page, vma, to_kill, m.addr);
                        }
                        avc = bindings::anon_vma_interval_tree_iter_next(avc, m.pgoff, m.pgoff);
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
