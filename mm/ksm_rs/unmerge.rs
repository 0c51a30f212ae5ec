// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Unmerging: breaking the sharing of KSM pages with an unshare fault (`break_ksm`), for
//! `MADV_UNMERGEABLE`, `PR_SET_MEMORY_MERGE` off, `run=2` and a merge that could not be listed.
//!
//! Cost: one fault per KSM page of the range, and a walk of its page tables that skips
//! unpopulated ones.
//!
//! # Locking
//!
//! The caller holds the mmap lock of the range's mm; the fault takes the rest.

use crate::engine::Engine;
use core::ptr;
use kernel::{
    bindings,
    mm::{pgwalk::MmapLockedVma, virt::flags as vma_flags, MmWithUser},
    prelude::*,
};

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
}
