//! The adapter engine: `LoraLinear` (a frozen weight plus any number of adapters, over a
//! backend), the allocator of its arena (`arena`), and adapter files: PEFT folders
//! (`peft`) and llama.cpp's GGUF LoRA (`gguf_lora`), both read into one `PeftAdapter`.

pub mod arena;
pub mod gguf_lora;
pub mod linear;
pub mod peft;

pub use arena::ArenaAlloc;
pub use linear::{LoraLinear, MAX_RANK};
