//! The adapter registry of a model: adapters by name, each spread over the projections it
//! targets under one id, and the per-request choice of adapters turned into a `Mix`.

use super::Model;
use crate::backend::factors::{rounding_error, FactorFormat, RankAxis};
use crate::backend::ops::ModelOps;
use crate::backend::routing::Mix;
use crate::error::{Error, Result};
use crate::lora::peft::{ModuleLora, AdapterFile, Target};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdapterInfo {
    pub name: String,
    /// The config's r (modules may differ through rank_pattern).
    pub rank: usize,
    pub alpha: f64,
    /// The caller's multiplier on top of the adapter's own scaling (setAdapterScale).
    pub scale: f32,
    pub targets: Vec<String>,
    /// Bytes of factors held (f32, or about half that in 16 bits: int16 codes plus a step per
    /// rank, or f16 on WebGPU; DoRA gains f32).
    pub bytes: usize,
    pub dora: bool,
    /// How much storage rounded the factors (`lora::factors::rounding_error`, worst rank of
    /// any A or B): 0 in f32, about 1.5e-5 to 4e-5 in int16 for factors without
    /// outliers, about 2e-4 in f16. Past `AUTO_F32_ABOVE` in int16 an outlier coarsened a
    /// rank, and automatic precision stores the adapter in f32 instead.
    pub rounding_error: f64,
    /// How the factors are stored: "f32", "f16" or "i16".
    pub precision: &'static str,
}

struct Entry {
    id: usize,
    info: AdapterInfo,
    targets: Vec<Target>,
}

#[derive(Default)]
pub struct Adapters {
    by_name: BTreeMap<String, Entry>,
    next_id: usize,
}

/// Which adapters one request uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum AdapterChoice {
    #[default]
    Base,
    /// Weighted stack: (name, weight).
    Stack(Vec<(String, f32)>),
}

impl Adapters {
    pub fn list(&self) -> Vec<AdapterInfo> {
        self.by_name.values().map(|e| e.info.clone()).collect()
    }

    fn get(&self, name: &str) -> Result<&Entry> {
        self.by_name.get(name).ok_or_else(|| Error::adapter(format!("no adapter named {name:?} is loaded")))
    }

    /// The stack as (adapter id, weight × the adapter's scale), for every row.
    pub fn stack(&self, choice: &AdapterChoice) -> Result<Vec<(usize, f32)>> {
        match choice {
            AdapterChoice::Base => Ok(vec![]),
            AdapterChoice::Stack(s) => s
                .iter()
                .map(|(n, w)| {
                    if !w.is_finite() {
                        return Err(Error::config(format!("adapter weight {w} for {n:?} must be finite")));
                    }
                    let e = self.get(n)?;
                    Ok((e.id, w * e.info.scale))
                })
                .collect(),
        }
    }

    pub fn mix(&self, choice: &AdapterChoice) -> Result<Mix> {
        let s = self.stack(choice)?;
        Ok(if s.is_empty() { Mix::Base } else { Mix::All(s) })
    }
}

/// Past this `rounding_error`, int16 storage is worse than f16's usual rounding (an outlier
/// set a rank's step), so an adapter the backend would store in int16 is stored in f32.
pub const AUTO_F32_ABOVE: f64 = 2e-4;

impl<B: ModelOps> Model<B> {
    /// Adds (or with `replace`, swaps in) an adapter, stored in the backend's factor format
    /// (int16 giving way to f32 past `AUTO_F32_ABOVE`). On any error the model and every
    /// other adapter are exactly as before.
    pub fn add_adapter(&mut self, name: &str, a: AdapterFile, replace: bool) -> Result<AdapterInfo> {
        self.add_adapter_in(name, a, replace, None)
    }

    /// `add_adapter`, with the factors stored in `format` when given (as the backend can:
    /// `Backend::storable`).
    pub fn add_adapter_in(&mut self, name: &str, a: AdapterFile, replace: bool, format: Option<FactorFormat>) -> Result<AdapterInfo> {
        if name.is_empty() {
            return Err(Error::adapter("adapter names must not be empty"));
        }
        if self.adapters.by_name.contains_key(name) && !replace {
            return Err(Error::adapter(format!("an adapter named {name:?} is already loaded (pass replace: true to swap it)")));
        }
        let id = self.adapters.next_id;
        let mut added: Vec<Target> = Vec::new();
        let worst = |f| {
            let err = |m: &ModuleLora| rounding_error(&m.a, f, m.rank, RankAxis::Rows).max(rounding_error(&m.b, f, m.rank, RankAxis::Columns));
            a.modules.iter().map(err).fold(0f64, f64::max)
        };
        let backend = self.llama.backend();
        let (format, rounding_error) = match format.map(|f| backend.storable(f)) {
            Some(f) => (f, worst(f)),
            None => {
                let f = backend.factor_format();
                match worst(f) {
                    e if f == FactorFormat::I16 && e > AUTO_F32_ABOVE => (FactorFormat::F32, 0.0),
                    e => (f, e),
                }
            }
        };
        let mut bytes = 0;
        let AdapterFile { modules, r, alpha, dora, targets } = a;
        // Each module's factors are freed once stored.
        for m in modules {
            let r = self.llama.linear_mut(m.target).and_then(|(g, i)| {
                g.add_adapter(i, id, &m.a, &m.b, m.rank, m.scale, m.magnitude.as_deref(), format)?;
                Ok(g.adapter_bytes_of(i, id))
            });
            match r {
                Ok(held) => bytes += held,
                Err(e) => {
                    for t in &added {
                        let _ = self.llama.linear_mut(*t).and_then(|(g, i)| g.remove_adapter(i, id));
                    }
                    return Err(Error::new(e.kind, format!("adapter {name:?}, {}: {}", m.target.module(), e.message)));
                }
            }
            added.push(m.target);
        }
        self.adapters.next_id += 1;
        let info = AdapterInfo { name: name.into(), rank: r, alpha, scale: 1.0, targets, bytes, dora, rounding_error, precision: format.name() };
        if let Some(old) = self.adapters.by_name.insert(name.into(), Entry { id, info: info.clone(), targets: added }) {
            self.drop_slots(&old);
        }
        Ok(info)
    }

    /// Frees an adapter's factors and the prefix caches it computed.
    fn drop_slots(&mut self, e: &Entry) {
        self.prefixes.get_mut().forget_adapter(e.id);
        for t in &e.targets {
            if let Ok((g, i)) = self.llama.linear_mut(*t) {
                let _ = g.remove_adapter(i, e.id);
            }
        }
    }

    /// Bytes the backend holds for adapter factors now, over all layers: GPU buffers or wasm
    /// heap. Unloading every adapter brings it back to ~0.
    pub fn adapter_memory_bytes(&self) -> usize {
        self.llama.groups().map(|g| g.adapter_storage() * 4).sum()
    }

    /// Removes an adapter and frees its factors.
    pub fn remove_adapter(&mut self, name: &str) -> Result<()> {
        let e = self.adapters.by_name.remove(name).ok_or_else(|| Error::adapter(format!("no adapter named {name:?} is loaded")))?;
        self.drop_slots(&e);
        Ok(())
    }

    pub fn set_adapter_scale(&mut self, name: &str, scale: f32) -> Result<()> {
        if !scale.is_finite() {
            return Err(Error::config(format!("adapter scale {scale} must be finite")));
        }
        let e = self.adapters.by_name.get_mut(name).ok_or_else(|| Error::adapter(format!("no adapter named {name:?} is loaded")))?;
        e.info.scale = scale;
        Ok(())
    }
}

/// An adapter from its files, for a model with config `cfg`: a PEFT folder
/// (`adapter_config.json`, `adapter_model.safetensors`) or one GGUF LoRA file; other files
/// are skipped. The same path as a streamed load (`adapter_from_loader`).
pub fn peft_from_files(files: &[(String, Vec<u8>)], cfg: &crate::formats::config::Config) -> Result<AdapterFile> {
    let wanted = |n: &str| [".json", ".safetensors", ".gguf"].iter().any(|e| n.ends_with(e));
    if files.iter().any(|(n, _)| n.ends_with("adapter_model.bin")) && !files.iter().any(|(n, _)| wanted(n) && !n.ends_with(".json")) {
        return Err(Error::unsupported("adapter_model.bin (pickle) is not read; save the adapter with safe_serialization"));
    }
    let mut l = crate::formats::files::Loader::new();
    for (n, b) in files.iter().filter(|(n, _)| wanted(n)) {
        l.begin_sized(n, Some(b.len() as u64))?;
        l.push(b)?;
    }
    adapter_from_loader(l, cfg)
}

/// An adapter from files streamed into a `Loader` (no whole-file copy is held): a PEFT
/// folder's adapter_config.json and adapter_model.safetensors, or one GGUF LoRA file.
pub fn adapter_from_loader(l: crate::formats::files::Loader, cfg: &crate::formats::config::Config) -> Result<AdapterFile> {
    use crate::formats::files::ModelFiles;
    match l.into_files()? {
        ModelFiles::Gguf(name, s) => crate::lora::gguf_lora::from_stream(&name, s, cfg),
        ModelFiles::Hf { json, tensors, .. } => {
            let config = json.get("adapter_config.json").ok_or_else(|| Error::format("adapter_config.json is missing"))?;
            if tensors.is_empty() {
                return Err(Error::format("adapter_model.safetensors is missing"));
            }
            AdapterFile::parse(config, tensors, cfg)
        }
    }
}
