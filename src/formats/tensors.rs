//! A model's tensors by role, checked against its config, from whichever file format.

use super::config::{Arch, Config};
use super::gguf::{Header, TensorInfo};
use super::safetensors::StTensor;
use crate::error::{check_finite, checked_len, Error, Result};
use crate::formats::weights::{HostWeight, WeightData, WeightFormat};
use std::collections::BTreeMap;

pub struct LayerTensors {
    pub attn_norm: Vec<f32>,
    pub q: HostWeight,
    pub k: HostWeight,
    pub v: HostWeight,
    pub o: HostWeight,
    /// Qwen2's q/k/v biases.
    pub qkv_bias: Option<[Vec<f32>; 3]>,
    /// Qwen3's and Gemma 3's per-head RMSNorm gains of queries and keys (`[head_dim]` each).
    pub qk_norm: Option<[Vec<f32>; 2]>,
    /// Gemma's norms of the attention's and of the MLP's outputs, before the residual adds.
    pub post_norms: Option<[Vec<f32>; 2]>,
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

/// A tensor from any file format: shape outermost first (PyTorch order).
pub struct RawTensor {
    pub format: WeightFormat,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl RawTensor {
    /// The values widened to f32, row-major (1-D and 2-D tensors in F32, F16 or BF16).
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>> {
        let (rows, cols) = match self.shape.as_slice() {
            [r, c] => (*r, *c),
            [c] => (1, *c),
            other => return Err(Error::shape(format!("tensor {name} has shape {other:?}"))),
        };
        let n = checked_len(name, &[rows, cols])?;
        if self.bytes.len() != self.format.bytes_for(n) {
            return Err(Error::shape(format!("tensor {name}: {} bytes for shape {:?}", self.bytes.len(), self.shape)));
        }
        // One pass, one allocation (adapters are loaded while users wait).
        let halves = self.bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let v: Vec<f32> = match self.format {
            WeightFormat::F32 => self.bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            WeightFormat::F16 => halves.map(|h| half::f16::from_bits(h).to_f32()).collect(),
            WeightFormat::BF16 => halves.map(|h| f32::from_bits((h as u32) << 16)).collect(),
            f => return Err(Error::unsupported(format!("tensor {name} is {}, expected f32, f16 or bf16", f.name()))),
        };
        check_finite(name, &v)?;
        Ok(v)
    }

    pub fn from_gguf(t: TensorInfo, bytes: Vec<u8>) -> Self {
        RawTensor { format: t.format, shape: t.dims.into_iter().rev().collect(), bytes }
    }
    pub fn from_safetensors(t: StTensor, bytes: Vec<u8>) -> Self {
        RawTensor { format: t.format, shape: t.shape, bytes }
    }
}

/// A tensor's place in the model; each file format names it its own way.
#[derive(Clone, Copy)]
enum Role {
    Embed,
    Output,
    OutputNorm,
    AttnNorm,
    Q,
    K,
    V,
    O,
    QBias,
    KBias,
    VBias,
    QNorm,
    KNorm,
    /// Phi-3's fused q/k/v and gate/up weights.
    Qkv,
    GateUp,
    /// Gemma's norms after attention and after the MLP.
    PostAttnNorm,
    PostFfnNorm,
    FfnNorm,
    Gate,
    Up,
    Down,
}

fn gguf_name(r: Role, i: usize) -> String {
    let s = match r {
        Role::Embed => return "token_embd.weight".into(),
        Role::Output => return "output.weight".into(),
        Role::OutputNorm => return "output_norm.weight".into(),
        Role::AttnNorm => "attn_norm.weight",
        Role::Q => "attn_q.weight",
        Role::K => "attn_k.weight",
        Role::V => "attn_v.weight",
        Role::O => "attn_output.weight",
        Role::QBias => "attn_q.bias",
        Role::KBias => "attn_k.bias",
        Role::VBias => "attn_v.bias",
        Role::QNorm => "attn_q_norm.weight",
        Role::KNorm => "attn_k_norm.weight",
        Role::Qkv => "attn_qkv.weight",
        Role::PostAttnNorm => "post_attention_norm.weight",
        Role::PostFfnNorm => "post_ffw_norm.weight",
        Role::FfnNorm => "ffn_norm.weight",
        Role::Gate => "ffn_gate.weight",
        // llama.cpp names Phi-3's fused gate/up ffn_up (its SwiGLU splits it in halves).
        Role::Up | Role::GateUp => "ffn_up.weight",
        Role::Down => "ffn_down.weight",
    };
    format!("blk.{i}.{s}")
}

fn hf_name(r: Role, i: usize) -> String {
    let s = match r {
        Role::Embed => return "model.embed_tokens.weight".into(),
        Role::Output => return "lm_head.weight".into(),
        Role::OutputNorm => return "model.norm.weight".into(),
        Role::AttnNorm => "input_layernorm.weight",
        Role::Q => "self_attn.q_proj.weight",
        Role::K => "self_attn.k_proj.weight",
        Role::V => "self_attn.v_proj.weight",
        Role::O => "self_attn.o_proj.weight",
        Role::QBias => "self_attn.q_proj.bias",
        Role::KBias => "self_attn.k_proj.bias",
        Role::VBias => "self_attn.v_proj.bias",
        Role::QNorm => "self_attn.q_norm.weight",
        Role::KNorm => "self_attn.k_norm.weight",
        Role::Qkv => "self_attn.qkv_proj.weight",
        Role::GateUp => "mlp.gate_up_proj.weight",
        Role::PostAttnNorm => "post_attention_layernorm.weight",
        Role::PostFfnNorm => "post_feedforward_layernorm.weight",
        Role::FfnNorm => "post_attention_layernorm.weight",
        Role::Gate => "mlp.gate_proj.weight",
        Role::Up => "mlp.up_proj.weight",
        Role::Down => "mlp.down_proj.weight",
    };
    format!("model.layers.{i}.{s}")
}

/// Gemma's Hugging Face names: its post_attention_layernorm follows attention, and the norm
/// before the MLP is pre_feedforward_layernorm.
fn hf_gemma_name(r: Role, i: usize) -> String {
    match r {
        Role::FfnNorm => format!("model.layers.{i}.pre_feedforward_layernorm.weight"),
        r => hf_name(r, i),
    }
}

/// Tensors by name, taken out one by one with their shapes checked.
struct Take<'a> {
    file: &'a str,
    map: BTreeMap<String, RawTensor>,
    name: fn(Role, usize) -> String,
}

impl Take<'_> {
    fn has(&self, r: Role) -> bool {
        self.map.contains_key(&(self.name)(r, 0))
    }

    /// A matrix `[rows, cols]` (a 1-D tensor counts as one row).
    fn matrix(&mut self, r: Role, i: usize, rows: usize, cols: usize) -> Result<HostWeight> {
        let name = (self.name)(r, i);
        let t = self.map.remove(&name).ok_or_else(|| Error::format(format!("{}: tensor {name} is missing", self.file)))?;
        let shape = match t.shape.as_slice() {
            [r, c] => [*r, *c],
            [c] => [1, *c],
            _ => [0, 0],
        };
        if shape != [rows, cols] {
            let want = if rows == 1 { format!("[{cols}]") } else { format!("[{rows}, {cols}]") };
            return Err(Error::shape(format!("{}: tensor {name} has shape {:?}, expected {want}", self.file, t.shape)));
        }
        let bytes = t.bytes;
        let data = match t.format {
            WeightFormat::F32 => WeightData::F32(bytemuck::pod_collect_to_vec(&bytes)),
            WeightFormat::F16 => WeightData::F16(bytemuck::pod_collect_to_vec(&bytes)),
            WeightFormat::BF16 => WeightData::BF16(bytemuck::pod_collect_to_vec(&bytes)),
            f => WeightData::Blocks(f, bytes),
        };
        HostWeight::new(rows, cols, data).map_err(|e| Error::new(e.kind, format!("{}: tensor {name}: {}", self.file, e.message)))
    }

    fn vector(&mut self, r: Role, i: usize, len: usize) -> Result<Vec<f32>> {
        Ok(self.matrix(r, i, 1, len)?.row_f32(0))
    }
}

/// llama.cpp's converter interleaves the two halves of each q/k head for its RoPE; undo it
/// so every source shares Hugging Face's layout (and PEFT adapters apply unchanged).
pub(crate) fn unpermute_heads(w: HostWeight, heads: usize) -> HostWeight {
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
    w.gather_rows(&src)
}

impl ModelTensors {
    pub fn from_gguf(header: &Header, map: BTreeMap<String, (TensorInfo, Vec<u8>)>, file: &str) -> Result<Self> {
        let mut cfg = Config::from_gguf(&header.meta, file)?;
        let mut map: BTreeMap<String, RawTensor> = map.into_iter().map(|(k, (t, b))| (k, RawTensor::from_gguf(t, b))).collect();
        // llama.cpp writes Llama 3's RoPE scaling as per-frequency divisors, not metadata.
        if let Some(t) = map.remove("rope_freqs.weight") {
            let f = t.to_f32("rope_freqs.weight")?;
            if f.len() != cfg.head_dim / 2 || f.iter().any(|&x| x <= 0.0) {
                return Err(Error::shape(format!("{file}: rope_freqs.weight has {} factors (positive, {} expected)", f.len(), cfg.head_dim / 2)));
            }
            cfg.rope_freq_factors = Some(f.into_iter().map(f64::from).collect());
        }
        if let Some(k) = ["rope_factors_long.weight", "rope_factors_short.weight"].into_iter().find(|k| map.contains_key(*k)) {
            return Err(Error::unsupported(format!("{file}: {k}: LongRoPE scaling is not supported")));
        }
        // llama.cpp's converter permutes q/k rows of llama-arch models (Mistral included).
        let permuted = matches!(cfg.arch, Arch::Llama | Arch::Mistral);
        Self::assemble(cfg, Take { file, map, name: gguf_name }, permuted, 0.0)
    }

    pub fn from_hf(cfg: Config, map: BTreeMap<String, RawTensor>, file: &str) -> Result<Self> {
        // Gemma's RMSNorms multiply by 1 + w (llama.cpp's converter adds the 1 to GGUF files).
        let (name, shift) = if cfg.arch.is_gemma() { (hf_gemma_name as fn(Role, usize) -> String, 1.0) } else { (hf_name as _, 0.0) };
        Self::assemble(cfg, Take { file, map, name }, false, shift)
    }

    /// `norm_shift` is added to every norm gain.
    fn assemble(mut cfg: Config, mut t: Take, permuted: bool, norm_shift: f32) -> Result<Self> {
        let norm = |t: &mut Take, r: Role, i: usize, len: usize| -> Result<Vec<f32>> {
            Ok(t.vector(r, i, len)?.into_iter().map(|g| g + norm_shift).collect())
        };
        let (d, hd) = (cfg.hidden, cfg.head_dim);
        let (qd, kvd) = (cfg.heads * hd, cfg.kv_heads * hd);
        let embed = t.matrix(Role::Embed, 0, cfg.vocab, d)?;
        cfg.tied = !t.has(Role::Output);
        let lm_head = if cfg.tied { None } else { Some(t.matrix(Role::Output, 0, cfg.vocab, d)?) };
        let mut layers = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            // Fused weights are split by rows (exact in every format: a row is whole blocks),
            // so every architecture runs the same fused q/k/v and gate/up kernels.
            let (mut q, mut k, v) = if cfg.arch.fused() {
                let w = t.matrix(Role::Qkv, i, qd + 2 * kvd, d)?;
                (w.slice_rows(0, qd), w.slice_rows(qd, qd + kvd), w.slice_rows(qd + kvd, qd + 2 * kvd))
            } else {
                (t.matrix(Role::Q, i, qd, d)?, t.matrix(Role::K, i, kvd, d)?, t.matrix(Role::V, i, kvd, d)?)
            };
            let (gate, up) = if cfg.arch.fused() {
                let w = t.matrix(Role::GateUp, i, 2 * cfg.ffn, d)?;
                (w.slice_rows(0, cfg.ffn), w.slice_rows(cfg.ffn, 2 * cfg.ffn))
            } else {
                (t.matrix(Role::Gate, i, cfg.ffn, d)?, t.matrix(Role::Up, i, cfg.ffn, d)?)
            };
            if permuted {
                q = unpermute_heads(q, cfg.heads);
                k = unpermute_heads(k, cfg.kv_heads);
            }
            let qkv_bias = if cfg.arch == Arch::Qwen2 {
                Some([t.vector(Role::QBias, i, qd)?, t.vector(Role::KBias, i, kvd)?, t.vector(Role::VBias, i, kvd)?])
            } else {
                None
            };
            let qk_norm = if cfg.arch.qk_norm() { Some([norm(&mut t, Role::QNorm, i, hd)?, norm(&mut t, Role::KNorm, i, hd)?]) } else { None };
            let post_norms = if cfg.arch.is_gemma() {
                Some([norm(&mut t, Role::PostAttnNorm, i, d)?, norm(&mut t, Role::PostFfnNorm, i, d)?])
            } else {
                None
            };
            layers.push(LayerTensors {
                attn_norm: norm(&mut t, Role::AttnNorm, i, d)?,
                q,
                k,
                v,
                o: t.matrix(Role::O, i, d, qd)?,
                qkv_bias,
                qk_norm,
                post_norms,
                ffn_norm: norm(&mut t, Role::FfnNorm, i, d)?,
                gate,
                up,
                down: t.matrix(Role::Down, i, d, cfg.ffn)?,
            });
        }
        let norm = norm(&mut t, Role::OutputNorm, 0, d)?;
        Ok(ModelTensors { cfg, embed, layers, norm, lm_head })
    }
}
