// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Walking the VMAs and page tables of an address space under its mmap lock.
//!
//! C headers: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/pagewalk.h`](srctree/include/linux/pagewalk.h)

use super::{virt::VmaRef, MmapReadGuard};
use crate::bindings;

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
}

impl VmaRef {
    /// Returns whether the VMA has an `anon_vma`: whether anonymous pages were ever faulted in.
    #[inline]
    pub fn has_anon_vma(&self) -> bool {
        // SAFETY: The VMA is valid and its mm's mmap lock is held (type invariant of `VmaRef`), so
        // `anon_vma` is stable enough for a test against NULL.
        !unsafe { (*self.as_ptr()).anon_vma }.is_null()
    }

    /// Looks at the page mapped at `addr` (which must lie in the VMA), with `folio_walk_start()`:
    /// `None` when nothing (or a swap or migration entry) is mapped there.
    pub fn folio_at(&self, addr: usize) -> Option<MappedFolio> {
        if addr < self.start() || addr >= self.end() {
            return None;
        }
        // SAFETY: All-zero is a valid initial `folio_walk`; `folio_walk_start` fills it in.
        let mut fw: bindings::folio_walk = unsafe { core::mem::zeroed() };
        // SAFETY: The VMA is valid and its mmap lock held (type invariant of `VmaRef`), and `addr`
        // lies within it.
        let folio = unsafe { bindings::folio_walk_start(&mut fw, self.as_ptr(), addr, 0) };
        if folio.is_null() {
            return None;
        }
        // SAFETY: `folio_walk_start` returned a folio mapped at `addr`, which the page table lock
        // it holds keeps mapped, and `fw.page` its page.
        let found = unsafe {
            MappedFolio {
                anon: bindings::folio_test_anon(folio),
                ksm: bindings::folio_test_ksm(folio),
                pfn: bindings::page_to_pfn(fw.page) as usize,
            }
        };
        // SAFETY: Ends the successful walk started above, on the same VMA.
        unsafe { bindings::folio_walk_end(&mut fw, self.as_ptr()) };
        Some(found)
    }
}
