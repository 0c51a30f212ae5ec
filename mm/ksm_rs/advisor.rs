// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! The scan-time advisor (`advisor_mode` = `scan-time`).
//!
//! After each full scan it sets `pages_to_scan` so that a full scan takes about
//! `advisor_target_scan_time` seconds, smoothed with an exponentially weighted moving average
//! and bounded by `advisor_max_cpu` and `advisor_{min,max}_pages_to_scan`; the same arithmetic
//! as `scan_time_advisor()` in `mm/ksm.c`.

use crate::tunables::*;
use kernel::{
    sync::atomic::Relaxed,
    time::{Instant, Monotonic},
};

/// The advisor never sets `pages_to_scan` below what costs this percentage of a CPU.
const MIN_CPU: u64 = 10;
/// Weight of the newest sample in the moving average, in percent.
const EWMA_WEIGHT: u64 = 30;

/// The advisor's state, kept by ksmd under the scanner lock (`struct advisor_ctx`).
#[derive(Default)]
pub(crate) struct Ctx {
    start_scan: Option<Instant<Monotonic>>,
    scan_time: u64,
    change: u64,
    cpu_time: u64,
}

impl Ctx {
    /// Forgets the history, when the advisor is switched on.
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }

    /// Notes the start of a full scan.
    pub(crate) fn start_scan(&mut self) {
        if ADVISOR_SCAN_TIME.load(Relaxed) {
            self.start_scan = Some(Instant::now());
        }
    }

    /// Adjusts `pages_to_scan` at the end of a full scan.
    pub(crate) fn stop_scan(&mut self) {
        if !ADVISOR_SCAN_TIME.load(Relaxed) {
            return;
        }
        let elapsed_ms = self.start_scan.map_or(0, |s| s.elapsed().as_millis());
        let scan_time = ((elapsed_ms / 1000) as u64).max(1);
        let cpu_time = kernel::current!().sched_runtime();
        let cpu_ms = cpu_time.wrapping_sub(self.cpu_time) / 1_000_000;
        // An `unsigned int` in C.
        let cpu_percent = u64::from(((cpu_ms * 100) / (scan_time * 1000)) as u32).max(1);
        let last = if self.scan_time != 0 {
            self.scan_time
        } else {
            scan_time
        };
        let (pages, change) = next_pages_to_scan(
            u64::from(PAGES_TO_SCAN.load(Relaxed)),
            scan_time,
            last,
            self.change,
            cpu_percent,
        );
        self.change = change;
        self.scan_time = scan_time;
        self.cpu_time = cpu_time;
        // `ksm_thread_pages_to_scan` is an `unsigned int`.
        PAGES_TO_SCAN.store(pages as u32, Relaxed);
        crate::trace::advisor(scan_time, pages, cpu_percent);
    }
}

/// The exponentially weighted moving average of `prev` and `curr`.
fn ewma(prev: u64, curr: u64) -> u64 {
    ((100 - EWMA_WEIGHT) * prev + EWMA_WEIGHT * curr) / 100
}

/// Computes the next `pages_to_scan` from a scan of `scan_time` seconds that cost `cpu_percent`
/// of a CPU; returns it with the new smoothed change factor.
pub(crate) fn next_pages_to_scan(
    pages_to_scan: u64,
    scan_time: u64,
    last_scan_time: u64,
    prev_change: u64,
    cpu_percent: u64,
) -> (u64, u64) {
    let factor = (ADVISOR_TARGET_SCAN_TIME.load(Relaxed).wrapping_mul(100) / scan_time).max(1);
    let change = ewma(prev_change, (scan_time * 100 / last_scan_time).max(1));
    let pages = pages_to_scan.wrapping_mul(100) / factor;
    let pages = pages.wrapping_mul(change) / 100;
    let per_page_cost = (pages_to_scan / cpu_percent).max(1);
    let pages = pages
        .min(per_page_cost.wrapping_mul(u64::from(ADVISOR_MAX_CPU.load(Relaxed))))
        .max(per_page_cost * MIN_CPU)
        .min(ADVISOR_MAX_PAGES_TO_SCAN.load(Relaxed));
    (pages, change)
}
