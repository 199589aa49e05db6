//! The LLaMA-family forward pass (llama, qwen2, qwen3, mistral, phi3, gemma2, gemma3), written once over `ModelOps`: per
//! layer one fused linear for q/k/v (RMSNorm in its prologue), attention, one for o (the
//! residual add in its epilogue), one for gate/up (SiLU·mul in its epilogue) and one for
//! down. Every projection, lm_head included, sits in a `LoraGroup`, so adapters can target
//! any of them.

use crate::backend::linear::{Act, Epilogue};
use crate::backend::ops::{self, Attend, Heads, Map, ModelOps, QkNorm, Span};
use crate::backend::routing::Mix;
use crate::backend::Shaped;
use crate::error::{Error, Result};
use crate::formats::config::Config;
use crate::formats::tensors::ModelTensors;
use crate::lora::peft::{Proj, Target};
use crate::lora::LoraGroup;
use std::rc::Rc;

struct Layer<B: ModelOps> {
    attn_norm: B::Tensor,
    /// q, k, v.
    qkv: LoraGroup<B>,
    /// Qwen2's q/k/v biases, side by side.
    qkv_bias: Option<B::Tensor>,
    /// Qwen3's and Gemma 3's per-head RMSNorm gains of queries and keys.
    qk_norm: Option<[B::Tensor; 2]>,
    /// Gemma's norms of the attention's and the MLP's outputs.
    post_norms: Option<[B::Tensor; 2]>,
    o: LoraGroup<B>,
    ffn_norm: B::Tensor,
    /// gate, up.
    gate_up: LoraGroup<B>,
    down: LoraGroup<B>,
}

pub struct Llama<B: ModelOps> {
    pub cfg: Config,
    backend: B,
    embed: Rc<B::Weight>,
    layers: Vec<Layer<B>>,
    norm: B::Tensor,
    lm_head: LoraGroup<B>,
    inv_freq: Vec<f64>,
    /// Gemma's sliding-window layers' RoPE frequencies.
    inv_freq_local: Vec<f64>,
    /// Bytes of all weights as stored.
    pub weight_bytes: usize,
}

/// One sequence's state: its KV cache (one per layer) and length.
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
    /// The length every layer agrees on, if they do (a forward pass that failed midway can
    /// leave some layers longer).
    pub fn consistent_len(&self, b: &B) -> Option<usize> {
        let n = self.len(b);
        self.kv.iter().all(|kv| b.kv_len(kv) == n).then_some(n)
    }
    /// Bytes the caches hold.
    pub fn bytes(&self, b: &B) -> usize {
        self.kv.iter().map(|kv| b.kv_bytes(kv)).sum()
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

/// The rows of one forward pass: every sequence's new tokens one after another.
struct Batch {
    ids: Vec<u32>,
    spans: Vec<Span>,
}

impl Batch {
    fn new<B: ModelOps>(b: &B, seqs: &[(&mut Session<B>, &[u32])], context: usize) -> Result<Batch> {
        let mut batch = Batch { ids: Vec::new(), spans: Vec::with_capacity(seqs.len()) };
        for (s, t) in seqs {
            let pos0 = s.len(b);
            if t.is_empty() {
                return Err(Error::shape("forward needs at least one token per sequence"));
            }
            if pos0 + t.len() > context {
                return Err(Error::limit(format!("context length exceeded: {pos0} cached + {} new tokens > {context} (the model's context)", t.len())));
            }
            batch.spans.push(Span { row0: batch.ids.len(), rows: t.len(), pos0 });
            batch.ids.extend_from_slice(t);
        }
        Ok(batch)
    }

    /// The last row of each sequence.
    fn last_rows(&self) -> Vec<usize> {
        self.spans.iter().map(|s| s.row0 + s.rows - 1).collect()
    }
}

/// RoPE inverse frequencies of the base `theta`, with the configured scalings (`global`: not
/// on Gemma's sliding-window layers, which have a base of their own and no scaling).
fn inv_freq(cfg: &Config, theta: f64, global: bool) -> Vec<f64> {
    let hd = cfg.head_dim as f64;
    (0..cfg.head_dim / 2)
        .map(|i| {
            let f = 1.0 / theta.powf(2.0 * i as f64 / hd);
            if !global {
                return f;
            }
            let f = f / cfg.rope_freq_factors.as_ref().map_or(1.0, |d| d[i]) / cfg.rope_linear.unwrap_or(1.0);
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
        let mut formats: Vec<_> = t.layers.iter().flat_map(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]).map(|w| w.format()).collect();
        formats.extend(t.lm_head.iter().chain([&t.embed]).map(|w| w.format()));
        formats.sort_by_key(|f| f.name());
        formats.dedup();
        backend.prepare(&formats, t.embed.format())?;
        let embed_bytes = t.embed.byte_len();
        let embed = Rc::new(backend.weight(t.embed)?);
        let lm_head = match t.lm_head {
            Some(w) => LoraGroup::new(backend, vec![w])?,
            None => LoraGroup::shared(backend, embed.clone(), 0),
        };
        let mut layers = Vec::with_capacity(t.layers.len());
        for l in t.layers {
            layers.push(Layer {
                attn_norm: vec(&l.attn_norm)?,
                qkv: LoraGroup::new(backend, vec![l.q, l.k, l.v])?,
                qkv_bias: l.qkv_bias.map(|b| vec(&b.concat())).transpose()?,
                qk_norm: l.qk_norm.map(|[q, k]| Ok::<_, Error>([vec(&q)?, vec(&k)?])).transpose()?,
                post_norms: l.post_norms.map(|[a, m]| Ok::<_, Error>([vec(&a)?, vec(&m)?])).transpose()?,
                o: LoraGroup::new(backend, vec![l.o])?,
                ffn_norm: vec(&l.ffn_norm)?,
                gate_up: LoraGroup::new(backend, vec![l.gate, l.up])?,
                down: LoraGroup::new(backend, vec![l.down])?,
            });
        }
        let weight_bytes = embed_bytes + lm_head.weight_bytes() + layers.iter().map(|l| [&l.qkv, &l.o, &l.gate_up, &l.down].map(|g| g.weight_bytes()).iter().sum::<usize>()).sum::<usize>();
        let local_theta = t.cfg.gemma.as_ref().map_or(t.cfg.rope_theta, |g| g.local_rope_theta);
        let (inv_freq, inv_freq_local) = (inv_freq(&t.cfg, t.cfg.rope_theta, true), inv_freq(&t.cfg, local_theta, false));
        Ok(Llama { inv_freq, inv_freq_local, cfg: t.cfg, backend: backend.clone(), embed, layers, norm: vec(&t.norm)?, lm_head, weight_bytes })
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Every group of projections that can carry adapters, lm_head last.
    pub fn groups(&self) -> impl Iterator<Item = &LoraGroup<B>> {
        self.layers.iter().flat_map(|l| [&l.qkv, &l.o, &l.gate_up, &l.down]).chain([&self.lm_head])
    }

    /// The projection an adapter module targets: its group and its place in it.
    pub fn linear_mut(&mut self, t: Target) -> Result<(&mut LoraGroup<B>, usize)> {
        match t {
            Target::LmHead => Ok((&mut self.lm_head, 0)),
            Target::Layer(i, p) => {
                let l = self.layers.get_mut(i).ok_or_else(|| Error::shape(format!("layer {i} is beyond the model's {}", self.cfg.layers)))?;
                Ok(match p {
                    Proj::Q => (&mut l.qkv, 0),
                    Proj::K => (&mut l.qkv, 1),
                    Proj::V => (&mut l.qkv, 2),
                    Proj::O => (&mut l.o, 0),
                    Proj::Gate => (&mut l.gate_up, 0),
                    Proj::Up => (&mut l.gate_up, 1),
                    Proj::Down => (&mut l.down, 0),
                    Proj::Qkv | Proj::GateUp => return Err(Error::adapter("a fused projection's adapter must be split (ModuleLora::split_fused)")),
                })
            }
        }
    }

    pub fn session(&self) -> Session<B> {
        let width = self.cfg.kv_heads * self.cfg.head_dim;
        Session { kv: (0..self.cfg.layers).map(|_| self.backend.kv_new(width)).collect() }
    }

    /// Runs `ids` at the session's next positions; returns logits `[rows, vocab]`.
    pub fn forward(&self, s: &mut Session<B>, ids: &[u32], logits: Logits, mix: &Mix) -> Result<B::Tensor> {
        self.forward_batch(&mut [(s, ids)], logits, mix)
    }

    /// Several sequences in one pass: their rows go through every projection together (one
    /// read of each weight, per-row adapters in `mix` as in BGMV), attention stays within
    /// each sequence's own cache. Logits: every row, or the last row of each sequence.
    pub fn forward_batch(&self, seqs: &mut [(&mut Session<B>, &[u32])], logits: Logits, mix: &Mix) -> Result<B::Tensor> {
        let batch = Batch::new(&self.backend, seqs, self.cfg.context)?;
        let mut x = ops::embed(&self.backend, &self.embed, &batch.ids)?;
        if self.cfg.gemma.is_some() {
            ops::map(&self.backend, &mut x, Map::Scale((self.cfg.hidden as f64).sqrt() as f32))?;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let caches = seqs.iter_mut().map(|(s, _)| &mut s.kv[i]).collect();
            self.attention(i, layer, &mut x, caches, &batch.spans, mix)?;
            self.mlp(layer, &mut x, mix)?;
        }
        let (x, mix) = match logits {
            Logits::All => (x, mix.clone()),
            Logits::Last if batch.spans.len() == 1 && batch.ids.len() == 1 => (x, mix.clone()),
            Logits::Last => (ops::gather_rows(&self.backend, &x, &batch.last_rows())?, mix.select_rows(&batch.last_rows())),
        };
        let mut out = self.backend.empty(x.shape()[0], self.cfg.vocab)?;
        self.lm_head.forward(&x, Some((&self.norm, self.cfg.eps)), &mix, true, Epilogue::Store { out: &mut out, bias: None })?;
        if let Some(cap) = self.cfg.gemma.as_ref().and_then(|g| g.final_softcap) {
            ops::map(&self.backend, &mut out, Map::Softcap(cap))?;
        }
        Ok(out)
    }

    /// `x += o(attention(rope(qkv(norm(x)))))` (Gemma: the sum normed before the add), the
    /// keys and values appended to the caches.
    fn attention(&self, i: usize, l: &Layer<B>, x: &mut B::Tensor, caches: Vec<&mut B::Kv>, spans: &[Span], mix: &Mix) -> Result<()> {
        let (b, c) = (&self.backend, &self.cfg);
        // Gemma: sliding-window layers with their own RoPE between global ones.
        let gemma = c.gemma.as_ref();
        let sliding = gemma.is_none_or(|g| g.sliding[i]);
        let mut heads = Heads::new(c.heads, c.kv_heads, c.head_dim, if sliding { c.sliding_window } else { None });
        if let Some(g) = gemma {
            (heads.scale, heads.softcap) = (g.query_scale as f32, g.attn_softcap);
        }
        let inv_freq = if sliding && gemma.is_some() { &self.inv_freq_local } else { &self.inv_freq };
        let n = x.shape()[0];
        let mut qkv = b.empty(n, heads.q_width() + 2 * heads.kv_width())?;
        l.qkv.forward(&*x, Some((&l.attn_norm, c.eps)), mix, true, Epilogue::Store { out: &mut qkv, bias: l.qkv_bias.as_ref() })?;
        let mut a = b.empty(n, heads.q_width())?;
        let qk_norm = l.qk_norm.as_ref().map(|[q, k]| QkNorm { q, k, eps: c.eps });
        b.attend(Attend::new(b, &mut qkv, caches, spans, heads, inv_freq, qk_norm, &mut a)?)?;
        self.residual(&l.o, &a, l.post_norms.as_ref().map(|[n, _]| n), x, mix)
    }

    /// `x += down(act(gate(norm(x)))·up(norm(x)))` (SwiGLU, Gemma's GeGLU; Gemma: the sum
    /// normed before the add).
    fn mlp(&self, l: &Layer<B>, x: &mut B::Tensor, mix: &Mix) -> Result<()> {
        let mut h = self.backend.empty(x.shape()[0], self.cfg.ffn)?;
        let act = if self.cfg.gemma.is_some() { Act::GeluTanh } else { Act::Silu };
        l.gate_up.forward(&*x, Some((&l.ffn_norm, self.cfg.eps)), mix, true, Epilogue::Glu(&mut h, act))?;
        self.residual(&l.down, &h, l.post_norms.as_ref().map(|[_, n]| n), x, mix)
    }

    /// `x += group(input)`, in the linear's epilogue; with a post-norm `x += norm(group(input))`.
    fn residual(&self, group: &LoraGroup<B>, input: &B::Tensor, post_norm: Option<&B::Tensor>, x: &mut B::Tensor, mix: &Mix) -> Result<()> {
        let Some(gain) = post_norm else {
            return group.forward(input, None, mix, true, Epilogue::Add(x));
        };
        let mut y = self.backend.empty(x.shape()[0], self.cfg.hidden)?;
        group.forward(input, None, mix, true, Epilogue::Store { out: &mut y, bias: None })?;
        ops::add_normed(&self.backend, x, &y, gain, self.cfg.eps)
    }
}
