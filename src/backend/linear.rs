//! The fused linear op: `out ⟵ epilogue(norm(x)·Wᵢᵀ + Σ coef·(norm(x)·Aᵀ)·Bᵀ)` for one or
//! more weights sharing an input (q, k and v; gate and up) and one adapter arena. A norm in
//! the prologue and an add or gated activation in the epilogue cost no passes of their own: the
//! forward pass of a transformer layer is four of these and one attention.

use super::routing::Routes;
use super::{Backend, Shaped};
use crate::error::{Error, Result};

/// One weight of a fused linear, and which adapters apply to which of its input rows.
pub struct Part<'a, B: Backend> {
    pub weight: &'a B::Weight,
    pub routes: Routes,
}

/// What becomes of the parts' results `yᵢ` (`[n, outᵢ]`).
pub enum Epilogue<'a, T> {
    /// Side by side in `out` (`[n, Σ outᵢ]`), plus `bias` (`[1, Σ outᵢ]`) when given.
    Store { out: &'a mut T, bias: Option<&'a T> },
    /// `out += y₀` (one part): the residual stream.
    Add(&'a mut T),
    /// `out = act(y₀)·y₁` (two parts of one width): a gated MLP's gate and up.
    Glu(&'a mut T, Act),
}

/// The activation of a gated MLP's gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    /// SwiGLU (Llama, Qwen, Mistral, Phi-3).
    Silu,
    /// GeGLU with GELU's tanh form, PyTorch's `gelu(approximate='tanh')` (Gemma).
    GeluTanh,
}

impl<T> Epilogue<'_, T> {
    /// The tensor written.
    pub fn target(&self) -> &T {
        match self {
            Epilogue::Store { out, .. } | Epilogue::Add(out) | Epilogue::Glu(out, _) => out,
        }
    }
}

/// A checked fused linear; only `Linear::new` makes one, so a backend's `linear` trusts it.
pub struct Linear<'a, B: Backend> {
    /// The input, `[n, in]`.
    pub x: &'a B::Tensor,
    /// RMSNorm of each input row first, with this gain (`[1, in]`) and epsilon: for the
    /// adapters' shrink too.
    pub norm: Option<(&'a B::Tensor, f32)>,
    pub parts: Vec<Part<'a, B>>,
    /// Where every part's adapters live.
    pub arena: &'a B::Arena,
    pub epilogue: Epilogue<'a, B::Tensor>,
    checked: (),
}

impl<'a, B: Backend> Linear<'a, B> {
    pub fn new(
        x: &'a B::Tensor,
        norm: Option<(&'a B::Tensor, f32)>,
        parts: Vec<Part<'a, B>>,
        arena: &'a B::Arena,
        epilogue: Epilogue<'a, B::Tensor>,
    ) -> Result<Self> {
        let [n, inp] = x.shape();
        let bad = |what: String| Err(Error::shape(format!("linear: x [{n}, {inp}], {what}")));
        if parts.is_empty() {
            return bad("no weights".into());
        }
        for p in &parts {
            let [out, cols] = p.weight.shape();
            if cols != inp || p.routes.n_rows() != n {
                return bad(format!("W [{out}, {cols}] with routes for {} rows", p.routes.n_rows()));
            }
        }
        if let Some((g, _)) = norm {
            if g.shape() != [1, inp] {
                return bad(format!("norm gain {:?}", g.shape()));
            }
        }
        let outs: Vec<usize> = parts.iter().map(|p| p.weight.shape()[0]).collect();
        let total: usize = outs.iter().sum();
        let want = match &epilogue {
            Epilogue::Store { bias: Some(b), .. } if b.shape() != [1, total] => return bad(format!("bias {:?} for {total} outputs", b.shape())),
            Epilogue::Store { .. } => total,
            Epilogue::Add(_) if outs.len() != 1 => return bad(format!("{} weights added to one output", outs.len())),
            Epilogue::Add(_) => total,
            Epilogue::Glu(..) if outs.len() != 2 || outs[0] != outs[1] => return bad(format!("gated activation of outputs {outs:?}")),
            Epilogue::Glu(..) => outs[0],
        };
        if epilogue.target().shape() != [n, want] {
            return bad(format!("output {:?}, expected [{n}, {want}]", epilogue.target().shape()));
        }
        Ok(Linear { x, norm, parts, arena, epilogue, checked: () })
    }

    /// Rows of the input.
    pub fn rows(&self) -> usize {
        self.x.shape()[0]
    }

    /// Columns of the input (every weight's in features).
    pub fn cols(&self) -> usize {
        let _ = self.checked;
        self.x.shape()[1]
    }
}
