//! Language models on top of the LoRA linear: file formats, configuration, the forward pass.

pub mod gguf;
pub mod config;
pub mod ops;
pub mod llama;
pub mod tensors;
