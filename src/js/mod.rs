//! wasm-bindgen surface. `pkg/index.js` (from js/index.js) wraps it into the public API and
//! turns errors, which carry `name = ShapeError | AdapterError | ...`, into JS classes.

#[cfg(feature = "dev")]
mod bench;
mod model;
mod runtime;

use crate::error::Error;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
fn start() {
    // Runs on every thread that instantiates the module: set the hook once. A panic on a
    // worker thread marks the pool broken first, so the thread waiting for it stops.
    static SET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SET.swap(true, std::sync::atomic::Ordering::Relaxed) {
        std::panic::set_hook(Box::new(|info| {
            crate::cpu::pool::poison();
            console_error_panic_hook::hook(info);
        }));
    }
}

/// Whether this build of the module runs CPU worker threads (the threaded build).
#[wasm_bindgen(js_name = threadsSupported)]
pub fn threads_supported() -> bool {
    crate::cpu::pool::SUPPORTED
}

/// Caps the threads CPU kernels use, the calling thread included (a page-wide setting).
#[wasm_bindgen(js_name = setThreads)]
pub fn set_threads(n: usize) {
    crate::cpu::pool::set_threads(n)
}

/// Threads CPU kernels use now: the cap, or 1 + the workers that have joined.
#[wasm_bindgen(js_name = poolThreads)]
pub fn pool_threads() -> usize {
    crate::cpu::pool::threads()
}

/// A worker thread's life (js/thread.js calls it after instantiating the threaded build on
/// the page's shared memory): joins the CPU pool and never returns.
#[wasm_bindgen(js_name = workerLoop)]
pub fn worker_loop() {
    if crate::cpu::pool::SUPPORTED {
        crate::cpu::pool::worker_loop()
    }
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
