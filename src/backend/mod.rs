//! The small set of ops every backend implements. The layer (and later the model and the
//! adapter engine) is written once over this trait; `cpu` runs ops eagerly, `gpu` records
//! them as compute passes and only syncs on `read`.

pub mod factors;
pub mod ops;
pub mod routing;
pub mod select;

use crate::error::{Error, Result};
use crate::formats::weights::HostWeight;
use factors::FactorFormat;
use routing::Routes;
use std::future::Future;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Cpu,
    Gpu,
}

impl BackendKind {
    /// The name the JS API reports in `rt.backend`.
    pub fn js_name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Gpu => "webgpu",
        }
    }
}

/// What the caller asked for at runtime creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    WebGpu,
    Cpu,
}

impl BackendChoice {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "webgpu" | "gpu" => Ok(BackendChoice::WebGpu),
            "cpu" => Ok(BackendChoice::Cpu),
            _ => Err(Error::config(format!("unknown backend {s:?} (expected \"auto\", \"webgpu\" or \"cpu\")"))),
        }
    }
}

/// A live adapter's words moving within its layer's arena when the arena is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaMove {
    pub from: usize,
    pub to: usize,
    pub len: usize,
}

/// One DoRA adapter's factors and where they live in a layer's arena.
pub struct DoraGain<'a> {
    pub a: &'a [f32],
    pub b: &'a [f32],
    pub magnitude: &'a [f32],
    pub rank: usize,
    pub scale: f32,
    pub a_off: usize,
    pub b_off: usize,
    pub g_off: usize,
    /// How A and B are stored (the gain uses them as stored).
    pub format: FactorFormat,
}

pub trait Backend: Clone + 'static {
    /// A row-major f32 matrix living where this backend computes.
    type Tensor;
    /// A base weight in its storage format.
    type Weight;
    /// One layer's packed adapter factors, addressed by `Slot` offsets in 32-bit words.
    type Arena;

    fn kind(&self) -> BackendKind;
    /// Human-readable device description (GPU adapter name, or the CPU path in use).
    fn describe(&self) -> String;

    fn tensor(&self, data: &[f32], rows: usize, cols: usize) -> Result<Self::Tensor>;
    /// An output tensor; its contents are unspecified until an op writes it.
    fn empty(&self, rows: usize, cols: usize) -> Result<Self::Tensor>;
    fn read(&self, t: &Self::Tensor) -> impl Future<Output = Result<Vec<f32>>>;

    fn weight(&self, w: HostWeight) -> Result<Self::Weight>;
    /// DoRA: writes the per-output gain `m_o / ‖W_o + scale·B_o·A‖₂` at `d.g_off`, for an
    /// adapter whose A and B are already in the arena (also given as `d.a`, `d.b`), without
    /// materialising `W + scale·B·A`.
    fn dora_gain(&self, w: &Self::Weight, arena: &mut Self::Arena, d: &DoraGain<'_>) -> Result<()>;
    fn arena(&self) -> Self::Arena;
    /// How this backend stores adapter factors unless told otherwise (an adapter may ask
    /// for another format: `LoraLinear::add_adapter_as`).
    fn factor_format(&self) -> FactorFormat {
        FactorFormat::F32
    }
    /// The format this backend stores when `f` is asked for (the CPU has no f16 factors:
    /// its 16-bit format is int16).
    fn storable(&self, f: FactorFormat) -> FactorFormat {
        f
    }
    /// Makes room for `words` words, keeping the contents (one growth per adapter load
    /// rather than one per factor written).
    fn arena_reserve(&self, _arena: &mut Self::Arena, _words: usize) -> Result<()> {
        Ok(())
    }
    /// Writes an adapter's `A [rank, in]` at word `offset` in `format`, in the layout this
    /// backend's shrink reads (`format.words` words).
    fn arena_write_a(&self, arena: &mut Self::Arena, offset: usize, a: &[f32], rank: usize, format: FactorFormat) -> Result<()> {
        self.arena_write(arena, offset, a, rank, format)
    }
    /// Writes adapter factors (B `[out, rank]`, or A) at word `offset` in `format`
    /// (`format.words(data.len(), rank)` words), growing the arena as needed.
    fn arena_write(&self, arena: &mut Self::Arena, offset: usize, data: &[f32], rank: usize, format: FactorFormat) -> Result<()>;
    /// Keeps only the word ranges in `keep`, each moved from `from` to `to` (ascending, as
    /// `LoraLinear` packs them), and gives back all storage past word `len`: unloading an
    /// adapter returns its words wherever it sat. On an error reported here the arena is
    /// unchanged (on the web an out-of-memory error can surface only later, as a device error).
    fn arena_repack(&self, arena: &mut Self::Arena, keep: &[ArenaMove], len: usize) -> Result<()>;
    /// Words of storage the arena holds now.
    fn arena_capacity(&self, arena: &Self::Arena) -> usize;

    /// `y[n, out] = x[n, in]·Wᵀ + Σ_entries coef·(x_row·Aᵀ)·Bᵀ`, fused: W read once, y
    /// written once. Every element of `y` is written.
    fn lora_linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Weight,
        arena: &Self::Arena,
        routes: &Routes,
        y: &mut Self::Tensor,
    ) -> Result<()>;
}

/// The shape contract of `lora_linear`: x [n, in], W [out, in], y [n, out], routes for n rows.
pub fn check_linear_shapes(x: [usize; 2], w: [usize; 2], y: [usize; 2], routes: &Routes) -> Result<()> {
    if x[1] != w[1] || y != [x[0], w[0]] || routes.n_rows() != x[0] {
        return Err(Error::shape(format!(
            "lora_linear: x {x:?}, W {w:?}, y {y:?} and routes for {} rows do not fit",
            routes.n_rows()
        )));
    }
    Ok(())
}
