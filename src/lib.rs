//! lorafuse: LoRA-adapted linear layers (and, built on them, language models) for the
//! browser. A frozen base weight is shared; each adapter is applied on the fly with a fused
//! low-rank matmul `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` on WebGPU (`gpu`) or wasm SIMD128 (`cpu`).
//!
//! Layers, each importing only those listed before it (ARCHITECTURE.md draws them):
//! `error`; `formats` (file formats and weight storage); `tokenizer` (and chat templates);
//! `backend` (the op interface: tensors, routes, selection); `cpu`, `gpu` (its two
//! implementations); `lora` (the adapter engine: `LoraLinear`, PEFT and GGUF adapter files);
//! `model` (the forward pass, a loaded model and its adapters); `generate` (sampling and
//! generation); `js` (the wasm-bindgen surface). `dev` (benchmarks, export) is built only
//! with the `dev` feature.

// The threaded wasm build (nightly) sleeps and wakes its CPU workers with wasm's wait/notify.
#![cfg_attr(all(target_arch = "wasm32", target_feature = "atomics"), feature(stdarch_wasm_atomic_wait))]

pub mod error;
pub mod formats;
pub mod tokenizer;
pub mod backend;
pub mod cpu;
pub mod gpu;
pub mod lora;
pub mod model;
pub mod generate;
#[cfg(feature = "dev")]
pub mod dev;

#[cfg(target_arch = "wasm32")]
mod js;

pub use backend::factors::FactorFormat;
pub use backend::routing::Mix;
pub use backend::{Backend, BackendChoice, BackendKind};
pub use cpu::CpuBackend;
pub use error::{Error, ErrorKind, Result};
pub use formats::weights::{HostWeight, WeightData, WeightFormat};
pub use gpu::{GpuBackend, GpuOptions};
pub use lora::LoraLinear;
