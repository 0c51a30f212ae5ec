// SPDX-License-Identifier: GPL-2.0
/*
 * The KSM tracepoints of include/trace/events/ksm.h, for the Rust
 * implementation: mm/ksm.c, which defines them otherwise, is not built with
 * CONFIG_KSM_RS. CREATE_RUST_TRACE_POINTS adds the rust_do_trace_*()
 * functions that mm/ksm_rs/trace.rs calls through declare_trace!.
 */

#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include <trace/events/ksm.h>
