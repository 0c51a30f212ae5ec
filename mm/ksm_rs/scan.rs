// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The mm slot registry, ksmd and its scan cursor.
//!
//! Every address space registered for merging (`MMF_VM_MERGEABLE`) has a [`Slot`] in the
//! registry, which holds a reference (`mmgrab`) on it. ksmd walks the slots in a fixed order
//! (by address of the `mm_struct`), their mergeable VMAs and their present anonymous pages,
//! `pages_to_scan` pages per batch; a pass over all slots is one full scan.
//!
//! # Lock order
//!
//! [`Ksm::scanner`] (ksmd's batch; `ksm_thread_mutex` in C) → an mm's mmap lock →
//! [`Ksm::registry`] (a spinlock; `ksm_mmlist_lock`). Callers from C may hold the mmap lock
//! when they enter the registry (`__ksm_enter` from madvise) but never the scanner lock.

use crate::{
    advisor,
    engine::{mergeable_page_at, mm_key, Engine},
    tunables::*,
    KSM,
};
use core::pin::Pin;

/// The most pages one walk of ksmd's scan finds ahead of it.
const SCAN_AHEAD: usize = 32;

/// Forgets the pages found ahead of the cursor and moves the cursor back to the first of them,
/// to be found again.
fn drop_queue(queue: &mut KVec<usize>, address: &mut usize, prune_from: &mut usize) {
    if let Some(&a) = queue.last() {
        *address = a;
        *prune_from = a;
    }
    queue.clear();
}
use kernel::{
    mm::{
        flags::{VM_MERGEABLE, VM_MERGE_ANY},
        folio::PageRef,
        virt::flags::MERGEABLE as VMA_MERGEABLE,
        Mm, MmWithUser, MmWithUserAsync,
    },
    new_condvar, new_mutex, new_spinlock,
    page::PAGE_SIZE,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{aref::ARef, atomic::Relaxed, CondVar, Mutex, SpinLock},
    time::msecs_to_jiffies,
};

/// An address space registered with KSM (`struct ksm_mm_slot`).
pub(crate) struct Slot {
    /// The address space; this reference (`mmgrab`) keeps the `mm_struct` allocated.
    mm: ARef<Mm>,
    /// Whether the merge engine tracks pages of this mm; kept up to date by ksmd whenever its
    /// cursor leaves the slot, so exact for every slot but the one at the cursor.
    tracked: bool,
    /// The mm exited with tracked pages: ksmd frees the slot and the items at its next batch
    /// ([`Ksm::reap_exited`]), as `__ksm_exit()` moves such a slot right after the cursor.
    exited: bool,
    /// The last `run=2` that unmerged this mm ([`Registry::unmerge_pass`]).
    unmerged: u64,
}

/// The slots, keyed and scanned in order of their `mm_struct`'s address.
pub(crate) struct Registry {
    slots: RBTree<usize, Slot>,
    /// The slot ksmd is scanning (`ksm_scan.mm_slot`); `None` between full scans.
    cursor: Option<usize>,
    /// The number of slots with [`Slot::exited`] set.
    exited: usize,
    /// The number of `run=2` unmerges started ([`Slot::unmerged`]).
    unmerge_pass: u64,
    /// A slot was added since `run=2` last looked: it must look again (`__ksm_enter` puts new
    /// slots at the tail of the list that `unmerge_and_remove_all_rmap_items()` walks).
    entered: bool,
}

/// ksmd's position inside the slot at the registry's cursor (the rest of `struct ksm_scan`).
pub(crate) struct Scanner {
    /// The next address to look at.
    address: usize,
    /// The scan-time advisor.
    advisor: advisor::Ctx,
    /// Items of the mm at the cursor from here up to the next page found are stale.
    prune_from: usize,
    /// Memory is going offline: the stable tree must not be touched (`KSM_RUN_OFFLINE`).
    offlining: bool,
    /// A user reference on the mm at the cursor, held for the length of one batch.
    current: Option<ARef<MmWithUserAsync>>,
    /// Addresses of pages of the mm at the cursor found by one walk of its page tables and not
    /// scanned yet, highest first, each with its item; `address` is past them. No reference is
    /// held on those pages: each is taken again when its turn comes, as `mm/ksm.c` takes one
    /// page at a time, so that the pages ahead can be split, migrated and reused by write faults
    /// meanwhile. Kept for no longer than the batch.
    queue: KVec<usize>,
    /// The merge engine.
    engine: Engine,
}

/// KSM's global state.
#[pin_data]
pub(crate) struct Ksm {
    /// The registered address spaces (`ksm_mmlist_lock`).
    #[pin]
    registry: SpinLock<Registry>,
    /// ksmd's batch, and everything that must not run during one (`ksm_thread_mutex`).
    #[pin]
    scanner: Mutex<Scanner>,
    /// ksmd waits here while it has nothing to do (`ksm_thread_wait`).
    #[pin]
    thread_wait: CondVar,
    /// ksmd sleeps here between batches (`ksm_iter_wait`).
    #[pin]
    iter_wait: CondVar,
    /// Waiters for memory offlining to finish (`wait_on_bit(&ksm_run, KSM_RUN_OFFLINE)`).
    #[pin]
    offline_wait: CondVar,
}

fn key(mm: &Mm) -> usize {
    mm_key(mm)
}

impl Ksm {
    /// Creates the empty state.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            registry <- new_spinlock!(
                Registry {
                    slots: RBTree::new(),
                    cursor: None,
                    exited: 0,
                    unmerge_pass: 0,
                    entered: false,
                },
                "ksm_mmlist_lock"
            ),
            scanner <- new_mutex!(
                Scanner {
                    address: 0,
                    advisor: advisor::Ctx::default(),
                    prune_from: 0,
                    offlining: false,
                    current: None,
                    queue: KVec::new(),
                    engine: Engine::new(),
                },
                "ksm_thread_mutex"
            ),
            thread_wait <- new_condvar!("ksm_thread_wait"),
            iter_wait <- new_condvar!("ksm_iter_wait"),
            offline_wait <- new_condvar!("ksm_offline_wait"),
        })
    }

    /// Whether ksmd has work: `run` includes merging and some mm is registered.
    fn should_run(reg: &Registry) -> bool {
        RUN.load(Relaxed) & RUN_MERGE != 0 && !reg.slots.is_empty()
    }

    /// Registers `mm` (`__ksm_enter`).
    pub(crate) fn enter(&self, mm: &Mm) -> Result {
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let slot = Slot {
            mm: ARef::from(mm),
            tracked: false,
            exited: false,
            unmerged: 0,
        };
        let needs_wakeup;
        let old = {
            let mut reg = self.registry.lock();
            needs_wakeup = reg.slots.is_empty();
            reg.entered = true;
            reg.slots.insert(node.into_node(key(mm), slot))
        };
        // Callers test `MMF_VM_MERGEABLE` first, so there is no old slot; drop it if there was.
        drop(old);
        mm.flag_set(VM_MERGEABLE);
        if needs_wakeup {
            self.thread_wait.notify_all();
        }
        Ok(())
    }

    /// Unregisters an exiting `mm` (`__ksm_exit`).
    ///
    /// If ksmd is not looking at it and it has no tracked pages, the slot goes now. Otherwise
    /// ksmd frees it at its next batch (or when its cursor reaches it first); taking the mmap lock
    /// for writing once waits for any ksmd work on the mm in progress, before its page tables are
    /// freed.
    pub(crate) fn exit(&self, mm: &Mm) {
        let k = key(mm);
        let (found, freed) = {
            let mut guard = self.registry.lock();
            let reg = &mut *guard;
            let at_cursor = reg.cursor == Some(k);
            match reg.slots.get_mut(&k) {
                None => (false, None),
                Some(slot) if !at_cursor && !slot.tracked => (true, reg.slots.remove(&k)),
                Some(slot) => {
                    if !slot.exited {
                        slot.exited = true;
                        reg.exited += 1;
                    }
                    (true, None)
                }
            }
        };
        if let Some(slot) = freed {
            mm.flag_clear(VM_MERGE_ANY);
            mm.flag_clear(VM_MERGEABLE);
            drop(slot);
        } else if found {
            mm.mmap_write_barrier();
        }
    }

    /// Takes the scanner lock once no memory is going offline (`wait_while_offlining`).
    fn lock_scanner(&self) -> kernel::sync::MutexGuard<'_, Scanner> {
        let mut scanner = self.scanner.lock();
        while scanner.offlining {
            self.offline_wait.wait(&mut scanner);
        }
        scanner
    }

    /// Memory hotplug: a memory block is going offline (`MEM_GOING_OFFLINE`). Until it is
    /// offline or the offlining is cancelled, ksmd and the knobs that walk the stable tree wait:
    /// KSM pages there are being migrated away.
    pub(crate) fn going_offline(&self) {
        self.scanner.lock().offlining = true;
    }

    /// Memory hotplug: offlining finished (`MEM_OFFLINE`, with the frames that went) or was
    /// cancelled (`MEM_CANCEL_OFFLINE`).
    pub(crate) fn offline_done(&self, gone: Option<(usize, usize)>) {
        let mut scanner = self.scanner.lock();
        if let Some((start, end)) = gone {
            // Stable nodes may still point into the range; their `struct page`s are gone.
            scanner.engine.remove_nodes_in_range(start, end);
        }
        scanner.offlining = false;
        drop(scanner);
        self.offline_wait.notify_all();
    }

    /// Switches the advisor on or off (`advisor_mode`), as `set_advisor_defaults()` does.
    pub(crate) fn set_advisor(&self, scan_time: bool) {
        let mut scanner = self.scanner.lock();
        if ADVISOR_SCAN_TIME.xchg(scan_time, Relaxed) == scan_time {
            return;
        }
        if scan_time {
            scanner.advisor.reset();
            // `pages_to_scan` is an `unsigned int`: C truncates the `unsigned long` minimum.
            PAGES_TO_SCAN.store(ADVISOR_MIN_PAGES_TO_SCAN.load(Relaxed) as u32, Relaxed);
        } else {
            PAGES_TO_SCAN.store(DEFAULT_PAGES_TO_SCAN, Relaxed);
        }
    }

    /// Wakes ksmd if it waits for work.
    pub(crate) fn wake_thread(&self) {
        let _reg = self.registry.lock();
        self.thread_wait.notify_all();
    }

    /// Wakes ksmd from its sleep between batches (after `sleep_millisecs` changed).
    pub(crate) fn wake_iter(&self) {
        let _reg = self.registry.lock();
        self.iter_wait.notify_all();
    }

    /// Changes `run` under the scanner lock, as `run_store` does.
    pub(crate) fn set_run(&self, flags: u32) -> Result {
        {
            let mut scanner = self.lock_scanner();
            if RUN.xchg(flags, Relaxed) != flags && flags & RUN_UNMERGE != 0 {
                // Should unsharing run out of memory, the OOM killer picks this task first.
                // SAFETY: Sets a flag of the current task.
                unsafe { kernel::bindings::set_current_oom_origin() };
                let res = self.unmerge_all(&mut scanner);
                // SAFETY: Clears the flag set above.
                unsafe { kernel::bindings::clear_current_oom_origin() };
                if let Err(e) = res {
                    // As `run_store`: stop, and report why the unmerge did not finish.
                    RUN.store(RUN_STOP, Relaxed);
                    return Err(e);
                }
            }
        }
        if flags & RUN_MERGE != 0 {
            self.wake_thread();
        }
        Ok(())
    }

    /// Frees the slots of mms that exited with tracked pages, and their items, except the one
    /// at the cursor, which [`Ksm::next_page`] frees when it finds the mm exiting. Costs one walk
    /// of the registry per batch in which mms exited.
    fn reap_exited(&self, scanner: &mut Scanner) {
        let n = self.registry.lock().exited;
        if n == 0 {
            return;
        }
        let Ok(mut gone) = KVec::with_capacity(n, GFP_KERNEL) else {
            return;
        };
        {
            let reg = self.registry.lock();
            for (&k, slot) in reg.slots.iter() {
                if slot.exited && Some(k) != reg.cursor && gone.push_within_capacity(k).is_err() {
                    break;
                }
            }
        }
        for &k in gone.iter() {
            let slot = {
                let mut reg = self.registry.lock();
                // Only ksmd removes exited slots, and the cursor is ksmd's: still there.
                let slot = reg.slots.remove(&k);
                if slot.is_some() {
                    reg.exited -= 1;
                }
                slot
            };
            let Some(slot) = slot else {
                continue;
            };
            // The items go before the slot: its reference keeps the mm_struct, whose address
            // keys the items, from being freed and reused meanwhile.
            scanner.engine.remove_items(k, 0, usize::MAX);
            slot.mm.flag_clear(VM_MERGE_ANY);
            slot.mm.flag_clear(VM_MERGEABLE);
            drop(slot);
        }
    }

    /// Unshares every KSM page and forgets every tracked page
    /// (`unmerge_and_remove_all_rmap_items`); the next scan starts from the first slot.
    ///
    /// Slots added meanwhile (a fork of an mm not yet unmerged copies its KSM pages) are walked
    /// too, as `mm/ksm.c` walks its list to the live tail; each slot is unmerged once, so that
    /// costs one more walk of the registry per round of additions. On an error (a signal, no
    /// memory) the items not yet removed stay with their slots, which are then exact about
    /// them.
    fn unmerge_all(&self, scanner: &mut Scanner) -> Result {
        let pass = {
            let mut guard = self.registry.lock();
            let reg = &mut *guard;
            // The cursor's slot is the one whose `tracked` ksmd had not brought up to date.
            if let Some(k) = reg.cursor.take() {
                if let Some(slot) = reg.slots.get_mut(&k) {
                    slot.tracked = scanner.engine.has_items(k);
                }
            }
            reg.entered = false;
            reg.unmerge_pass += 1;
            reg.unmerge_pass
        };
        scanner.address = 0;
        scanner.prune_from = 0;
        let mut from = 0;
        loop {
            let next = {
                let mut guard = self.registry.lock();
                let reg = &mut *guard;
                let mut found = None;
                if let Some(mut c) = reg.slots.cursor_lower_bound_mut(&from) {
                    loop {
                        let (&k, slot) = c.current_mut();
                        if slot.unmerged != pass {
                            slot.unmerged = pass;
                            found = Some((k, slot.mm.clone()));
                            break;
                        }
                        match c.move_next() {
                            Some(n) => c = n,
                            None => break,
                        }
                    }
                }
                if found.is_none() && reg.entered {
                    // Slots were added behind us: look again from the start.
                    reg.entered = false;
                    from = 0;
                    continue;
                }
                found
            };
            let Some((k, mm)) = next else {
                break;
            };
            from = k + 1;
            if let Some(user) = mm.mmget_not_zero() {
                let user = MmWithUser::into_mmput_async(user);
                Engine::unmerge_mm(&user)?;
            }
            scanner.engine.remove_items(k, 0, usize::MAX);
            if let Some(slot) = self.registry.lock().slots.get_mut(&k) {
                slot.tracked = false;
            }
        }
        scanner.engine.remove_unmapped_stable_nodes();
        COUNTERS.full_scans.store(0, Relaxed);
        Ok(())
    }

    /// Changes a knob that needs an empty stable tree (`merge_across_nodes`,
    /// `max_page_sharing`): `EBUSY` while KSM pages exist.
    pub(crate) fn set_with_empty_stable_tree(&self, apply: impl FnOnce()) -> Result {
        let mut scanner = self.lock_scanner();
        // As `remove_all_stable_nodes()`: KSM pages no longer mapped are forgotten; one still
        // mapped (an exiting mm not torn down yet) keeps the knob as it is.
        if COUNTERS.pages_shared.load(Relaxed) != 0
            || !scanner.engine.remove_unmapped_stable_nodes()
        {
            return Err(EBUSY);
        }
        apply();
        Ok(())
    }

    /// ksmd: scans while there is work, sleeps otherwise, until asked to stop.
    pub(crate) fn thread(&self) {
        kernel::kthread::set_freezable();
        // Below normal priority, as `ksm_scan_thread()`.
        kernel::kthread::set_nice(5);
        while !kernel::kthread::should_stop() {
            {
                let mut scanner = self.lock_scanner();
                if Self::should_run(&self.registry.lock()) {
                    self.do_scan(&mut scanner, PAGES_TO_SCAN.load(Relaxed));
                }
            }
            kernel::kthread::try_to_freeze();

            let mut reg = self.registry.lock();
            if Self::should_run(&reg) {
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
    fn do_scan(&self, scanner: &mut Scanner, mut n: u32) {
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
    fn next_page(&self, scanner: &mut Scanner) -> Option<(usize, PageRef)> {
        loop {
            if let Some(user) = scanner.current.as_deref() {
                let mmk = key(user);
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
                            scanner.engine.remove_items(key(&mm), 0, usize::MAX);
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
    fn end_of_scan(&self, scanner: &mut Scanner) -> bool {
        if self.registry.lock().cursor.is_some() {
            return false;
        }
        scanner.advisor.stop_scan();
        COUNTERS.full_scans.fetch_add(1, Relaxed);
        true
    }

    /// Looks for the next pages in the mm at the cursor, from `scanner.address`, and queues
    /// them (up to [`SCAN_AHEAD`]) with their items, the address advanced past them. Returns
    /// false once the mm is done, the cursor then moved on to the next slot.
    fn scan_mm(&self, mm: &MmWithUser, scanner: &mut Scanner) -> Result<bool> {
        let mut found = core::mem::take(&mut scanner.queue);
        found.clear();
        found.reserve(SCAN_AHEAD, GFP_KERNEL)?;
        let guard = mm.mmap_read_lock();
        let mmk = key(mm);
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
                    if scanner.engine.get_or_create_item(mm, a).is_err() {
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
    fn advance(&self, mm: &Mm, remove: bool, tracked: bool) {
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

/// Returns KSM's state (set up by module init, before any caller can reach KSM).
pub(crate) fn ksm() -> Option<&'static Pin<KBox<Ksm>>> {
    KSM.as_ref()
}

/// Wakes ksmd after `sleep_millisecs` changed.
pub(crate) fn wake_iter() {
    if let Some(k) = ksm() {
        k.wake_iter();
    }
}

/// Sets `run`.
pub(crate) fn set_run(flags: u32) -> Result {
    ksm().ok_or(ENODEV)?.set_run(flags)
}

/// Sets `merge_across_nodes`.
pub(crate) fn set_merge_across_nodes(knob: u32) -> Result {
    if MERGE_ACROSS_NODES.load(Relaxed) == knob {
        return Ok(());
    }
    ksm()
        .ok_or(ENODEV)?
        .set_with_empty_stable_tree(|| MERGE_ACROSS_NODES.store(knob, Relaxed))
}

/// Sets `max_page_sharing`.
pub(crate) fn set_max_page_sharing(knob: i32) -> Result {
    if MAX_PAGE_SHARING.load(Relaxed) == knob {
        return Ok(());
    }
    ksm()
        .ok_or(ENODEV)?
        .set_with_empty_stable_tree(|| MAX_PAGE_SHARING.store(knob, Relaxed))
}

/// Sets `advisor_mode`.
pub(crate) fn set_advisor(scan_time: bool) -> Result {
    ksm().ok_or(ENODEV)?.set_advisor(scan_time);
    Ok(())
}
