// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! ksmd and its scan cursor (`ksm_do_scan`, `scan_get_next_rmap_item`, `struct ksm_scan`).
//!
//! ksmd walks the registry's slots in a fixed order (by address of the `mm_struct`), their
//! mergeable VMAs and their present anonymous pages, `pages_to_scan` pages per batch, and hands
//! each page to the merge engine ([`crate::engine::Engine::cmp_and_merge`]); a pass over all
//! slots is one full scan. One walk of the page tables finds up to [`SCAN_AHEAD`] pages, whose
//! addresses only are kept: each page is taken, with a reference, when its turn comes.
//!
//! Cost: per page, the engine's (see [`crate::engine`]) plus an amortised share of one page table
//! walk; unpopulated page tables are skipped.
//!
//! # Locking
//!
//! A batch holds the scanner mutex ([`crate::scan::Ksm::scanner`], `ksm_thread_mutex`) and
//! takes the mmap lock (read) of the mm at the cursor, one page at a time; the registry lock
//! only to move the cursor.

use crate::{
    advisor,
    engine::{mm_key, Engine},
    merge::mergeable_page_at,
    pressure,
    scan::Ksm,
    trace,
    tunables::*,
};
use kernel::{
    mm::{
        flags::VM_MERGEABLE, folio::PageRef, virt::flags::MERGEABLE as VMA_MERGEABLE, Mm,
        MmWithUser, MmWithUserAsync,
    },
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, atomic::Relaxed},
    time::msecs_to_jiffies,
};

/// The most pages one walk of ksmd's scan finds ahead of it.
pub(crate) const SCAN_AHEAD: usize = 32;

/// Forgets the pages found ahead of the cursor and moves the cursor back to the first of them,
/// to be found again.
fn drop_queue(queue: &mut KVec<usize>, address: &mut usize, prune_from: &mut usize) {
    if let Some(&a) = queue.last() {
        *address = a;
        *prune_from = a;
    }
    queue.clear();
}

/// ksmd's position inside the slot at the registry's cursor (the rest of `struct ksm_scan`).
pub(crate) struct Scanner {
    /// The next address to look at.
    pub(crate) address: usize,
    /// The scan-time advisor.
    pub(crate) advisor: advisor::Ctx,
    /// The pressure-following policy.
    pub(crate) pressure: pressure::Ctx,
    /// Items of the mm at the cursor from here up to the next page found are stale.
    pub(crate) prune_from: usize,
    /// Memory is going offline: the stable tree must not be touched (`KSM_RUN_OFFLINE`).
    pub(crate) offlining: bool,
    /// A user reference on the mm at the cursor, held for the length of one batch.
    pub(crate) current: Option<ARef<MmWithUserAsync>>,
    /// Addresses of pages of the mm at the cursor found by one walk of its page tables and not
    /// scanned yet, highest first, each with its item; `address` is past them. No reference is
    /// held on those pages: each is taken again when its turn comes, as `mm/ksm.c` takes one
    /// page at a time, so that the pages ahead can be split, migrated and reused by write faults
    /// meanwhile. Kept for no longer than the batch.
    pub(crate) queue: KVec<usize>,
    /// The merge engine.
    pub(crate) engine: Engine,
}

impl Ksm {
    /// ksmd: scans while there is work, sleeps otherwise, until asked to stop.
    ///
    /// With `advisor_mode` = `pressure`, the policy is evaluated before each batch once an
    /// interval has passed; while it holds ksmd back, ksmd sleeps until the next evaluation
    /// (woken early by `run` and `advisor_mode` changes, the freezer and `kthread_stop()`).
    pub(crate) fn thread(&self) {
        kernel::kthread::set_freezable();
        // Below normal priority, as `ksm_scan_thread()`.
        kernel::kthread::set_nice(5);
        while !kernel::kthread::should_stop() {
            // Jiffies to the policy's next evaluation, when it holds ksmd back.
            let mut held_back = None;
            {
                let mut scanner = self.lock_scanner();
                if Self::should_run(&self.registry.lock()) {
                    if ADVISOR_PRESSURE.load(Relaxed) && !scanner.pressure.tick() {
                        held_back = Some(scanner.pressure.until_next());
                    } else {
                        self.do_scan(&mut scanner, PAGES_TO_SCAN.load(Relaxed));
                    }
                }
            }
            kernel::kthread::try_to_freeze();

            let mut reg = self.registry.lock();
            if Self::should_run(&reg) {
                if let Some(timeout) = held_back {
                    // Checked again under the registry lock, under which `advisor_mode` changes
                    // notify `thread_wait`: a change since the evaluation is not missed. The wait
                    // is interruptible: the freezer and `kthread_stop()` end it too.
                    if ADVISOR_PRESSURE.load(Relaxed) && !ADVISOR_PRESSURE_ACTIVE.load(Relaxed) {
                        let _ = self
                            .thread_wait
                            .wait_interruptible_timeout(&mut reg, timeout);
                    }
                    continue;
                }
                let sleep_ms = SLEEP_MILLISECS.load(Relaxed);
                // `sleep_millisecs=0`: no sleep at all, as `wait_event_freezable_timeout()`
                // with a zero timeout (a zero-jiffy wait would still sleep to the next tick).
                if sleep_ms != 0 {
                    // Woken early when `sleep_millisecs` changes.
                    let _ = self
                        .iter_wait
                        .wait_interruptible_timeout(&mut reg, msecs_to_jiffies(sleep_ms));
                }
            } else {
                while !Self::should_run(&reg) && !kernel::kthread::should_stop() {
                    let _ = self.thread_wait.wait_interruptible_freezable(&mut reg);
                }
            }
        }
    }

    /// Scans up to `n` pages (`ksm_do_scan`).
    pub(crate) fn do_scan(&self, scanner: &mut Scanner, mut n: u32) {
        self.reap_exited(scanner);
        while n > 0 && !kernel::kthread::freezing() {
            kernel::task::cond_resched();
            let Some((addr, page)) = self.next_page(scanner) else {
                break;
            };
            let Scanner {
                current, engine, ..
            } = &mut *scanner;
            if let Some(mm) = current.as_deref() {
                engine.cmp_and_merge(mm, addr, page);
            }
            COUNTERS.pages_scanned.fetch_add(1, Relaxed);
            n -= 1;
        }
        // The user reference on the mm at the cursor lasts one batch: between batches ksmd
        // must not keep an exiting address space from being torn down, nor pages pinned.
        drop_queue(
            &mut scanner.queue,
            &mut scanner.address,
            &mut scanner.prune_from,
        );
        scanner.current = None;
    }

    /// Moves the cursor to the next present anonymous page of a mergeable VMA and returns it,
    /// with its item ready (`scan_get_next_rmap_item`), and `scanner.current` the user
    /// reference of its mm; `None` at the end of a full scan, when nothing is registered, or
    /// when memory for an item is short.
    pub(crate) fn next_page(&self, scanner: &mut Scanner) -> Option<(usize, PageRef)> {
        loop {
            if let Some(user) = scanner.current.as_deref() {
                let mmk = mm_key(user);
                while let Some(a) = scanner.queue.pop() {
                    // The page found by the walk may have gone (or been replaced) since.
                    let Some(page) = mergeable_page_at(user, a) else {
                        continue;
                    };
                    if !scanner.engine.should_skip(mmk, a, page.folio()) {
                        return Some((a, page));
                    }
                }
            }
            let user = match scanner.current.take() {
                Some(user) => user,
                None => {
                    let mm = {
                        let mut reg = self.registry.lock();
                        let k = match reg.cursor {
                            Some(k) => k,
                            None => {
                                let (&first, _) = reg.slots.iter().next()?;
                                reg.cursor = Some(first);
                                drop(reg);
                                scanner.advisor.start_scan();
                                // Pages held in per-CPU LRU batches have a raised reference
                                // count, which makes `write_protect_page` refuse them: drain
                                // them once per full scan.
                                // SAFETY: May be called from process context without locks held.
                                unsafe { kernel::bindings::lru_add_drain_all() };
                                scanner.engine.start_scan();
                                trace::start_scan(
                                    COUNTERS.full_scans.load(Relaxed),
                                    COUNTERS.rmap_items.load(Relaxed),
                                );
                                scanner.address = 0;
                                scanner.prune_from = 0;
                                reg = self.registry.lock();
                                first
                            }
                        };
                        match reg.slots.get(&k) {
                            Some(slot) => slot.mm.clone(),
                            // Only ksmd removes the slot at the cursor.
                            None => return None,
                        }
                    };
                    match mm.mmget_not_zero() {
                        // Dropped with `mmput_async`: should it be the last reference, the
                        // address space is torn down in a worker, not in ksmd.
                        Some(user) => MmWithUser::into_mmput_async(user),
                        None => {
                            // Exiting: `__ksm_exit` left the slot to us.
                            scanner.engine.remove_items(mm_key(&mm), 0, usize::MAX);
                            scanner.address = 0;
                            scanner.prune_from = 0;
                            self.advance(&mm, true, false);
                            if self.end_of_scan(scanner) {
                                return None;
                            }
                            continue;
                        }
                    }
                }
            };
            match self.scan_mm(&user, scanner) {
                Ok(true) => scanner.current = Some(user),
                Ok(false) => {
                    drop(user);
                    if self.end_of_scan(scanner) {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// After the cursor left a slot: whether that ended a full scan (counted here).
    pub(crate) fn end_of_scan(&self, scanner: &mut Scanner) -> bool {
        if self.registry.lock().cursor.is_some() {
            return false;
        }
        scanner.advisor.stop_scan();
        trace::stop_scan(
            COUNTERS.full_scans.load(Relaxed),
            COUNTERS.rmap_items.load(Relaxed),
        );
        COUNTERS.full_scans.fetch_add(1, Relaxed);
        true
    }

    /// Looks for the next pages in the mm at the cursor, from `scanner.address`, and queues
    /// them (up to [`SCAN_AHEAD`]) with their items, the address advanced past them. Returns
    /// false once the mm is done, the cursor then moved on to the next slot.
    pub(crate) fn scan_mm(&self, mm: &MmWithUser, scanner: &mut Scanner) -> Result<bool> {
        let mut found = core::mem::take(&mut scanner.queue);
        found.clear();
        found.reserve(SCAN_AHEAD, crate::scan_gfp())?;
        let guard = mm.mmap_read_lock();
        let mmk = mm_key(mm);
        let mut seen_mergeable = false;
        let mut addr = scanner.address;
        // The user reference the caller holds keeps the address space from exiting while we
        // look: an exiting mm is caught before, when `mmget_not_zero()` fails.
        while let Some(vma) = guard.find_vma(addr) {
            if vma.flags() & VMA_MERGEABLE == 0 {
                addr = vma.end();
                continue;
            }
            seen_mergeable = true;
            addr = addr.max(vma.start());
            if !vma.has_anon_vma() {
                addr = vma.end();
                continue;
            }
            if vma.anon_addrs(addr, vma.end(), &mut found) {
                let mut made = 0;
                for &a in found.iter() {
                    // Items between the last page found and this one are for unmapped pages.
                    scanner.engine.remove_items(mmk, scanner.prune_from, a);
                    let domains = || self.registry.lock().domains_of(mmk);
                    if scanner.engine.get_or_create_item(mm, a, domains).is_err() {
                        break;
                    }
                    scanner.prune_from = a + PAGE_SIZE;
                    made += 1;
                }
                // Without memory for an item, the rest is found again next time.
                if made < found.len() {
                    scanner.address = found[made];
                    found.truncate(made);
                } else {
                    scanner.address = found[made - 1] + PAGE_SIZE;
                }
                found.reverse();
                scanner.queue = found;
                return if made > 0 { Ok(true) } else { Err(ENOMEM) };
            }
            addr = vma.end();
        }
        // Items above the last page found have no mergeable VMA any more.
        scanner
            .engine
            .remove_items(mmk, scanner.prune_from, usize::MAX);
        // No mergeable VMA in the whole pass over this mm (`scanner.address` is still 0 when
        // none was met in an earlier batch either): unregister it, still under the mmap lock so
        // that a racing MADV_MERGEABLE sees `MMF_VM_MERGEABLE` cleared and registers again.
        let tracked = scanner.engine.has_items(mmk);
        self.advance(
            mm,
            !seen_mergeable && scanner.address == 0 && !tracked,
            tracked,
        );
        drop(guard);
        scanner.address = 0;
        scanner.prune_from = 0;
        scanner.queue = found;
        Ok(false)
    }

    /// Moves the cursor past the current slot, removing it when `remove`, else noting whether
    /// the merge engine tracks pages of it.
    pub(crate) fn advance(&self, mm: &Mm, remove: bool, tracked: bool) {
        let removed = {
            let mut reg = self.registry.lock();
            let Some(k) = reg.cursor else { return };
            reg.cursor = reg
                .slots
                .cursor_lower_bound(&(k + 1))
                .map(|c| *c.current().0);
            if remove {
                let removed = reg.slots.remove(&k);
                if removed.as_ref().is_some_and(|s| s.exited) {
                    reg.exited -= 1;
                }
                removed
            } else {
                if let Some(slot) = reg.slots.get_mut(&k) {
                    slot.tracked = tracked;
                }
                None
            }
        };
        if removed.is_some() {
            // Only `MMF_VM_MERGEABLE`: a `PR_SET_MEMORY_MERGE` process keeps `MMF_VM_MERGE_ANY`
            // and registers again on its next mergeable mapping.
            mm.flag_clear(VM_MERGEABLE);
        }
        drop(removed);
    }
}
