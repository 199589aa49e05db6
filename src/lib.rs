//! lorafuse: LoRA-adapted linear layers (and, built on them, language models) for the
//! browser. A frozen base weight is shared; each adapter is applied on the fly with a fused
//! low-rank matmul `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` on WebGPU (`gpu`) or wasm SIMD128 (`cpu`).
//! See ARCHITECTURE.md for how data flows.

pub mod backend;
pub mod bench;
pub mod cpu;
pub mod error;
pub mod gpu;
pub mod linear;
pub mod lora;
pub mod model;
pub mod quant;
pub mod tokenizer;
pub mod weights;

#[cfg(target_arch = "wasm32")]
mod js;

pub use backend::{Backend, BackendChoice, BackendKind};
pub use cpu::CpuBackend;
pub use error::{Error, ErrorKind, Result};
pub use gpu::{GpuBackend, GpuOptions};
pub use linear::LoraLinear;
pub use lora::factors::FactorFormat;
pub use lora::Mix;
pub use weights::{HostWeight, WeightData, WeightFormat};
