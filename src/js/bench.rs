//! Benchmark exports for `npm run bench` (the `dev` feature's wasm build only).

use super::js_err;
use wasm_bindgen::prelude::*;

/// Memory-bandwidth ceiling for benchmarks: sums `mib` MiB of f32, `reps` times, and
/// returns the best GB/s (same runtime and SIMD width as the kernels).
#[wasm_bindgen(js_name = benchReadCeiling)]
pub fn bench_read_ceiling(mib: usize, reps: usize) -> f64 {
    crate::dev::bench::read_ceiling(mib, reps, now_ms)
}

/// The CPU's f32 multiply-add ceiling in GFLOP/s; see `bench::flop_ceiling`.
#[wasm_bindgen(js_name = benchFlopCeiling)]
pub fn bench_flop_ceiling(reps: usize) -> f64 {
    crate::dev::bench::flop_ceiling(reps, now_ms)
}

/// Times `LoraLinear` on the CPU backend for one shape; see `bench::linear`.
#[wasm_bindgen(js_name = benchLinear)]
#[allow(clippy::too_many_arguments)]
pub fn bench_linear(
    out: usize,
    inp: usize,
    n: usize,
    dtype: &str,
    ranks: Vec<usize>,
    cold_mib: usize,
    min_ms: f64,
    int8_activations: bool,
) -> Result<JsValue, JsValue> {
    let format = crate::formats::weights::WeightFormat::parse(dtype).map_err(js_err)?;
    let case = crate::dev::bench::LinearCase { out, inp, n, format, ranks, cold_bytes: cold_mib << 20, min_ms };
    let r = crate::dev::bench::linear(&crate::cpu::CpuBackend { int8_activations, ..crate::cpu::CpuBackend }, &case, now_ms, || ()).map_err(js_err)?;
    Ok(serde_wasm_bindgen::to_value(&r)?)
}

fn now_ms() -> f64 {
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).unwrap_or(JsValue::UNDEFINED);
    let now = js_sys::Reflect::get(&perf, &"now".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    match now {
        Some(f) => f.call0(&perf).ok().and_then(|v| v.as_f64()).unwrap_or_else(js_sys::Date::now),
        None => js_sys::Date::now(),
    }
}
