//! wasm-bindgen surface. `pkg/index.js` (from js/index.js) wraps it into the public API and
//! turns errors, which carry `name = ShapeError | AdapterError | ...`, into JS classes.

mod model;
mod runtime;

use crate::error::Error;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// A JS `Error` whose `name` is the error kind's class name.
pub(crate) fn js_err(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name(e.kind.js_name());
    err.into()
}

/// Bytes of wasm linear memory (it only grows, so this is the peak so far).
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory().unchecked_into::<js_sys::WebAssembly::Memory>().buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length() as f64
}

/// Memory-bandwidth ceiling for benchmarks: sums `mib` MiB of f32, `reps` times, and
/// returns the best GB/s (same runtime and SIMD width as the kernels).
#[wasm_bindgen(js_name = benchReadCeiling)]
pub fn bench_read_ceiling(mib: usize, reps: usize) -> f64 {
    crate::bench::read_ceiling(mib, reps, now_ms)
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
    let format = crate::weights::WeightFormat::parse(dtype).map_err(js_err)?;
    let case = crate::bench::LinearCase { out, inp, n, format, ranks, cold_bytes: cold_mib << 20, min_ms };
    let r = crate::bench::linear(&crate::cpu::CpuBackend { int8_activations, ..crate::cpu::CpuBackend }, &case, now_ms, || ()).map_err(js_err)?;
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
