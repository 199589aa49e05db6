//! The LLaMA-family forward pass (llama, qwen2, mistral), written once over `ModelOps`.
//! Every projection, lm_head included, is a `LoraLinear`, so adapters can target any of them.

use crate::backend::ops::ModelOps;
use crate::backend::routing::Mix;
use crate::error::{Error, Result};
use crate::formats::config::Config;
use crate::formats::tensors::ModelTensors;
use crate::lora::peft::{Proj, Target};
use crate::lora::LoraLinear;
use std::rc::Rc;

struct Layer<B: ModelOps> {
    attn_norm: B::Tensor,
    q: LoraLinear<B>,
    k: LoraLinear<B>,
    v: LoraLinear<B>,
    o: LoraLinear<B>,
    qkv_bias: Option<[B::Tensor; 3]>,
    ffn_norm: B::Tensor,
    gate: LoraLinear<B>,
    up: LoraLinear<B>,
    down: LoraLinear<B>,
}

pub struct Llama<B: ModelOps> {
    pub cfg: Config,
    backend: B,
    embed: Rc<B::Weight>,
    layers: Vec<Layer<B>>,
    norm: B::Tensor,
    lm_head: LoraLinear<B>,
    inv_freq: Vec<f64>,
    /// Bytes of all weights as stored.
    pub weight_bytes: usize,
}

/// One sequence's state: its KV cache and length.
pub struct Session<B: ModelOps> {
    kv: Vec<B::Kv>,
}

impl<B: ModelOps> Session<B> {
    pub fn len(&self, b: &B) -> usize {
        self.kv.first().map_or(0, |kv| b.kv_len(kv))
    }
    pub fn is_empty(&self, b: &B) -> bool {
        self.len(b) == 0
    }
    /// Forgets positions from `len` on.
    pub fn truncate(&mut self, b: &B, len: usize) {
        for kv in &mut self.kv {
            b.kv_truncate(kv, len);
        }
    }
}

/// Which positions' logits `forward` computes (the lm_head is the largest matmul).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    All,
    Last,
}

/// RoPE inverse frequencies, with Llama 3's scaling when configured.
fn inv_freq(cfg: &Config) -> Vec<f64> {
    let hd = cfg.head_dim as f64;
    (0..cfg.head_dim / 2)
        .map(|i| {
            let f = 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / hd);
            let Some(s) = cfg.rope_scaling else { return f };
            let wavelen = 2.0 * std::f64::consts::PI / f;
            let (low_wl, high_wl) = (s.original_max_position / s.low_freq_factor, s.original_max_position / s.high_freq_factor);
            if wavelen < high_wl {
                f
            } else if wavelen > low_wl {
                f / s.factor
            } else {
                let smooth = (s.original_max_position / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                (1.0 - smooth) * f / s.factor + smooth * f
            }
        })
        .collect()
}

impl<B: ModelOps> Llama<B> {
    pub fn new(backend: &B, t: ModelTensors) -> Result<Self> {
        let vec = |v: &[f32]| backend.tensor(v, 1, v.len());
        let lin = |w| LoraLinear::new(backend, w);
        let mut weight_bytes = t.embed.byte_len();
        let mut formats: Vec<_> = t.layers.iter().flat_map(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]).map(|w| w.format()).collect();
        formats.extend(t.lm_head.iter().chain([&t.embed]).map(|w| w.format()));
        formats.sort_by_key(|f| f.name());
        formats.dedup();
        backend.prepare(&formats, t.embed.format())?;
        let (vocab, hidden) = (t.embed.rows, t.embed.cols);
        let embed = Rc::new(backend.weight(t.embed)?);
        let lm_head = match t.lm_head {
            Some(w) => {
                weight_bytes += w.byte_len();
                lin(w)?
            }
            None => LoraLinear::shared(backend, embed.clone(), vocab, hidden, 0),
        };
        let mut layers = Vec::with_capacity(t.layers.len());
        for l in t.layers {
            weight_bytes += [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().map(|w| w.byte_len()).sum::<usize>();
            layers.push(Layer {
                attn_norm: vec(&l.attn_norm)?,
                q: lin(l.q)?,
                k: lin(l.k)?,
                v: lin(l.v)?,
                o: lin(l.o)?,
                qkv_bias: match l.qkv_bias {
                    Some([q, k, v]) => Some([vec(&q)?, vec(&k)?, vec(&v)?]),
                    None => None,
                },
                ffn_norm: vec(&l.ffn_norm)?,
                gate: lin(l.gate)?,
                up: lin(l.up)?,
                down: lin(l.down)?,
            });
        }
        Ok(Llama {
            inv_freq: inv_freq(&t.cfg),
            cfg: t.cfg,
            backend: backend.clone(),
            embed,
            layers,
            norm: vec(&t.norm)?,
            lm_head,
            weight_bytes,
        })
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Every linear layer that can carry adapters, lm_head last.
    pub fn linears(&self) -> impl Iterator<Item = &LoraLinear<B>> {
        self.layers.iter().flat_map(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]).chain([&self.lm_head])
    }

    /// The projection an adapter module targets.
    pub fn linear_mut(&mut self, t: Target) -> Result<&mut LoraLinear<B>> {
        match t {
            Target::LmHead => Ok(&mut self.lm_head),
            Target::Layer(i, p) => {
                let l = self.layers.get_mut(i).ok_or_else(|| Error::shape(format!("layer {i} is beyond the model's {}", self.cfg.layers)))?;
                Ok(match p {
                    Proj::Q => &mut l.q,
                    Proj::K => &mut l.k,
                    Proj::V => &mut l.v,
                    Proj::O => &mut l.o,
                    Proj::Gate => &mut l.gate,
                    Proj::Up => &mut l.up,
                    Proj::Down => &mut l.down,
                })
            }
        }
    }

    pub fn session(&self) -> Session<B> {
        let width = self.cfg.kv_heads * self.cfg.head_dim;
        Session { kv: (0..self.cfg.layers).map(|_| self.backend.kv_new(width)).collect() }
    }

    /// Runs `ids` at the session's next positions; returns logits `[rows, vocab]`.
    /// Runs `ids` at the session's next positions; returns logits `[rows, vocab]`.
    pub fn forward(&self, s: &mut Session<B>, ids: &[u32], logits: Logits, mix: &Mix) -> Result<B::Tensor> {
        self.forward_batch(&mut [(s, ids)], logits, mix)
    }

    /// Several sequences in one pass: their rows go through every projection together (one
    /// read of each weight, per-row adapters in `mix` as in BGMV), attention stays within
    /// each sequence's own cache. Logits: every row, or the last row of each sequence.
    pub fn forward_batch(&self, seqs: &mut [(&mut Session<B>, &[u32])], logits: Logits, mix: &Mix) -> Result<B::Tensor> {
        let (b, c) = (&self.backend, &self.cfg);
        // (first row, rows, first position) per sequence.
        let mut spans = Vec::with_capacity(seqs.len());
        let mut ids = Vec::new();
        for (s, t) in seqs.iter() {
            let pos0 = s.len(b);
            if t.is_empty() {
                return Err(Error::shape("forward needs at least one token per sequence"));
            }
            if pos0 + t.len() > c.context {
                return Err(Error::limit(format!(
                    "context length exceeded: {pos0} cached + {} new tokens > {} (the model's context)",
                    t.len(),
                    c.context
                )));
            }
            spans.push((ids.len(), t.len(), pos0));
            ids.extend_from_slice(t);
        }
        let n = ids.len();
        let mut x = b.embed(&self.embed, &ids)?;
        let proj = |l: &LoraLinear<B>, h: &B::Tensor, rows: usize, mix: &Mix| -> Result<B::Tensor> {
            let mut y = b.empty(rows, l.out_features())?;
            l.forward_partial(h, rows, mix, &mut y)?;
            Ok(y)
        };
        let single = seqs.len() == 1;
        for (li, layer) in self.layers.iter().enumerate() {
            let h = b.rms_norm(&x, &layer.attn_norm, c.eps)?;
            let (mut q, mut k, mut v) = (proj(&layer.q, &h, n, mix)?, proj(&layer.k, &h, n, mix)?, proj(&layer.v, &h, n, mix)?);
            if let Some([qb, kb, vb]) = &layer.qkv_bias {
                b.add_bias(&mut q, qb)?;
                b.add_bias(&mut k, kb)?;
                b.add_bias(&mut v, vb)?;
            }
            let attend = |q: &mut B::Tensor, k: &mut B::Tensor, v: &B::Tensor, kv: &mut B::Kv, pos0: usize| {
                b.rope(q, c.head_dim, pos0, &self.inv_freq)?;
                b.rope(k, c.head_dim, pos0, &self.inv_freq)?;
                b.attention(q, k, v, kv, pos0, c.heads, c.kv_heads, c.head_dim, c.sliding_window)
            };
            let mut parts = Vec::with_capacity(seqs.len());
            for ((s, _), &(r0, len, pos0)) in seqs.iter_mut().zip(&spans) {
                parts.push(if single {
                    attend(&mut q, &mut k, &v, &mut s.kv[li], pos0)?
                } else {
                    let (mut qs, mut ks) = (b.rows(&q, r0, len)?, b.rows(&k, r0, len)?);
                    attend(&mut qs, &mut ks, &b.rows(&v, r0, len)?, &mut s.kv[li], pos0)?
                });
            }
            let a = if single { parts.pop().expect("one part") } else { b.concat_rows(&parts)? };
            b.add(&mut x, &proj(&layer.o, &a, n, mix)?)?;
            let h = b.rms_norm(&x, &layer.ffn_norm, c.eps)?;
            let mut g = proj(&layer.gate, &h, n, mix)?;
            b.silu_mul(&mut g, &proj(&layer.up, &h, n, mix)?)?;
            b.add(&mut x, &proj(&layer.down, &g, n, mix)?)?;
        }
        let (x, mix) = match logits {
            Logits::All => (x, mix.clone()),
            Logits::Last => {
                let last: Vec<usize> = spans.iter().map(|&(r0, len, _)| r0 + len - 1).collect();
                let parts = last.iter().map(|&r| b.rows(&x, r, 1)).collect::<Result<Vec<_>>>()?;
                let x = if single { parts.into_iter().next().expect("one row") } else { b.concat_rows(&parts)? };
                (x, mix.select_rows(&last))
            }
        };
        let rows = match logits {
            Logits::All => n,
            Logits::Last => seqs.len(),
        };
        let h = b.rms_norm(&x, &self.norm, c.eps)?;
        let mut out = b.empty(rows, c.vocab)?;
        self.lm_head.forward_partial(&h, rows, &mix, &mut out)?;
        Ok(out)
    }
}
