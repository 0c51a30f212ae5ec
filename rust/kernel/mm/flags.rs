// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Flags of an address space (`MMF_*` in `mm->flags`).
//!
//! C header: [`include/linux/mm_types.h`](srctree/include/linux/mm_types.h)

use super::Mm;
use crate::bindings;

/// An `MMF_*` flag number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MmFlag(i32);

/// KSM may merge identical pages of this mm (`MMF_VM_MERGEABLE`).
pub const VM_MERGEABLE: MmFlag = MmFlag(bindings::MMF_VM_MERGEABLE as i32);
/// Every compatible VMA of this mm is mergeable (`MMF_VM_MERGE_ANY`, `PR_SET_MEMORY_MERGE`).
pub const VM_MERGE_ANY: MmFlag = MmFlag(bindings::MMF_VM_MERGE_ANY as i32);

impl Mm {
    /// Returns whether `flag` is set.
    pub fn flag_test(&self, flag: MmFlag) -> bool {
        // SAFETY: `self` is a valid mm (type invariant); the flags are read atomically.
        unsafe { bindings::mm_flags_test(flag.0, self.as_raw()) }
    }

    /// Sets `flag` (atomically).
    pub fn flag_set(&self, flag: MmFlag) {
        // SAFETY: `self` is a valid mm; `set_bit` is atomic.
        unsafe { bindings::mm_flags_set(flag.0, self.as_raw()) }
    }

    /// Clears `flag` (atomically).
    pub fn flag_clear(&self, flag: MmFlag) {
        // SAFETY: `self` is a valid mm; `clear_bit` is atomic.
        unsafe { bindings::mm_flags_clear(flag.0, self.as_raw()) }
    }

    /// Takes and releases the mmap lock for writing: waits until every task that held it when
    /// this was called (a page-table walker, say) has released it.
    pub fn mmap_write_barrier(&self) {
        // SAFETY: `self` is a valid mm; the lock is released right after being taken.
        unsafe {
            bindings::mmap_write_lock(self.as_raw());
            bindings::mmap_write_unlock(self.as_raw());
        }
    }
}
