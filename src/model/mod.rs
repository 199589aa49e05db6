//! Language models on top of the LoRA linear: the forward pass (`llama`), a loaded model
//! with its tokenizer, chat template and facts (`Model`), and its adapters (`adapters`).

pub mod adapters;
pub mod llama;

use crate::backend::ops::ModelOps;
use crate::error::{Error, Result};
use crate::formats::config::Config;
use crate::formats::files::ModelFiles;
use crate::formats::gguf::{GgufStream, Meta};
use crate::formats::tensors::{ModelTensors, RawTensor};
use crate::generate::json::{JsonFormat, JsonFormats};
use crate::generate::prefix::PrefixCache;
use crate::tokenizer::chat::ChatTemplate;
use crate::tokenizer::Tokenizer;
use llama::Llama;
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// Which device path runs (e.g. "CPU (wasm SIMD128, 1 thread, int8 activations)").
    pub device: String,
}

pub struct Model<B: ModelOps> {
    pub llama: Llama<B>,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub info: ModelInfo,
    /// End-of-turn tokens beyond the tokenizer's EOS (generation_config.json).
    pub stop_tokens: Vec<u32>,
    pub adapters: adapters::Adapters,
    /// KV caches of finished generations, for prompts that start the same way.
    pub prefixes: std::cell::RefCell<PrefixCache<B>>,
    /// Structured output's compiled formats and vocabulary trie (built at first use).
    pub json: std::cell::RefCell<JsonFormats>,
}

impl<B: ModelOps> Model<B> {
    /// The model in the files `Loader::finish` collected.
    pub fn load(backend: &B, files: ModelFiles) -> Result<Self> {
        match files {
            ModelFiles::Gguf(name, stream) => Self::from_gguf(backend, stream, &name),
            ModelFiles::Hf { json, tensors, bytes } => Self::from_hf(backend, &json, tensors, bytes),
        }
    }

    /// A model from a fully received GGUF stream.
    pub fn from_gguf(backend: &B, stream: GgufStream, file: &str) -> Result<Self> {
        let file_bytes = stream.received();
        let (header, map) = stream.finish()?;
        let tokenizer = Tokenizer::from_gguf(&header.meta)?;
        let formats = count_formats(map.values().filter(|(t, _)| t.dims.len() == 2 && t.name != "token_embd.weight").map(|(t, _)| t.format));
        let tensors = ModelTensors::from_gguf(&header, map, file)?;
        let meta = &header.meta;
        let name = meta.get("general.name").and_then(Meta::as_str).unwrap_or(file).to_string();
        let template = meta.get("tokenizer.chat_template").and_then(Meta::as_str);
        Self::assemble(backend, tensors, tokenizer, template, name, formats, file_bytes, vec![])
    }

    /// A model from a Hugging Face folder's JSON files (by name) and safetensors tensors.
    pub fn from_hf(backend: &B, json: &BTreeMap<String, String>, tensors: BTreeMap<String, RawTensor>, file_bytes: u64) -> Result<Self> {
        let need = |f: &str| json.get(f).ok_or_else(|| Error::format(format!("{f} is missing from the model folder")));
        let cfg = Config::from_hf_json(need("config.json")?, "config.json")?;
        let tc: serde_json::Value = match json.get("tokenizer_config.json") {
            Some(t) => serde_json::from_str(t).map_err(|e| Error::format(format!("tokenizer_config.json: {e}")))?,
            None => serde_json::Value::Null,
        };
        // Special tokens are strings or {"content": ...}.
        let tok_str = |k: &str| tc[k].as_str().or(tc[k]["content"].as_str()).map(str::to_string);
        let tokenizer = Tokenizer::from_hf(
            need("tokenizer.json")?,
            tok_str("bos_token").as_deref(),
            tok_str("eos_token").as_deref(),
            tc["add_bos_token"].as_bool().unwrap_or(false),
        )?;
        let mut stop_tokens = Vec::new();
        if let Some(g) = json.get("generation_config.json") {
            let g: serde_json::Value = serde_json::from_str(g).map_err(|e| Error::format(format!("generation_config.json: {e}")))?;
            match &g["eos_token_id"] {
                serde_json::Value::Number(n) => stop_tokens.extend(n.as_u64().map(|v| v as u32)),
                serde_json::Value::Array(a) => stop_tokens.extend(a.iter().filter_map(|v| v.as_u64()).map(|v| v as u32)),
                _ => {}
            }
        }
        let formats = count_formats(tensors.values().filter(|t| t.shape.len() == 2).map(|t| t.format));
        let tensors = ModelTensors::from_hf(cfg, tensors, "model.safetensors")?;
        let template = tc["chat_template"].as_str();
        let name = json.get("config.json").and(tc["name_or_path"].as_str()).unwrap_or("Hugging Face model").to_string();
        Self::assemble(backend, tensors, tokenizer, template, name, formats, file_bytes, stop_tokens)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        backend: &B,
        tensors: ModelTensors,
        tokenizer: Tokenizer,
        template: Option<&str>,
        name: String,
        formats: String,
        file_bytes: u64,
        stop_tokens: Vec<u32>,
    ) -> Result<Self> {
        let c = &tensors.cfg;
        if tokenizer.vocab_size() > c.vocab {
            return Err(Error::shape(format!(
                "the tokenizer has {} tokens but the model only {} embeddings",
                tokenizer.vocab_size(),
                c.vocab
            )));
        }
        let tok_text = |id: Option<u32>| id.and_then(|i| tokenizer.token(i)).unwrap_or("").to_string();
        let template = ChatTemplate::new(template, &tok_text(tokenizer.bos), &tok_text(tokenizer.eos))?;
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
            device: backend.describe(),
        };
        Ok(Model { llama, tokenizer, template, info, stop_tokens, adapters: Default::default(), prefixes: Default::default(), json: Default::default() })
    }

    /// Structured output's format for `schema` (None: any JSON object) over this model's
    /// vocabulary, compiled once per schema (a few kept).
    pub fn json_format(&self, schema: Option<&serde_json::Value>) -> Result<std::rc::Rc<JsonFormat>> {
        self.json.borrow_mut().get(&self.tokenizer, schema)
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

/// "q4_1" or "q4_1, q8_0, f32" (most common first).
fn count_formats(formats: impl Iterator<Item = crate::formats::weights::WeightFormat>) -> String {
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for f in formats {
        *n.entry(f.name()).or_default() += 1;
    }
    let mut v: Vec<_> = n.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1));
    v.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ")
}
