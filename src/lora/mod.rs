//! The adapter engine: `LoraGroup` (frozen weights read together, with any number of
//! adapters on each in one arena, over a backend), `LoraLinear` (a group of one, for the
//! JS API), the allocator of their arenas (`arena`), and adapter files: PEFT folders (`peft`)
//! and llama.cpp's GGUF LoRA (`gguf_lora`), both read into one `AdapterFile`.

pub mod arena;
pub mod gguf_lora;
pub mod group;
pub mod linear;
pub mod peft;

pub use arena::ArenaAlloc;
pub use group::{LoraGroup, MAX_RANK};
pub use linear::LoraLinear;
