// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Walking the VMAs and page tables of an address space under its mmap lock.
//!
//! C headers: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/pagewalk.h`](srctree/include/linux/pagewalk.h)

use super::{
    folio::{Folio, PageRef},
    pte::Pte,
    virt::VmaRef,
    MmapReadGuard,
};
use crate::{
    alloc::KVec,
    bindings,
    error::{Error, Result},
};
use core::{
    ops::Deref,
    ptr::{self, NonNull},
};

/// The span of memory one page table (a page middle directory entry) maps.
pub const PMD_SIZE: usize = 1 << bindings::PMD_SHIFT;

/// A VMA whose address space's mmap lock is held, for reading at least: what walks of its page
/// tables need (`walk_page_range_vma()` asserts it). A [`VmaRef`] may also come from
/// `lock_vma_under_rcu()`, which holds the VMA's lock only, so the walks are methods of this
/// type instead.
///
/// # Invariants
///
/// The VMA is valid and its mm's mmap lock is held for as long as the reference lives.
#[repr(transparent)]
pub struct MmapLockedVma(VmaRef);

impl Deref for MmapLockedVma {
    type Target = VmaRef;

    #[inline]
    fn deref(&self) -> &VmaRef {
        &self.0
    }
}

impl MmapLockedVma {
    /// Access a VMA given a raw pointer.
    ///
    /// # Safety
    ///
    /// `vma` is valid for `'a`, and its mm's mmap lock is held (for reading at least) for `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(vma: *const bindings::vm_area_struct) -> &'a Self {
        // SAFETY: `MmapLockedVma` is a transparent wrapper of `VmaRef`, itself of the C struct;
        // the caller guarantees validity and the lock.
        unsafe { &*vma.cast() }
    }
}

impl<'a> MmapReadGuard<'a> {
    /// Returns the first VMA that ends above `addr` (it may start above `addr` too), as
    /// `find_vma()` does; iterate with `find_vma(vma.end())`.
    #[inline]
    pub fn find_vma(&self, addr: usize) -> Option<&MmapLockedVma> {
        // SAFETY: We hold the mmap read lock (type invariant); any `addr` is fine.
        let vma = unsafe { bindings::find_vma(self.mm.as_raw(), addr) };
        if vma.is_null() {
            None
        } else {
            // SAFETY: `vma` is a valid VMA of this mm and stays valid while the read lock is held,
            // which the borrow of `self` ensures.
            Some(unsafe { MmapLockedVma::from_raw(vma) })
        }
    }

    /// Returns the VMA that contains `addr`, as `vma_lookup()` does.
    #[inline]
    pub fn vma_at(&self, addr: usize) -> Option<&MmapLockedVma> {
        self.find_vma(addr).filter(|v| v.start() <= addr)
    }
}

impl VmaRef {
    /// Returns whether the VMA has an `anon_vma`: whether anonymous pages were ever faulted in.
    #[inline]
    pub fn has_anon_vma(&self) -> bool {
        // SAFETY: The VMA is valid under the mmap or VMA lock (type invariant of `VmaRef`); the
        // pointer is read once, for a test against NULL, as C does.
        !unsafe { ptr::read_volatile(&raw const (*self.as_ptr()).anon_vma) }.is_null()
    }
}

impl MmapLockedVma {
    /// Returns the page offset of `addr` in the VMA (`linear_page_index()`): the index an
    /// anonymous page mapped there has, at which the anon_vma interval tree finds every VMA
    /// that may map that page.
    #[inline]
    pub fn linear_page_index(&self, addr: usize) -> usize {
        // SAFETY: The VMA is valid and its `vm_start`/`vm_pgoff` do not change while the mmap
        // lock is held (type invariant).
        unsafe { bindings::linear_page_index(self.as_ptr(), addr) }
    }
}

impl MmapLockedVma {
    /// Runs `f` on the folio mapped at `addr` (which must lie in the VMA) and the walk that
    /// found it, with the page table lock held, as `folio_walk_start()` does.
    fn walk<R>(
        &self,
        addr: usize,
        flags: bindings::folio_walk_flags_t,
        f: impl FnOnce(&Folio, &bindings::folio_walk) -> R,
    ) -> Option<R> {
        if addr < self.start() || addr >= self.end() {
            return None;
        }
        // SAFETY: All-zero is a valid initial `folio_walk`; `folio_walk_start` fills it in.
        let mut fw: bindings::folio_walk = unsafe { core::mem::zeroed() };
        // SAFETY: The VMA is valid and its mmap lock held (type invariant), and `addr`
        // lies within it.
        let folio = unsafe { bindings::folio_walk_start(&mut fw, self.as_ptr(), addr, flags) };
        if folio.is_null() {
            return None;
        }
        // SAFETY: `folio_walk_start` returned a folio mapped at `addr`, which the page table lock
        // it holds keeps mapped (and so referenced) until `folio_walk_end`.
        let r = f(unsafe { Folio::from_raw(folio) }, &fw);
        // SAFETY: Ends the successful walk started above, on the same VMA.
        unsafe { bindings::folio_walk_end(&mut fw, self.as_ptr()) };
        Some(r)
    }

    /// Takes a reference on the anonymous page mapped at `addr` (not the zero page, nor
    /// ZONE_DEVICE memory), as ksmd does for each page it scans.
    pub fn anon_page_at(&self, addr: usize) -> Option<PageRef> {
        self.walk(addr, 0, |_, fw| {
            // SAFETY: `fw.page` is mapped under the page table lock the walk holds.
            NonNull::new(fw.page).and_then(|p| unsafe { PageRef::mapped_anon(p) })
        })
        .flatten()
    }
}

/// A read-locked page walk that calls `pmd_entry` only.
const fn pmd_walk_ops(
    pmd_entry: unsafe extern "C" fn(
        *mut bindings::pmd_t,
        usize,
        usize,
        *mut bindings::mm_walk,
    ) -> core::ffi::c_int,
) -> bindings::mm_walk_ops {
    bindings::mm_walk_ops {
        pgd_entry: None,
        p4d_entry: None,
        pud_entry: None,
        pmd_entry: Some(pmd_entry),
        pte_entry: None,
        pte_hole: None,
        hugetlb_entry: None,
        test_walk: None,
        pre_vma: None,
        post_vma: None,
        install_pte: None,
        walk_lock: bindings::page_walk_lock_PGWALK_RDLOCK,
    }
}

/// Adds `addr` to `found`, which has room for it, if `page` is a page of an anonymous folio not
/// in ZONE_DEVICE memory. No reference is taken: the page may be gone once the lock is dropped.
///
/// # Safety
///
/// `page` is null or mapped at `addr` by a page table entry whose lock the caller holds.
unsafe fn note_anon(page: *mut bindings::page, addr: usize, found: &mut KVec<usize>) {
    if page.is_null() {
        return;
    }
    // SAFETY: `page` is mapped, so valid, and its folio stays mapped under the lock the caller
    // holds.
    let folio = unsafe { Folio::from_raw(bindings::page_folio(page)) };
    if folio.test_anon() && !folio.is_zone_device() {
        // Cannot fail: the walk stops once `found` is full.
        let _ = found.push_within_capacity(addr);
    }
}

/// Whether `found` has no room left.
fn full(found: &KVec<usize>) -> bool {
    found.len() == found.capacity()
}

/// Looks through the entries for `[addr, end)` of the page table at `pmdp`, mapped and locked
/// (`pte_offset_map_lock()`), for the first one on which `hit` (given its address and value)
/// returns true; returns that. No page table there (nothing, or a huge page): false.
///
/// # Safety
///
/// `pmdp` is the PMD entry of `mm` that maps `[addr, end)`, from a walk under the mmap lock.
unsafe fn find_pte(
    mm: *mut bindings::mm_struct,
    pmdp: *mut bindings::pmd_t,
    mut addr: usize,
    end: usize,
    mut hit: impl FnMut(usize, Pte) -> bool,
) -> bool {
    let mut ptl = core::ptr::null_mut();
    // SAFETY: `pmdp` is a PMD entry of `mm` and the mmap lock is held (safety requirement).
    let start = unsafe { bindings::pte_offset_map_lock(mm, pmdp, addr, &mut ptl) };
    if start.is_null() {
        return false;
    }
    let mut ptep = start;
    let mut found = false;
    while addr < end {
        // SAFETY: `ptep` is within the mapped, locked page table (`addr` below `end`, and
        // `[addr, end)` within the PMD's span).
        found = hit(addr, Pte::from_raw(unsafe { bindings::ptep_get(ptep) }));
        if found {
            break;
        }
        // SAFETY: Still within the page table (see above).
        ptep = unsafe { ptep.add(1) };
        addr += crate::page::PAGE_SIZE;
    }
    // SAFETY: Mapped and locked above.
    unsafe { bindings::pte_unmap_unlock(start, ptl) };
    found
}

/// `pmd_entry` of [`MmapLockedVma::anon_addrs`]: notes the addresses of the present anonymous
/// pages of one page table (or one PMD-mapped huge page), as `ksm_next_page_pmd_entry()` looks
/// for them; stops the walk once `found` is full.
///
/// # Safety
///
/// Called by `walk_page_range_vma()` with `walk->private` pointing to a `KVec<usize>`.
unsafe extern "C" fn find_anon_pmd(
    pmdp: *mut bindings::pmd_t,
    mut addr: usize,
    end: usize,
    walk: *mut bindings::mm_walk,
) -> core::ffi::c_int {
    crate::task::cond_resched();
    // SAFETY: `walk` is the walk in progress; its VMA's mmap lock is held and `private` is ours.
    let (vma, mm, found) = unsafe {
        let w = &*walk;
        (w.vma, w.mm, &mut *w.private.cast::<KVec<usize>>())
    };
    // SAFETY: `pmdp` is a PMD entry of this walk, read without its lock as C does.
    let pmd = unsafe { bindings::pmdp_get_lockless(pmdp) };
    // SAFETY: Pure computation on a value.
    if unsafe { bindings::pmd_present(pmd) } == 0 {
        return 0;
    }
    // SAFETY: Pure computation on a value.
    if cfg!(CONFIG_TRANSPARENT_HUGEPAGE) && unsafe { bindings::pmd_leaf(pmd) } {
        // SAFETY: `pmdp` is valid; we take and drop its lock here.
        let ptl = unsafe { bindings::pmd_lock(mm, pmdp) };
        // SAFETY: Read under its lock.
        let pmd = unsafe { bindings::pmdp_get(pmdp) };
        // SAFETY: Pure computation on a value.
        if unsafe { bindings::pmd_present(pmd) } == 0 {
            // SAFETY: Locked above.
            unsafe { bindings::spin_unlock(ptl) };
            return 0;
        }
        // SAFETY: Pure computation on a value.
        if unsafe { bindings::pmd_leaf(pmd) } {
            // SAFETY: A present huge PMD of `vma`, under its lock.
            let head = unsafe { bindings::vm_normal_page_pmd(vma, addr, pmd) };
            while !head.is_null() && addr < end && !full(found) {
                // SAFETY: `addr` lies in the huge page, whose pages are contiguous and stay
                // mapped under the lock.
                unsafe {
                    let page = head.add((addr & (PMD_SIZE - 1)) >> crate::page::PAGE_SHIFT);
                    note_anon(page, addr, found);
                }
                addr += crate::page::PAGE_SIZE;
            }
            // SAFETY: Locked above.
            unsafe { bindings::spin_unlock(ptl) };
            return full(found).into();
        }
        // Split meanwhile: look at its page table.
        // SAFETY: Locked above.
        unsafe { bindings::spin_unlock(ptl) };
    }
    // SAFETY: `pmdp` is the PMD entry of this walk for `[addr, end)`.
    unsafe {
        find_pte(mm, pmdp, addr, end, |addr, pte| {
            if pte.present() {
                // SAFETY: A present entry of `vma`, under the page table lock that `note_anon`
                // needs.
                note_anon(
                    bindings::vm_normal_page(vma, addr, pte.into_raw()),
                    addr,
                    found,
                );
            }
            full(found)
        })
    }
    .into()
}

/// The walk of [`MmapLockedVma::anon_addrs`], under the mmap read lock.
static NEXT_ANON_OPS: bindings::mm_walk_ops = pmd_walk_ops(find_anon_pmd);

impl MmapLockedVma {
    /// Appends the addresses of the present anonymous pages (not the zero page, not ZONE_DEVICE
    /// memory) at or above `addr` and below `end` (both within the VMA), in address order, until
    /// `found` is full (its capacity): one walk of the page tables, skipping unpopulated ones, as
    /// ksmd's scan does. Returns whether any was found.
    ///
    /// No reference is taken on the pages: a reference would keep them from being split,
    /// migrated or reused by a write fault for as long as it is held. Take the page at an
    /// address when it is needed, with [`MmapLockedVma::anon_page_at`].
    pub fn anon_addrs(&self, addr: usize, end: usize, found: &mut KVec<usize>) -> bool {
        let start = addr.max(self.start());
        let end = end.min(self.end());
        let before = found.len();
        if start >= end || full(found) {
            return false;
        }
        // SAFETY: The VMA is valid and its mmap lock held for reading at least (type
        // invariant), as the read-locked walk requires; `found` outlives the walk.
        unsafe {
            bindings::walk_page_range_vma(
                self.as_ptr(),
                start,
                end,
                &NEXT_ANON_OPS,
                ptr::from_mut(found).cast(),
            )
        };
        found.len() > before
    }
}

/// `pmd_entry` of [`MmapLockedVma::next_ksm_page`]: looks through one page table for the first entry
/// that maps a KSM page (or one under migration, which stays a KSM page) or is a zero page
/// placed by KSM, as `break_ksm_pmd_entry()` does.
///
/// # Safety
///
/// Called by `walk_page_range_vma()` with `walk->private` pointing to a `usize`.
unsafe extern "C" fn find_ksm_pmd(
    pmdp: *mut bindings::pmd_t,
    addr: usize,
    end: usize,
    walk: *mut bindings::mm_walk,
) -> core::ffi::c_int {
    if crate::current!().signal_pending() {
        return -(bindings::ERESTARTSYS as core::ffi::c_int);
    }
    // SAFETY: `walk` is the walk in progress; its VMA's mmap lock is held and `private` is ours.
    let (vma, mm, found) = unsafe {
        let w = &*walk;
        (w.vma, w.mm, &mut *w.private.cast::<usize>())
    };
    // SAFETY: `pmdp` is the PMD entry of this walk for `[addr, end)`. No table (or a huge
    // page, which is never a KSM page): nothing here.
    let hit = unsafe {
        find_pte(mm, pmdp, addr, end, |addr, pte| {
            let folio = if pte.present() {
                // SAFETY: A present entry of `vma`, read under the page table lock.
                bindings::vm_normal_folio(vma, addr, pte.into_raw())
            } else if !pte.none() {
                // SAFETY: Pure computation on values; the folio of a migration entry is locked
                // by the migration and valid while the entry is in place (the page table lock).
                let entry = bindings::softleaf_from_pte(pte.into_raw());
                if bindings::softleaf_is_migration(entry) {
                    bindings::softleaf_to_folio(entry)
                } else {
                    core::ptr::null_mut()
                }
            } else {
                core::ptr::null_mut()
            };
            // SAFETY: A folio mapped here (or migrating from here) is valid under the lock.
            let hit = (!folio.is_null() && bindings::folio_test_ksm(folio)) || pte.is_ksm_zero();
            if hit {
                *found = addr;
            }
            hit
        })
    };
    hit.into()
}

/// The walk of [`MmapLockedVma::next_ksm_page`], under the mmap read lock.
static NEXT_KSM_OPS: bindings::mm_walk_ops = pmd_walk_ops(find_ksm_pmd);

impl MmapLockedVma {
    /// Finds the first address at or above `addr` and below `end` (both within the VMA) that
    /// maps a KSM page, a KSM page under migration or a zero page placed by KSM: one walk of the
    /// page tables, skipping unpopulated ones. Fails with `ERESTARTSYS` if a signal is pending.
    pub fn next_ksm_page(&self, addr: usize, end: usize) -> Result<Option<usize>> {
        let start = addr.max(self.start());
        let end = end.min(self.end());
        if start >= end {
            return Ok(None);
        }
        let mut found = 0usize;
        // SAFETY: The VMA is valid and its mmap lock held for reading at least (type
        // invariant), as the read-locked walk requires; `found` outlives the walk.
        let ret = unsafe {
            bindings::walk_page_range_vma(
                self.as_ptr(),
                start,
                end,
                &NEXT_KSM_OPS,
                (&raw mut found).cast(),
            )
        };
        match ret {
            0 => Ok(None),
            r if r > 0 => Ok(Some(found)),
            r => Err(Error::from_errno(r)),
        }
    }
}
