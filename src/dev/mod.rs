//! Development tools, built only with the `dev` feature (benchmarks, the wasm bench
//! package, the GGUF → Hugging Face exporter): not part of the shipped wasm.

pub mod bench;
pub mod export;
pub mod fuzz;
pub mod gpu_profile;
