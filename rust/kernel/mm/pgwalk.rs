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
use crate::{bindings, sync::aref::ARef};
use core::ptr::NonNull;

/// The span of memory one page table (a page middle directory entry) maps.
pub const PMD_SIZE: usize = 1 << bindings::PMD_SHIFT;

/// `FW_ZEROPAGE`: let the walk return the shared zero page too.
const FW_ZEROPAGE: bindings::folio_walk_flags_t = 1;

impl<'a> MmapReadGuard<'a> {
    /// Returns the first VMA that ends above `addr` (it may start above `addr` too), as
    /// `find_vma()` does; iterate with `find_vma(vma.end())`.
    #[inline]
    pub fn find_vma(&self, addr: usize) -> Option<&VmaRef> {
        // SAFETY: We hold the mmap read lock (type invariant); any `addr` is fine.
        let vma = unsafe { bindings::find_vma(self.mm.as_raw(), addr) };
        if vma.is_null() {
            None
        } else {
            // SAFETY: `vma` is a valid VMA of this mm and stays valid while the read lock is held,
            // which the borrow of `self` ensures.
            Some(unsafe { VmaRef::from_raw(vma) })
        }
    }
}

/// What [`VmaRef::folio_at`] found mapped at an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedFolio {
    /// The folio is anonymous memory (not page cache, not the zero page).
    pub anon: bool,
    /// The folio is a KSM folio.
    pub ksm: bool,
    /// The page frame number of the mapped page.
    pub pfn: usize,
    /// The entry maps the shared zero page and is dirty: a zero page placed by KSM.
    pub ksm_zero: bool,
}

impl VmaRef {
    /// Returns whether the VMA has an `anon_vma`: whether anonymous pages were ever faulted in.
    #[inline]
    pub fn has_anon_vma(&self) -> bool {
        // SAFETY: The VMA is valid and its mm's mmap lock is held (type invariant of `VmaRef`), so
        // `anon_vma` is stable enough for a test against NULL.
        !unsafe { (*self.as_ptr()).anon_vma }.is_null()
    }

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
        // SAFETY: The VMA is valid and its mmap lock held (type invariant of `VmaRef`), and `addr`
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

    /// Looks at the page mapped at `addr` (which must lie in the VMA), with `folio_walk_start()`:
    /// `None` when nothing (or a swap or migration entry) is mapped there. The shared zero page
    /// is reported too.
    pub fn folio_at(&self, addr: usize) -> Option<MappedFolio> {
        self.walk(addr, FW_ZEROPAGE, |folio, fw| {
            let pte_level = fw.level == bindings::folio_walk_level_FW_LEVEL_PTE;
            // SAFETY: For a PTE-level hit, `fw.pte` holds the value of the entry.
            let pte = Pte::from_raw(unsafe { fw.__bindgen_anon_2.pte });
            MappedFolio {
                anon: folio.test_anon(),
                ksm: folio.test_ksm(),
                // SAFETY: `fw.page` is the mapped page, valid under the page table lock.
                pfn: unsafe { bindings::page_to_pfn(fw.page) as usize },
                ksm_zero: pte_level && pte.is_ksm_zero(),
            }
        })
    }

    /// Takes a reference on the anonymous page mapped at `addr` (not the zero page, nor
    /// ZONE_DEVICE memory), as ksmd does for each page it scans.
    pub fn anon_page_at(&self, addr: usize) -> Option<PageRef> {
        self.walk(addr, 0, |folio, fw| {
            if folio.is_zone_device() || !folio.test_anon() {
                return None;
            }
            let folio: ARef<Folio> = folio.into();
            // SAFETY: `fw.page` is a page of `folio`, non-null on a successful walk.
            Some(unsafe { PageRef::new(folio, NonNull::new_unchecked(fw.page)) })
        })
        .flatten()
    }
}

/// `pmd_entry` of [`VmaRef::next_populated`]: the walk only calls it for page middle
/// directory entries that are not empty; record the first and stop.
///
/// # Safety
///
/// Called by `walk_page_range_vma()` with `walk->private` pointing to a `usize`.
unsafe extern "C" fn first_populated_pmd(
    _pmd: *mut bindings::pmd_t,
    addr: usize,
    _next: usize,
    walk: *mut bindings::mm_walk,
) -> core::ffi::c_int {
    // SAFETY: `walk` is the walk in progress, whose `private` points to the caller's `usize`.
    unsafe { *(*walk).private.cast::<usize>() = addr };
    1
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

/// The walk of [`VmaRef::next_populated`], under the mmap read lock.
static FIRST_POPULATED_OPS: bindings::mm_walk_ops = pmd_walk_ops(first_populated_pmd);

impl VmaRef {
    /// Returns the first address at or above `addr` (and below `end`, both within the VMA)
    /// whose page table exists: every address below it is unpopulated, so a scan for pages can
    /// skip there. Empty upper-level tables are skipped without looking at their entries.
    pub fn next_populated(&self, addr: usize, end: usize) -> Option<usize> {
        let start = addr.max(self.start());
        let end = end.min(self.end());
        if start >= end {
            return None;
        }
        let mut found = 0usize;
        // SAFETY: The VMA is valid and its mmap lock held for reading at least (type invariant
        // of `VmaRef`), as the read-locked walk requires; `found` outlives the walk.
        let ret = unsafe {
            bindings::walk_page_range_vma(
                self.as_ptr(),
                start,
                end,
                &FIRST_POPULATED_OPS,
                (&raw mut found).cast(),
            )
        };
        // The first populated table may start below `start`.
        (ret > 0).then(|| found.max(start))
    }
}

/// What [`find_anon_pmd`] found: a referenced anonymous page and its address.
struct FoundAnon {
    addr: usize,
    page: *mut bindings::page,
    folio: *mut bindings::folio,
}

/// Takes a reference on the folio of `page` if it is an anonymous folio not in ZONE_DEVICE
/// memory, and records it in `found`.
///
/// # Safety
///
/// `page` is mapped by a page table entry whose lock the caller holds.
unsafe fn take_anon(page: *mut bindings::page, addr: usize, found: &mut FoundAnon) -> bool {
    if page.is_null() {
        return false;
    }
    // SAFETY: `page` is mapped, so valid, and its folio stays mapped under the held lock.
    unsafe {
        let folio = bindings::page_folio(page);
        if bindings::folio_test_zone_device(folio) || !bindings::folio_test_anon(folio) {
            return false;
        }
        bindings::folio_get(folio);
        *found = FoundAnon { addr, page, folio };
    }
    true
}

/// `pmd_entry` of [`VmaRef::next_anon_page`]: looks through one page table (or one PMD-mapped
/// huge page) for the first present anonymous page, as `ksm_next_page_pmd_entry()` does.
///
/// # Safety
///
/// Called by `walk_page_range_vma()` with `walk->private` pointing to a [`FoundAnon`].
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
        (w.vma, w.mm, &mut *w.private.cast::<FoundAnon>())
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
        unsafe {
            let ptl = bindings::pmd_lock(mm, pmdp);
            let pmd = bindings::pmdp_get(pmdp);
            if bindings::pmd_present(pmd) == 0 {
                bindings::spin_unlock(ptl);
                return 0;
            }
            if bindings::pmd_leaf(pmd) {
                let head = bindings::vm_normal_page_pmd(vma, addr, pmd);
                let page = if head.is_null() {
                    head
                } else {
                    head.add((addr & (PMD_SIZE - 1)) >> crate::page::PAGE_SHIFT)
                };
                let hit = take_anon(page, addr, found);
                bindings::spin_unlock(ptl);
                return hit.into();
            }
            // Split meanwhile: look at its page table.
            bindings::spin_unlock(ptl);
        }
    }
    let mut ptl = core::ptr::null_mut();
    // SAFETY: `pmdp` is a PMD entry of this walk; the mmap lock is held.
    let start = unsafe { bindings::pte_offset_map_lock(mm, pmdp, addr, &mut ptl) };
    if start.is_null() {
        return 0;
    }
    let mut ptep = start;
    let mut hit = false;
    while addr < end {
        // SAFETY: `ptep` is within the mapped, locked page table (`addr` below `end`, which
        // the walk keeps within this PMD).
        let pte = unsafe { bindings::ptep_get(ptep) };
        // SAFETY: Pure computation on a value; `vm_normal_page` on a present entry of `vma`.
        if unsafe { bindings::pte_present(pte) } != 0 {
            // SAFETY: As above; the page table lock is held for `take_anon`.
            hit = unsafe { take_anon(bindings::vm_normal_page(vma, addr, pte), addr, found) };
            if hit {
                break;
            }
        }
        // SAFETY: Still within the page table (see above).
        ptep = unsafe { ptep.add(1) };
        addr += crate::page::PAGE_SIZE;
    }
    // SAFETY: Maps and locks taken above.
    unsafe { bindings::pte_unmap_unlock(start, ptl) };
    hit.into()
}

/// The walk of [`VmaRef::next_anon_page`], under the mmap read lock.
static NEXT_ANON_OPS: bindings::mm_walk_ops = pmd_walk_ops(find_anon_pmd);

impl VmaRef {
    /// Finds the first present anonymous page (not the zero page, not ZONE_DEVICE memory) at or
    /// above `addr` and below `end` (both within the VMA) and takes a reference on it: one walk
    /// of the page tables, skipping unpopulated ones, as ksmd's scan does.
    pub fn next_anon_page(&self, addr: usize, end: usize) -> Option<(usize, PageRef)> {
        let start = addr.max(self.start());
        let end = end.min(self.end());
        if start >= end {
            return None;
        }
        let mut found = FoundAnon {
            addr: 0,
            page: core::ptr::null_mut(),
            folio: core::ptr::null_mut(),
        };
        // SAFETY: The VMA is valid and its mmap lock held for reading at least (type invariant
        // of `VmaRef`), as the read-locked walk requires; `found` outlives the walk.
        let ret = unsafe {
            bindings::walk_page_range_vma(
                self.as_ptr(),
                start,
                end,
                &NEXT_ANON_OPS,
                (&raw mut found).cast(),
            )
        };
        if ret <= 0 {
            return None;
        }
        // SAFETY: On a hit the walk took a reference on `found.folio`, which we hand to the
        // `ARef`; `found.page` is a page of it.
        let page = unsafe {
            PageRef::new(
                ARef::from_raw(NonNull::new_unchecked(found.folio.cast::<Folio>())),
                NonNull::new_unchecked(found.page),
            )
        };
        Some((found.addr, page))
    }
}
