//! llama.cpp's GGUF LoRA adapters (`general.type = adapter`, `adapter.type = lora`):
//! `blk.N.<tensor>.weight.lora_a / lora_b`, `adapter.lora.alpha`. For llama-arch files the
//! q/k `lora_b` rows carry the converter's head permutation, undone here like the base's.

use super::peft::{ModuleLora, AdapterFile, Proj, Target};
use crate::error::{Error, Result};
use crate::formats::config::{Arch, Config};
use crate::formats::gguf::{GgufStream, Meta};
use crate::formats::tensors::{unpermute_heads, RawTensor};
use crate::formats::weights::{HostWeight, WeightData};

fn proj(name: &str, arch: Arch) -> Option<Proj> {
    Some(match name {
        // Phi-3's fused gate/up goes by llama.cpp's ffn_up.
        "ffn_up" if arch.fused() => Proj::GateUp,
        "attn_q" => Proj::Q,
        "attn_k" => Proj::K,
        "attn_v" => Proj::V,
        "attn_output" => Proj::O,
        "ffn_gate" => Proj::Gate,
        "ffn_up" => Proj::Up,
        "ffn_down" => Proj::Down,
        "attn_qkv" => Proj::Qkv,
        _ => return None,
    })
}

pub fn from_gguf(file: &str, bytes: &[u8], cfg: &Config) -> Result<AdapterFile> {
    let mut s = GgufStream::sized(file, Some(bytes.len() as u64));
    s.push(bytes)?;
    from_stream(file, s, cfg)
}

/// `from_gguf` on a file that was streamed in.
pub fn from_stream(file: &str, s: GgufStream, cfg: &Config) -> Result<AdapterFile> {
    let (h, map) = s.finish()?;
    let meta = |k: &str| h.meta.get(k);
    let ty = meta("general.type").and_then(Meta::as_str).unwrap_or("model");
    if ty != "adapter" || meta("adapter.type").and_then(Meta::as_str) != Some("lora") {
        return Err(Error::format(format!("{file}: not a GGUF LoRA adapter (general.type = {ty:?})")));
    }
    let arch = meta("general.architecture").and_then(Meta::as_str).unwrap_or("");
    let fits = match cfg.arch {
        Arch::Llama | Arch::Mistral => arch == "llama",
        a => arch == a.name(),
    };
    if !fits {
        return Err(Error::adapter(format!("{file}: an adapter for {arch:?} models, this model is {}", cfg.arch.name())));
    }
    let alpha = meta("adapter.lora.alpha").and_then(Meta::as_f64).unwrap_or(0.0);
    let mut tensors: std::collections::BTreeMap<String, RawTensor> =
        map.into_iter().map(|(k, (t, b))| (k, RawTensor::from_gguf(t, b))).collect();
    let mut modules = Vec::new();
    let names: Vec<String> = tensors.keys().filter(|k| k.ends_with(".lora_a")).cloned().collect();
    for ka in names {
        let stem = ka.trim_end_matches(".lora_a");
        let kb = format!("{stem}.lora_b");
        let target = match stem.split('.').collect::<Vec<_>>().as_slice() {
            ["output", "weight"] => Target::LmHead,
            ["blk", i, p, "weight"] => match (i.parse::<usize>(), proj(p, cfg.arch)) {
                (Ok(i), Some(p)) if i < cfg.layers => Target::Layer(i, p),
                _ => return Err(Error::shape(format!("{file}: tensor {ka} does not belong to any module of this model"))),
            },
            _ => return Err(Error::unsupported(format!("{file}: LoRA on {stem} is not supported"))),
        };
        let ta = tensors.remove(&ka).unwrap();
        let tb = tensors.remove(&kb).ok_or_else(|| Error::format(format!("{file}: {kb} is missing")))?;
        let (out, inp) = match target {
            Target::Layer(_, p) => p.shape(cfg),
            Target::LmHead => (cfg.vocab, cfg.hidden),
        };
        let rank = ta.shape.first().copied().unwrap_or(0);
        if ta.shape != [rank, inp] || tb.shape != [out, rank] || rank == 0 {
            return Err(Error::shape(format!(
                "{file}: tensor {ka} has shape {:?} and {kb} {:?}; this model's {} needs [r, {inp}] and [{out}, r]",
                ta.shape,
                tb.shape,
                target.module()
            )));
        }
        let a = ta.to_f32(&ka)?;
        let mut b = tb.to_f32(&kb)?;
        if let (true, Target::Layer(_, p @ (Proj::Q | Proj::K))) = (arch == "llama", target) {
            let heads = if p == Proj::Q { cfg.heads } else { cfg.kv_heads };
            let w = unpermute_heads(HostWeight::new(out, rank, WeightData::F32(b))?, heads);
            b = (0..out).flat_map(|r| w.row_f32(r)).collect();
        }
        // llama.cpp: scale = alpha / rank, or 1 when the file gives no alpha.
        let scale = if alpha > 0.0 { (alpha / rank as f64) as f32 } else { 1.0 };
        modules.extend(ModuleLora { target, a, b, rank, scale, magnitude: None }.split_fused(cfg));
    }
    if let Some(k) = tensors.keys().next() {
        return Err(Error::format(format!("{file}: tensor {k} is not a LoRA factor")));
    }
    if modules.is_empty() {
        return Err(Error::format(format!("{file}: the adapter holds no LoRA tensors")));
    }
    modules.sort_by_key(|m| m.target);
    let r = modules.iter().map(|m| m.rank).max().unwrap_or(0);
    let targets = modules.iter().map(|m| m.target.module()).collect();
    Ok(AdapterFile { modules, r, alpha, dora: false, targets })
}
