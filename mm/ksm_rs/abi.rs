// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The functions that [`include/linux/ksm.h`](srctree/include/linux/ksm.h) declares.
//!
//! Each is exported under its C name with `#[export]`, which checks the signature against the C
//! prototype. This is the FFI edge: raw pointers from C become references here, under the
//! locking the C callers guarantee (stated in each `# Safety` section).

use crate::scan::ksm;
use kernel::{
    bindings,
    mm::{
        flags::{VM_MERGEABLE, VM_MERGE_ANY},
        folio::Folio,
        pgwalk::MmapLockedVma,
        virt::{flags, VmaRef},
        Mm,
    },
    prelude::*,
};

/// Whether KSM may merge in a mapping of `file` with `vm_flags` (`ksm_compatible`): private,
/// not hugetlb, droppable, I/O, PFN or mixed maps, nor DAX files.
fn ksm_compatible(file: *const bindings::file, vm_flags: bindings::vm_flags_t) -> bool {
    let refused = flags::SHARED
        | flags::MAYSHARE
        | flags::HUGETLB
        | bindings::VM_DROPPABLE as bindings::vm_flags_t
        | flags::IO
        | flags::DONTEXPAND
        | flags::PFNMAP
        | flags::MIXEDMAP;
    // SAFETY: `file` is null or a valid file, as the callers (mmap, madvise) guarantee.
    vm_flags & refused == 0 && !unsafe { bindings::file_is_dax(file) }
}

/// Whether `PR_SET_MEMORY_MERGE` should make a mapping mergeable (`__ksm_should_add_vma`).
fn should_add(file: *const bindings::file, vm_flags: bindings::vm_flags_t) -> bool {
    vm_flags & flags::MERGEABLE == 0 && ksm_compatible(file, vm_flags)
}

/// Calls `f` on every VMA of `mm`, stopping at the first error.
///
/// # Safety
///
/// The caller holds `mm`'s mmap lock: for reading when `f` only reads the VMAs, for writing
/// when it changes their flags.
unsafe fn for_each_vma(
    mm: *mut bindings::mm_struct,
    mut f: impl FnMut(*mut bindings::vm_area_struct) -> Result,
) -> Result {
    let mut addr = 0;
    loop {
        // SAFETY: The mmap lock is held (safety requirement).
        let vma = unsafe { bindings::find_vma(mm, addr) };
        if vma.is_null() {
            return Ok(());
        }
        f(vma)?;
        // SAFETY: `vma` is valid under the mmap lock.
        addr = unsafe { (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_end };
    }
}

/// Makes every compatible VMA of `mm` mergeable (`ksm_add_vmas`).
///
/// # Safety
///
/// The caller holds `mm`'s mmap lock for writing.
unsafe fn add_vmas(mm: *mut bindings::mm_struct) {
    // SAFETY: The mmap lock is held for writing (safety requirement), which `vm_flags_set`
    // needs; `vma` is valid under it.
    let _ = unsafe {
        for_each_vma(mm, |vma| {
            let v = VmaRef::from_raw(vma);
            if should_add((*vma).vm_file, v.flags()) {
                bindings::vm_flags_set(vma, flags::MERGEABLE);
            }
            Ok(())
        })
    };
}

/// Makes every VMA of `mm` unmergeable (`ksm_del_vmas`).
///
/// # Safety
///
/// The caller holds `mm`'s mmap lock for writing.
unsafe fn del_vmas(mm: *mut bindings::mm_struct) -> Result {
    // SAFETY: As for `add_vmas`.
    unsafe {
        for_each_vma(mm, |vma| {
            let v = MmapLockedVma::from_raw(vma);
            if v.flags() & flags::MERGEABLE == 0 {
                return Ok(());
            }
            crate::break_ksm(v, v.start(), v.end())?;
            bindings::vm_flags_clear(vma, flags::MERGEABLE);
            Ok(())
        })
    }
}

/// Handles `madvise(MADV_MERGEABLE)` and `madvise(MADV_UNMERGEABLE)` on `vma`.
///
/// # Safety
///
/// Called by the madvise code with `vma` valid, `vm_flags` pointing to the flags it will apply
/// and the mm's mmap lock held for writing.
#[export]
pub(crate) unsafe extern "C" fn ksm_madvise(
    vma: *mut bindings::vm_area_struct,
    start: usize,
    end: usize,
    advice: c_int,
    vm_flags: *mut bindings::vm_flags_t,
) -> c_int {
    // SAFETY: `vma` is valid and its mmap lock held (safety requirements).
    let v = unsafe { MmapLockedVma::from_raw(vma) };
    let mm: &Mm = v.mm();
    let res = match advice as u32 {
        bindings::MADV_MERGEABLE => {
            // SAFETY: `vma` is valid.
            let file = unsafe { (*vma).vm_file };
            if v.flags() & flags::MERGEABLE != 0 || !ksm_compatible(file, v.flags()) {
                return 0;
            }
            (|| -> Result {
                if !mm.flag_test(VM_MERGEABLE) {
                    ksm().ok_or(ENOMEM)?.enter(mm)?;
                }
                // SAFETY: `vm_flags` is valid (safety requirement).
                unsafe { *vm_flags |= flags::MERGEABLE };
                Ok(())
            })()
        }
        bindings::MADV_UNMERGEABLE => {
            // SAFETY: `vm_flags` is valid (safety requirement).
            if unsafe { *vm_flags } & flags::MERGEABLE == 0 {
                return 0;
            }
            crate::break_ksm(v, start, end).map(|()| {
                // SAFETY: `vm_flags` is valid (safety requirement).
                unsafe { *vm_flags &= !flags::MERGEABLE };
            })
        }
        _ => Ok(()),
    };
    match res {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Returns the flags of a new VMA of `mm`, `VM_MERGEABLE` added when `PR_SET_MEMORY_MERGE` is
/// on and the mapping is compatible.
///
/// # Safety
///
/// Called by the mmap code with a valid `mm` whose mmap lock it holds for writing, and a null
/// or valid `file`.
#[export]
pub(crate) unsafe extern "C" fn ksm_vma_flags(
    mm: *mut bindings::mm_struct,
    file: *const bindings::file,
    mut vma_flags: bindings::vma_flags_t,
) -> bindings::vma_flags_t {
    // SAFETY: `mm` is valid (safety requirement).
    let m = unsafe { Mm::from_raw(mm) };
    // On 64-bit kernels the first word of `vma_flags_t` holds all the legacy `vm_flags_t` bits.
    let word = vma_flags.__vma_flags[0] as bindings::vm_flags_t;
    if m.flag_test(VM_MERGE_ANY) && should_add(file, word) {
        vma_flags.__vma_flags[0] |= flags::MERGEABLE as c_ulong;
        // `MMF_VM_MERGEABLE` may have been cleared by ksmd after a scan that found no mergeable
        // VMA: register again (best effort, as in C).
        if !m.flag_test(VM_MERGEABLE) {
            if let Some(k) = ksm() {
                let _ = k.enter(m);
            }
        }
    }
    vma_flags
}

/// Handles `prctl(PR_SET_MEMORY_MERGE, 1)`: registers `mm` and makes all its compatible VMAs,
/// present and future, mergeable.
///
/// # Safety
///
/// Called with a valid `mm` whose mmap lock is held for writing.
#[export]
pub(crate) unsafe extern "C" fn ksm_enable_merge_any(mm: *mut bindings::mm_struct) -> c_int {
    // SAFETY: `mm` is valid (safety requirement).
    let m = unsafe { Mm::from_raw(mm) };
    if m.flag_test(VM_MERGE_ANY) {
        return 0;
    }
    if !m.flag_test(VM_MERGEABLE) {
        if let Err(e) = ksm().ok_or(ENOMEM).and_then(|k| k.enter(m)) {
            return e.to_errno();
        }
    }
    m.flag_set(VM_MERGE_ANY);
    // SAFETY: The mmap lock is held for writing (safety requirement).
    unsafe { add_vmas(mm) };
    0
}

/// Handles `prctl(PR_SET_MEMORY_MERGE, 0)`: unmerges and makes all VMAs unmergeable; on failure
/// merging stays enabled everywhere.
///
/// # Safety
///
/// Called with a valid `mm` whose mmap lock is held for writing.
#[export]
pub(crate) unsafe extern "C" fn ksm_disable_merge_any(mm: *mut bindings::mm_struct) -> c_int {
    // SAFETY: `mm` is valid (safety requirement).
    let m = unsafe { Mm::from_raw(mm) };
    if !m.flag_test(VM_MERGE_ANY) {
        return 0;
    }
    // SAFETY: The mmap lock is held for writing (safety requirement).
    if let Err(e) = unsafe { del_vmas(mm) } {
        // SAFETY: As above.
        unsafe { add_vmas(mm) };
        return e.to_errno();
    }
    m.flag_clear(VM_MERGE_ANY);
    0
}

/// Disables KSM for `mm`: unmerges and makes all VMAs unmergeable.
///
/// # Safety
///
/// Called with a valid `mm` whose mmap lock is held for writing.
#[export]
pub(crate) unsafe extern "C" fn ksm_disable(mm: *mut bindings::mm_struct) -> c_int {
    // SAFETY: `mm` is valid (safety requirement).
    let m = unsafe { Mm::from_raw(mm) };
    if !m.flag_test(VM_MERGEABLE) {
        return 0;
    }
    if m.flag_test(VM_MERGE_ANY) {
        // SAFETY: Same requirements.
        return unsafe { ksm_disable_merge_any(mm) };
    }
    // SAFETY: The mmap lock is held for writing (safety requirement).
    match unsafe { del_vmas(mm) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Registers `mm` with KSM (from `fork`, `execve`, madvise and prctl).
///
/// # Safety
///
/// Called with a valid `mm`.
#[export]
pub(crate) unsafe extern "C" fn __ksm_enter(mm: *mut bindings::mm_struct) -> c_int {
    // SAFETY: `mm` is valid (safety requirement).
    let m = unsafe { Mm::from_raw(mm) };
    match ksm().ok_or(ENOMEM).and_then(|k| k.enter(m)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Unregisters an exiting `mm` from KSM.
///
/// # Safety
///
/// Called on the last `mmput()` of a valid `mm` that has `MMF_VM_MERGEABLE`.
#[export]
pub(crate) unsafe extern "C" fn __ksm_exit(mm: *mut bindings::mm_struct) {
    // SAFETY: `mm` is valid (safety requirement).
    let m = unsafe { Mm::from_raw(mm) };
    if let Some(k) = ksm() {
        k.exit(m);
    }
}

/// Returns the folio to map at `addr` on swap-in, or a copy of it.
///
/// # Safety
///
/// Called from the swap-in path with valid, locked `folio` and valid `vma`.
#[export]
pub(crate) unsafe extern "C" fn ksm_might_need_to_copy(
    folio: *mut bindings::folio,
    vma: *mut bindings::vm_area_struct,
    addr: usize,
) -> *mut bindings::folio {
    // SAFETY: As required by `might_need_to_copy` (safety requirements).
    unsafe { crate::rmap::might_need_to_copy(Folio::from_raw(folio), vma, addr) }
}

/// Walks the mappings of a KSM folio (reclaim, migration, `page_idle`).
///
/// # Safety
///
/// Called by the rmap code with a valid, locked KSM `folio` and a valid `rwc`.
#[export]
pub(crate) unsafe extern "C" fn rmap_walk_ksm(
    folio: *mut bindings::folio,
    rwc: *mut bindings::rmap_walk_control,
) {
    // SAFETY: `folio` is valid and locked, `rwc` valid (safety requirements).
    unsafe { crate::rmap::rmap_walk(Folio::from_raw(folio), rwc) };
}

/// Moves KSM state from `folio` to `newfolio` on migration; only called for KSM folios.
///
/// # Safety
///
/// Called by the migration code with both folios valid and locked.
#[export]
pub(crate) unsafe extern "C" fn folio_migrate_ksm(
    newfolio: *mut bindings::folio,
    folio: *mut bindings::folio,
) {
    // SAFETY: Both folios are valid and locked (safety requirements), and the migration code
    // copied `mapping` to `newfolio` first.
    unsafe { crate::rmap::migrate(Folio::from_raw(newfolio), Folio::from_raw(folio)) };
}

/// Collects the processes that map a poisoned KSM page; only called for KSM folios.
///
/// # Safety
///
/// Called by memory-failure handling with a valid, locked KSM `folio`, a page of it and its
/// kill list.
#[cfg(CONFIG_MEMORY_FAILURE)]
#[export]
pub(crate) unsafe extern "C" fn collect_procs_ksm(
    folio: *const bindings::folio,
    page: *const bindings::page,
    to_kill: *mut bindings::list_head,
    force_early: c_int,
) {
    // SAFETY: As required by `collect_procs` (safety requirements).
    unsafe { crate::rmap::collect_procs(Folio::from_raw(folio), page, to_kill, force_early) };
}

/// Returns the memory KSM saves for `mm`, in bytes, for `/proc/<pid>/ksm_stat`:
/// `(ksm_merging_pages + ksm_zero_pages) * PAGE_SIZE`, less the per-page metadata
/// (`ksm_rmap_items` items of [`crate::item::ITEM_BYTES`]).
///
/// # Safety
///
/// Called with a valid `mm`.
#[export]
pub(crate) unsafe extern "C" fn ksm_process_profit(mm: *mut bindings::mm_struct) -> c_long {
    // SAFETY: `mm` is valid (safety requirement); the counters are read racily, as in C.
    let (merging, zero) = unsafe {
        (
            (*mm).__bindgen_anon_1.ksm_merging_pages as c_long,
            // `atomic_long_t` is `atomic64_t` on 64-bit kernels.
            bindings::atomic64_read(&raw const (*mm).__bindgen_anon_1.ksm_zero_pages) as c_long,
        )
    };
    // SAFETY: As above.
    let items = unsafe { (*mm).__bindgen_anon_1.ksm_rmap_items } as c_long;
    (merging + zero) * kernel::page::PAGE_SIZE as c_long - items * crate::item::ITEM_BYTES as c_long
}

/// Tells whether `mm` has a mergeable VMA, for `/proc/<pid>/ksm_stat`.
///
/// # Safety
///
/// Called with a valid `mm` whose mmap lock is held.
#[export]
pub(crate) unsafe extern "C" fn ksm_process_mergeable(mm: *mut bindings::mm_struct) -> bool {
    let mut found = false;
    // SAFETY: The mmap lock is held (safety requirement); `for_each_vma` only reads.
    let _ = unsafe {
        for_each_vma(mm, |vma| {
            if VmaRef::from_raw(vma).flags() & flags::MERGEABLE != 0 {
                found = true;
                return Err(EEXIST);
            }
            Ok(())
        })
    };
    found
}
