// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Page table entries, a locked page table to change runs of them under one TLB flush, and MMU
//! notifier invalidations around such changes.
//!
//! C headers: [`include/linux/pgtable.h`](srctree/include/linux/pgtable.h),
//! [`include/linux/rmap.h`](srctree/include/linux/rmap.h),
//! [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h)

use super::{
    folio::{Folio, PageRef},
    pgwalk::MmapLockedVma,
    pgwalk::PMD_SIZE,
    virt::VmaRef,
    Mm,
};
use crate::{bindings, page::PAGE_SIZE};
use core::ptr::NonNull;

/// The value of a page table entry (`pte_t`).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Pte(bindings::pte_t);

impl Pte {
    /// Wraps a raw entry value.
    #[inline]
    pub fn from_raw(pte: bindings::pte_t) -> Self {
        Self(pte)
    }

    /// The raw entry value.
    #[inline]
    pub fn into_raw(self) -> bindings::pte_t {
        self.0
    }

    /// An entry mapping page frame `pfn` with protection `prot` (`pfn_pte`).
    #[inline]
    pub fn from_pfn(pfn: usize, prot: bindings::pgprot_t) -> Self {
        // SAFETY: Pure computation on values.
        Self(unsafe { bindings::pfn_pte(pfn, prot) })
    }

    /// Whether the entry maps a page (`pte_present`).
    #[inline]
    pub fn present(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_present(self.0) != 0 }
    }

    /// Whether the entry is empty (`pte_none`).
    #[inline]
    pub fn none(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_none(self.0) != 0 }
    }

    /// Whether the entry allows writes.
    #[inline]
    pub fn write(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_write(self.0) != 0 }
    }

    /// Whether the entry is dirty.
    #[inline]
    pub fn dirty(self) -> bool {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_dirty(self.0) != 0 }
    }

    /// The page frame number the entry maps (meaningful when [`Pte::present`]).
    #[inline]
    pub fn pfn(self) -> usize {
        // SAFETY: Pure computation on a value.
        unsafe { bindings::pte_pfn(self.0) as usize }
    }

    /// The entry with the dirty bit cleared.
    #[inline]
    pub fn mkclean(self) -> Self {
        // SAFETY: Pure computation on a value.
        Self(unsafe { bindings::pte_mkclean(self.0) })
    }

    /// The entry without write permission.
    #[inline]
    pub fn wrprotect(self) -> Self {
        // SAFETY: Pure computation on a value.
        Self(unsafe { bindings::pte_wrprotect(self.0) })
    }

    /// The entry with the dirty bit set.
    #[inline]
    pub fn mkdirty(self) -> Self {
        // SAFETY: Pure computation on a value.
        Self(unsafe { bindings::pte_mkdirty(self.0) })
    }

    /// The entry marked special (no `struct page` refcounting: the zero page, PFN maps).
    #[inline]
    pub fn mkspecial(self) -> Self {
        // SAFETY: Pure computation on a value.
        Self(unsafe { bindings::pte_mkspecial(self.0) })
    }

    /// Whether the entry maps the shared zero page and is dirty: a zero page placed by KSM
    /// (`is_ksm_zero_pte`).
    #[inline]
    pub fn is_ksm_zero(self) -> bool {
        self.present() && is_zero_pfn(self.pfn()) && self.dirty()
    }
}

/// Whether `pfn` is the frame of the shared zero page.
#[inline]
pub fn is_zero_pfn(pfn: usize) -> bool {
    // SAFETY: Pure computation on a value.
    unsafe { bindings::is_zero_pfn(pfn) }
}

/// The shared zero page to map at user address `addr` (`ZERO_PAGE(addr)`).
#[inline]
pub fn zero_page(addr: usize) -> *mut bindings::page {
    // SAFETY: Pure computation on a value; the zero page always exists.
    unsafe { bindings::zero_page(addr) }
}

/// The frame of the shared zero page to map at user address `addr` (`zero_pfn()`).
#[inline]
pub fn zero_pfn(addr: usize) -> usize {
    // SAFETY: Pure computation on a value; the zero page always exists.
    unsafe { bindings::zero_pfn(addr) }
}

/// An MMU notifier invalidation of an address range (`MMU_NOTIFY_CLEAR`): started on creation,
/// ended on drop, as `mmu_notifier_invalidate_range_start()`/`_end()` bracket a change of page
/// table entries that secondary MMUs (KVM, devices) must not keep using.
pub struct MmuInvalidation {
    range: bindings::mmu_notifier_range,
}

impl MmuInvalidation {
    /// Starts the invalidation of `[start, end)` in `mm`. May sleep.
    pub fn start(mm: &Mm, start: usize, end: usize) -> Self {
        // SAFETY: All-zero is a valid `mmu_notifier_range` before `mmu_notifier_range_init`.
        let mut range: bindings::mmu_notifier_range = unsafe { core::mem::zeroed() };
        // SAFETY: `range` is a valid, writable range; `mm` is a valid mm.
        unsafe {
            bindings::mmu_notifier_range_init(
                &mut range,
                bindings::mmu_notifier_event_MMU_NOTIFY_CLEAR,
                0,
                mm.as_raw(),
                start,
                end,
            );
            bindings::mmu_notifier_invalidate_range_start(&mut range);
        }
        Self { range }
    }
}

impl Drop for MmuInvalidation {
    fn drop(&mut self) {
        // SAFETY: The range was started in `start` and is ended once.
        unsafe { bindings::mmu_notifier_invalidate_range_end(&mut self.range) };
    }
}

/// Whether a TLB flush of `mm` is pending (a batched unmap or protection change is in flight).
#[inline]
pub fn tlb_flush_pending(mm: &Mm) -> bool {
    // SAFETY: `mm` is valid.
    unsafe { bindings::mm_tlb_flush_pending(mm.as_raw()) }
}

/// The page protection of `vma` (`vma->vm_page_prot`).
#[inline]
pub fn page_prot(vma: &VmaRef) -> bindings::pgprot_t {
    // SAFETY: The VMA is valid under its mmap lock (type invariant of `VmaRef`).
    unsafe { (*vma.as_ptr()).vm_page_prot }
}

/// An entry mapping `page` into `vma` (`mk_pte(page, vma->vm_page_prot)`).
///
/// # Safety
///
/// `page` is a valid `struct page`.
#[inline]
pub unsafe fn mk_pte(page: *mut bindings::page, vma: &VmaRef) -> Pte {
    // SAFETY: `page` is valid (safety requirement); the rest is computation on values.
    Pte(unsafe { bindings::mk_pte(page, page_prot(vma)) })
}

/// Adds a page table mapping of anonymous `page` of `folio` at `addr` of `vma` to the rmap
/// (`folio_add_anon_rmap_pte(..., RMAP_NONE)`).
///
/// # Safety
///
/// The folio is locked and referenced for the new mapping, and the caller is about to install
/// the entry under the page table lock it holds.
#[inline]
pub unsafe fn add_anon_rmap(folio: &Folio, page: *mut bindings::page, vma: &VmaRef, addr: usize) {
    // SAFETY: Upheld by the caller.
    unsafe { bindings::folio_add_anon_rmap_pte(folio.as_raw(), page, vma.as_ptr(), addr) };
}

/// Removes a page table mapping of `page` of `folio` in `vma` from the rmap
/// (`folio_remove_rmap_pte`).
///
/// # Safety
///
/// The caller just cleared the entry that mapped the page, under the page table lock it holds.
#[inline]
pub unsafe fn remove_rmap(folio: &Folio, page: *mut bindings::page, vma: &VmaRef) {
    // SAFETY: Upheld by the caller.
    unsafe { bindings::folio_remove_rmap_pte(folio.as_raw(), page, vma.as_ptr()) };
}

/// A run of entries of one page table of a VMA (entries under one PMD), mapped and locked as
/// `pte_offset_map_lock()` does; unlocked on drop.
///
/// It lets a caller change several entries under one lock and flush the TLB once for all of them.
///
/// # Invariants
///
/// `ptep` points to the entry for `start` in a mapped page table whose lock `ptl` is held;
/// `[start, start + len * PAGE_SIZE)` lies in the VMA and is mapped by that one table; the VMA is
/// valid under its mmap lock for `'a`.
pub struct PteTable<'a> {
    vma: &'a VmaRef,
    start: usize,
    len: usize,
    ptep: *mut bindings::pte_t,
    ptl: *mut bindings::spinlock_t,
}

impl<'a> PteTable<'a> {
    /// Maps and locks the page table that maps `addr` in `vma`, for the entries from `addr` up
    /// to `end`, the end of the VMA or the end of the table, whichever comes first. Returns `None`
    /// when no page table maps `addr`: nothing was populated there, or a huge page is mapped by
    /// the PMD. May not be called in atomic context.
    pub fn lock(vma: &'a MmapLockedVma, addr: usize, end: usize) -> Option<Self> {
        let addr = addr & !(PAGE_SIZE - 1);
        let table_end = (addr | (PMD_SIZE - 1)).saturating_add(1);
        let end = end.min(vma.end()).min(table_end);
        if addr < vma.start() || addr >= end {
            return None;
        }
        let mm = vma.mm().as_raw();
        // SAFETY: The mmap lock is held (type invariant of `MmapLockedVma`), which keeps the upper
        // levels of the page tables in place; `mm_find_pmd` only reads them.
        let pmd = unsafe { bindings::mm_find_pmd(mm, addr) };
        if pmd.is_null() {
            return None;
        }
        let mut ptl = core::ptr::null_mut();
        // SAFETY: `pmd` is a PMD entry of `mm` that maps `addr`, with the mmap lock held; the
        // function maps and locks the table, or returns NULL if there is none (or a huge page).
        let ptep = unsafe { bindings::pte_offset_map_lock(mm, pmd, addr, &mut ptl) };
        if ptep.is_null() {
            return None;
        }
        // INVARIANT: The table is mapped and locked, and `[addr, end)` lies in the VMA and in
        // the span of the table.
        Some(Self {
            vma: &**vma,
            start: addr,
            len: (end - addr) / PAGE_SIZE,
            ptep,
            ptl,
        })
    }

    /// The number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no entries (never true: a table has at least one).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The user address that entry `i` maps.
    #[inline]
    pub fn address(&self, i: usize) -> usize {
        self.start + i * PAGE_SIZE
    }

    /// The VMA.
    #[inline]
    pub fn vma(&self) -> &VmaRef {
        self.vma
    }

    fn entry(&self, i: usize) -> *mut bindings::pte_t {
        assert!(i < self.len);
        // SAFETY: `i` is below `len`, so the entry lies in the mapped table (type invariant).
        unsafe { self.ptep.add(i) }
    }

    /// Reads entry `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Pte {
        // SAFETY: The entry is in the mapped table, whose lock we hold.
        Pte(unsafe { bindings::ptep_get(self.entry(i)) })
    }

    /// Takes a reference on the anonymous page that entry `i` maps: `None` for an entry that is
    /// not present, the zero page or another special mapping, page cache and ZONE_DEVICE memory.
    pub fn anon_page(&self, i: usize) -> Option<PageRef> {
        let pte = self.get(i);
        if !pte.present() {
            return None;
        }
        // SAFETY: A present entry of this VMA, read under the page table lock.
        let page = NonNull::new(unsafe {
            bindings::vm_normal_page(self.vma.as_ptr(), self.address(i), pte.0)
        })?;
        // SAFETY: The page is mapped by entry `i`, whose lock we hold.
        unsafe { PageRef::mapped_anon(page) }
    }

    /// Clears entry `i` without flushing the TLB (`ptep_get_and_clear`); returns the old value.
    ///
    /// # Safety
    ///
    /// Before the lock is dropped, the caller flushes the TLB for the entry
    /// ([`PteTable::flush_tlb`]) and puts an entry back with [`PteTable::set`], keeping the
    /// mapcount and rmap of the pages involved consistent with what it puts back.
    #[inline]
    pub unsafe fn get_and_clear(&mut self, i: usize) -> Pte {
        let addr = self.address(i);
        // SAFETY: The entry is in the mapped table, whose lock we hold.
        Pte(unsafe { bindings::ptep_get_and_clear(self.vma.mm().as_raw(), addr, self.entry(i)) })
    }

    /// Writes entry `i` (`set_pte_at`).
    ///
    /// # Safety
    ///
    /// The entry is empty (cleared and flushed) and `pte` is a valid entry for its address: it
    /// maps a page whose reference count and rmap account for this mapping, or is special (the
    /// zero page).
    #[inline]
    pub unsafe fn set(&mut self, i: usize, pte: Pte) {
        let addr = self.address(i);
        // SAFETY: The entry is in the mapped table, whose lock we hold; the value is the
        // caller's.
        unsafe { bindings::set_pte_at(self.vma.mm().as_raw(), addr, self.entry(i), pte.0) };
    }

    /// Flushes the CPU caches for entries `[first, first + n)`, before they are changed (a
    /// no-op where caches are coherent).
    #[inline]
    pub fn flush_cache(&self, first: usize, n: usize) {
        if n == 0 {
            return;
        }
        let _ = self.entry(first + n - 1);
        // SAFETY: The VMA is valid and the range lies in it (type invariant).
        unsafe {
            bindings::flush_cache_range(
                self.vma.as_ptr(),
                self.address(first),
                self.address(first + n),
            )
        };
    }

    /// Flushes the TLB entries of all CPUs for entries `[first, first + n)`: one shootdown for
    /// all of them.
    #[inline]
    pub fn flush_tlb(&self, first: usize, n: usize) {
        if n == 0 {
            return;
        }
        let _ = self.entry(first + n - 1);
        // SAFETY: The VMA is valid and the range lies in it (type invariant).
        unsafe {
            bindings::flush_tlb_range(
                self.vma.as_ptr(),
                self.address(first),
                self.address(first + n),
            )
        };
    }
}

impl Drop for PteTable<'_> {
    fn drop(&mut self) {
        // SAFETY: Mapped and locked by `lock` (type invariant).
        unsafe { bindings::pte_unmap_unlock(self.ptep, self.ptl) };
    }
}
