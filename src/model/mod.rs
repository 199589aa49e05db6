//! Language models on top of the LoRA linear: file formats, configuration, tokenizer, the
//! forward pass and generation. `Model` ties them together for the JS API.

pub mod chat;
pub mod config;
pub mod generate;
pub mod gguf;
pub mod llama;
pub mod ops;
pub mod safetensors;
pub mod sample;
pub mod tensors;

use crate::error::Result;
use crate::tokenizer::Tokenizer;
use chat::ChatTemplate;
use gguf::{GgufStream, Meta};
use llama::Llama;
use ops::ModelOps;
use serde::Serialize;
use std::collections::BTreeMap;
use tensors::ModelTensors;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub name: String,
    pub architecture: &'static str,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub tied_embeddings: bool,
    /// Storage formats: of the projections, and of the token embedding.
    pub quantization: String,
    pub embedding_format: String,
    pub weight_bytes: usize,
    pub file_bytes: u64,
    pub backend: &'static str,
}

pub struct Model<B: ModelOps> {
    pub llama: Llama<B>,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub info: ModelInfo,
}

impl<B: ModelOps> Model<B> {
    /// A model from a fully received GGUF stream.
    pub fn from_gguf(backend: &B, stream: GgufStream, file: &str) -> Result<Self> {
        let file_bytes = stream.received();
        let (header, map) = stream.finish()?;
        let tokenizer = Tokenizer::from_gguf(&header.meta)?;
        let formats = count_formats(&map);
        let tensors = ModelTensors::from_gguf(&header, map, file)?;
        let meta = &header.meta;
        let name = meta.get("general.name").and_then(Meta::as_str).unwrap_or(file).to_string();
        let tok_text = |id: Option<u32>| id.and_then(|i| tokenizer.token(i)).unwrap_or("").to_string();
        let template = ChatTemplate::new(
            meta.get("tokenizer.chat_template").and_then(Meta::as_str),
            &tok_text(tokenizer.bos),
            &tok_text(tokenizer.eos),
        )?;
        let embedding_format = tensors.embed.format().name().to_string();
        let llama = Llama::new(backend, tensors)?;
        let c = &llama.cfg;
        let info = ModelInfo {
            name,
            architecture: c.arch.name(),
            vocab_size: c.vocab,
            hidden_size: c.hidden,
            intermediate_size: c.ffn,
            layers: c.layers,
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            context_length: c.context,
            tied_embeddings: c.tied,
            quantization: formats,
            embedding_format,
            weight_bytes: llama.weight_bytes,
            file_bytes,
            backend: backend.kind().js_name(),
        };
        Ok(Model { llama, tokenizer, template, info })
    }

    /// Prompt ids: the model's BOS first when its tokenizer asks for one.
    pub fn encode_prompt(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        if let (true, Some(bos)) = (self.tokenizer.add_bos, self.tokenizer.bos) {
            ids.push(bos);
        }
        ids.extend(self.tokenizer.encode(text, true));
        ids
    }
}

/// "q4_1" or "q4_1, q8_0, f32" (most common first) over 2-D tensors.
fn count_formats(map: &BTreeMap<String, (gguf::TensorInfo, Vec<u8>)>) -> String {
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for (t, _) in map.values().filter(|(t, _)| t.dims.len() == 2 && t.name != "token_embd.weight") {
        *n.entry(t.format.name()).or_default() += 1;
    }
    let mut v: Vec<_> = n.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1));
    v.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ")
}
