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
