//! Bytes in files to host tensors: weight storage formats (`dtype`, `weights`), GGUF and
//! safetensors streams (`gguf`, `safetensors`, both routing bytes into tensors by `spans`),
//! model configuration (`config`), tensors by role (`tensors`), and the set of files a
//! caller hands over for one model (`files`). Nothing here knows a backend.

pub mod config;
pub mod dtype;
pub mod files;
pub mod gguf;
pub mod safetensors;
pub mod spans;
pub mod tensors;
pub mod weights;

/// A count or size from a file, as a `usize`: values past the platform's width (wasm32's
/// 32 bits) become `usize::MAX`, which every range check then refuses, instead of wrapping to
/// a small plausible value.
pub fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
