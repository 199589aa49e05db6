//! LoRA adapters inside one layer: where their packed factors live (`arena`) and which rows
//! use which adapters in a call (`routing`).

pub mod arena;
pub mod factors;
pub mod gguf_lora;
pub mod peft;
pub mod routing;

pub use arena::ArenaAlloc;
pub use routing::{Mix, RouteEntry, Routes, Slot, NO_GAIN};
