//! Model hyper-parameters, from GGUF metadata or a Hugging Face config.json.

use super::gguf::Meta;
use super::to_usize;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// SmolLM/SmolLM2, TinyLlama, Llama 2/3.
    Llama,
    /// Llama with biases on q, k and v.
    Qwen2,
    /// Llama with a per-head RMSNorm of queries and keys before RoPE.
    Qwen3,
    Mistral,
    /// Llama with q/k/v and gate/up each stored as one fused weight (split at load).
    Phi3,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Mistral => "mistral",
            Arch::Phi3 => "phi3",
        }
    }
    /// Queries and keys are RMSNorm'd per head (weights `[head_dim]`) before RoPE.
    pub fn qk_norm(self) -> bool {
        self == Arch::Qwen3
    }
    /// q/k/v and gate/up come as one weight each (`qkv_proj`, `gate_up_proj`).
    pub fn fused(self) -> bool {
        self == Arch::Phi3
    }
    fn parse(s: &str, file: &str) -> Result<Arch> {
        match s.to_ascii_lowercase().as_str() {
            "llama" | "llamaforcausallm" => Ok(Arch::Llama),
            "qwen2" | "qwen2forcausallm" => Ok(Arch::Qwen2),
            "qwen3" | "qwen3forcausallm" => Ok(Arch::Qwen3),
            "mistral" | "mistralforcausallm" => Ok(Arch::Mistral),
            "phi3" | "phi3forcausallm" => Ok(Arch::Phi3),
            _ => Err(Error::unsupported(format!(
                "{file}: architecture {s:?} is not supported (llama, qwen2, qwen3, mistral and phi3 are)"
            ))),
        }
    }
}

/// Llama 3's frequency-dependent RoPE scaling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub vocab: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Scaling>,
    /// Divisors of each RoPE frequency (llama.cpp's `rope_freqs` tensor: Llama 3 scaling
    /// precomputed), applied after `rope_scaling`.
    pub rope_freq_factors: Option<Vec<f64>>,
    pub eps: f32,
    pub context: usize,
    /// lm_head shares the token embedding.
    pub tied: bool,
    /// Mistral's sliding-window attention: each position sees this many (itself included).
    pub sliding_window: Option<usize>,
}

/// Bounds far above real models that keep every size derived from a configuration within
/// 32 bits before a tensor's own checks: each dimension, the widths of q and of k/v (heads
/// times head size), and the number of layers.
const MAX_DIM: usize = 1 << 24;
const MAX_WIDTH: usize = 1 << 20;
const MAX_LAYERS: usize = 4096;

impl Config {
    fn validate(self, file: &str) -> Result<Config> {
        let c = &self;
        let dims = [c.vocab, c.hidden, c.ffn, c.layers, c.heads, c.kv_heads, c.head_dim, c.context];
        if dims.iter().any(|&d| d == 0 || d > MAX_DIM) {
            return Err(Error::format(format!("{file}: implausible model dimensions {dims:?}")));
        }
        let width = |heads: usize| heads.checked_mul(c.head_dim).filter(|&w| w <= MAX_WIDTH);
        if width(c.heads).is_none() || width(c.kv_heads).is_none() || c.layers > MAX_LAYERS {
            return Err(Error::format(format!(
                "{file}: implausible model: {} heads and {} key/value heads of {} dims ({MAX_WIDTH} at most in all), {} layers ({MAX_LAYERS} at most)",
                c.heads, c.kv_heads, c.head_dim, c.layers
            )));
        }
        if c.sliding_window == Some(0) {
            return Err(Error::format(format!("{file}: a sliding window of 0 positions")));
        }
        if c.heads % c.kv_heads != 0 || c.head_dim % 2 != 0 {
            return Err(Error::format(format!(
                "{file}: {} query heads cannot share {} key/value heads of size {}",
                c.heads, c.kv_heads, c.head_dim
            )));
        }
        if !(c.rope_theta.is_finite() && c.rope_theta > 0.0 && c.eps.is_finite() && c.eps > 0.0) {
            return Err(Error::format(format!("{file}: bad rope theta {} or norm epsilon {}", c.rope_theta, c.eps)));
        }
        Ok(self)
    }

    pub fn from_gguf(meta: &BTreeMap<String, Meta>, file: &str) -> Result<Config> {
        let arch_name = meta.get("general.architecture").and_then(Meta::as_str).unwrap_or("");
        let arch = Arch::parse(arch_name, file)?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let num = |k: &str| -> Result<u64> {
            meta.get(&key(k))
                .and_then(Meta::as_u64)
                .ok_or_else(|| Error::format(format!("{file}: metadata {} is missing", key(k))))
        };
        let usize_of = |k: &str| num(k).map(to_usize);
        let hidden = usize_of("embedding_length")?;
        let heads = usize_of("attention.head_count")?;
        let vocab = match meta.get(&key("vocab_size")).and_then(Meta::as_u64) {
            Some(v) => to_usize(v),
            None => meta.get("tokenizer.ggml.tokens").and_then(Meta::as_array).map_or(0, |t| t.len()),
        };
        // The head size: key_length where the writer gives it (Qwen3's heads are not
        // hidden / heads), else the rotary width, which must then be the whole head.
        let opt = |k: &str| meta.get(&key(k)).and_then(Meta::as_u64).map(to_usize);
        let rotary = opt("rope.dimension_count");
        let head_dim = opt("attention.key_length").or(rotary).unwrap_or(hidden / heads.max(1));
        if rotary.is_some_and(|r| r != head_dim) || opt("attention.value_length").is_some_and(|v| v != head_dim) {
            return Err(Error::unsupported(format!(
                "{file}: heads of {head_dim} dims with {rotary:?} rotary dims and values of {:?} (partial RoPE, unequal key/value heads)",
                opt("attention.value_length")
            )));
        }
        let scaling = match meta.get(&key("rope.scaling.type")).and_then(Meta::as_str) {
            Some("llama3") => Some(Llama3Scaling {
                factor: meta.get(&key("rope.scaling.factor")).and_then(Meta::as_f64).unwrap_or(8.0),
                low_freq_factor: meta.get(&key("rope.scaling.low_freq_factor")).and_then(Meta::as_f64).unwrap_or(1.0),
                high_freq_factor: meta.get(&key("rope.scaling.high_freq_factor")).and_then(Meta::as_f64).unwrap_or(4.0),
                original_max_position: meta
                    .get(&key("rope.scaling.original_context_length"))
                    .and_then(Meta::as_f64)
                    .unwrap_or(8192.0),
            }),
            None | Some("none") => None,
            Some(other) => return Err(Error::unsupported(format!("{file}: rope scaling {other:?}"))),
        };
        Config {
            arch,
            vocab,
            hidden,
            ffn: usize_of("feed_forward_length")?,
            layers: usize_of("block_count")?,
            heads,
            kv_heads: meta.get(&key("attention.head_count_kv")).and_then(Meta::as_u64).map_or(heads, to_usize),
            head_dim,
            rope_theta: meta.get(&key("rope.freq_base")).and_then(Meta::as_f64).unwrap_or(10000.0),
            rope_scaling: scaling,
            rope_freq_factors: None, // a tensor: set by ModelTensors::from_gguf
            eps: meta.get(&key("attention.layer_norm_rms_epsilon")).and_then(Meta::as_f64).unwrap_or(1e-5) as f32,
            context: usize_of("context_length").unwrap_or(2048),
            tied: false, // decided by whether output.weight exists
            sliding_window: meta.get(&key("attention.sliding_window")).and_then(Meta::as_u64).map(to_usize),
        }
        .validate(file)
    }

    /// From a Hugging Face config.json (transformers 4 `rope_theta`/`rope_scaling` or
    /// transformers 5 `rope_parameters`).
    pub fn from_hf_json(text: &str, file: &str) -> Result<Config> {
        let j: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::format(format!("{file}: {e}")))?;
        let arch_name = j["architectures"][0].as_str().or(j["model_type"].as_str()).unwrap_or("");
        let arch = Arch::parse(arch_name, file)?;
        let num = |k: &str| -> Result<usize> {
            j[k].as_u64().map(to_usize).ok_or_else(|| Error::format(format!("{file}: {k} is missing")))
        };
        if matches!(arch, Arch::Llama | Arch::Qwen3) && j["attention_bias"].as_bool() == Some(true) {
            return Err(Error::unsupported(format!("{file}: {} with attention_bias", arch.name())));
        }
        if j["partial_rotary_factor"].as_f64().is_some_and(|f| f != 1.0) {
            return Err(Error::unsupported(format!("{file}: partial_rotary_factor {} (RoPE over part of each head)", j["partial_rotary_factor"])));
        }
        let (hidden, heads) = (num("hidden_size")?, num("num_attention_heads")?);
        let rope = if j["rope_parameters"].is_object() { &j["rope_parameters"] } else { &j["rope_scaling"] };
        let theta = j["rope_theta"].as_f64().or(rope["rope_theta"].as_f64()).unwrap_or(10000.0);
        let rope_type = rope["rope_type"].as_str().or(rope["type"].as_str()).unwrap_or("default");
        let rope_scaling = match rope_type {
            "default" => None,
            "llama3" => Some(Llama3Scaling {
                factor: rope["factor"].as_f64().unwrap_or(8.0),
                low_freq_factor: rope["low_freq_factor"].as_f64().unwrap_or(1.0),
                high_freq_factor: rope["high_freq_factor"].as_f64().unwrap_or(4.0),
                original_max_position: rope["original_max_position_embeddings"].as_f64().unwrap_or(8192.0),
            }),
            other => return Err(Error::unsupported(format!("{file}: rope type {other:?}"))),
        };
        let window = match arch {
            Arch::Mistral | Arch::Phi3 => j["sliding_window"].as_u64(),
            Arch::Qwen2 | Arch::Qwen3 if j["use_sliding_window"].as_bool() == Some(true) => j["sliding_window"].as_u64(),
            _ => None,
        };
        Config {
            arch,
            vocab: num("vocab_size")?,
            hidden,
            ffn: num("intermediate_size")?,
            layers: num("num_hidden_layers")?,
            heads,
            kv_heads: j["num_key_value_heads"].as_u64().map_or(heads, to_usize),
            head_dim: j["head_dim"].as_u64().map_or(hidden / heads.max(1), to_usize),
            rope_theta: theta,
            rope_scaling,
            rope_freq_factors: None,
            eps: j["rms_norm_eps"].as_f64().unwrap_or(1e-6) as f32,
            context: j["max_position_embeddings"].as_u64().map_or(2048, to_usize),
            tied: j["tie_word_embeddings"].as_bool().unwrap_or(false),
            sliding_window: window.map(to_usize),
        }
        .validate(file)
    }
}
