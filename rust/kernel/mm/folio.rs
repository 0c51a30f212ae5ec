// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Folios: the descriptors of the (possibly multi-page) memory blocks mapped into user address
//! spaces.
//!
//! C headers: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/page-flags.h`](srctree/include/linux/page-flags.h),
//! [`include/linux/pagemap.h`](srctree/include/linux/pagemap.h)

use crate::{
    bindings,
    sync::aref::{ARef, AlwaysRefCounted},
    types::Opaque,
};
use core::{ops::Deref, ptr::NonNull};

/// A `struct folio`.
///
/// # Invariants
///
/// The folio is a valid `struct folio`: an `&Folio` is only handed out while a reference on it is
/// held (by the caller, by an [`ARef<Folio>`] or by a page table lock under which it is mapped).
#[repr(transparent)]
pub struct Folio(Opaque<bindings::folio>);

// SAFETY: Folios are reference counted and can be used from any thread.
unsafe impl Send for Folio {}
// SAFETY: The methods on `&Folio` use the C API, which is thread safe.
unsafe impl Sync for Folio {}

// SAFETY: `folio_get` and `folio_put` manage the folio's reference count.
unsafe impl AlwaysRefCounted for Folio {
    #[inline]
    fn inc_ref(&self) {
        // SAFETY: The folio is valid (type invariant) and we hold a reference.
        unsafe { bindings::folio_get(self.as_raw()) };
    }

    #[inline]
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives up its reference.
        unsafe { bindings::folio_put(obj.cast().as_ptr()) };
    }
}

impl Folio {
    /// Returns a reference to a folio given a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` points to a valid folio that stays valid (referenced) for `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *const bindings::folio) -> &'a Self {
        // SAFETY: `Folio` is a transparent wrapper; validity is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    /// Returns the folio that page frame `pfn` currently belongs to (`pfn_folio`), without a
    /// reference: it may be free, or become another folio, at any time. Use
    /// [`Folio::try_get`] to keep it.
    ///
    /// # Safety
    ///
    /// `pfn` is the frame number of a page with a `struct page` (memory known to the page
    /// allocator, and not offlined for `'a`).
    #[inline]
    pub unsafe fn from_pfn<'a>(pfn: usize) -> &'a Folio {
        // SAFETY: `pfn` has a `struct page` (safety requirement), which `pfn_folio` finds the
        // folio of; a `struct folio` in the memmap is always valid memory.
        unsafe { Folio::from_raw(bindings::pfn_folio(pfn)) }
    }

    /// Takes a reference on the folio unless its reference count is zero (`folio_try_get`):
    /// it is being freed, or its count is frozen.
    #[inline]
    pub fn try_get(&self) -> Option<ARef<Folio>> {
        // SAFETY: `folio_try_get` may be called on any `struct folio`, even a free one.
        if unsafe { bindings::folio_try_get(self.as_raw()) } {
            // SAFETY: We now hold a reference, which the `ARef` takes over.
            Some(unsafe { ARef::from_raw(NonNull::from(self)) })
        } else {
            None
        }
    }

    /// Returns the raw `struct folio` pointer.
    #[inline]
    pub fn as_raw(&self) -> *mut bindings::folio {
        self.0.get()
    }

    /// The frame number of the folio's first page.
    #[inline]
    pub fn pfn(&self) -> usize {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_pfn(self.as_raw()) as usize }
    }

    /// The NUMA node of the folio's memory.
    #[inline]
    pub fn nid(&self) -> i32 {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_nid(self.as_raw()) }
    }

    /// Returns the raw pointer to page `n` of the folio.
    #[inline]
    pub fn page_raw(&self, n: usize) -> *mut bindings::page {
        // SAFETY: The folio is valid (type invariant); `folio_page` is pointer arithmetic.
        unsafe { bindings::folio_page(self.as_raw(), n) }
    }

    /// The `mapping` word: an address space, an anon_vma or (for KSM folios) a stable node,
    /// with `FOLIO_MAPPING_*` flags in the low bits. Read once, without a lock.
    #[inline]
    pub fn mapping_word(&self) -> usize {
        // SAFETY: The folio is valid (type invariant); a racy single read of a word is what
        // `READ_ONCE(folio->mapping)` does in C.
        unsafe {
            core::ptr::read_volatile(
                &raw const (*self.as_raw()).__bindgen_anon_1.__bindgen_anon_1.mapping,
            ) as usize
        }
    }

    /// Whether the folio is anonymous memory (`folio_test_anon`); true for KSM folios too.
    #[inline]
    pub fn test_anon(&self) -> bool {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_test_anon(self.as_raw()) }
    }

    /// Whether the folio is a KSM folio (`folio_test_ksm`).
    #[inline]
    pub fn test_ksm(&self) -> bool {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_test_ksm(self.as_raw()) }
    }

    /// Whether the folio has more than one page.
    #[inline]
    pub fn test_large(&self) -> bool {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_test_large(self.as_raw()) }
    }

    /// Whether the folio is locked (by anyone).
    #[inline]
    pub fn test_locked(&self) -> bool {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_test_locked(self.as_raw()) }
    }

    /// Whether the folio is in the swap cache.
    #[inline]
    pub fn test_swapcache(&self) -> bool {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_test_swapcache(self.as_raw()) }
    }

    /// Whether the folio is dirty.
    #[inline]
    pub fn test_dirty(&self) -> bool {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_test_dirty(self.as_raw()) }
    }

    /// Whether the folio is ZONE_DEVICE memory.
    #[inline]
    pub fn is_zone_device(&self) -> bool {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_test_zone_device(self.as_raw()) }
    }

    /// The folio's reference count.
    #[inline]
    pub fn ref_count(&self) -> i32 {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_ref_count(self.as_raw()) }
    }

    /// The number of page table mappings of the folio.
    #[inline]
    pub fn mapcount(&self) -> i32 {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_mapcount(self.as_raw()) }
    }

    /// Whether any page of the folio is mapped.
    #[inline]
    pub fn mapped(&self) -> bool {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_mapped(self.as_raw()) }
    }

    /// Marks the folio accessed, for reclaim.
    #[inline]
    pub fn mark_accessed(&self) {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_mark_accessed(self.as_raw()) };
    }

    /// Takes the folio lock, sleeping until it is available.
    #[inline]
    pub fn lock(&self) -> FolioLockGuard<'_> {
        // SAFETY: The folio is valid (type invariant); we may sleep.
        unsafe { bindings::folio_lock(self.as_raw()) };
        // INVARIANT: We took the lock.
        FolioLockGuard(self)
    }

    /// Takes the folio lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> Option<FolioLockGuard<'_>> {
        // SAFETY: The folio is valid (type invariant).
        if unsafe { bindings::folio_trylock(self.as_raw()) } {
            // INVARIANT: We took the lock.
            Some(FolioLockGuard(self))
        } else {
            None
        }
    }

    /// Replaces the `mapping` word.
    ///
    /// # Safety
    ///
    /// The caller holds the folio lock, owns the meaning of `mapping` for this folio (as KSM
    /// does for the anonymous folios it turns into KSM folios) and stores what the rest of mm
    /// expects there.
    pub unsafe fn set_mapping_word(&self, mapping: usize) {
        // SAFETY: The folio is valid (type invariant) and locked (safety requirement); a single
        // word store, as `folio->mapping = ...` in C.
        unsafe {
            core::ptr::write_volatile(
                &raw mut (*self.as_raw()).__bindgen_anon_1.__bindgen_anon_1.mapping,
                mapping as *mut bindings::address_space,
            )
        };
    }

    /// Calls `f` with the address of the contents of page `n` of the folio, mapped with
    /// `kmap_local_page` for `PAGE_SIZE` bytes until `f` returns.
    ///
    /// Other mappings of the page may write it at any time, so the contents must not be read
    /// through a Rust reference (that would be a data race): only through functions that read
    /// racing memory as C does, such as [`Folio::page_eq`] or the kernel's `xxh64`.
    pub fn with_page_mapped<R>(&self, n: usize, f: impl FnOnce(*const u8) -> R) -> R {
        let page = self.page_raw(n);
        // SAFETY: `page` is a page of a valid, referenced folio.
        let addr = unsafe { bindings::kmap_local_page(page) };
        let r = f(addr.cast::<u8>().cast_const());
        // SAFETY: Unmaps the mapping made above; `f` cannot keep the address (it returned).
        unsafe { bindings::kunmap_local(addr) };
        r
    }

    /// Whether page `n` of the folio has the same contents as page `m` of `other`
    /// (`pages_identical`). The pages may change meanwhile, unless the caller knows nobody can
    /// write them (for example, all their mappings are read-only).
    pub fn page_eq(&self, n: usize, other: &Folio, m: usize) -> bool {
        // SAFETY: Both pages are pages of valid, referenced folios; `memcmp_pages` maps them and
        // reads them as plain bytes, racing writers included, as C does.
        unsafe { bindings::memcmp_pages(self.page_raw(n), other.page_raw(m)) == 0 }
    }

    /// Whether page `n` of the folio is all zeroes (has the contents of the zero page).
    pub fn page_is_zero(&self, n: usize) -> bool {
        // SAFETY: The zero page is a valid page, never freed; `page` is a page of a valid,
        // referenced folio. `memcmp_pages` reads both as plain bytes, as C does.
        unsafe { bindings::memcmp_pages(self.page_raw(n), super::pte::zero_page(0)) == 0 }
    }
}

/// A locked folio; unlocks on drop (`folio_unlock`).
///
/// # Invariants
///
/// The folio lock of `self.0` is held.
pub struct FolioLockGuard<'a>(&'a Folio);

impl Deref for FolioLockGuard<'_> {
    type Target = Folio;

    fn deref(&self) -> &Folio {
        self.0
    }
}

impl FolioLockGuard<'_> {
    /// Marks the folio dirty (`folio_mark_dirty`).
    pub fn mark_dirty(&self) -> bool {
        // SAFETY: The folio is valid and locked (type invariant).
        unsafe { bindings::folio_mark_dirty(self.0.as_raw()) }
    }

    /// Frees the swap space of a folio that is no longer mapped (`folio_free_swap`).
    pub fn free_swap(&self) -> bool {
        // SAFETY: The folio is valid and locked (type invariant).
        unsafe { bindings::folio_free_swap(self.0.as_raw()) }
    }
}

impl Drop for FolioLockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: We hold the folio lock (type invariant).
        unsafe { bindings::folio_unlock(self.0.as_raw()) };
    }
}

/// A reference on a folio and one of its pages: what a page table entry maps.
pub struct PageRef {
    folio: ARef<Folio>,
    page: NonNull<bindings::page>,
}

// SAFETY: The folio reference may be dropped on any thread; the page pointer is only an address.
unsafe impl Send for PageRef {}

impl PageRef {
    /// Takes a reference on the folio of `page` if it is anonymous memory, not in ZONE_DEVICE
    /// (the pages ksmd looks at); `None` for other pages.
    ///
    /// # Safety
    ///
    /// `page` is mapped by a page table entry whose lock the caller holds.
    pub unsafe fn mapped_anon(page: NonNull<bindings::page>) -> Option<Self> {
        // SAFETY: `page` is mapped, so valid, and its folio stays mapped under the held lock
        // (safety requirement).
        let folio = unsafe { Folio::from_raw(bindings::page_folio(page.as_ptr())) };
        if folio.is_zone_device() || !folio.test_anon() {
            return None;
        }
        Some(Self {
            folio: folio.into(),
            page,
        })
    }

    /// The folio.
    #[inline]
    pub fn folio(&self) -> &Folio {
        &self.folio
    }

    /// The raw page pointer.
    #[inline]
    pub fn as_raw(&self) -> *mut bindings::page {
        self.page.as_ptr()
    }

    /// The page's index in its folio.
    #[inline]
    pub fn index(&self) -> usize {
        // SAFETY: Both pages are in the same folio, whose `struct page`s are contiguous.
        unsafe { self.page.as_ptr().offset_from(self.folio.page_raw(0)) as usize }
    }

    /// The page's frame number.
    #[inline]
    pub fn pfn(&self) -> usize {
        // SAFETY: The page is valid while we hold a reference on its folio.
        unsafe { bindings::page_to_pfn(self.page.as_ptr()) as usize }
    }

    /// Whether the page is exclusive to one anonymous mapping (`PageAnonExclusive`).
    #[inline]
    pub fn anon_exclusive(&self) -> bool {
        // SAFETY: The page is valid while we hold a reference on its folio.
        unsafe { bindings::PageAnonExclusive(self.page.as_ptr()) }
    }

    /// Tries to mark an exclusive anonymous page as possibly shared
    /// (`folio_try_share_anon_rmap_pte`); fails if it may be pinned.
    ///
    /// # Safety
    ///
    /// The folio is locked and the page table entry mapping the page was cleared and flushed, as
    /// `folio_try_share_anon_rmap_pte()` requires.
    #[inline]
    pub unsafe fn try_share_anon_rmap(&self) -> bool {
        // SAFETY: Upheld by the caller.
        unsafe {
            bindings::folio_try_share_anon_rmap_pte(self.folio.as_raw(), self.page.as_ptr()) == 0
        }
    }

    /// Calls `f` with the address of the page's contents, mapped for `PAGE_SIZE` bytes until `f`
    /// returns; see [`Folio::with_page_mapped`] for how they may be read.
    pub fn with_mapped<R>(&self, f: impl FnOnce(*const u8) -> R) -> R {
        self.folio.with_page_mapped(self.index(), f)
    }

    /// Whether the page has the same contents as page `m` of `other` (see [`Folio::page_eq`]).
    pub fn same_as_page(&self, other: &Folio, m: usize) -> bool {
        self.folio.page_eq(self.index(), other, m)
    }

    /// Whether the page has the same contents as `other` (see [`Folio::page_eq`]).
    pub fn same_contents(&self, other: &PageRef) -> bool {
        self.same_as_page(other.folio(), other.index())
    }

    /// Whether the page is all zeroes.
    pub fn is_zero(&self) -> bool {
        self.folio.page_is_zero(self.index())
    }

    /// Splits the page's large folio into small folios (`split_huge_page`), if its lock is free.
    /// On success the page is in a small folio of its own, and this `PageRef` names that folio
    /// and holds the reference it held on the large one: the split moves the caller's reference
    /// to the folio of the page it is given. A small folio is left as it is.
    ///
    /// The split needs every other reference on the large folio gone (`can_split_folio()`).
    /// Every `PageRef` and [`ARef<Folio>`] holds one, so when the split succeeds no other
    /// `PageRef` or `ARef<Folio>` names the large folio: none can be left stale by it. Fails
    /// with `EAGAIN` if the folio is locked or has other references, as `split_huge_page()` does.
    pub fn split_folio(&mut self) -> crate::error::Result {
        if !self.folio.test_large() {
            return Ok(());
        }
        let guard = self.folio.try_lock().ok_or(crate::error::code::EAGAIN)?;
        // SAFETY: The folio is large, locked (the guard) and referenced by us; the page is one of
        // its pages.
        let ret = unsafe { bindings::split_huge_page(self.page.as_ptr()) };
        if ret != 0 {
            drop(guard);
            return crate::error::to_result(ret);
        }
        // The old folio is now the small folio of its first page and no longer locked unless
        // that is our page: the lock and our reference moved to the folio of our page.
        core::mem::forget(guard);
        // SAFETY: The page is valid: we hold a reference on its (new) folio.
        let new = unsafe { bindings::page_folio(self.page.as_ptr()) };
        // SAFETY: The split moved our reference to `new`, which the new `ARef` takes over.
        let new = unsafe { ARef::from_raw(NonNull::new_unchecked(new.cast::<Folio>())) };
        // The reference of the old `ARef` moved to `new`: it must not be dropped.
        core::mem::forget(core::mem::replace(&mut self.folio, new));
        // SAFETY: The split left the folio of our page locked, for us to unlock.
        unsafe { bindings::folio_unlock(self.folio.as_raw()) };
        Ok(())
    }
}

/// A `___GFP_*` bit that the bindings only have as a bit number.
const fn gfp_bit(bit: u32) -> bindings::gfp_t {
    1 << bit
}

/// Fail rather than retry hard: at most one round of direct reclaim, and no OOM kill.
const GFP_NORETRY: bindings::gfp_t = gfp_bit(bindings::___GFP_NORETRY_BIT);
/// Only on the node asked for, no fallback to other nodes.
const GFP_THISNODE: bindings::gfp_t = gfp_bit(bindings::___GFP_THISNODE_BIT);
/// No allocation failure report.
const GFP_NOWARN: bindings::gfp_t = gfp_bit(bindings::___GFP_NOWARN_BIT);

/// An order-0 folio just allocated, that only its owner knows of (`folio_alloc()` until the
/// folio is first mapped or published).
///
/// Only such a folio may be set up with the non-atomic operations that C uses on new folios
/// (`__folio_mark_uptodate`, `__folio_set_swapbacked`) and have its `mapping` word written
/// without the folio lock: nobody else can find it, so nobody races with them. It is consumed
/// when it becomes something others may find ([`NewFolio::into_ksm`]). Dropping it frees it
/// (and uncharges it, if it was charged).
///
/// # Invariants
///
/// `self.0` is an order-0 folio on which we hold the only reference. It is not mapped, not on an
/// LRU list or in an LRU batch, in neither the page cache nor the swap cache, and no other code
/// has its address.
///
/// It does not deref to [`Folio`]: that would let a caller take another reference on it.
pub struct NewFolio(ARef<Folio>);

impl NewFolio {
    /// Allocates an order-0 folio of user memory (`GFP_HIGHUSER_MOVABLE`) on the NUMA node of
    /// `near` or, unless `this_node_only` (`__GFP_THISNODE`), on the nearest node that has free
    /// memory (`__folio_alloc_node`). The page allocator chooses the frame.
    ///
    /// The allocation gives up rather than tries hard: at most one round of direct reclaim, no
    /// OOM kill, no warning (`__GFP_NORETRY | __GFP_NOWARN`), as for an optimisation that can
    /// wait. Fails with `ENOMEM`.
    pub fn alloc_user_near(near: &Folio, this_node_only: bool) -> crate::error::Result<Self> {
        let mut gfp = bindings::GFP_HIGHUSER_MOVABLE | GFP_NORETRY | GFP_NOWARN;
        if this_node_only {
            gfp |= GFP_THISNODE;
        }
        // The node of a referenced folio holds memory: it is online and has a `pg_data_t`.
        let nid = near.nid();
        // SAFETY: Any flags may be passed; `nid` is a valid, online node (above).
        let raw = unsafe { bindings::__folio_alloc_node(gfp, 0, nid) };
        let raw = NonNull::new(raw.cast::<Folio>()).ok_or(crate::error::code::ENOMEM)?;
        // INVARIANT: A new folio: ours alone, with one reference, which the `ARef` takes over.
        // SAFETY: As above.
        Ok(Self(unsafe { ARef::from_raw(raw) }))
    }

    /// Copies the contents of `page` into the folio (`copy_mc_highpage`). Other mappings of
    /// `page` may write it meanwhile: the copy is then of some mix of old and new contents, as a
    /// `memcpy` racing with them in C. Fails with `EIO` on a memory error in `page` (a machine
    /// check, which is then reported to memory-failure handling).
    pub fn copy_from(&mut self, page: &PageRef) -> crate::error::Result {
        // SAFETY: Both pages are valid: `page` is referenced, the folio is ours (type
        // invariant); `copy_mc_highpage` maps both and reads the source as plain bytes.
        if unsafe { bindings::copy_mc_highpage(self.0.page_raw(0), page.as_raw()) } != 0 {
            return Err(crate::error::code::EIO);
        }
        Ok(())
    }

    /// Charges the folio to the memory cgroup of `mm` (`mem_cgroup_charge`), giving up rather
    /// than reclaiming hard or invoking the memcg OOM killer (`__GFP_NORETRY`). Fails with
    /// `ENOMEM` when the cgroup is at its limit. Dropping the folio uncharges it.
    pub fn charge(&mut self, mm: &super::Mm) -> crate::error::Result {
        let gfp = bindings::GFP_KERNEL | GFP_NORETRY | GFP_NOWARN;
        // SAFETY: The folio is new and not charged (type invariant); `mm` is a valid mm.
        crate::error::to_result(unsafe {
            bindings::mem_cgroup_charge(self.0.as_raw(), mm.as_raw(), gfp)
        })
    }

    /// Marks the folio's contents valid (`__folio_mark_uptodate`), after they are written.
    pub fn mark_uptodate(&mut self) {
        // SAFETY: Nobody else knows the folio (type invariant): the non-atomic update races with
        // nothing.
        unsafe { bindings::__folio_mark_uptodate(self.0.as_raw()) };
    }

    /// Marks the folio as backed by swap (`__folio_set_swapbacked`): anonymous memory, which
    /// reclaim writes to swap, on the anonymous LRU lists.
    pub fn set_swapbacked(&mut self) {
        // SAFETY: As in `mark_uptodate`.
        unsafe { bindings::__folio_set_swapbacked(self.0.as_raw()) };
    }

    /// Marks the folio dirty (`folio_set_dirty`), so that reclaim saves its contents (to swap)
    /// rather than drops them.
    pub fn set_dirty(&mut self) {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::folio_set_dirty(self.0.as_raw()) };
    }

    /// Makes the folio a KSM folio with no stable node yet: its `mapping` word becomes
    /// `FOLIO_MAPPING_KSM` (what `folio_set_stable_node(folio, NULL)` stores), which the rest of
    /// mm handles as a KSM folio whose mappings cannot be found yet (`rmap_walk_ksm()` finds
    /// none). The caller should have written its contents, marked it up to date, swap-backed
    /// and dirty first: it is about to be mapped as anonymous memory.
    pub fn into_ksm(self) -> UnlistedFolio {
        // SAFETY: The folio is valid and nobody else knows it (type invariant), so the lock-free
        // store races with nothing; an anonymous KSM folio without a node is a state the rest of
        // mm expects (a KSM folio between `try_to_merge_one_page()` and `stable_tree_insert()`).
        unsafe {
            self.0
                .set_mapping_word(bindings::FOLIO_MAPPING_KSM as usize)
        };
        // INVARIANT: Not on an LRU list (invariant of `NewFolio`); the reference moves over.
        UnlistedFolio(self.0)
    }
}

/// A referenced folio that is on no LRU list and in no LRU batch yet, and that only its owner
/// may put there ([`UnlistedFolio::add_lru`]): a new folio that may already be mapped, while it
/// is being set up.
///
/// Others may map, unmap, fault on and pin it, but reclaim, compaction and migration, which
/// start from the LRU lists, cannot see it until it is added. Dropping it drops the reference
/// only: a folio that stays mapped should be added first, or it stays off the LRU lists for
/// good (unreclaimable and unmovable).
///
/// # Invariants
///
/// We hold a reference on `self.0`, which is neither on an LRU list nor in an LRU batch; only
/// the holder of this value adds it to one (nothing else adds a folio it did not isolate).
pub struct UnlistedFolio(ARef<Folio>);

impl Deref for UnlistedFolio {
    type Target = Folio;

    fn deref(&self) -> &Folio {
        &self.0
    }
}

impl UnlistedFolio {
    /// Puts the folio on the LRU lists (`folio_add_lru`), where reclaim, compaction and
    /// migration find it, and drops our reference.
    pub fn add_lru(self) {
        // SAFETY: The folio is valid and on no LRU list or batch (type invariant), as
        // `folio_add_lru()` requires; it takes its own reference for the batch.
        unsafe { bindings::folio_add_lru(self.as_raw()) };
    }
}
