//! The op interface every backend implements, and only that: tensors and weights where the
//! backend computes, adapter storage (`ArenaStore`), the fused linear (`linear::Linear`),
//! and the model's other ops (`ops::ModelOps`). The adapter engine and the model are written
//! once over it; `cpu` runs ops eagerly, `gpu` records them as compute passes and only syncs
//! on `read`. Each op's shape contract is checked once, here, when its descriptor is built
//! (`Linear::new`, `Attend::new`, `ops::embed`, ...): kernels trust their arguments.

pub mod factors;
pub mod linear;
pub mod ops;
pub mod routing;
pub mod select;

use crate::error::{Error, Result};
use crate::formats::weights::HostWeight;
use factors::FactorFormat;
use linear::Linear;
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

/// A row-major matrix that knows its shape (tensors and weights of every backend).
pub trait Shaped {
    /// `[rows, cols]`.
    fn shape(&self) -> [usize; 2];
}

impl Shaped for HostWeight {
    fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
}

/// One arena of adapter factors (`lora::LoraGroup` allocates its words), held where the
/// backend computes. Offsets and lengths are in 32-bit words.
pub trait ArenaStore {
    /// Makes room for `words` words, keeping the contents (one growth per adapter load
    /// rather than one per factor written).
    fn reserve(&mut self, _words: usize) -> Result<()> {
        Ok(())
    }
    /// Writes an adapter's `A [rank, in]` at word `offset` in `format`, in the layout this
    /// backend's shrink reads (`format.words` words).
    fn write_a(&mut self, offset: usize, a: &[f32], rank: usize, format: FactorFormat) -> Result<()> {
        self.write(offset, a, rank, format)
    }
    /// Writes adapter factors (B `[out, rank]`, or A) at word `offset` in `format`
    /// (`format.words(data.len(), rank)` words), growing the arena as needed.
    fn write(&mut self, offset: usize, data: &[f32], rank: usize, format: FactorFormat) -> Result<()>;
    /// Keeps only the word ranges in `keep`, each moved from `from` to `to` (ascending), and
    /// gives back all storage past word `len`: unloading an adapter returns its words
    /// wherever it sat. On an error reported here the arena is unchanged (on the web an
    /// out-of-memory error can surface only later, as a device error).
    fn repack(&mut self, keep: &[ArenaMove], len: usize) -> Result<()>;
    /// Words of storage held now.
    fn capacity(&self) -> usize;
}

pub trait Backend: Clone + 'static {
    /// A row-major f32 matrix living where this backend computes.
    type Tensor: Shaped;
    /// A base weight in its storage format.
    type Weight: Shaped;
    /// One group's packed adapter factors, addressed by `Slot` offsets in 32-bit words.
    type Arena: ArenaStore;

    fn kind(&self) -> BackendKind;
    /// Human-readable device description (GPU adapter name, or the CPU path in use).
    fn describe(&self) -> String;

    fn tensor(&self, data: &[f32], rows: usize, cols: usize) -> Result<Self::Tensor>;
    /// An output tensor; its contents are unspecified until an op writes it.
    fn empty(&self, rows: usize, cols: usize) -> Result<Self::Tensor>;
    fn read(&self, t: &Self::Tensor) -> impl Future<Output = Result<Vec<f32>>>;

    /// Weights that one fused linear reads together (q, k and v; gate and up), all with the
    /// same columns: a backend may keep them in one buffer, so that one pass reads them all.
    fn weights(&self, ws: Vec<HostWeight>) -> Result<Vec<Self::Weight>>;
    fn weight(&self, w: HostWeight) -> Result<Self::Weight> {
        Ok(self.weights(vec![w])?.remove(0))
    }
    fn arena(&self) -> Self::Arena;
    /// How this backend stores adapter factors unless told otherwise (an adapter may ask
    /// for another format: `LoraGroup::add_adapter`).
    fn factor_format(&self) -> FactorFormat {
        FactorFormat::F32
    }
    /// The format this backend stores when `f` is asked for (the CPU has no f16 factors:
    /// its 16-bit format is int16).
    fn storable(&self, f: FactorFormat) -> FactorFormat {
        f
    }
    /// DoRA: writes the per-output gain `m_o / ‖W_o + scale·B_o·A‖₂` at `d.g_off`, for an
    /// adapter whose A and B are already in the arena (also given as `d.a`, `d.b`), without
    /// materialising `W + scale·B·A`.
    fn dora_gain(&self, w: &Self::Weight, arena: &mut Self::Arena, d: &DoraGain<'_>) -> Result<()>;

    /// The fused linear (`Linear`: an optional RMSNorm of the input, one or more weights with
    /// their adapters, and what becomes of the results), W read once, outputs written once.
    fn linear(&self, op: Linear<'_, Self>) -> Result<()>;
}
