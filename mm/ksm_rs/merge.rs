// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Merging: write-protecting a page, making it a KSM page, and replacing pages by a KSM page or
//! the zero page (`try_to_merge_one_page`, `write_protect_page`, `replace_page`).
//!
//! A page is replaced together with the pages after it in the same page table whose items had
//! the same checksum at the last scan ([`merge_run`]): their entries are cleared under one page
//! table lock and one TLB flush, then each page is checked (not pinned, still the same
//! contents) and replaced or put back as it was. A run allocates nothing.
//!
//! # Locking
//!
//! The mmap lock of the page's mm (read) → the folio locks of the run (trylock) → the page table
//! lock. The KSM folio's lock is taken by the caller afterwards, to list the new mappings.

use crate::{
    engine::{mm_key, Engine},
    hash::{checksum, Hash},
    trace,
    tunables::*,
    unmerge::break_ksm,
};
use core::ptr;
use kernel::{
    bindings,
    mm::{
        folio::{Folio, FolioLockGuard, PageRef},
        pgwalk::{MmapLockedVma, PMD_SIZE},
        pte::{self, MmuInvalidation, Pte, PteTable},
        virt::flags as vma_flags,
        MmWithUser, MmapReadGuard,
    },
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    sync::{aref::ARef, atomic::Relaxed},
};

/// The addresses of a run's mask of pages (bit `i` for `addr + i * PAGE_SIZE`, see
/// [`merge_run`]).
pub(crate) fn run_addrs(addr: usize, mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        let i = mask.trailing_zeros() as usize;
        // Clears the lowest bit set.
        mask &= mask.checked_sub(1)?;
        Some(addr + i * PAGE_SIZE)
    })
}

/// What a page is merged with.
pub(crate) enum Target<'a> {
    /// Nothing yet: the page becomes a KSM page of its own.
    NewKsm,
    /// An existing KSM folio.
    Ksm(&'a Folio),
    /// The shared zero page (`ZERO_PAGE()` of the address).
    Zero,
}

/// Whether a page has the contents of a (small) KSM folio (`pages_identical`).
pub(crate) fn identical(a: &PageRef, b: &Folio) -> bool {
    a.same_as_page(b, 0)
}

/// Finds the mergeable VMA at `addr` (`find_mergeable_vma`).
pub(crate) fn mergeable_vma<'a>(
    guard: &'a MmapReadGuard<'_>,
    addr: usize,
) -> Option<&'a MmapLockedVma> {
    let vma = guard.vma_at(addr)?;
    (vma.flags() & vma_flags::MERGEABLE != 0 && vma.has_anon_vma()).then_some(vma)
}

/// Takes a reference on the anonymous page mapped at `addr` of `mm`, if a mergeable VMA maps it
/// (what `scan_get_next_rmap_item()` and `get_mergeable_page()` take).
pub(crate) fn mergeable_page_at(mm: &MmWithUser, addr: usize) -> Option<PageRef> {
    let guard = mm.mmap_read_lock();
    mergeable_vma(&guard, addr)?.anon_page_at(addr)
}

/// Write-protects the page table entry that maps `page` at `addr` of `vma`, so that its
/// contents cannot change (`write_protect_page`). Fails if the page may be pinned (O_DIRECT,
/// GUP) or is not mapped there any more.
pub(crate) fn write_protect_page(
    vma: &MmapLockedVma,
    addr: usize,
    folio: &FolioLockGuard<'_>,
    page: &PageRef,
) -> Result {
    let mm = vma.mm();
    let _inv = MmuInvalidation::start(mm, addr, addr + PAGE_SIZE);
    let mut t = PteTable::lock(vma, addr, addr + PAGE_SIZE).ok_or(EFAULT)?;
    let mut entry = t.get(0);
    if !entry.present() || entry.pfn() != page.pfn() {
        return Err(EFAULT);
    }
    let anon_exclusive = page.anon_exclusive();
    if entry.write() || entry.dirty() || anon_exclusive || pte::tlb_flush_pending(mm) {
        let swapped = i32::from(folio.test_swapcache());
        t.flush_cache(0, 1);
        // Clear the entry and flush the TLB before looking at the reference count, so that no
        // GUP-fast or O_DIRECT can start after the check. No MMU notifier beyond the range
        // above: the entry is only downgraded to read-only.
        // SAFETY: The TLB is flushed right below and an entry is put back on every path.
        entry = unsafe { t.get_and_clear(0) };
        t.flush_tlb(0, 1);
        if folio.mapcount() + 1 + swapped != folio.ref_count() {
            // SAFETY: Restores the entry just cleared.
            unsafe { t.set(0, entry) };
            return Err(EFAULT);
        }
        // SAFETY: The folio is locked and the entry cleared and flushed.
        if anon_exclusive && !unsafe { page.try_share_anon_rmap() } {
            // SAFETY: Restores the entry just cleared.
            unsafe { t.set(0, entry) };
            return Err(EFAULT);
        }
        if entry.dirty() {
            folio.mark_dirty();
        }
        entry = entry.mkclean();
        if entry.write() {
            entry = entry.wrprotect();
        }
        // SAFETY: The same page, read-only and clean: a downgrade of the entry cleared above.
        unsafe { t.set(0, entry) };
    }
    Ok(())
}

/// What [`Engine::merge_item`] merged: a run of pages and what their mappings in the stable
/// tree need.
pub(crate) struct Merged {
    /// The pages merged, bit `i` for `addr + i * PAGE_SIZE` (see [`run_addrs`]); 0 if none.
    pub(crate) mask: u64,
    /// The first page of the run.
    addr: usize,
    /// The VMA's anon_vma, with one reference for each page merged.
    pub(crate) anon_vma: *mut bindings::anon_vma,
    /// The page offset of `addr` in the VMA (`linear_page_index()`).
    pub(crate) pgoff: usize,
}

impl Merged {
    /// The pages merged: their addresses and page offsets.
    pub(crate) fn pages(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        run_addrs(self.addr, self.mask)
            .map(move |a| (a, self.pgoff.wrapping_add((a - self.addr) >> PAGE_SHIFT)))
    }
}

/// The most pages [`merge_run`] replaces under one TLB flush.
pub(crate) const MERGE_BATCH: usize = 32;

/// Whether `page` has the contents of `target`.
fn has_target_contents(page: &PageRef, target: &Target<'_>) -> bool {
    match target {
        Target::Ksm(kfolio) => identical(page, kfolio),
        Target::Zero => page.is_zero(),
        Target::NewKsm => false,
    }
}

/// Replaces `page`, mapped at `addr` of `vma`, with the KSM folio or the zero page `target`
/// (`try_to_merge_one_page` + `replace_page`), and with it the pages mapped right after it in the
/// same page table, up to `max` pages in all: page `i` of the run is taken if bit `i` of `more`
/// is set (its item saw these contents at the last scan, see [`Engine::run_candidates`]) and it
/// is a small anonymous folio. The run ends at the first page that does not qualify.
///
/// All entries of the run are cleared under one page table lock and the TLB is flushed once for
/// all of them, where C flushes twice per page (write-protect, then replace). After the flush no
/// CPU can write to the pages and a GUP-fast that started before shows in their reference counts,
/// so each page is then checked (not pinned, still identical) and either replaced or put back as
/// it was. Returns the pages that now map the target, as a mask like `more` (bit 0 for `addr`).
///
/// `pages` is room for the run's page references that the caller keeps from one run to the next:
/// it is allocated once, and left empty on return (no reference outlives the run).
pub(crate) fn merge_run(
    vma: &MmapLockedVma,
    addr: usize,
    page: &PageRef,
    target: &Target<'_>,
    max: usize,
    more: u64,
    pages: &mut KVec<PageRef>,
) -> Result<u64> {
    let kfolio = match target {
        Target::Ksm(k) => Some(*k),
        Target::Zero => None,
        Target::NewKsm => return Err(EINVAL),
    };
    if kfolio.is_some_and(|k| page.as_raw() == k.page_raw(0)) {
        // A KSM page forked: already merged.
        return Ok(1);
    }
    let folio = page.folio();
    // A page of a large folio is split off it first (`PageRef::split_folio`), and only when it
    // is about to merge, as `try_to_merge_one_page()` does.
    if !folio.test_anon() || folio.test_large() {
        return Err(EFAULT);
    }
    let max = max.clamp(1, MERGE_BATCH);
    let same_node = MERGE_ACROSS_NODES.load(Relaxed) == 0;
    let table_end = (addr | (PMD_SIZE - 1)).saturating_add(1);
    let end = addr
        .saturating_add(max * PAGE_SIZE)
        .min(table_end)
        .min(vma.end());
    // Nothing can be allocated under the page table lock: the run's state is on the stack (a
    // few hundred bytes, as a `folio_batch`) and in the caller's `pages`, which only the first
    // run ever allocates.
    pages.clear();
    pages.reserve(MERGE_BATCH, crate::scan_gfp())?;
    let mut origs = [Pte::from_raw(bindings::pte_t::default()); MERGE_BATCH];
    let mut guards: [Option<FolioLockGuard<'_>>; MERGE_BATCH] = [const { None }; MERGE_BATCH];
    let mut n = 0;
    let mut merged = 0u64;
    // Started before the page table lock is taken: it may sleep.
    let _inv = MmuInvalidation::start(vma.mm(), addr, end);
    let mut t = PteTable::lock(vma, addr, end).ok_or(EFAULT)?;
    // Page 0 is the caller's (who holds a reference on it); the others are ours.
    if !t.get(0).present() || t.get(0).pfn() != page.pfn() {
        return Err(EFAULT);
    }
    for i in 1..t.len() {
        if more & (1 << i) == 0 {
            break;
        }
        let Some(p) = t.anon_page(i) else {
            break;
        };
        let f = p.folio();
        // Not compared yet: `more` says it had the target's contents at the last scan, and
        // the comparison that counts is the one after the flush.
        if f.test_large()
            || f.test_ksm()
            || (same_node && kfolio.is_some_and(|k| k.nid() != f.nid()))
        {
            break;
        }
        if pages.push_within_capacity(p).is_err() {
            break;
        }
    }
    // Lock the folios, the caller's page first; the run ends at one that is busy.
    for f in Iterator::chain(core::iter::once(folio), pages.iter().map(PageRef::folio)) {
        let Some(g) = f.try_lock() else {
            break;
        };
        guards[n] = Some(g);
        n += 1;
    }
    if n == 0 {
        drop(guards);
        pages.clear();
        return Err(EFAULT);
    }
    t.flush_cache(0, n);
    for (i, orig) in origs.iter_mut().enumerate().take(n) {
        // SAFETY: The TLB is flushed right below and every entry is put back in the loop after
        // it, still under the page table lock.
        *orig = unsafe { t.get_and_clear(i) };
    }
    t.flush_tlb(0, n);
    let mm = vma.mm();
    // The first `n` guards are the locked folios, the rest `None`.
    for (i, (g, &orig)) in guards.iter().flatten().zip(origs.iter()).enumerate() {
        let p = if i == 0 { page } else { &pages[i - 1] };
        // One reference is ours: the caller's on page 0, the run's on the others.
        let swapped = i32::from(g.test_swapcache());
        let ok = g.mapcount() + 1 + swapped == g.ref_count()
            && has_target_contents(p, target)
            // SAFETY: The folio is locked and its entry cleared and flushed.
            && (!p.anon_exclusive() || unsafe { p.try_share_anon_rmap() });
        if !ok {
            // SAFETY: Puts back the entry cleared above, as it was.
            unsafe { t.set(i, orig) };
            continue;
        }
        let a = t.address(i);
        if orig.dirty() {
            g.mark_dirty();
        }
        let newpte = match kfolio {
            Some(k) => {
                let kpage = k.page_raw(0);
                // The new mapping's reference, handed over to the page table.
                core::mem::forget(ARef::<Folio>::from(k));
                // SAFETY: The new entry is installed below under the page table lock we hold,
                // with the reference just taken; for a KSM folio the rmap only counts the
                // mapping (its stable node, not an anon_vma, finds the mappings), as
                // `replace_page()` in C.
                unsafe { pte::add_anon_rmap(k, kpage, vma, a) };
                // SAFETY: `kpage` is the first page of the referenced KSM folio.
                unsafe { pte::mk_pte(kpage, vma) }
            }
            None => {
                // SAFETY: The zero page is a valid page.
                let pfn = unsafe { bindings::page_to_pfn(pte::zero_page(a)) } as usize;
                // SAFETY: `ksm_zero_pages` and the mm's counter are `atomic_long_t`s
                // (`atomic64_t` on 64-bit), as `ksm_map_zero_page()` updates them; we replace an
                // anonymous page, so its `MM_ANONPAGES` count goes, as in C.
                unsafe {
                    bindings::atomic64_inc(crate::ksm_zero_pages_raw());
                    bindings::atomic64_inc(&raw mut (*mm.as_raw()).__bindgen_anon_1.ksm_zero_pages);
                    bindings::dec_mm_counter(mm.as_raw(), bindings::MM_ANONPAGES as i32);
                }
                // A dirty zero-page entry marks a zero page placed by KSM (`is_ksm_zero_pte`).
                Pte::from_pfn(pfn, pte::page_prot(vma))
                    .mkspecial()
                    .mkdirty()
            }
        };
        // SAFETY: The entry was cleared and flushed; `newpte` maps the KSM folio (referenced and
        // in its rmap, above) or is a special zero-page entry.
        unsafe { t.set(i, newpte) };
        // SAFETY: The entry that mapped `p` was just replaced under the page table lock.
        unsafe { pte::remove_rmap(g, p.as_raw(), vma) };
        if !g.mapped() {
            g.free_swap();
        }
        // Drop the old mapping's reference.
        // SAFETY: The page table held a reference on the folio for the entry just replaced; our
        // own reference keeps it alive until the guard and `p` are dropped.
        unsafe { bindings::folio_put(g.as_raw()) };
        merged |= 1 << i;
    }
    drop(t);
    drop(guards);
    pages.clear();
    Ok(merged)
}

/// Makes `page`, mapped at `addr` of `vma`, a KSM folio of its own that has no stable node yet
/// (`try_to_merge_one_page` with no `kpage`): write-protects it everywhere it is mapped.
fn make_ksm_page(vma: &MmapLockedVma, addr: usize, page: &PageRef) -> Result {
    // A page of a large folio is split off it first (`PageRef::split_folio`), and only when it
    // is about to merge, as `try_to_merge_one_page()` does.
    if !page.folio().test_anon() || page.folio().test_large() {
        return Err(EFAULT);
    }
    // Try-lock: better to scan on and come back than to wait here.
    let folio = page.folio().try_lock().ok_or(EFAULT)?;
    write_protect_page(vma, addr, &folio, page)?;
    // While we hold the folio lock, make it a KSM folio with no stable node yet:
    // `Engine::stable_insert()` sets the node.
    // SAFETY: The folio is locked and is anonymous, write-protected and not exclusive.
    unsafe { folio.set_mapping_word(bindings::FOLIO_MAPPING_KSM as usize) };
    folio.mark_accessed();
    // Reclaim frees clean folios with no dirty entries: make sure it is swapped.
    if !folio.test_dirty() {
        folio.mark_dirty();
    }
    Ok(())
}

impl Engine {
    /// The pages after `addr` of `mmk` that a run of [`merge_run`] may take, as a bit mask (bit
    /// `i` for `addr + i * PAGE_SIZE`, `0 < i < max`): those whose item is not merged and whose
    /// contents hashed to `hash` at their last scan. A page that has those contents now is then a
    /// page whose checksum held still between two scans, which is what C asks before merging.
    pub(crate) fn run_candidates(
        &mut self,
        mmk: usize,
        addr: usize,
        hash: Hash,
        max: usize,
    ) -> u64 {
        let mut more = 0u64;
        let Some(m) = self.mms.get_mut(&mmk) else {
            return 0;
        };
        for i in 1..max.min(u64::BITS as usize) {
            let Some(it) = m.items.get_mut((addr >> PAGE_SHIFT) + i) else {
                break;
            };
            if !it.hashed() || it.hash != checksum(hash) || !it.node().is_null() {
                break;
            }
            more |= 1 << i;
        }
        more
    }

    /// Merges the page at `addr` of `mm` with `target`, with up to `max - 1` pages after it
    /// allowed by `more` (see [`merge_run`]) (`try_to_merge_with_ksm_page`). Returns the pages
    /// merged (none on failure), taken out of the trees, with what their mappings in the stable
    /// tree need ([`Engine::append`]).
    pub(crate) fn merge_item(
        &mut self,
        mm: &MmWithUser,
        addr: usize,
        page: &PageRef,
        target: &Target<'_>,
        max: usize,
        more: u64,
    ) -> Merged {
        let mut done = Merged {
            mask: 0,
            addr,
            anon_vma: ptr::null_mut(),
            pgoff: 0,
        };
        let mmk = mm_key(mm);
        let guard = mm.mmap_read_lock();
        let Some(vma) = mergeable_vma(&guard, addr) else {
            drop(guard);
            self.trace_merges(mmk, addr, page, target, 0);
            return done;
        };
        let merged = match target {
            Target::NewKsm => u64::from(make_ksm_page(vma, addr, page).is_ok()),
            _ => merge_run(vma, addr, page, target, max, more, &mut self.run_pages).unwrap_or(0),
        };
        // SAFETY: The VMA has an anon_vma (checked by `mergeable_vma`), valid under the mmap
        // lock; the references we take keep it for the stable tree.
        let av = unsafe { (*vma.as_ptr()).anon_vma };
        for a in run_addrs(addr, merged) {
            self.remove_from_tree(mmk, a);
            // SAFETY: As above.
            unsafe { bindings::get_anon_vma(av) };
        }
        self.trace_merges(mmk, addr, page, target, merged);
        done.mask = merged;
        done.anon_vma = av;
        done.pgoff = vma.linear_page_index(addr);
        done
    }

    /// Fires the merge tracepoint of `target` for the page at `addr`, merged or not, and for
    /// each page of the run after it that `merged` has (`mm/ksm.c` tries those when it scans
    /// them, and fires it then).
    pub(crate) fn trace_merges(
        &self,
        mmk: usize,
        addr: usize,
        page: &PageRef,
        target: &Target<'_>,
        merged: u64,
    ) {
        // The items' references cost a lookup: only when someone listens.
        if !trace::merges_enabled() {
            return;
        }
        let mm = mmk as *mut bindings::mm_struct;
        let addrs = Iterator::chain(core::iter::once(addr), run_addrs(addr, merged & !1));
        for (i, a) in addrs.enumerate() {
            let item = self.item_ref(mmk, a).unwrap_or(0);
            let err = if i > 0 || merged & 1 != 0 {
                0
            } else {
                -(bindings::EFAULT as i32)
            };
            match target {
                Target::NewKsm => trace::merge_with_ksm_page(None, page.pfn(), item, mm, err),
                Target::Ksm(kfolio) => {
                    trace::merge_with_ksm_page(Some(kfolio), kfolio.pfn(), item, mm, err)
                }
                Target::Zero => trace::merge_one_page(pte::zero_pfn(a), item, mm, err),
            }
        }
    }

    /// Undoes a merge of the item that was not listed (`break_cow`), dropping the anon_vma
    /// reference [`Engine::merge_item`] took for it.
    pub(crate) fn break_cow(&mut self, mmk: usize, addr: usize, anon_vma: *mut bindings::anon_vma) {
        // SAFETY: The caller's reference from `merge_item`.
        unsafe { bindings::put_anon_vma(anon_vma) };
        if let Some(mm) = self.mm_user(mmk) {
            let guard = mm.mmap_read_lock();
            if let Some(vma) = mergeable_vma(&guard, addr) {
                let _ = break_ksm(vma, addr, addr + PAGE_SIZE);
            }
        }
    }
}
