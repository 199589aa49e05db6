//! PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`): the config's
//! math applied exactly (r, lora_alpha, use_rslora, rank_pattern, alpha_pattern,
//! target_modules as list / regex / "all-linear", exclude_modules, layers_to_transform,
//! use_dora), everything else that changes the math refused by name.

use crate::error::{Error, Result};
use super::MAX_RANK;
use crate::formats::config::{Arch, Config};
use crate::formats::to_usize;
use crate::formats::tensors::RawTensor;
use std::collections::BTreeMap;

/// A projection an adapter can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proj {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
    /// Phi-3's fused q/k/v (`qkv_proj`) and gate/up (`gate_up_proj`): adapter files name
    /// them; `ModuleLora::split_fused` turns them into their parts.
    Qkv,
    GateUp,
}

impl Proj {
    /// The projections a decoder layer of `arch` offers to adapters.
    pub fn of(arch: Arch) -> &'static [Proj] {
        if arch.fused() {
            &[Proj::Qkv, Proj::O, Proj::GateUp, Proj::Down]
        } else {
            &[Proj::Q, Proj::K, Proj::V, Proj::O, Proj::Gate, Proj::Up, Proj::Down]
        }
    }
    /// Hugging Face module path inside a decoder layer.
    pub fn hf(self) -> &'static str {
        match self {
            Proj::Q => "self_attn.q_proj",
            Proj::K => "self_attn.k_proj",
            Proj::V => "self_attn.v_proj",
            Proj::O => "self_attn.o_proj",
            Proj::Gate => "mlp.gate_proj",
            Proj::Up => "mlp.up_proj",
            Proj::Down => "mlp.down_proj",
            Proj::Qkv => "self_attn.qkv_proj",
            Proj::GateUp => "mlp.gate_up_proj",
        }
    }
    /// (out, in) for a config.
    pub fn shape(self, c: &Config) -> (usize, usize) {
        let (d, q, kv) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim);
        match self {
            Proj::Q => (q, d),
            Proj::K | Proj::V => (kv, d),
            Proj::O => (d, q),
            Proj::Gate | Proj::Up => (c.ffn, d),
            Proj::Down => (d, c.ffn),
            Proj::Qkv => (q + 2 * kv, d),
            Proj::GateUp => (2 * c.ffn, d),
        }
    }
    /// A fused projection's parts, in the order of its rows.
    fn parts(self) -> &'static [Proj] {
        match self {
            Proj::Qkv => &[Proj::Q, Proj::K, Proj::V],
            Proj::GateUp => &[Proj::Gate, Proj::Up],
            _ => &[],
        }
    }
}

/// Where one pair of LoRA factors goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Layer(usize, Proj),
    LmHead,
}

impl Target {
    pub fn module(self) -> String {
        match self {
            Target::Layer(i, p) => format!("model.layers.{i}.{}", p.hf()),
            Target::LmHead => "lm_head".into(),
        }
    }
}

/// One module's adapter: `A [rank, in]`, `B [out, rank]`, scaling, DoRA magnitude.
pub struct ModuleLora {
    pub target: Target,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub rank: usize,
    pub scale: f32,
    pub magnitude: Option<Vec<f32>>,
}

impl ModuleLora {
    /// A LoRA on a fused weight as one LoRA per part: the same A, B's rows (and a DoRA
    /// magnitude's) split as the model splits the weight. Exact, DoRA included: each output
    /// row of `W + s·B·A` and its norm depend on that row alone. Other modules pass through.
    pub fn split_fused(self, c: &Config) -> Vec<ModuleLora> {
        let (i, parts) = match self.target {
            Target::Layer(i, p) if !p.parts().is_empty() => (i, p.parts()),
            _ => return vec![self],
        };
        let mut row0 = 0;
        parts
            .iter()
            .map(|&p| {
                let rows = p.shape(c).0;
                let part = |v: &[f32], width: usize| v[row0 * width..(row0 + rows) * width].to_vec();
                let m = ModuleLora {
                    target: Target::Layer(i, p),
                    a: self.a.clone(),
                    b: part(&self.b, self.rank),
                    rank: self.rank,
                    scale: self.scale,
                    magnitude: self.magnitude.as_deref().map(|g| part(g, 1)),
                };
                row0 += rows;
                m
            })
            .collect()
    }
}

/// An adapter as read from its files (a PEFT folder, or a GGUF LoRA: `gguf_lora.rs`), its
/// configuration applied: one `ModuleLora` per targeted projection.
pub struct AdapterFile {
    pub modules: Vec<ModuleLora>,
    pub r: usize,
    pub alpha: f64,
    pub dora: bool,
    pub targets: Vec<String>,
}

/// target_modules / exclude_modules: a list (matched as full names or dotted suffixes), a
/// regex (full match), or "all-linear".
enum Matcher {
    List(Vec<String>),
    Regex(regex_lite::Regex),
    AllLinear,
    None,
}

impl Matcher {
    fn parse(v: &serde_json::Value, what: &str) -> Result<Matcher> {
        Ok(match v {
            serde_json::Value::Null => Matcher::None,
            serde_json::Value::String(s) if s == "all-linear" => Matcher::AllLinear,
            serde_json::Value::String(s) => Matcher::Regex(regex(&format!("^(?:{s})$"), what)?),
            serde_json::Value::Array(a) => Matcher::List(a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()),
            other => return Err(Error::format(format!("adapter_config.json: {what} is {other}"))),
        })
    }
    fn matches(&self, module: &str) -> bool {
        match self {
            Matcher::List(l) => l.iter().any(|t| module == t || module.ends_with(&format!(".{t}"))),
            Matcher::Regex(r) => r.is_match(module),
            Matcher::AllLinear => module != "lm_head",
            Matcher::None => false,
        }
    }
}

/// rank_pattern / alpha_pattern lookup: PEFT matches `(.*\.)?(key)$` against the module name.
fn pattern<T: Copy>(patterns: &[(regex_lite::Regex, T)], module: &str) -> Option<T> {
    patterns.iter().find(|(re, _)| re.is_match(module)).map(|(_, v)| *v)
}

/// Compiled regexes are capped in size (a module-name pattern takes a few KiB; a crafted
/// counted repetition could take megabytes each) and in number, so a config's patterns
/// hold at most `MAX_PATTERNS × REGEX_BYTES`.
const REGEX_BYTES: usize = 64 << 10;
const MAX_PATTERNS: usize = 1024;

fn regex(pattern: &str, what: &str) -> Result<regex_lite::Regex> {
    regex_lite::RegexBuilder::new(pattern)
        .size_limit(REGEX_BYTES)
        .build()
        .map_err(|e| Error::format(format!("adapter_config.json: {what}: {e}")))
}

fn patterns<T>(v: &serde_json::Value, what: &str, num: impl Fn(&serde_json::Value) -> Option<T>) -> Result<Vec<(regex_lite::Regex, T)>> {
    let mut out = Vec::new();
    let entries = v.as_object().map_or(0, |o| o.len());
    if entries > MAX_PATTERNS {
        return Err(Error::format(format!("adapter_config.json: {what} has {entries} patterns (at most {MAX_PATTERNS})")));
    }
    for (k, val) in v.as_object().into_iter().flatten() {
        let re = regex(&format!(r"^(?:.*\.)?(?:{k})$"), &format!("{what} key {k:?}"))?;
        out.push((re, num(val).ok_or_else(|| Error::format(format!("adapter_config.json: {what}[{k:?}] is not a number")))?));
    }
    Ok(out)
}

/// Fields whose values never change the forward pass (training, initialisation, metadata).
const IGNORED: &[&str] = &[
    "task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision",
    "inference_mode", "lora_dropout", "init_lora_weights", "loftq_config", "eva_config", "corda_config",
    "lora_ga_config", "megatron_config", "megatron_core", "qalora_group_size", "runtime_config",
    "ensure_weight_tying", "layers_pattern",
];
/// Fields we apply.
const HANDLED: &[&str] = &[
    "r", "lora_alpha", "use_rslora", "rank_pattern", "alpha_pattern", "target_modules", "exclude_modules",
    "layers_to_transform", "use_dora", "fan_in_fan_out", "bias", "lora_bias", "modules_to_save",
];

fn is_unset(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        serde_json::Value::String(s) => s.is_empty(),
        _ => false,
    }
}

impl AdapterFile {
    /// Parses a PEFT adapter against the model it is to be applied to.
    pub fn parse(config_json: &str, mut tensors: BTreeMap<String, RawTensor>, cfg: &Config) -> Result<AdapterFile> {
        let j: serde_json::Value =
            serde_json::from_str(config_json).map_err(|e| Error::format(format!("adapter_config.json: {e}")))?;
        let obj = j.as_object().ok_or_else(|| Error::format("adapter_config.json is not an object"))?;
        if let Some(t) = obj.get("peft_type").and_then(|v| v.as_str()) {
            if t != "LORA" {
                return Err(Error::unsupported(format!("adapter_config.json: peft_type {t:?} (LORA is supported)")));
            }
        }
        // Anything else that is set and could change the math: refuse, by name.
        for (k, v) in obj {
            if !IGNORED.contains(&k.as_str()) && !HANDLED.contains(&k.as_str()) && !is_unset(v) {
                return Err(Error::unsupported(format!("adapter_config.json: {k} = {v} is not supported")));
            }
        }
        if obj.get("fan_in_fan_out").and_then(|v| v.as_bool()) == Some(true) {
            return Err(Error::unsupported("adapter_config.json: fan_in_fan_out is for GPT-2 Conv1D layers; these are Linear"));
        }
        if let Some(b) = obj.get("bias").and_then(|v| v.as_str()).filter(|b| *b != "none") {
            return Err(Error::unsupported(format!("adapter_config.json: bias = {b:?} (trained base biases) is not supported")));
        }
        if obj.get("lora_bias").and_then(|v| v.as_bool()) == Some(true) {
            return Err(Error::unsupported("adapter_config.json: lora_bias is not supported"));
        }
        if obj.get("modules_to_save").is_some_and(|v| !is_unset(v)) {
            return Err(Error::unsupported(format!(
                "adapter_config.json: modules_to_save = {} (whole replaced modules) is not supported",
                obj["modules_to_save"]
            )));
        }
        let r = to_usize(j["r"].as_u64().ok_or_else(|| Error::format("adapter_config.json: r is missing"))?);
        if r == 0 || r > MAX_RANK {
            return Err(Error::format(format!("adapter_config.json: r = {} is out of range 1..={MAX_RANK}", j["r"])));
        }
        let alpha = j["lora_alpha"].as_f64().unwrap_or(8.0);
        let rslora = j["use_rslora"].as_bool().unwrap_or(false);
        let dora = j["use_dora"].as_bool().unwrap_or(false);
        let ranks = patterns(&j["rank_pattern"], "rank_pattern", |v| v.as_u64().map(to_usize))?;
        let alphas = patterns(&j["alpha_pattern"], "alpha_pattern", |v| v.as_f64())?;
        let target = Matcher::parse(&j["target_modules"], "target_modules")?;
        let exclude = Matcher::parse(&j["exclude_modules"], "exclude_modules")?;
        let layers: Option<Vec<usize>> = match &j["layers_to_transform"] {
            serde_json::Value::Null => None,
            serde_json::Value::Number(n) => Some(vec![n.as_u64().map_or(usize::MAX, to_usize)]),
            serde_json::Value::Array(a) => Some(a.iter().map(|v| v.as_u64().map_or(usize::MAX, to_usize)).collect()),
            other => return Err(Error::format(format!("adapter_config.json: layers_to_transform is {other}"))),
        };
        if let Some(bad) = layers.iter().flatten().find(|&&l| l >= cfg.layers) {
            let shown = if *bad == usize::MAX { j["layers_to_transform"].to_string() } else { bad.to_string() };
            return Err(Error::format(format!("adapter_config.json: layers_to_transform names layer {shown}; the model has {}", cfg.layers)));
        }
        // PEFT key prefixes; some writers keep the adapter name ("lora_A.default.weight").
        fn key(tensors: &BTreeMap<String, RawTensor>, module: &str, part: &str) -> Option<String> {
            [format!("base_model.model.{module}.{part}.weight"), format!("base_model.model.{module}.{part}.default.weight")]
                .into_iter()
                .find(|k| tensors.contains_key(k))
        }
        let mut targets: Vec<Target> = (0..cfg.layers).flat_map(|i| Proj::of(cfg.arch).iter().map(move |&p| Target::Layer(i, p))).collect();
        targets.push(Target::LmHead);
        let mut modules = Vec::new();
        let mut names = Vec::new();
        for t in targets {
            let module = t.module();
            let layer_ok = match (t, &layers) {
                (Target::Layer(i, _), Some(l)) => l.contains(&i),
                _ => true,
            };
            let wanted = target.matches(&module) && !exclude.matches(&module) && layer_ok;
            let (ka, kb) = (key(&tensors, &module, "lora_A"), key(&tensors, &module, "lora_B"));
            match (wanted, ka, kb) {
                (false, None, None) => continue,
                (true, Some(ka), Some(kb)) => {
                    let (out, inp) = match t {
                        Target::Layer(_, p) => p.shape(cfg),
                        Target::LmHead => (cfg.vocab, cfg.hidden),
                    };
                    let ta = tensors.remove(&ka).unwrap();
                    let tb = tensors.remove(&kb).unwrap();
                    let rank = ta.shape.first().copied().unwrap_or(0);
                    if ta.shape != [rank, inp] || tb.shape != [out, rank] || rank == 0 {
                        return Err(Error::shape(format!(
                            "adapter tensor {ka} has shape {:?} and {kb} {:?}; this model's {module} needs [r, {inp}] and [{out}, r]",
                            ta.shape, tb.shape
                        )));
                    }
                    let want_rank = pattern(&ranks, &module).unwrap_or(r);
                    if want_rank != rank {
                        return Err(Error::format(format!("{ka}: rank {rank}, but the config says {want_rank} for {module}")));
                    }
                    let a_m = pattern(&alphas, &module).unwrap_or(alpha);
                    let scale = if rslora { a_m / (rank as f64).sqrt() } else { a_m / rank as f64 } as f32;
                    let magnitude = if dora {
                        let km = format!("base_model.model.{module}.lora_magnitude_vector");
                        let tm = tensors.remove(&km).ok_or_else(|| Error::format(format!("DoRA adapter: {km} is missing")))?;
                        if tm.shape != [out] {
                            return Err(Error::shape(format!("adapter tensor {km} has shape {:?}, expected [{out}]", tm.shape)));
                        }
                        Some(tm.to_f32(&km)?)
                    } else {
                        None
                    };
                    let (a, b) = (ta.to_f32(&ka)?, tb.to_f32(&kb)?);
                    names.push(module);
                    modules.extend(ModuleLora { target: t, a, b, rank, scale, magnitude }.split_fused(cfg));
                }
                (true, _, _) => return Err(Error::format(format!("adapter: {module} is targeted but its lora_A/lora_B are missing"))),
                (false, _, _) => {
                    return Err(Error::format(format!("adapter has weights for {module}, which its config does not target")))
                }
            }
        }
        // Left over: base weights PEFT copies for lm_head/embedding targets (base_layer), or
        // tensors for modules this model does not have.
        tensors.retain(|k, _| !k.ends_with(".base_layer.weight"));
        if let Some(k) = tensors.keys().next() {
            return Err(Error::shape(format!("adapter tensor {k} does not belong to any module of this model")));
        }
        if modules.is_empty() {
            return Err(Error::format("the adapter holds no LoRA weights for this model"));
        }
        Ok(AdapterFile { modules, r, alpha, dora, targets: names })
    }
}
