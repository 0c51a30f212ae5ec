// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! KSM's global state ([`Ksm`]) and its controls: `run` (0, 1, 2), the tunables that need an
//! empty stable tree (`merge_across_nodes`, `max_page_sharing`), the advisors (scan-time and
//! pressure), and memory hot-remove. The parts: [`crate::registry`] (the registered address spaces),
//! [`crate::ksmd`] (the thread and its scan cursor), [`crate::engine`] (the merge engine).
//!
//! # Lock order
//!
//! [`Ksm::scanner`] (ksmd's batch; `ksm_thread_mutex` in C) → an mm's mmap lock →
//! [`Ksm::registry`] (a spinlock; `ksm_mmlist_lock`). Callers from C may hold the mmap lock
//! when they enter the registry (`__ksm_enter` from madvise) but never the scanner lock.

use crate::{
    advisor, engine::Engine, ksmd::Scanner, pressure, registry::Registry, tunables::*, KSM,
};
use core::pin::Pin;
use kernel::{
    new_condvar, new_mutex, new_spinlock,
    prelude::*,
    rbtree::RBTree,
    sync::{atomic::Relaxed, CondVar, Mutex, SpinLock},
};

/// KSM's global state.
#[pin_data]
pub(crate) struct Ksm {
    /// The registered address spaces (`ksm_mmlist_lock`).
    #[pin]
    pub(crate) registry: SpinLock<Registry>,
    /// ksmd's batch, and everything that must not run during one (`ksm_thread_mutex`).
    #[pin]
    pub(crate) scanner: Mutex<Scanner>,
    /// ksmd waits here while it has nothing to do (`ksm_thread_wait`).
    #[pin]
    pub(crate) thread_wait: CondVar,
    /// ksmd sleeps here between batches (`ksm_iter_wait`).
    #[pin]
    pub(crate) iter_wait: CondVar,
    /// Waiters for memory offlining to finish (`wait_on_bit(&ksm_run, KSM_RUN_OFFLINE)`).
    #[pin]
    pub(crate) offline_wait: CondVar,
}

impl Ksm {
    /// Creates the empty state.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            registry <- new_spinlock!(
                Registry {
                    slots: RBTree::new(),
                    cursor: None,
                    exited: 0,
                    unmerge_pass: 0,
                    entered: false,
                },
                "ksm_mmlist_lock"
            ),
            scanner <- new_mutex!(
                Scanner {
                    address: 0,
                    advisor: advisor::Ctx::default(),
                    pressure: pressure::Ctx::default(),
                    prune_from: 0,
                    offlining: false,
                    current: None,
                    queue: KVec::new(),
                    engine: Engine::new(),
                },
                "ksm_thread_mutex"
            ),
            thread_wait <- new_condvar!("ksm_thread_wait"),
            iter_wait <- new_condvar!("ksm_iter_wait"),
            offline_wait <- new_condvar!("ksm_offline_wait"),
        })
    }

    /// Whether ksmd has work: `run` includes merging and some mm is registered.
    pub(crate) fn should_run(reg: &Registry) -> bool {
        RUN.load(Relaxed) & RUN_MERGE != 0 && !reg.slots.is_empty()
    }

    /// Takes the scanner lock once no memory is going offline (`wait_while_offlining`).
    pub(crate) fn lock_scanner(&self) -> kernel::sync::MutexGuard<'_, Scanner> {
        let mut scanner = self.scanner.lock();
        while scanner.offlining {
            self.offline_wait.wait(&mut scanner);
        }
        scanner
    }

    /// Memory hotplug: a memory block is going offline (`MEM_GOING_OFFLINE`). Until it is
    /// offline or the offlining is cancelled, ksmd and the knobs that walk the stable tree wait:
    /// KSM pages there are being migrated away.
    pub(crate) fn going_offline(&self) {
        self.scanner.lock().offlining = true;
    }

    /// Memory hotplug: offlining finished (`MEM_OFFLINE`, with the frames that went) or was
    /// cancelled (`MEM_CANCEL_OFFLINE`).
    pub(crate) fn offline_done(&self, gone: Option<(usize, usize)>) {
        let mut scanner = self.scanner.lock();
        if let Some((start, end)) = gone {
            // Stable nodes may still point into the range; their `struct page`s are gone.
            scanner.engine.remove_nodes_in_range(start, end);
        }
        scanner.offlining = false;
        drop(scanner);
        self.offline_wait.notify_all();
    }

    /// Switches the advisor (`advisor_mode`), as `set_advisor_defaults()` does: `pages_to_scan`
    /// becomes the new advisor's minimum, or the default without one.
    pub(crate) fn set_advisor(&self, mode: Advisor) {
        let mut scanner = self.scanner.lock();
        let old = Advisor::current();
        if old == mode {
            return;
        }
        ADVISOR_SCAN_TIME.store(mode == Advisor::ScanTime, Relaxed);
        ADVISOR_PRESSURE.store(mode == Advisor::Pressure, Relaxed);
        // Held back until the policy's first evaluation; inactive without the policy.
        scanner.pressure.reset();
        match mode {
            Advisor::ScanTime => {
                scanner.advisor.reset();
                // `pages_to_scan` is an `unsigned int`: C truncates the `unsigned long` minimum.
                PAGES_TO_SCAN.store(ADVISOR_MIN_PAGES_TO_SCAN.load(Relaxed) as u32, Relaxed);
            }
            Advisor::Pressure => {
                PAGES_TO_SCAN.store(ADVISOR_PRESSURE_MIN_PAGES_TO_SCAN.load(Relaxed), Relaxed)
            }
            Advisor::None => PAGES_TO_SCAN.store(DEFAULT_PAGES_TO_SCAN, Relaxed),
        }
        drop(scanner);
        if old == Advisor::Pressure || mode == Advisor::Pressure {
            // ksmd, perhaps held back by the policy for an interval, re-evaluates at once.
            self.wake_thread();
        }
    }

    /// Wakes ksmd if it waits for work.
    pub(crate) fn wake_thread(&self) {
        let _reg = self.registry.lock();
        self.thread_wait.notify_all();
    }

    /// Wakes ksmd from its sleep between batches (after `sleep_millisecs` changed).
    pub(crate) fn wake_iter(&self) {
        let _reg = self.registry.lock();
        self.iter_wait.notify_all();
    }

    /// Changes `run` under the scanner lock, as `run_store` does.
    pub(crate) fn set_run(&self, flags: u32) -> Result {
        {
            let mut scanner = self.lock_scanner();
            if RUN.xchg(flags, Relaxed) != flags && flags & RUN_UNMERGE != 0 {
                // Should unsharing run out of memory, the OOM killer picks this task first.
                // SAFETY: Sets a flag of the current task.
                unsafe { kernel::bindings::set_current_oom_origin() };
                let res = self.unmerge_all(&mut scanner);
                // SAFETY: Clears the flag set above.
                unsafe { kernel::bindings::clear_current_oom_origin() };
                if let Err(e) = res {
                    // As `run_store`: stop, and report why the unmerge did not finish.
                    RUN.store(RUN_STOP, Relaxed);
                    return Err(e);
                }
            }
        }
        if flags & RUN_MERGE != 0 {
            self.wake_thread();
        }
        Ok(())
    }

    /// Changes a knob that needs an empty stable tree (`merge_across_nodes`,
    /// `max_page_sharing`, `merge_scope`): `EBUSY` while KSM pages exist.
    pub(crate) fn set_with_empty_stable_tree(
        &self,
        apply: impl FnOnce(&mut crate::engine::Engine),
    ) -> Result {
        let mut scanner = self.lock_scanner();
        // As `remove_all_stable_nodes()`: KSM pages no longer mapped are forgotten; one still
        // mapped (an exiting mm not torn down yet) keeps the knob as it is.
        if COUNTERS.pages_shared.load(Relaxed) != 0
            || !scanner.engine.remove_unmapped_stable_nodes()
        {
            return Err(EBUSY);
        }
        apply(&mut scanner.engine);
        Ok(())
    }
}

/// Returns KSM's state (set up by module init, before any caller can reach KSM).
pub(crate) fn ksm() -> Option<&'static Pin<KBox<Ksm>>> {
    KSM.as_ref()
}

/// Wakes ksmd after `sleep_millisecs` changed.
pub(crate) fn wake_iter() {
    if let Some(k) = ksm() {
        k.wake_iter();
    }
}

/// Sets `run`.
pub(crate) fn set_run(flags: u32) -> Result {
    ksm().ok_or(ENODEV)?.set_run(flags)
}

/// Sets `merge_across_nodes`.
pub(crate) fn set_merge_across_nodes(knob: u32) -> Result {
    if MERGE_ACROSS_NODES.load(Relaxed) == knob {
        return Ok(());
    }
    ksm()
        .ok_or(ENODEV)?
        .set_with_empty_stable_tree(|_| MERGE_ACROSS_NODES.store(knob, Relaxed))
}

/// Sets `max_page_sharing`.
pub(crate) fn set_max_page_sharing(knob: i32) -> Result {
    if MAX_PAGE_SHARING.load(Relaxed) == knob {
        return Ok(());
    }
    ksm()
        .ok_or(ENODEV)?
        .set_with_empty_stable_tree(|_| MAX_PAGE_SHARING.store(knob, Relaxed))
}

/// Sets `merge_scope` (see [`crate::domain`]): `EBUSY` while KSM pages exist, as
/// `merge_across_nodes`.
pub(crate) fn set_merge_scope(scope: u32) -> Result {
    if MERGE_SCOPE.load(Relaxed) == scope {
        return Ok(());
    }
    ksm().ok_or(ENODEV)?.set_with_empty_stable_tree(|engine| {
        // The unstable tree's pages are in the trees of their domains of the old scope.
        engine.unstable_clear();
        MERGE_SCOPE.store(scope, Relaxed);
    })
}

/// Writes the counts of each merge domain (`/sys/kernel/debug/ksm_rs/domains`).
pub(crate) fn show_domains(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    match ksm() {
        Some(k) => k.scanner.lock().engine.show_domains(f),
        None => Ok(()),
    }
}

/// The advisors of `advisor_mode`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Advisor {
    /// `none`: `pages_to_scan` is the user's.
    None,
    /// `scan-time`: the scan-time advisor ([`crate::advisor`]).
    ScanTime,
    /// `pressure`: the pressure-following policy ([`crate::pressure`]), a ksm_rs extension.
    Pressure,
}

impl Advisor {
    /// The advisor now selected.
    pub(crate) fn current() -> Self {
        if ADVISOR_SCAN_TIME.load(Relaxed) {
            Self::ScanTime
        } else if ADVISOR_PRESSURE.load(Relaxed) {
            Self::Pressure
        } else {
            Self::None
        }
    }
}

/// Sets `advisor_mode`.
pub(crate) fn set_advisor(mode: Advisor) -> Result {
    ksm().ok_or(ENODEV)?.set_advisor(mode);
    Ok(())
}
