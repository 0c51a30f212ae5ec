// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The registry of address spaces registered for merging (`ksm_mm_slot`, `ksm_mm_head`).
//!
//! Every address space with `MMF_VM_MERGEABLE` has a [`Slot`], which holds a reference
//! (`mmgrab`) on it, keyed by the address of its `mm_struct`: registration (`__ksm_enter`) and
//! exit (`__ksm_exit`) are O(log n). `run=2` walks it to unmerge everything.
//!
//! # Locking
//!
//! [`crate::scan::Ksm::registry`], a spinlock (`ksm_mmlist_lock`), taken after the scanner
//! mutex and any mmap lock. Callers from C may hold the mmap lock when they enter the registry
//! (`__ksm_enter` from madvise) but never the scanner lock.

use crate::{
    domain::Domains,
    engine::{mm_key, Engine},
    ksmd::Scanner,
    scan::Ksm,
    trace,
    tunables::*,
};
use kernel::{
    mm::{
        flags::{VM_MERGEABLE, VM_MERGE_ANY},
        Mm, MmWithUser,
    },
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{aref::ARef, atomic::Relaxed},
};

/// An address space registered with KSM (`struct ksm_mm_slot`).
pub(crate) struct Slot {
    /// The address space; this reference (`mmgrab`) keeps the `mm_struct` allocated.
    pub(crate) mm: ARef<Mm>,
    /// Whether the merge engine tracks pages of this mm; kept up to date by ksmd whenever its
    /// cursor leaves the slot, so exact for every slot but the one at the cursor.
    pub(crate) tracked: bool,
    /// The mm exited with tracked pages: ksmd frees the slot and the items at its next batch
    /// ([`Ksm::reap_exited`]), as `__ksm_exit()` moves such a slot right after the cursor.
    pub(crate) exited: bool,
    /// The last `run=2` that unmerged this mm ([`Registry::unmerge_pass`]).
    pub(crate) unmerged: u64,
    /// Its merge domains, drawn when it registered (see [`crate::domain`]).
    pub(crate) domains: Domains,
}

/// The slots, keyed and scanned in order of their `mm_struct`'s address.
pub(crate) struct Registry {
    pub(crate) slots: RBTree<usize, Slot>,
    /// The slot ksmd is scanning (`ksm_scan.mm_slot`); `None` between full scans.
    pub(crate) cursor: Option<usize>,
    /// The number of slots with [`Slot::exited`] set.
    pub(crate) exited: usize,
    /// The number of `run=2` unmerges started ([`Slot::unmerged`]).
    pub(crate) unmerge_pass: u64,
    /// A slot was added since `run=2` last looked: it must look again (`__ksm_enter` puts new
    /// slots at the tail of the list that `unmerge_and_remove_all_rmap_items()` walks).
    pub(crate) entered: bool,
}

impl Registry {
    /// The merge domains of registered `mmk`; the default (global only) if it is not.
    pub(crate) fn domains_of(&self, mmk: usize) -> Domains {
        self.slots
            .get(&mmk)
            .map_or(Domains::default(), |s| s.domains)
    }
}

impl Ksm {
    /// Registers `mm` (`__ksm_enter`).
    pub(crate) fn enter(&self, mm: &Mm) -> Result {
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let needs_wakeup;
        let old = {
            let mut reg = self.registry.lock();
            let slot = Slot {
                mm: ARef::from(mm),
                tracked: false,
                exited: false,
                unmerged: 0,
                domains: reg.domains_for(mm),
            };
            needs_wakeup = reg.slots.is_empty();
            reg.entered = true;
            reg.slots.insert(node.into_node(mm_key(mm), slot))
        };
        // Callers test `MMF_VM_MERGEABLE` first, so there is no old slot; drop it if there was.
        drop(old);
        mm.flag_set(VM_MERGEABLE);
        if needs_wakeup {
            self.thread_wait.notify_all();
        }
        trace::enter(mm);
        Ok(())
    }

    /// Unregisters an exiting `mm` (`__ksm_exit`).
    ///
    /// If ksmd is not looking at it and it has no tracked pages, the slot goes now. Otherwise
    /// ksmd frees it at its next batch (or when its cursor reaches it first); taking the mmap lock
    /// for writing once waits for any ksmd work on the mm in progress, before its page tables are
    /// freed.
    pub(crate) fn exit(&self, mm: &Mm) {
        let k = mm_key(mm);
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
        trace::exit(mm);
    }

    /// Frees the slots of mms that exited with tracked pages, and their items, except the one
    /// at the cursor, which [`Ksm::next_page`] frees when it finds the mm exiting. Costs one walk
    /// of the registry per batch in which mms exited.
    pub(crate) fn reap_exited(&self, scanner: &mut Scanner) {
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
    pub(crate) fn unmerge_all(&self, scanner: &mut Scanner) -> Result {
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
}
