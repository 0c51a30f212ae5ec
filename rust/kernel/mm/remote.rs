// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Another process's address space, reached the way `process_madvise()` and
//! `process_mrelease()` reach it: the task by its pid, then its mm with `mm_access()`, which
//! checks that the caller may ptrace-access the task.
//!
//! Cost: one pid hash lookup under RCU, then `mm_access()`, which may wait for an `execve()` of
//! the target in progress (killably).
//!
//! C header: [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h)

use super::MmWithUser;
use crate::{
    bindings,
    error::{code::ESRCH, from_err_ptr, Result},
    sync::aref::ARef,
    task::{Pid, Task},
};
use core::ptr::NonNull;

/// The access a caller asks for on another process (`PTRACE_MODE_*`): what it may do, and which
/// of its credentials are checked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AccessMode(u32);

impl AccessMode {
    /// Read access checked against the caller's filesystem credentials
    /// (`PTRACE_MODE_READ_FSCREDS`): what `process_madvise()` requires, so as not to leak the
    /// target's address space layout.
    pub const READ_FSCREDS: Self = Self(bindings::PTRACE_MODE_READ | bindings::PTRACE_MODE_FSCREDS);

    /// Attach access checked against the caller's filesystem credentials
    /// (`PTRACE_MODE_ATTACH_FSCREDS`): what reading `/proc/<pid>/mem` requires.
    pub const ATTACH_FSCREDS: Self =
        Self(bindings::PTRACE_MODE_ATTACH | bindings::PTRACE_MODE_FSCREDS);
}

/// Returns the task whose pid is `pid` in the caller's pid namespace, with a reference
/// (`find_get_task_by_vpid()`); `None` if there is none.
pub fn task_by_vpid(pid: Pid) -> Option<ARef<Task>> {
    // SAFETY: May be called from any process context; it takes the RCU read lock itself.
    let task = unsafe { bindings::find_get_task_by_vpid(pid) };
    // SAFETY: A non-NULL task comes with a reference, which the `ARef` now owns; `Task` is a
    // transparent wrapper of `struct task_struct`.
    NonNull::new(task).map(|t| unsafe { ARef::from_raw(t.cast::<Task>()) })
}

impl MmWithUser {
    /// Returns the address space of `task` with a user reference (`mm_access()`), if the
    /// current task may access it in `mode`.
    ///
    /// # Errors
    ///
    /// - `ESRCH`: the task has no address space (a kernel thread, or it exited);
    /// - `EACCES`: the current task may not access it in `mode`;
    /// - `EINTR`: a fatal signal arrived while waiting for an `execve()` of the task.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::{mm::{remote::{task_by_vpid, AccessMode}, MmWithUser}, prelude::*};
    ///
    /// /// Whether process `pid` has mapped anything at `addr`, if we may know.
    /// fn mapped(pid: i32, addr: usize) -> Result<bool> {
    ///     let task = task_by_vpid(pid).ok_or(ESRCH)?;
    ///     let mm = MmWithUser::access(&task, AccessMode::READ_FSCREDS)?;
    ///     let guard = mm.mmap_read_lock();
    ///     Ok(guard.vma_lookup(addr).is_some())
    /// }
    /// ```
    pub fn access(task: &Task, mode: AccessMode) -> Result<ARef<MmWithUser>> {
        // SAFETY: `task` is valid (type invariant) and held by the caller for the call.
        let mm = from_err_ptr(unsafe { bindings::mm_access(task.as_ptr(), mode.0) })?;
        // `mm_access()` returns an mm or an error, never NULL; be safe anyway.
        let mm = NonNull::new(mm).ok_or(ESRCH)?;
        // SAFETY: `mm_access()` took a user reference (`get_task_mm()`), which the `ARef` now
        // owns; `MmWithUser` is a transparent wrapper of `struct mm_struct`.
        Ok(unsafe { ARef::from_raw(mm.cast::<MmWithUser>()) })
    }
}
