//! The ops a transformer needs beyond the fused linear: the embedding gather, row gathers,
//! attention over a KV cache (with RoPE and the cache append), and the selection of the
//! next token's candidates. Backends implement the kernels (`ModelOps`); the model calls the
//! checked fronts below (`embed`, `gather_rows`, `Attend::new`, `top_k`), which hold each
//! op's shape contract once.

use super::select::{Choice, SelectRow};
use super::{Backend, Shaped};
use crate::error::{Error, Result};
use crate::formats::weights::WeightFormat;
use std::future::Future;

pub trait ModelOps: Backend {
    /// Keys and values of one layer for one sequence, `[positions, kv_heads·head_dim]` each.
    type Kv;

    fn kv_new(&self, width: usize) -> Self::Kv;
    /// Positions held.
    fn kv_len(&self, kv: &Self::Kv) -> usize;
    /// Values per position (`kv_heads·head_dim`).
    fn kv_width(&self, kv: &Self::Kv) -> usize;
    /// Bytes held for keys and values (capacity, not only the positions in use).
    fn kv_bytes(&self, kv: &Self::Kv) -> usize;
    /// Drops positions from `len` on (to reuse a shared prefix, or undo).
    fn kv_truncate(&self, kv: &mut Self::Kv, len: usize);

    /// `out[i] = table[ids[i]]` widened to f32 (ids checked against the table).
    fn embed(&self, table: &Self::Weight, ids: &[u32], out: &mut Self::Tensor) -> Result<()>;
    /// `out[i] = x[rows[i]]` (rows checked).
    fn gather_rows(&self, x: &Self::Tensor, rows: &[usize], out: &mut Self::Tensor) -> Result<()>;
    /// `x ← f(x)` element-wise (checked by `map` below).
    fn map(&self, x: &mut Self::Tensor, f: Map) -> Result<()>;
    /// `x += gain·y/RMS(y)` row by row (checked by `add_normed` below).
    fn add_normed(&self, x: &mut Self::Tensor, y: &Self::Tensor, gain: &Self::Tensor, eps: f32) -> Result<()>;
    /// RoPE, the KV cache append and causal attention (`Attend`).
    fn attend(&self, op: Attend<'_, Self>) -> Result<()>;
    /// Per row of `logits` (arguments checked by `top_k` below): applies the row's repetition
    /// penalty in place, then selects the `k` best (token, logit) pairs, best first (ties to
    /// the lower id), and, when the row asks, its softmax mass. On the GPU only these come
    /// back, not the vocabulary; and for a row with a `draw`, only the token it picks, where
    /// the GPU can be sure of it.
    fn select(&self, logits: &mut Self::Tensor, k: usize, rows: &[SelectRow]) -> impl Future<Output = Result<Vec<Choice>>>;
    /// Readies every kernel a model with these matmul weight formats and this embedding
    /// format will run (the GPU compiles its pipelines here, not at the first token).
    fn prepare(&self, _matmul: &[WeightFormat], _embed: WeightFormat) -> Result<()> {
        Ok(())
    }
}

/// Rows `ids` of the embedding table, as f32 `[ids.len(), cols]`.
pub fn embed<B: ModelOps>(b: &B, table: &B::Weight, ids: &[u32]) -> Result<B::Tensor> {
    let [vocab, cols] = table.shape();
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::shape(format!("token id {id} is outside the vocabulary of {vocab}")));
    }
    let mut out = b.empty(ids.len(), cols)?;
    b.embed(table, ids, &mut out)?;
    Ok(out)
}

/// An element-wise map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Map {
    /// `x·c` (Gemma's embedding scale).
    Scale(f32),
    /// `c·tanh(x/c)`, `c > 0` (Gemma 2's final logits).
    Softcap(f32),
}

/// `x ← f(x)` element-wise.
pub fn map<B: ModelOps>(b: &B, x: &mut B::Tensor, f: Map) -> Result<()> {
    match f {
        Map::Scale(c) if c.is_finite() => b.map(x, f),
        Map::Softcap(c) if c.is_finite() && c > 0.0 => b.map(x, f),
        _ => Err(Error::config(format!("element-wise {f:?}: the constant must be finite (and a cap positive)"))),
    }
}

/// `x += gain·y/RMS(y)` per row: a sublayer's output RMSNorm'd before the residual add.
pub fn add_normed<B: ModelOps>(b: &B, x: &mut B::Tensor, y: &B::Tensor, gain: &B::Tensor, eps: f32) -> Result<()> {
    let [n, cols] = x.shape();
    if y.shape() != [n, cols] || gain.shape() != [1, cols] || !(eps.is_finite() && eps > 0.0) {
        return Err(Error::shape(format!("normed add: x [{n}, {cols}], y {:?}, gain {:?}, eps {eps}", y.shape(), gain.shape())));
    }
    b.add_normed(x, y, gain, eps)
}

/// Rows `rows` of `x`, in that order, as a new tensor.
pub fn gather_rows<B: ModelOps>(b: &B, x: &B::Tensor, rows: &[usize]) -> Result<B::Tensor> {
    let [n, cols] = x.shape();
    if let Some(&r) = rows.iter().find(|&&r| r >= n) {
        return Err(Error::shape(format!("row {r} of a tensor with {n}")));
    }
    let mut out = b.empty(rows.len(), cols)?;
    b.gather_rows(x, rows, &mut out)?;
    Ok(out)
}

/// `ModelOps::select`, its arguments checked: one request per row, `1 <= k <= vocab`.
pub async fn top_k<B: ModelOps>(b: &B, logits: &mut B::Tensor, k: usize, asks: &[SelectRow]) -> Result<Vec<Choice>> {
    let [rows, vocab] = logits.shape();
    if asks.len() != rows || k == 0 || k > vocab {
        return Err(Error::shape(format!("top_k: {k} of {vocab} in {rows} rows with {} requests", asks.len())));
    }
    b.select(logits, k, asks).await
}

/// One sequence's rows in a batch: rows `row0..row0 + rows`, at positions `pos0..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub row0: usize,
    pub rows: usize,
    pub pos0: usize,
}

/// The attention heads: `heads` query heads over `kv_heads` key/value heads (GQA) of
/// `head_dim`, attending to the last `window` positions only when set; scores are
/// `scale·q·k`, soft-capped to `c·tanh(s/c)` when `softcap` is set (Gemma 2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub window: Option<usize>,
    pub scale: f32,
    pub softcap: Option<f32>,
}

impl Heads {
    /// Scores scaled by 1/√head_dim, not capped.
    pub fn new(heads: usize, kv_heads: usize, head_dim: usize, window: Option<usize>) -> Heads {
        Heads { heads, kv_heads, head_dim, window, scale: 1.0 / (head_dim as f32).sqrt(), softcap: None }
    }
    /// Columns of the queries (and of the attention's output).
    pub fn q_width(&self) -> usize {
        self.heads * self.head_dim
    }
    /// Columns of the keys (and of the values).
    pub fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// A checked attention over a batch: per sequence (`spans`), its rows' queries, keys and
/// values side by side in `qkv` (`[n, q_width + 2·kv_width]`), per-head RMSNorm'd when
/// `qk_norm` is given, RoPE'd at their positions
/// (rotate-half pairing, frequencies `inv_freq`; q and k in place), the keys and values
/// appended to the sequence's cache, and causal attention into `out` (`[n, q_width]`).
pub struct Attend<'a, B: ModelOps> {
    pub qkv: &'a mut B::Tensor,
    pub caches: Vec<&'a mut B::Kv>,
    pub spans: &'a [Span],
    pub heads: Heads,
    pub inv_freq: &'a [f64],
    /// Queries and keys RMSNorm'd per head before RoPE (Qwen3).
    pub qk_norm: Option<QkNorm<'a, B::Tensor>>,
    pub out: &'a mut B::Tensor,
    checked: (),
}

/// The gains (`[1, head_dim]`) of a per-head RMSNorm of the queries and of the keys.
pub struct QkNorm<'a, T> {
    pub q: &'a T,
    pub k: &'a T,
    pub eps: f32,
}

impl<'a, B: ModelOps> Attend<'a, B> {
    pub fn new(
        b: &B,
        qkv: &'a mut B::Tensor,
        caches: Vec<&'a mut B::Kv>,
        spans: &'a [Span],
        heads: Heads,
        inv_freq: &'a [f64],
        qk_norm: Option<QkNorm<'a, B::Tensor>>,
        out: &'a mut B::Tensor,
    ) -> Result<Self> {
        let [n, w] = qkv.shape();
        let (qw, kvw, hd) = (heads.q_width(), heads.kv_width(), heads.head_dim);
        let bad = |what: String| Err(Error::shape(format!("attention: {what}")));
        if !(heads.scale.is_finite() && heads.softcap.is_none_or(|c| c.is_finite() && c > 0.0)) {
            return bad(format!("score scale {} and soft cap {:?}", heads.scale, heads.softcap));
        }
        if heads.kv_heads == 0 || heads.heads % heads.kv_heads != 0 || hd % 2 != 0 || inv_freq.len() < hd / 2 {
            return bad(format!("{} heads over {} of {hd} dims with {} frequencies", heads.heads, heads.kv_heads, inv_freq.len()));
        }
        if w != qw + 2 * kvw || out.shape() != [n, qw] {
            return bad(format!("qkv [{n}, {w}] and output {:?} for {heads:?}", out.shape()));
        }
        if let Some(n) = &qk_norm {
            if n.q.shape() != [1, hd] || n.k.shape() != [1, hd] {
                return bad(format!("query/key norm gains {:?} and {:?} for heads of {hd}", n.q.shape(), n.k.shape()));
            }
        }
        let mut next = 0;
        for (s, kv) in spans.iter().zip(&caches) {
            if s.row0 != next || s.rows == 0 || b.kv_len(kv) != s.pos0 || b.kv_width(kv) != kvw {
                return bad(format!("span {s:?} after row {next}, a cache of {} positions of width {}", b.kv_len(kv), b.kv_width(kv)));
            }
            next += s.rows;
        }
        if next != n || caches.len() != spans.len() {
            return bad(format!("{} spans with {} caches cover {next} of {n} rows", spans.len(), caches.len()));
        }
        Ok(Attend { qkv, caches, spans, heads, inv_freq, qk_norm, out, checked: () })
    }

    /// The cos and sin of every (row, frequency) pair, in f64 then rounded (the GPU reads
    /// these as a table): `[rows, head_dim / 2]` pairs, rows in batch order.
    pub fn rope_table(&self) -> Vec<[f32; 2]> {
        let _ = self.checked;
        let half = self.heads.head_dim / 2;
        let mut cs = Vec::new();
        for s in self.spans {
            for p in s.pos0..s.pos0 + s.rows {
                cs.extend(self.inv_freq[..half].iter().map(|&f| {
                    let a = p as f64 * f;
                    [a.cos() as f32, a.sin() as f32]
                }));
            }
        }
        cs
    }
}
