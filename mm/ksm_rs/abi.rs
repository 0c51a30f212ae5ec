// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The functions that [`include/linux/ksm.h`](srctree/include/linux/ksm.h) declares.
//!
//! Each is exported under its C name with `#[export]`, which checks the signature against the C
//! prototype. In this skeleton they answer as a kernel in which no area is registered for merging.

use kernel::bindings;
use kernel::prelude::*;

/// Handles `madvise(MADV_MERGEABLE)` and `madvise(MADV_UNMERGEABLE)` on `vma`.
///
/// # Safety
///
/// Called by the madvise code with `vma` valid and its mm's mmap lock held for writing.
#[export]
pub unsafe extern "C" fn ksm_madvise(
    _vma: *mut bindings::vm_area_struct,
    _start: usize,
    _end: usize,
    _advice: c_int,
    _vm_flags: *mut bindings::vm_flags_t,
) -> c_int {
    0
}

/// Returns the flags a new VMA of `mm` gets, `VM_MERGEABLE` added when the mm merges any VMA.
///
/// # Safety
///
/// Called by the mmap code with valid `mm` and (possibly null) `file`.
#[export]
pub unsafe extern "C" fn ksm_vma_flags(
    _mm: *mut bindings::mm_struct,
    _file: *const bindings::file,
    vma_flags: bindings::vma_flags_t,
) -> bindings::vma_flags_t {
    vma_flags
}

/// Handles `prctl(PR_SET_MEMORY_MERGE, 1)`.
///
/// # Safety
///
/// Called with a valid `mm` whose mmap lock is held for writing.
#[export]
pub unsafe extern "C" fn ksm_enable_merge_any(_mm: *mut bindings::mm_struct) -> c_int {
    0
}

/// Handles `prctl(PR_SET_MEMORY_MERGE, 0)`.
///
/// # Safety
///
/// Called with a valid `mm` whose mmap lock is held for writing.
#[export]
pub unsafe extern "C" fn ksm_disable_merge_any(_mm: *mut bindings::mm_struct) -> c_int {
    0
}

/// Disables KSM for `mm` (used before s390 enables storage keys).
///
/// # Safety
///
/// Called with a valid `mm` whose mmap lock is held for writing.
#[export]
pub unsafe extern "C" fn ksm_disable(_mm: *mut bindings::mm_struct) -> c_int {
    0
}

/// Registers `mm` with KSM.
///
/// # Safety
///
/// Called with a valid `mm`.
#[export]
pub unsafe extern "C" fn __ksm_enter(_mm: *mut bindings::mm_struct) -> c_int {
    0
}

/// Unregisters an exiting `mm` from KSM.
///
/// # Safety
///
/// Called from `exit_mmap()` with a valid `mm`.
#[export]
pub unsafe extern "C" fn __ksm_exit(_mm: *mut bindings::mm_struct) {}

/// Returns the folio to map at `addr` on swap-in: `folio` itself while KSM has merged nothing.
///
/// # Safety
///
/// Called from the swap-in path with valid, locked `folio` and valid `vma`.
#[export]
pub unsafe extern "C" fn ksm_might_need_to_copy(
    folio: *mut bindings::folio,
    _vma: *mut bindings::vm_area_struct,
    _addr: usize,
) -> *mut bindings::folio {
    folio
}

/// Walks the mappings of a KSM folio; there are none while KSM has merged nothing.
///
/// # Safety
///
/// Called by the rmap code with a valid, locked KSM `folio` and a valid `rwc`.
#[export]
pub unsafe extern "C" fn rmap_walk_ksm(
    _folio: *mut bindings::folio,
    _rwc: *mut bindings::rmap_walk_control,
) {
}

/// Moves KSM state from `folio` to `newfolio` on migration.
///
/// # Safety
///
/// Called by the migration code with both folios valid and locked.
#[export]
pub unsafe extern "C" fn folio_migrate_ksm(
    _newfolio: *mut bindings::folio,
    _folio: *mut bindings::folio,
) {
}

/// Collects the processes that map a poisoned KSM page; none while KSM has merged nothing.
///
/// # Safety
///
/// Called by memory-failure handling with valid arguments.
#[cfg(CONFIG_MEMORY_FAILURE)]
#[export]
pub unsafe extern "C" fn collect_procs_ksm(
    _folio: *const bindings::folio,
    _page: *const bindings::page,
    _to_kill: *mut bindings::list_head,
    _force_early: c_int,
) {
}

/// Returns the memory KSM saves for `mm`, in bytes, for `/proc/<pid>/ksm_stat`.
///
/// # Safety
///
/// Called with a valid `mm`.
#[export]
pub unsafe extern "C" fn ksm_process_profit(_mm: *mut bindings::mm_struct) -> c_long {
    0
}

/// Tells whether `mm` has a VMA registered for merging, for `/proc/<pid>/ksm_stat`.
///
/// # Safety
///
/// Called with a valid `mm` whose mmap lock is held.
#[export]
pub unsafe extern "C" fn ksm_process_mergeable(_mm: *mut bindings::mm_struct) -> bool {
    false
}
