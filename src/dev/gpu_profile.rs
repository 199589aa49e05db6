//! GPU figures for the benchmarks: the device's copy bandwidth (the ceiling kernels are held
//! to), the per-step counts that need no GPU to mean something (dispatches, workgroups,
//! bytes, host time), and the per-kernel table of a profiled step (GPU timestamps).

use crate::gpu::profile::Timed;
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::Context;
use crate::gpu::GpuStats;
use std::collections::BTreeMap;

/// Best GB/s (bytes read plus bytes written) of a device-side copy of `mib` MiB: the memory
/// bandwidth the GPU's own kernels can hope for.
#[cfg(not(target_arch = "wasm32"))]
pub fn copy_ceiling(ctx: &Context, mib: u64, reps: usize) -> f64 {
    let bytes = (mib << 20).min(ctx.max_binding);
    let buf = |usage| ctx.device.create_buffer(&wgpu::BufferDescriptor { label: None, size: bytes, usage, mapped_at_creation: false });
    let (src, dst) = (buf(wgpu::BufferUsages::COPY_SRC), buf(wgpu::BufferUsages::COPY_DST));
    let mut best = f64::MAX;
    for _ in 0..=reps {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&src, 0, &dst, 0, bytes);
        let t0 = std::time::Instant::now();
        ctx.submit(enc.finish());
        ctx.device.poll(wgpu::PollType::wait_indefinitely()).expect("GPU poll");
        best = best.min(t0.elapsed().as_secs_f64());
    }
    2.0 * bytes as f64 / (best * 1e9)
}

/// What happened between two `GpuStats` readings, per step: `host_ns` is the wall time the
/// caller measured for recording the steps (the forward passes, all host work before the
/// submit), of which `record_ns` went into the dispatch and copy calls themselves.
pub fn counts(before: GpuStats, after: GpuStats, steps: usize, host_ns: f64) -> String {
    let d = |f: fn(&GpuStats) -> u64| (f(&after) - f(&before)) as f64;
    let (n, dispatches) = (steps as f64, d(|s| s.dispatches));
    format!(
        "| {:.0} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} |",
        dispatches / n,
        d(|s| s.workgroups) / dispatches.max(1.0),
        d(|s| s.bytes) / dispatches.max(1.0) / 1024.0,
        host_ns / n / 1e3,
        d(|s| s.record_ns) / n / 1e3,
        d(|s| s.submit_ns) / n / 1e3,
        d(|s| s.submits) / n,
    )
}

/// The header of `counts`' rows.
pub const COUNTS_HEADER: &str = "| dispatches / step | workgroups / dispatch | KiB / dispatch | host µs / step recording | of which in dispatch calls | host µs / step submitting | submits / step |";

/// Per kernel (variant) of a profiled step: calls, µs summed, % of the step's GPU time, GB/s
/// and % of `ceiling` (GB/s), heaviest first.
pub fn kernel_table(timed: &[Timed], ceiling: f64) -> String {
    let mut by: BTreeMap<&str, (usize, f64, u64)> = BTreeMap::new();
    for t in timed {
        let e = by.entry(&t.kernel).or_default();
        (e.0, e.1, e.2) = (e.0 + 1, e.1 + t.ns, e.2 + t.bytes);
    }
    let total: f64 = timed.iter().map(|t| t.ns).sum();
    let mut rows: Vec<_> = by.into_iter().collect();
    rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    let mut s = String::from("| kernel | calls | µs | % of GPU time | GB/s | % of copy bandwidth |\n|---|---|---|---|---|---|\n");
    for (k, (calls, ns, bytes)) in rows {
        let gbps = bytes as f64 / ns.max(1.0);
        s += &format!("| {k} | {calls} | {:.1} | {:.1}% | {gbps:.1} | {:.1}% |\n", ns / 1e3, 100.0 * ns / total.max(1.0), 100.0 * gbps / ceiling);
    }
    s += &format!("| all | {} | {:.1} | 100% | | |\n", timed.len(), total / 1e3);
    s
}
