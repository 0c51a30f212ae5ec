// SPDX-License-Identifier: GPL-2.0

// Copyright (C) 2026 The ksm-rs authors.

//! `/sys/kernel/mm/ksm`: the same files, modes, parsing and errors as `mm/ksm.c`.

use crate::{scan, tunables::*};
use core::fmt::Write;
use kernel::{
    c_str,
    prelude::*,
    sync::atomic::Relaxed,
    sysfs::{einval, parse_int, parse_uint, parse_ulong, streq, Attribute, ShowBuffer},
};

/// Writes one line for a `show` function.
fn emit(buf: &mut ShowBuffer, v: impl core::fmt::Display) -> Result {
    writeln!(buf, "{v}").map_err(|_| EINVAL)
}

/// Defines a read-only attribute showing `$value`.
macro_rules! ro_attr {
    ($ty:ident, $name:literal, $value:expr) => {
        struct $ty;
        impl Attribute for $ty {
            const NAME: &'static CStr = c_str!($name);
            fn show(buf: &mut ShowBuffer) -> Result {
                emit(buf, $value)
            }
        }
    };
}

/// Defines a read-write attribute: `$show` is its value, `$store` a `fn(&CStr) -> Result`.
macro_rules! rw_attr {
    ($ty:ident, $name:literal, $show:expr, $store:expr) => {
        struct $ty;
        impl Attribute for $ty {
            const NAME: &'static CStr = c_str!($name);
            const WRITABLE: bool = true;
            fn show(buf: &mut ShowBuffer) -> Result {
                emit(buf, $show)
            }
            fn store(input: &CStr) -> Result {
                let store: fn(&CStr) -> Result = $store;
                store(input)
            }
        }
    };
}

rw_attr!(
    SleepMillisecs,
    "sleep_millisecs",
    SLEEP_MILLISECS.load(Relaxed),
    |s| {
        SLEEP_MILLISECS.store(parse_uint(s).map_err(einval)?, Relaxed);
        scan::wake_iter();
        Ok(())
    }
);

rw_attr!(
    PagesToScan,
    "pages_to_scan",
    PAGES_TO_SCAN.load(Relaxed),
    |s| {
        // An advisor sets it: `scan-time` as in C, `pressure` likewise.
        if ADVISOR_SCAN_TIME.load(Relaxed) || ADVISOR_PRESSURE.load(Relaxed) {
            return Err(EINVAL);
        }
        PAGES_TO_SCAN.store(parse_uint(s).map_err(einval)?, Relaxed);
        Ok(())
    }
);

rw_attr!(Run, "run", RUN.load(Relaxed), |s| {
    let flags = parse_uint(s).map_err(einval)?;
    if flags > RUN_UNMERGE {
        return Err(EINVAL);
    }
    scan::set_run(flags)
});

#[cfg(CONFIG_NUMA)]
rw_attr!(
    MergeAcrossNodes,
    "merge_across_nodes",
    MERGE_ACROSS_NODES.load(Relaxed),
    |s| {
        // Unlike most files, parse errors (ERANGE) are passed on, as in C.
        let knob = parse_ulong(s)?;
        if knob > 1 {
            return Err(EINVAL);
        }
        scan::set_merge_across_nodes(knob as u32)
    }
);

rw_attr!(
    UseZeroPages,
    "use_zero_pages",
    u32::from(USE_ZERO_PAGES.load(Relaxed)),
    |s| {
        USE_ZERO_PAGES.store(kernel::str::kstrtobool(s).map_err(einval)?, Relaxed);
        Ok(())
    }
);

rw_attr!(
    MaxPageSharing,
    "max_page_sharing",
    MAX_PAGE_SHARING.load(Relaxed),
    |s| {
        // Parse errors (ERANGE) are passed on, as in C.
        let knob = parse_int(s)?;
        // A KSM page is shared by two mappings when created; also rejects negative values.
        if knob < 2 {
            return Err(EINVAL);
        }
        scan::set_max_page_sharing(knob)
    }
);

ro_attr!(
    PagesScanned,
    "pages_scanned",
    COUNTERS.pages_scanned.load(Relaxed)
);
ro_attr!(
    PagesShared,
    "pages_shared",
    COUNTERS.pages_shared.load(Relaxed)
);
ro_attr!(
    PagesSharing,
    "pages_sharing",
    COUNTERS.pages_sharing.load(Relaxed)
);
ro_attr!(
    PagesUnshared,
    "pages_unshared",
    COUNTERS.pages_unshared.load(Relaxed)
);
ro_attr!(PagesVolatile, "pages_volatile", pages_volatile());
ro_attr!(
    PagesSkipped,
    "pages_skipped",
    COUNTERS.pages_skipped.load(Relaxed)
);
ro_attr!(KsmZeroPages, "ksm_zero_pages", crate::zero_pages());
ro_attr!(GeneralProfit, "general_profit", general_profit());
ro_attr!(
    StableNodeDups,
    "stable_node_dups",
    COUNTERS.stable_node_dups.load(Relaxed)
);
ro_attr!(
    StableNodeChains,
    "stable_node_chains",
    COUNTERS.stable_node_chains.load(Relaxed)
);

rw_attr!(
    StableNodeChainsPruneMillisecs,
    "stable_node_chains_prune_millisecs",
    STABLE_NODE_CHAINS_PRUNE_MILLISECS.load(Relaxed),
    |s| {
        STABLE_NODE_CHAINS_PRUNE_MILLISECS.store(parse_uint(s).map_err(einval)?, Relaxed);
        Ok(())
    }
);

ro_attr!(FullScans, "full_scans", COUNTERS.full_scans.load(Relaxed));

rw_attr!(
    SmartScan,
    "smart_scan",
    u32::from(SMART_SCAN.load(Relaxed)),
    |s| {
        SMART_SCAN.store(kernel::str::kstrtobool(s).map_err(einval)?, Relaxed);
        Ok(())
    }
);

/// `advisor_mode`: `none`, `scan-time` or `pressure`, the current one in brackets.
///
/// `pressure` is a ksm_rs extension: it is listed only while selected, so that in the upstream
/// modes the file reads byte for byte as in `mm/ksm.c` (tools that parse it see no change).
struct AdvisorMode;
impl Attribute for AdvisorMode {
    const NAME: &'static CStr = c_str!("advisor_mode");
    const WRITABLE: bool = true;
    fn show(buf: &mut ShowBuffer) -> Result {
        emit(
            buf,
            match scan::Advisor::current() {
                scan::Advisor::None => "[none] scan-time",
                scan::Advisor::ScanTime => "none [scan-time]",
                scan::Advisor::Pressure => "none scan-time [pressure]",
            },
        )
    }
    fn store(s: &CStr) -> Result {
        let mode = if streq(s, c_str!("scan-time")) {
            scan::Advisor::ScanTime
        } else if streq(s, c_str!("none")) {
            scan::Advisor::None
        } else if streq(s, c_str!("pressure")) {
            scan::Advisor::Pressure
        } else {
            return Err(EINVAL);
        };
        scan::set_advisor(mode)
    }
}

/// `merge_scope` (ksm_rs only): `global`, `cgroup` or `process`, the current one in brackets.
struct MergeScope;
impl Attribute for MergeScope {
    const NAME: &'static CStr = c_str!("merge_scope");
    const WRITABLE: bool = true;
    fn show(buf: &mut ShowBuffer) -> Result {
        emit(
            buf,
            match MERGE_SCOPE.load(Relaxed) {
                SCOPE_CGROUP => "global [cgroup] process",
                SCOPE_PROCESS => "global cgroup [process]",
                _ => "[global] cgroup process",
            },
        )
    }
    fn store(s: &CStr) -> Result {
        let scope = if streq(s, c_str!("global")) {
            SCOPE_GLOBAL
        } else if streq(s, c_str!("cgroup")) {
            SCOPE_CGROUP
        } else if streq(s, c_str!("process")) {
            SCOPE_PROCESS
        } else {
            return Err(EINVAL);
        };
        scan::set_merge_scope(scope)
    }
}

rw_attr!(
    AdvisorMaxCpu,
    "advisor_max_cpu",
    ADVISOR_MAX_CPU.load(Relaxed),
    |s| {
        // An `unsigned long` stored into an `unsigned int`, truncating, as C does.
        ADVISOR_MAX_CPU.store(parse_ulong(s).map_err(einval)? as u32, Relaxed);
        Ok(())
    }
);

rw_attr!(
    AdvisorMinPagesToScan,
    "advisor_min_pages_to_scan",
    ADVISOR_MIN_PAGES_TO_SCAN.load(Relaxed),
    |s| {
        ADVISOR_MIN_PAGES_TO_SCAN.store(parse_ulong(s).map_err(einval)?, Relaxed);
        Ok(())
    }
);

rw_attr!(
    AdvisorMaxPagesToScan,
    "advisor_max_pages_to_scan",
    ADVISOR_MAX_PAGES_TO_SCAN.load(Relaxed),
    |s| {
        ADVISOR_MAX_PAGES_TO_SCAN.store(parse_ulong(s).map_err(einval)?, Relaxed);
        Ok(())
    }
);

rw_attr!(
    AdvisorTargetScanTime,
    "advisor_target_scan_time",
    ADVISOR_TARGET_SCAN_TIME.load(Relaxed),
    |s| {
        let value = parse_ulong(s).map_err(einval)?;
        if value < 1 {
            return Err(EINVAL);
        }
        ADVISOR_TARGET_SCAN_TIME.store(value, Relaxed);
        Ok(())
    }
);

// The pressure-following policy ([`crate::pressure`]), a ksm_rs extension: its tunables, all
// `unsigned int` but `advisor_pressure_thres_kbytes`; nonsense values are `EINVAL`.

rw_attr!(
    AdvisorPressureIntervalMillisecs,
    "advisor_pressure_interval_millisecs",
    ADVISOR_PRESSURE_INTERVAL_MILLISECS.load(Relaxed),
    |s| {
        let v = parse_uint(s).map_err(einval)?;
        if v == 0 {
            return Err(EINVAL);
        }
        ADVISOR_PRESSURE_INTERVAL_MILLISECS.store(v, Relaxed);
        Ok(())
    }
);

rw_attr!(
    AdvisorPressureBoost,
    "advisor_pressure_boost",
    ADVISOR_PRESSURE_BOOST.load(Relaxed),
    |s| {
        let v = parse_uint(s).map_err(einval)?;
        if v == 0 {
            return Err(EINVAL);
        }
        ADVISOR_PRESSURE_BOOST.store(v, Relaxed);
        Ok(())
    }
);

rw_attr!(
    AdvisorPressureDecay,
    "advisor_pressure_decay",
    ADVISOR_PRESSURE_DECAY.load(Relaxed),
    |s| {
        // Zero would keep ksmd scanning forever once started.
        let v = parse_uint(s).map_err(einval)?;
        if v == 0 {
            return Err(EINVAL);
        }
        ADVISOR_PRESSURE_DECAY.store(v, Relaxed);
        Ok(())
    }
);

rw_attr!(
    AdvisorPressureMinPagesToScan,
    "advisor_pressure_min_pages_to_scan",
    ADVISOR_PRESSURE_MIN_PAGES_TO_SCAN.load(Relaxed),
    |s| {
        let v = parse_uint(s).map_err(einval)?;
        if v == 0 || v > ADVISOR_PRESSURE_MAX_PAGES_TO_SCAN.load(Relaxed) {
            return Err(EINVAL);
        }
        ADVISOR_PRESSURE_MIN_PAGES_TO_SCAN.store(v, Relaxed);
        Ok(())
    }
);

rw_attr!(
    AdvisorPressureMaxPagesToScan,
    "advisor_pressure_max_pages_to_scan",
    ADVISOR_PRESSURE_MAX_PAGES_TO_SCAN.load(Relaxed),
    |s| {
        let v = parse_uint(s).map_err(einval)?;
        if v < ADVISOR_PRESSURE_MIN_PAGES_TO_SCAN.load(Relaxed) {
            return Err(EINVAL);
        }
        ADVISOR_PRESSURE_MAX_PAGES_TO_SCAN.store(v, Relaxed);
        Ok(())
    }
);

rw_attr!(
    AdvisorPressureThresPercent,
    "advisor_pressure_thres_percent",
    ADVISOR_PRESSURE_THRES_PERCENT.load(Relaxed),
    |s| {
        let v = parse_uint(s).map_err(einval)?;
        if v > 100 {
            return Err(EINVAL);
        }
        ADVISOR_PRESSURE_THRES_PERCENT.store(v, Relaxed);
        Ok(())
    }
);

rw_attr!(
    AdvisorPressureThresKbytes,
    "advisor_pressure_thres_kbytes",
    ADVISOR_PRESSURE_THRES_KBYTES.load(Relaxed),
    |s| {
        ADVISOR_PRESSURE_THRES_KBYTES.store(parse_ulong(s).map_err(einval)?, Relaxed);
        Ok(())
    }
);

ro_attr!(
    AdvisorPressureActive,
    "advisor_pressure_active",
    u32::from(ADVISOR_PRESSURE_ACTIVE.load(Relaxed))
);
/// `merge_now` (Rust only): a write-only command, `<pid> <start> <end>`; see
/// [`crate::merge_now`].
struct MergeNow;
impl Attribute for MergeNow {
    const NAME: &'static CStr = c_str!("merge_now");
    const WRITABLE: bool = true;
    const READABLE: bool = false;
    fn store(s: &CStr) -> Result {
        crate::merge_now::store(s)
    }
}

// `merge_fresh_frame` (ksm_rs only): new KSM pages in newly allocated frames (see
// `crate::fresh`).
rw_attr!(
    MergeFreshFrame,
    "merge_fresh_frame",
    u32::from(MERGE_FRESH_FRAME.load(Relaxed)),
    |s| {
        MERGE_FRESH_FRAME.store(kernel::str::kstrtobool(s).map_err(einval)?, Relaxed);
        Ok(())
    }
);

/// `pages_volatile`: tracked pages in neither tree; never shown negative.
fn pages_volatile() -> i64 {
    let c = &COUNTERS;
    let v = c.rmap_items.load(Relaxed) as i64
        - c.pages_shared.load(Relaxed) as i64
        - c.pages_sharing.load(Relaxed) as i64
        - c.pages_unshared.load(Relaxed) as i64;
    v.max(0)
}

/// `general_profit`: memory saved, in bytes, less the metadata of the tracked pages.
fn general_profit() -> i64 {
    (COUNTERS.pages_sharing.load(Relaxed) as i64 + crate::zero_pages())
        * kernel::page::PAGE_SIZE as i64
        - COUNTERS.rmap_items.load(Relaxed) as i64 * crate::item::ITEM_BYTES as i64
}

kernel::attribute_group!(
    pub(crate) static KSM_ATTR_GROUP = Some(c_str!("ksm")),
    [
        SleepMillisecs,
        PagesToScan,
        Run,
        PagesScanned,
        PagesShared,
        PagesSharing,
        PagesUnshared,
        PagesVolatile,
        PagesSkipped,
        KsmZeroPages,
        FullScans,
        #[cfg(CONFIG_NUMA)]
        MergeAcrossNodes,
        MaxPageSharing,
        StableNodeChains,
        StableNodeDups,
        StableNodeChainsPruneMillisecs,
        UseZeroPages,
        GeneralProfit,
        SmartScan,
        AdvisorMode,
        AdvisorMaxCpu,
        AdvisorMinPagesToScan,
        AdvisorMaxPagesToScan,
        AdvisorTargetScanTime,
        // The extensions of ksm_rs (Documentation/mm/ksm_rs.rst).
        MergeScope,
        AdvisorPressureIntervalMillisecs,
        AdvisorPressureBoost,
        AdvisorPressureDecay,
        AdvisorPressureMinPagesToScan,
        AdvisorPressureMaxPagesToScan,
        AdvisorPressureThresPercent,
        AdvisorPressureThresKbytes,
        AdvisorPressureActive,
        MergeNow,
        MergeFreshFrame,
    ]
);
