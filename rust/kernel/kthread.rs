// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! Kernel threads.
//!
//! A kernel thread runs a Rust closure in its own task, like `kthread_run()` does for a C
//! function. The thread may be asked to stop with [`KThread::stop`], which waits for it to
//! return; the closure polls [`should_stop`] to notice.
//!
//! C header: [`include/linux/kthread.h`](srctree/include/linux/kthread.h)

use crate::{
    alloc::{Flags, KBox},
    bindings,
    error::{code::EINTR, from_err_ptr, Result},
    ffi::{c_int, c_void},
    str::{CStr, CStrExt},
    sync::aref::ARef,
    task::Task,
};

/// A kernel thread started by [`KThread::run`].
///
/// Dropping the handle lets the thread run on until its closure returns; [`KThread::stop`] asks
/// it to stop and waits for it.
///
/// # Invariants
///
/// `task` is a kernel thread created by `kthread_create_on_node()` with [`trampoline::<F>`] as
/// its function and `data` as its argument, and has been woken up; `data` came from
/// [`KBox::into_raw`] and is owned by the thread once it runs.
pub struct KThread {
    task: ARef<Task>,
    data: *mut c_void,
    drop_data: unsafe fn(*mut c_void),
}

// SAFETY: The handle only holds a task reference and a pointer that is used, in `stop`, after
// the thread is gone; both may move to another thread.
unsafe impl Send for KThread {}

// SAFETY: `&KThread` only gives access to the task, which is `Sync`.
unsafe impl Sync for KThread {}

/// The function the C kthread code calls: runs the closure behind `data` once.
///
/// # Safety
///
/// `data` must come from `KBox::<F>::into_raw` and not be used by anyone else afterwards.
unsafe extern "C" fn trampoline<F: FnOnce() + Send + 'static>(data: *mut c_void) -> c_int {
    // SAFETY: By the safety requirements, `data` is an owned `KBox<F>`.
    let f = unsafe { KBox::from_raw(data.cast::<F>()) };
    KBox::into_inner(f)();
    // Never `-EINTR`: `stop` relies on that to tell whether the closure ran.
    0
}

/// Frees the closure of a thread that was stopped before it ran.
///
/// # Safety
///
/// `data` must come from `KBox::<F>::into_raw` and not be used by anyone else afterwards.
unsafe fn drop_closure<F>(data: *mut c_void) {
    // SAFETY: By the safety requirements, `data` is an owned `KBox<F>`.
    drop(unsafe { KBox::from_raw(data.cast::<F>()) });
}

impl KThread {
    /// Creates a kernel thread named `name` that runs `f`, and wakes it up.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::{c_str, kthread::{self, KThread}};
    ///
    /// let t = KThread::run(c_str!("rust_kthread_doc"), GFP_KERNEL, || {
    ///     while !kthread::should_stop() {
    ///         kernel::time::delay::fsleep(kernel::time::Delta::from_millis(1));
    ///     }
    /// })?;
    /// assert_eq!(t.stop(), 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn run<F: FnOnce() + Send + 'static>(name: &CStr, flags: Flags, f: F) -> Result<Self> {
        let data = KBox::into_raw(KBox::new(f, flags)?).cast::<c_void>();
        // SAFETY: `trampoline::<F>` matches the `threadfn` signature and takes ownership of
        // `data`, an owned `KBox<F>`; `"%s"` with a NUL-terminated string is a valid format.
        let task = from_err_ptr(unsafe {
            bindings::kthread_create_on_node(
                Some(trampoline::<F>),
                data,
                bindings::NUMA_NO_NODE,
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        });
        let task = match task {
            Ok(task) => task,
            Err(e) => {
                // SAFETY: No thread was created, so `data` is still ours.
                unsafe { drop_closure::<F>(data) };
                return Err(e);
            }
        };
        // SAFETY: `task` is a valid task that nobody else has a reference to yet;
        // `get_task_struct` gives us one that `ARef` will drop.
        let task = unsafe {
            bindings::get_task_struct(task);
            ARef::from_raw(core::ptr::NonNull::new_unchecked(task.cast::<Task>()))
        };
        // SAFETY: `task` is a newly created kernel thread, not yet woken up.
        unsafe { bindings::wake_up_process(task.as_ptr()) };
        // INVARIANT: Created with `trampoline::<F>` and `data`, and woken up.
        Ok(Self {
            task,
            data,
            drop_data: drop_closure::<F>,
        })
    }

    /// Returns the thread's task.
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// Asks the thread to stop, waits for it to exit, and returns what it returned: 0 if the
    /// closure ran to its end.
    pub fn stop(self) -> c_int {
        // SAFETY: `self.task` is a kernel thread (type invariant) on which we hold a reference.
        let ret = unsafe { bindings::kthread_stop(self.task.as_ptr()) };
        if ret == EINTR.to_errno() {
            // `trampoline` never returns `-EINTR`: the thread exited without running it, so the
            // closure is still ours to free.
            // SAFETY: `self.data` and `self.drop_data` were created together in `run`.
            unsafe { (self.drop_data)(self.data) };
            return 0;
        }
        ret
    }
}

/// Returns whether the current task is a kernel thread that has been asked to stop
/// ([`KThread::stop`]); false for any other task.
pub fn should_stop() -> bool {
    // SAFETY: `get_current()` is the running task, valid while it runs; its `flags` are only
    // changed by itself.
    let kthread = unsafe { (*bindings::get_current()).flags } & bindings::PF_KTHREAD != 0;
    // SAFETY: `kthread_should_stop` reads the `struct kthread` of the current task, which every
    // task with `PF_KTHREAD` has (a user task has none: `to_kthread()` would be NULL).
    kthread && unsafe { bindings::kthread_should_stop() }
}

/// Sets the nice value of the current task (`set_user_nice(current, nice)`), clamped to the
/// valid range.
pub fn set_nice(nice: i8) {
    // MIN_NICE and MAX_NICE of `include/linux/sched/prio.h`.
    let nice = nice.clamp(-20, 19);
    // SAFETY: `get_current()` is the running task; `set_user_nice` takes its locks itself.
    unsafe { bindings::set_user_nice(bindings::get_current(), isize::from(nice)) };
}

/// Makes the current kernel thread freezable: it will be frozen for suspend and hibernation in
/// [`try_to_freeze`] or in freezable waits.
pub fn set_freezable() {
    // SAFETY: `set_freezable` only changes flags of the current task. (It returns whether the
    // task may freeze with `CONFIG_FREEZER` and nothing without; either is ignored here.)
    unsafe { bindings::set_freezable() };
}

/// Returns whether the current task should freeze now.
pub fn freezing() -> bool {
    // SAFETY: `freezing` reads state of the current task.
    unsafe { bindings::freezing(bindings::get_current()) }
}

/// Freezes the current task if the system is freezing; returns whether it was frozen.
pub fn try_to_freeze() -> bool {
    // SAFETY: `try_to_freeze` acts on the current task and may sleep, which is allowed here as in
    // any other place that calls a sleeping function.
    unsafe { bindings::try_to_freeze() }
}

#[macros::kunit_tests(rust_kernel_kthread)]
mod tests {
    use super::*;
    use crate::{
        c_str,
        prelude::*,
        sync::{
            atomic::{Atomic, Relaxed},
            Arc,
        },
    };

    #[test]
    fn runs_closure_and_stops() -> Result {
        let counter = Arc::new(Atomic::<i32>::new(0), GFP_KERNEL)?;
        let c = counter.clone();
        let t = KThread::run(c_str!("rust_kthread_test"), GFP_KERNEL, move || {
            c.fetch_add(1, Relaxed);
            while !should_stop() {
                crate::time::delay::fsleep(crate::time::Delta::from_millis(1));
            }
        })?;
        // Stopping before the thread first runs would skip the closure: wait until it runs.
        while counter.load(Relaxed) == 0 {
            crate::time::delay::fsleep(crate::time::Delta::from_millis(1));
        }
        assert_eq!(t.stop(), 0);
        assert_eq!(counter.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn stop_before_run_frees_closure() -> Result {
        // Stopping right away usually wins against the new thread's first run: the closure is
        // then freed by `stop` (kmemleak would report it otherwise), else it ran and returned.
        let ran = Arc::new(Atomic::<i32>::new(0), GFP_KERNEL)?;
        let r = ran.clone();
        let t = KThread::run(c_str!("rust_kthread_test"), GFP_KERNEL, move || {
            r.store(1, Relaxed);
        })?;
        assert_eq!(t.stop(), 0);
        // Either way the closure and its `Arc` clone are gone: only `ran` is left.
        assert!(Arc::into_unique_or_drop(ran).is_some());
        Ok(())
    }
}
