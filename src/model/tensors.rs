//! A model's tensors by role, checked against its config, from whichever file format.

use super::config::{Arch, Config};
use super::gguf::{Header, TensorInfo};
use crate::error::{Error, Result};
use crate::weights::{HostWeight, WeightData, WeightFormat};
use std::collections::BTreeMap;

pub struct LayerTensors {
    pub attn_norm: Vec<f32>,
    pub q: HostWeight,
    pub k: HostWeight,
    pub v: HostWeight,
    pub o: HostWeight,
    /// Qwen2's q/k/v biases.
    pub qkv_bias: Option<[Vec<f32>; 3]>,
    pub ffn_norm: Vec<f32>,
    pub gate: HostWeight,
    pub up: HostWeight,
    pub down: HostWeight,
}

pub struct ModelTensors {
    pub cfg: Config,
    pub embed: HostWeight,
    pub layers: Vec<LayerTensors>,
    pub norm: Vec<f32>,
    /// `None` when tied to the embedding.
    pub lm_head: Option<HostWeight>,
}

/// Tensors by name, taken out one by one with their shapes checked.
struct Take<'a> {
    file: &'a str,
    map: BTreeMap<String, (TensorInfo, Vec<u8>)>,
}

impl Take<'_> {
    fn raw(&mut self, name: &str) -> Result<(TensorInfo, Vec<u8>)> {
        self.map.remove(name).ok_or_else(|| Error::format(format!("{}: tensor {name} is missing", self.file)))
    }

    fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// A matrix `[rows, cols]` (GGUF dims `[cols, rows]`).
    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<HostWeight> {
        let (t, bytes) = self.raw(name)?;
        let dims = match t.dims.as_slice() {
            [c, r] => [*r, *c],
            [c] => [1, *c],
            other => return Err(self.bad_shape(name, other, rows, cols)),
        };
        if dims != [rows, cols] {
            return Err(self.bad_shape(name, &t.dims, rows, cols));
        }
        let data = match t.format {
            WeightFormat::F32 => WeightData::F32(bytemuck::pod_collect_to_vec(&bytes)),
            WeightFormat::F16 => WeightData::F16(bytemuck::pod_collect_to_vec(&bytes)),
            WeightFormat::BF16 => WeightData::BF16(bytemuck::pod_collect_to_vec(&bytes)),
            f => WeightData::Blocks(f, bytes),
        };
        HostWeight::new(rows, cols, data).map_err(|e| Error::new(e.kind, format!("{}: tensor {name}: {}", self.file, e.message)))
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        Ok(self.matrix(name, 1, len)?.row_f32(0))
    }

    fn bad_shape(&self, name: &str, dims: &[usize], rows: usize, cols: usize) -> Error {
        let mut got: Vec<usize> = dims.to_vec();
        got.reverse();
        Error::format(format!("{}: tensor {name} has shape {got:?}, expected [{rows}, {cols}]", self.file))
    }
}

/// llama.cpp's converter interleaves the two halves of each q/k head for its RoPE; undo it
/// so every source shares Hugging Face's layout (and PEFT adapters apply unchanged).
fn unpermute_heads(w: HostWeight, heads: usize) -> HostWeight {
    let hd = w.rows / heads;
    let half = hd / 2;
    let mut src = vec![0; w.rows];
    for h in 0..heads {
        for t in 0..2 {
            for j in 0..half {
                src[h * hd + t * half + j] = h * hd + 2 * j + t;
            }
        }
    }
    w.permute_rows(&src)
}

impl ModelTensors {
    pub fn from_gguf(header: &Header, map: BTreeMap<String, (TensorInfo, Vec<u8>)>, file: &str) -> Result<Self> {
        let mut cfg = Config::from_gguf(&header.meta, file)?;
        let mut t = Take { file, map };
        let (d, hd) = (cfg.hidden, cfg.head_dim);
        let (qd, kvd) = (cfg.heads * hd, cfg.kv_heads * hd);
        let embed = t.matrix("token_embd.weight", cfg.vocab, d)?;
        cfg.tied = !t.has("output.weight");
        let lm_head = if cfg.tied { None } else { Some(t.matrix("output.weight", cfg.vocab, d)?) };
        let permuted = matches!(cfg.arch, Arch::Llama | Arch::Mistral);
        let mut layers = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            let (mut q, mut k) = (t.matrix(&n("attn_q.weight"), qd, d)?, t.matrix(&n("attn_k.weight"), kvd, d)?);
            if permuted {
                q = unpermute_heads(q, cfg.heads);
                k = unpermute_heads(k, cfg.kv_heads);
            }
            let qkv_bias = if cfg.arch == Arch::Qwen2 {
                Some([t.vector(&n("attn_q.bias"), qd)?, t.vector(&n("attn_k.bias"), kvd)?, t.vector(&n("attn_v.bias"), kvd)?])
            } else {
                None
            };
            layers.push(LayerTensors {
                attn_norm: t.vector(&n("attn_norm.weight"), d)?,
                q,
                k,
                v: t.matrix(&n("attn_v.weight"), kvd, d)?,
                o: t.matrix(&n("attn_output.weight"), d, qd)?,
                qkv_bias,
                ffn_norm: t.vector(&n("ffn_norm.weight"), d)?,
                gate: t.matrix(&n("ffn_gate.weight"), cfg.ffn, d)?,
                up: t.matrix(&n("ffn_up.weight"), cfg.ffn, d)?,
                down: t.matrix(&n("ffn_down.weight"), d, cfg.ffn)?,
            });
        }
        let norm = t.vector("output_norm.weight", d)?;
        Ok(ModelTensors { cfg, embed, layers, norm, lm_head })
    }
}
