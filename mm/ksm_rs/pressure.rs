// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The pressure-following policy (`advisor_mode` = `pressure`): ksmtuned's rules in ksmd.
//!
//! ksmtuned (a shell daemon) starts ksmd when memory is short and makes it work harder the
//! shorter it stays; this policy applies the same rules from inside ksmd, every
//! `advisor_pressure_interval_millisecs`. With `free` what ksmtuned counts as free
//! (`MemFree + Buffers + Cached` of `/proc/meminfo`) and `thres` the larger of
//! `advisor_pressure_thres_percent` of `MemTotal` and `advisor_pressure_thres_kbytes`:
//!
//! - `free < thres`: ksmd scans (starting if it was held back) and `pages_to_scan` grows by
//!   `advisor_pressure_boost`, up to `advisor_pressure_max_pages_to_scan`;
//! - `free >= thres` while ksmd scans: `pages_to_scan` shrinks by `advisor_pressure_decay`,
//!   down to `advisor_pressure_min_pages_to_scan`; once there, ksmd stops;
//! - `free >= thres` while ksmd is held back: nothing changes.
//!
//! ksmtuned also starts ksmd while the memory committed to QEMU processes is close to `MemTotal`,
//! even with plenty free; the kernel has no such notion, so free memory alone decides here (see
//! `Documentation/mm/ksm_rs.rst`).
//!
//! The arithmetic is [`decide`], a pure function. [`Ctx::tick`] runs it when an interval has
//! passed and applies the decision to `pages_to_scan` and [`ADVISOR_PRESSURE_ACTIVE`].
//!
//! Cost: nothing with the policy off beyond one atomic load per ksmd batch. With it on, one
//! jiffies comparison per batch, and per interval four atomic reads of the global memory counters
//! and a few multiplications; nothing per page. While held back ksmd sleeps an interval at a
//! time.
//!
//! # Locking
//!
//! [`Ctx`] is ksmd's, under the scanner lock ([`crate::scan::Ksm::scanner`]); the tunables are
//! read without locks, as the others are.

use crate::tunables::*;
use kernel::{
    bindings,
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::Relaxed,
    time::{msecs_to_jiffies, Jiffies},
};

/// ksmtuned's rules, with its defaults (`/etc/ksmtuned.conf`) as the tunables' defaults.
#[derive(Clone, Copy)]
pub(crate) struct Rules {
    /// `advisor_pressure_boost` (`KSM_NPAGES_BOOST`).
    pub(crate) boost: u64,
    /// `advisor_pressure_decay` (`-KSM_NPAGES_DECAY`).
    pub(crate) decay: u64,
    /// `advisor_pressure_min_pages_to_scan` (`KSM_NPAGES_MIN`).
    pub(crate) min: u64,
    /// `advisor_pressure_max_pages_to_scan` (`KSM_NPAGES_MAX`).
    pub(crate) max: u64,
    /// `advisor_pressure_thres_percent` (`KSM_THRES_COEF`).
    pub(crate) thres_percent: u64,
    /// `advisor_pressure_thres_kbytes` (`KSM_THRES_CONST`).
    pub(crate) thres_kbytes: u64,
}

impl Rules {
    /// The rules as the tunables are now.
    pub(crate) fn current() -> Self {
        Self {
            boost: u64::from(ADVISOR_PRESSURE_BOOST.load(Relaxed)),
            decay: u64::from(ADVISOR_PRESSURE_DECAY.load(Relaxed)),
            min: u64::from(ADVISOR_PRESSURE_MIN_PAGES_TO_SCAN.load(Relaxed)),
            max: u64::from(ADVISOR_PRESSURE_MAX_PAGES_TO_SCAN.load(Relaxed)),
            thres_percent: u64::from(ADVISOR_PRESSURE_THRES_PERCENT.load(Relaxed)),
            thres_kbytes: ADVISOR_PRESSURE_THRES_KBYTES.load(Relaxed),
        }
    }
}

/// What one evaluation of the policy decided.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Decision {
    /// Memory is plentiful and ksmd is held back: it stays so.
    Idle,
    /// Memory is short: ksmd starts scanning, `pages_to_scan` boosted.
    Start,
    /// Memory is still short: `pages_to_scan` boosted.
    Boost,
    /// Memory is plentiful again: `pages_to_scan` decayed.
    Decay,
    /// Memory is plentiful and `pages_to_scan` is at its minimum: ksmd stops.
    Stop,
}

impl Decision {
    /// Whether ksmd scans after this decision.
    pub(crate) fn active(self) -> bool {
        matches!(self, Self::Start | Self::Boost | Self::Decay)
    }
}

/// The threshold of free memory, in kB: `thres_percent` of `total_kb`, at least `thres_kbytes`
/// (ksmtuned's `thres`).
pub(crate) fn threshold_kb(total_kb: u64, r: &Rules) -> u64 {
    (total_kb.saturating_mul(r.thres_percent) / 100).max(r.thres_kbytes)
}

/// Decides, from whether ksmd scans (`active`), `pages_to_scan` and the memory (in kB), what ksmd
/// does next and with which `pages_to_scan`.
///
/// `pages` stays within `[r.min, r.max]` whenever it changes; `r.min > r.max` (two tunables
/// written in between) favours `r.max` and never panics.
pub(crate) fn decide(
    active: bool,
    pages: u64,
    free_kb: u64,
    total_kb: u64,
    r: &Rules,
) -> (Decision, u64) {
    let bound = |p: u64| p.max(r.min).min(r.max);
    if free_kb < threshold_kb(total_kb, r) {
        let d = if active {
            Decision::Boost
        } else {
            Decision::Start
        };
        (d, bound(pages.saturating_add(r.boost)))
    } else if !active {
        (Decision::Idle, pages)
    } else if pages <= r.min {
        (Decision::Stop, bound(pages))
    } else {
        (Decision::Decay, bound(pages.saturating_sub(r.decay)))
    }
}

/// Reads a global `atomic_long_t` counter of `vmstat.h`/`mm.h`, negative values (per-CPU drift
/// not folded in yet) read as 0, as `global_zone_page_state()` does.
///
/// # Safety
///
/// `counter` must point to a valid `atomic_long_t`.
unsafe fn read_counter(counter: *const bindings::atomic_long_t) -> u64 {
    // SAFETY: `counter` is valid by the safety requirements; on 64-bit kernels an `atomic_long_t`
    // is an `atomic64_t`, read atomically.
    let v = unsafe { bindings::atomic64_read(counter) };
    // CAST: Not negative after `max`.
    v.max(0) as u64
}

/// Free memory as ksmtuned counts it (`MemFree + Buffers + Cached` of `/proc/meminfo`) and
/// `MemTotal`, in kB.
///
/// `Cached` is the file pages less the swap cache and `Buffers`, so the sum is
/// `NR_FREE_PAGES + NR_FILE_PAGES - NR_SWAPCACHE`, three global counters; `MemTotal` is
/// `totalram_pages()`. The inline accessors read exported globals, which are read here directly.
pub(crate) fn meminfo_kb() -> (u64, u64) {
    // SAFETY: `vm_zone_stat`, `vm_node_stat` and `_totalram_pages` are the kernel's global
    // counters, valid for its lifetime; the indices are within their arrays. Only their addresses
    // are taken here, no reference to a `static mut`.
    let (free, file, swapcache, total) = unsafe {
        (
            read_counter(core::ptr::addr_of!(
                bindings::vm_zone_stat[bindings::zone_stat_item_NR_FREE_PAGES as usize]
            )),
            read_counter(core::ptr::addr_of!(
                bindings::vm_node_stat[bindings::node_stat_item_NR_FILE_PAGES as usize]
            )),
            read_counter(core::ptr::addr_of!(
                bindings::vm_node_stat[bindings::node_stat_item_NR_SWAPCACHE as usize]
            )),
            read_counter(core::ptr::addr_of!(bindings::_totalram_pages)),
        )
    };
    // CAST: A page size fits in a `u64`.
    let kb = PAGE_SIZE as u64 / 1024;
    ((free + file.saturating_sub(swapcache)) * kb, total * kb)
}

/// The time in jiffies.
fn jiffies() -> Jiffies {
    // SAFETY: `jiffies` is always readable, and a word is read whole.
    unsafe { core::ptr::addr_of!(bindings::jiffies).read_volatile() }
}

/// The policy's state, kept by ksmd under the scanner lock.
#[derive(Default)]
pub(crate) struct Ctx {
    /// When the last evaluation was (jiffies); `None` until the first one.
    last: Option<Jiffies>,
}

impl Ctx {
    /// Forgets the history, when the policy is switched on or off: the next [`Ctx::tick`]
    /// evaluates at once, and ksmd is held back until then.
    pub(crate) fn reset(&mut self) {
        self.last = None;
        ADVISOR_PRESSURE_ACTIVE.store(false, Relaxed);
    }

    /// The interval in jiffies (at least one).
    fn interval() -> Jiffies {
        msecs_to_jiffies(ADVISOR_PRESSURE_INTERVAL_MILLISECS.load(Relaxed)).max(1)
    }

    /// Evaluates the policy if an interval has passed since the last evaluation (ksmd, before a
    /// batch, with the policy on). Returns whether ksmd may scan now.
    pub(crate) fn tick(&mut self) -> bool {
        let now = jiffies();
        let due = self
            .last
            .is_none_or(|last| now.wrapping_sub(last) >= Self::interval());
        if due {
            self.last = Some(now);
            let (free_kb, total_kb) = meminfo_kb();
            let active = ADVISOR_PRESSURE_ACTIVE.load(Relaxed);
            let pages = u64::from(PAGES_TO_SCAN.load(Relaxed));
            let (d, pages) = decide(active, pages, free_kb, total_kb, &Rules::current());
            if d != Decision::Idle {
                // CAST: `pages` is at most `advisor_pressure_max_pages_to_scan`, a `u32`.
                PAGES_TO_SCAN.store(pages as u32, Relaxed);
                ADVISOR_PRESSURE_ACTIVE.store(d.active(), Relaxed);
                // No scan time nor CPU share here: only `pages_to_scan` is meaningful.
                crate::trace::advisor(0, pages, 0);
            }
        }
        ADVISOR_PRESSURE_ACTIVE.load(Relaxed)
    }

    /// The jiffies until the next evaluation is due (at least one).
    pub(crate) fn until_next(&self) -> Jiffies {
        let interval = Self::interval();
        match self.last {
            Some(last) => interval.saturating_sub(jiffies().wrapping_sub(last)).max(1),
            None => 1,
        }
    }
}

#[kunit_tests(ksm_rs_pressure)]
mod tests {
    use super::*;

    /// ksmtuned's defaults.
    const R: Rules = Rules {
        boost: 300,
        decay: 50,
        min: 64,
        max: 1250,
        thres_percent: 20,
        thres_kbytes: 2048,
    };

    /// 1 GiB of memory, in kB; the threshold is then 20 % of it.
    const TOTAL: u64 = 1 << 20;
    const SHORT: u64 = TOTAL / 10;
    const PLENTY: u64 = TOTAL / 2;

    #[test]
    fn threshold_is_ksmtuned_s() {
        assert_eq!(threshold_kb(TOTAL, &R), TOTAL / 5);
        // A small machine: the constant wins.
        assert_eq!(threshold_kb(4096, &R), 2048);
        assert_eq!(threshold_kb(u64::MAX, &R), u64::MAX / 100);
    }

    #[test]
    fn idle_stays_idle() {
        assert_eq!(decide(false, 64, PLENTY, TOTAL, &R), (Decision::Idle, 64));
        // Exactly at the threshold is not short (ksmtuned boosts only when `free < thres`).
        assert_eq!(
            decide(false, 64, TOTAL / 5, TOTAL, &R),
            (Decision::Idle, 64)
        );
    }

    #[test]
    fn short_starts_and_boosts_to_max() {
        let (mut d, mut p) = decide(false, 64, SHORT, TOTAL, &R);
        assert_eq!((d, p), (Decision::Start, 364));
        let mut seen = KVec::new();
        while p < R.max {
            (d, p) = decide(d.active(), p, SHORT, TOTAL, &R);
            assert_eq!(d, Decision::Boost);
            seen.push(p, GFP_KERNEL).unwrap();
        }
        assert_eq!(&seen[..], &[664, 964, 1250]);
        // At the maximum, boosting keeps it there.
        assert_eq!(decide(true, p, SHORT, TOTAL, &R), (Decision::Boost, 1250));
    }

    #[test]
    fn plenty_decays_then_stops() {
        let (mut d, mut p) = (Decision::Boost, 1250);
        let mut decays = 0;
        loop {
            (d, p) = decide(d.active(), p, PLENTY, TOTAL, &R);
            if d == Decision::Stop {
                break;
            }
            assert_eq!(d, Decision::Decay);
            decays += 1;
            assert!(p >= R.min);
        }
        // 1250 → 1200 → … → 100 → 64 (clamped), then a stop at the minimum.
        assert_eq!(decays, 24);
        assert_eq!(p, R.min);
        assert_eq!(decide(false, p, PLENTY, TOTAL, &R), (Decision::Idle, 64));
        // Short again: ksmtuned's next start adds a boost to where it stopped.
        assert_eq!(decide(false, p, SHORT, TOTAL, &R), (Decision::Start, 364));
    }

    #[test]
    fn bounds_never_panic() {
        let odd = Rules {
            min: 500,
            max: 100,
            ..R
        };
        assert_eq!(decide(false, 0, SHORT, TOTAL, &odd).1, 100);
        assert_eq!(decide(true, 300, PLENTY, TOTAL, &odd).1, 100);
        let huge = Rules {
            boost: u64::MAX,
            decay: u64::MAX,
            max: u64::from(u32::MAX),
            ..R
        };
        assert_eq!(
            decide(true, 1000, SHORT, TOTAL, &huge),
            (Decision::Boost, u64::from(u32::MAX))
        );
        assert_eq!(
            decide(true, 1000, PLENTY, TOTAL, &huge),
            (Decision::Decay, 64)
        );
    }
}
