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
    /// `Gemma` below: GeGLU, norms after attention and the MLP, scaled embeddings, soft-capped
    /// scores and logits, sliding-window layers between global ones.
    Gemma2,
    /// Gemma 2 with Qwen3's q/k norm, no soft-capping, a RoPE base of its own on sliding layers.
    Gemma3,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Mistral => "mistral",
            Arch::Phi3 => "phi3",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
        }
    }
    pub fn is_gemma(self) -> bool {
        matches!(self, Arch::Gemma2 | Arch::Gemma3)
    }
    /// Queries and keys are RMSNorm'd per head (weights `[head_dim]`) before RoPE.
    pub fn qk_norm(self) -> bool {
        matches!(self, Arch::Qwen3 | Arch::Gemma3)
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
            "gemma2" | "gemma2forcausallm" => Ok(Arch::Gemma2),
            "gemma3" | "gemma3_text" | "gemma3forcausallm" => Ok(Arch::Gemma3),
            _ => Err(Error::unsupported(format!(
                "{file}: architecture {s:?} is not supported (llama, qwen2, qwen3, mistral, phi3, gemma2 and gemma3 are; for Gemma 3's multimodal checkpoints, their text model or a GGUF)"
            ))),
        }
    }
}

/// What Gemma 2 and 3 compute beyond Llama's layer (the embedding scale √hidden, the norms
/// after attention and after the MLP, and GeGLU are implied).
#[derive(Clone, Debug, PartialEq)]
pub struct Gemma {
    /// Multiplies q·k: query_pre_attn_scalar^-½.
    pub query_scale: f64,
    /// Scores and final logits soft-capped to c·tanh(x/c) (Gemma 2).
    pub attn_softcap: Option<f32>,
    pub final_softcap: Option<f32>,
    /// Per layer: attends within `Config::sliding_window` (else to every position).
    pub sliding: Vec<bool>,
    /// RoPE base of the sliding layers (the others use `rope_theta`, and `rope_linear`).
    pub local_rope_theta: f64,
}

/// Gemma's layer kinds with period `n`: every `n`-th layer global, the others sliding (`n` =
/// 0: all sliding). llama.cpp's `i % n < n − 1` and transformers' `(i + 1) % n != 0` alike.
fn sliding_every(layers: usize, n: usize) -> Vec<bool> {
    (0..layers.min(MAX_LAYERS)).map(|i| n == 0 || (i + 1) % n != 0).collect()
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
    /// Mistral's sliding-window attention: each position sees this many (itself included);
    /// on Gemma's sliding layers only.
    pub sliding_window: Option<usize>,
    /// Linear RoPE scaling: positions divided by this (Gemma 3's global layers).
    pub rope_linear: Option<f64>,
    pub gemma: Option<Gemma>,
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
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !c.rope_linear.is_none_or(positive) {
            return Err(Error::format(format!("{file}: linear RoPE factor {:?}", c.rope_linear)));
        }
        if let Some(g) = &c.gemma {
            let caps = [g.attn_softcap, g.final_softcap].into_iter().flatten().all(|x| positive(x as f64));
            if !(positive(g.query_scale) && positive(g.local_rope_theta) && caps) || g.sliding.len() != c.layers {
                return Err(Error::format(format!(
                    "{file}: bad Gemma settings: query scale {}, soft caps {:?}/{:?}, local RoPE base {}, {} layer kinds for {} layers",
                    g.query_scale, g.attn_softcap, g.final_softcap, g.local_rope_theta, g.sliding.len(), c.layers
                )));
            }
            if g.sliding.contains(&true) && c.sliding_window.is_none() {
                return Err(Error::format(format!("{file}: sliding-window layers without a window size")));
            }
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
        let (scaling, rope_linear) = match meta.get(&key("rope.scaling.type")).and_then(Meta::as_str) {
            Some("llama3") => (Some(Llama3Scaling {
                factor: meta.get(&key("rope.scaling.factor")).and_then(Meta::as_f64).unwrap_or(8.0),
                low_freq_factor: meta.get(&key("rope.scaling.low_freq_factor")).and_then(Meta::as_f64).unwrap_or(1.0),
                high_freq_factor: meta.get(&key("rope.scaling.high_freq_factor")).and_then(Meta::as_f64).unwrap_or(4.0),
                original_max_position: meta
                    .get(&key("rope.scaling.original_context_length"))
                    .and_then(Meta::as_f64)
                    .unwrap_or(8192.0),
            }), None),
            Some("linear") => (None, meta.get(&key("rope.scaling.factor")).and_then(Meta::as_f64)),
            None | Some("none") => (None, None),
            Some(other) => return Err(Error::unsupported(format!("{file}: rope scaling {other:?}"))),
        };
        let layers = usize_of("block_count")?;
        let rope_theta = meta.get(&key("rope.freq_base")).and_then(Meta::as_f64).unwrap_or(10000.0);
        let mut sliding_window = meta.get(&key("attention.sliding_window")).and_then(Meta::as_u64).map(to_usize);
        let gemma = if arch.is_gemma() {
            let g2 = arch == Arch::Gemma2;
            // llama.cpp's defaults and its rule for the 27B models' attention scale.
            if g2 {
                sliding_window = sliding_window.or(Some(4096));
            }
            let sliding = match (sliding_window, meta.get(&key("attention.sliding_window_pattern"))) {
                (None | Some(0), _) => vec![false; layers.min(MAX_LAYERS)],
                (_, Some(Meta::Array(a))) => a.iter().map(|m| matches!(m, Meta::Bool(true))).collect(),
                (_, p) => sliding_every(layers, p.and_then(Meta::as_u64).map_or(if g2 { 2 } else { 6 }, to_usize)),
            };
            let big = layers == if g2 { 46 } else { 62 };
            let qk = if big { hidden / heads.max(1) } else { head_dim };
            let cap = |k: &str, default: Option<f64>| meta.get(&key(k)).and_then(Meta::as_f64).or(default).filter(|&c| c != 0.0).map(|c| c as f32);
            Some(Gemma {
                query_scale: 1.0 / (qk as f64).sqrt(),
                attn_softcap: if g2 { cap("attn_logit_softcapping", Some(50.0)) } else { None },
                final_softcap: cap("final_logit_softcapping", g2.then_some(30.0)),
                sliding,
                local_rope_theta: meta.get(&key("rope.freq_base_swa")).and_then(Meta::as_f64).unwrap_or(if g2 { rope_theta } else { 10000.0 }),
            })
        } else {
            None
        };
        Config {
            arch,
            vocab,
            hidden,
            ffn: usize_of("feed_forward_length")?,
            layers,
            heads,
            kv_heads: meta.get(&key("attention.head_count_kv")).and_then(Meta::as_u64).map_or(heads, to_usize),
            head_dim,
            rope_theta,
            rope_scaling: scaling,
            rope_freq_factors: None, // a tensor: set by ModelTensors::from_gguf
            eps: meta.get(&key("attention.layer_norm_rms_epsilon")).and_then(Meta::as_f64).unwrap_or(1e-5) as f32,
            context: usize_of("context_length").unwrap_or(2048),
            tied: false, // decided by whether output.weight exists
            sliding_window,
            rope_linear,
            gemma,
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
        let act = j["hidden_act"].as_str().or(j["hidden_activation"].as_str());
        let want_act = if arch.is_gemma() { "gelu_pytorch_tanh" } else { "silu" };
        if act.is_some_and(|a| a != want_act) {
            return Err(Error::unsupported(format!("{file}: activation {act:?} ({} uses {want_act})", arch.name())));
        }
        let (hidden, heads) = (num("hidden_size")?, num("num_attention_heads")?);
        let head_dim = j["head_dim"].as_u64().map_or(hidden / heads.max(1), to_usize);
        let layers = num("num_hidden_layers")?;
        // transformers 5 `rope_parameters` (per layer kind for Gemma 3), or 4's keys.
        let params = &j["rope_parameters"];
        let rope = match (&params["full_attention"], params.is_object()) {
            (full, _) if full.is_object() => full,
            (_, true) => params,
            _ => &j["rope_scaling"],
        };
        let theta = j["rope_theta"].as_f64().or(rope["rope_theta"].as_f64()).unwrap_or(10000.0);
        let rope_type = rope["rope_type"].as_str().or(rope["type"].as_str()).unwrap_or("default");
        let (rope_scaling, rope_linear) = match rope_type {
            "default" => (None, None),
            "linear" => (None, Some(rope["factor"].as_f64().unwrap_or(1.0))),
            "llama3" => (Some(Llama3Scaling {
                factor: rope["factor"].as_f64().unwrap_or(8.0),
                low_freq_factor: rope["low_freq_factor"].as_f64().unwrap_or(1.0),
                high_freq_factor: rope["high_freq_factor"].as_f64().unwrap_or(4.0),
                original_max_position: rope["original_max_position_embeddings"].as_f64().unwrap_or(8192.0),
            }), None),
            other => return Err(Error::unsupported(format!("{file}: rope type {other:?}"))),
        };
        let window = match arch {
            Arch::Mistral | Arch::Phi3 | Arch::Gemma2 | Arch::Gemma3 => j["sliding_window"].as_u64(),
            Arch::Qwen2 | Arch::Qwen3 if j["use_sliding_window"].as_bool() == Some(true) => j["sliding_window"].as_u64(),
            _ => None,
        };
        let gemma = arch.is_gemma().then(|| {
            // layer_types (transformers 5), else the fixed patterns: Gemma 2 alternates from
            // a sliding layer, Gemma 3 puts a global layer after every pattern - 1.
            let sliding = match j["layer_types"].as_array() {
                Some(kinds) => kinds.iter().map(|k| k.as_str() == Some("sliding_attention")).collect(),
                None if arch == Arch::Gemma2 => sliding_every(layers, 2),
                None => sliding_every(layers, j["sliding_window_pattern"].as_u64().map_or(6, to_usize)),
            };
            let cap = |k: &str| j[k].as_f64().map(|c| c as f32);
            let local = params["sliding_attention"]["rope_theta"].as_f64().or(j["rope_local_base_freq"].as_f64());
            Gemma {
                query_scale: 1.0 / j["query_pre_attn_scalar"].as_f64().unwrap_or(head_dim as f64).sqrt(),
                attn_softcap: cap("attn_logit_softcapping"),
                final_softcap: cap("final_logit_softcapping"),
                sliding,
                local_rope_theta: local.unwrap_or(if arch == Arch::Gemma2 { theta } else { 10000.0 }),
            }
        });
        Config {
            arch,
            vocab: num("vocab_size")?,
            hidden,
            ffn: num("intermediate_size")?,
            layers,
            heads,
            kv_heads: j["num_key_value_heads"].as_u64().map_or(heads, to_usize),
            head_dim,
            rope_theta: theta,
            rope_scaling,
            rope_freq_factors: None,
            eps: j["rms_norm_eps"].as_f64().unwrap_or(1e-6) as f32,
            context: j["max_position_embeddings"].as_u64().map_or(2048, to_usize),
            tied: j["tie_word_embeddings"].as_bool().unwrap_or(false),
            sliding_window: window.map(to_usize),
            rope_linear,
            gemma,
        }
        .validate(file)
    }
}
