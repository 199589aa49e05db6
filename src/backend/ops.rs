//! The ops a transformer needs beyond the LoRA linear. The forward pass (`llama.rs`) is
//! written once over this trait; `cpu/model_ops.rs` and `gpu/model_ops.rs` implement it.

use super::select::{Choice, SelectRow};
use super::Backend;
use crate::error::{Error, Result};

pub trait ModelOps: Backend {
    /// Keys and values of one layer for one sequence, `[positions, kv_heads·head_dim]` each.
    type Kv;

    fn kv_new(&self, width: usize) -> Self::Kv;
    /// Positions held.
    fn kv_len(&self, kv: &Self::Kv) -> usize;
    /// Drops positions from `len` on (to reuse a shared prefix, or undo).
    fn kv_truncate(&self, kv: &mut Self::Kv, len: usize);

    /// Rows `ids` of the embedding table (any weight format), as f32 `[ids.len(), cols]`.
    fn embed(&self, table: &Self::Weight, ids: &[u32]) -> Result<Self::Tensor>;
    /// Row-wise RMSNorm with gain `w` (`[1, width]`).
    fn rms_norm(&self, x: &Self::Tensor, w: &Self::Tensor, eps: f32) -> Result<Self::Tensor>;
    /// `x += b` row-wise (`b`: `[1, width]`).
    fn add_bias(&self, x: &mut Self::Tensor, b: &Self::Tensor) -> Result<()>;
    /// Rotary embedding in place, rotate-half pairing, rows at positions `pos0..`.
    fn rope(&self, x: &mut Self::Tensor, head_dim: usize, pos0: usize, inv_freq: &[f64]) -> Result<()>;
    /// Appends `k`, `v` at positions `pos0..` to the cache and attends causally (to the last
    /// `window` positions only, when set): returns `[rows, heads·head_dim]`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        kv: &mut Self::Kv,
        pos0: usize,
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        window: Option<usize>,
    ) -> Result<Self::Tensor>;
    /// `gate ← silu(gate) · up`.
    fn silu_mul(&self, gate: &mut Self::Tensor, up: &Self::Tensor) -> Result<()>;
    /// `x += y`.
    fn add(&self, x: &mut Self::Tensor, y: &Self::Tensor) -> Result<()>;
    /// Rows `start..start+len` of `x`, as a new tensor.
    fn rows(&self, x: &Self::Tensor, start: usize, len: usize) -> Result<Self::Tensor>;
    /// The rows of `parts`, one after another (same widths).
    fn concat_rows(&self, parts: &[Self::Tensor]) -> Result<Self::Tensor>;
    /// Readies every kernel a model with these matmul weight formats and this embedding
    /// format will run (the GPU compiles its pipelines here, not at the first token).
    fn prepare(&self, _matmul: &[crate::formats::weights::WeightFormat], _embed: crate::formats::weights::WeightFormat) -> Result<()> {
        Ok(())
    }
    /// Per row of `logits`: applies the row's repetition penalty in place, then selects the
    /// `k` best (token, logit) pairs, best first (ties to the lower id), and, when the row
    /// asks, its softmax mass. On the GPU only these come back, not the vocabulary; and for
    /// a row with a `draw`, only the token it picks, where the GPU can be sure of it.
    fn top_k(&self, logits: &mut Self::Tensor, k: usize, rows: &[SelectRow]) -> impl std::future::Future<Output = Result<Vec<Choice>>>;
}

/// Both operands of an element-wise op have one shape.
pub fn same_shape(a: [usize; 2], b: [usize; 2], op: &str) -> Result<()> {
    if a != b {
        return Err(Error::shape(format!("{op}: {a:?} vs {b:?}")));
    }
    Ok(())
}

/// The shape contract of `attention` on every backend: q `[n, heads·head_dim]`, k and v
/// `[n, kv_width]`, a cache holding exactly `pos0` positions, whole query groups.
#[allow(clippy::too_many_arguments)]
pub fn check_attention(q: [usize; 2], k: [usize; 2], v: [usize; 2], kv_width: usize, kv_len: usize, pos0: usize, heads: usize, kv_heads: usize, head_dim: usize) -> Result<()> {
    same_shape(k, v, "attention k/v")?;
    if q[1] != heads * head_dim || k[1] != kv_width || q[0] != k[0] || kv_len != pos0 || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(Error::shape(format!("attention: q {q:?}, k {k:?}, cache of {kv_len} at position {pos0}, {heads} heads over {kv_heads}")));
    }
    Ok(())
}
