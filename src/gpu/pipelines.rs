//! WGSL kernels, compiled once per (kernel, variant) and cached. A kernel is composed from
//! snippets (`shaders/`, one per file): a weight-format snippet (`weights_*.wgsl`, which
//! owns binding 0 and the decode functions), shared declarations, and the kernel body; its
//! variants (norm, epilogue, bias, combine mode) are override constants, so a variant's
//! pipeline has no run-time branch on them.

use super::context::ShaderFlags;
use crate::backend::linear::Act;
use crate::formats::weights::WeightFormat;
use std::cell::RefCell;
use std::collections::HashMap;

macro_rules! shaders {
    ($($name:ident = $file:literal;)*) => {
        $(const $name: &str = include_str!(concat!("../../shaders/", $file));)*
        /// Every shader file, by name (the layout test parses them).
        pub const SHADER_FILES: &[(&str, &str)] = &[$(($file, $name),)*];
    };
}

shaders! {
    WEIGHTS_F32 = "weights_f32.wgsl";
    WEIGHTS_F16 = "weights_f16.wgsl";
    WEIGHTS_BF16 = "weights_bf16.wgsl";
    WEIGHTS_BYTES = "weights_bytes.wgsl";
    WEIGHTS_QUANT = "weights_quant.wgsl";
    WEIGHTS_GROUPED = "weights_grouped.wgsl";
    WEIGHTS_W8 = "weights_w8.wgsl";
    K8_RUNS = "k8_runs.wgsl";
    ARENA = "arena.wgsl";
    ROUTES = "routes.wgsl";
    LINEAR_PARAMS = "linear_params.wgsl";
    LINEAR_IO = "linear_io.wgsl";
    LINEAR_LORA = "linear_lora.wgsl";
    SHRINK = "shrink.wgsl";
    MATVEC = "matvec.wgsl";
    MATMUL = "matmul.wgsl";
    RMS = "rms.wgsl";
    NORM_ADD = "norm_add.wgsl";
    MAP = "map.wgsl";
    COMBINE = "combine.wgsl";
    EMBED = "embed.wgsl";
    ATTENTION_IO = "attention_io.wgsl";
    ACT = "act.wgsl";
    ROPE_APPEND = "rope_append.wgsl";
    HEAD_NORM = "head_norm.wgsl";
    ATTENTION_SPLIT = "attention_split.wgsl";
    ATTENTION_MERGE = "attention_merge.wgsl";
    ATTENTION_PREFILL = "attention_prefill.wgsl";
    PENALIZE = "penalize.wgsl";
    MASK = "mask.wgsl";
    TOP_K = "top_k.wgsl";
    PICK = "pick.wgsl";
    DORA_GAIN = "dora_gain.wgsl";
    REDUCE = "reduce.wgsl";
    REDUCE_SUBGROUPS = "reduce_subgroups.wgsl";
    REDUCE_SCALAR = "reduce_scalar.wgsl";
}

/// The WGSL decode snippet for a weight format (binding 0, `w_at`, `w_at4`, `k8`/`w8`).
pub fn weights_snippet(f: WeightFormat) -> String {
    let (per, bytes) = f.block();
    let quant = |id: u32| format!("const QUANT: u32 = {id}u;\nconst BLOCK_BYTES: u32 = {bytes}u;\n{WEIGHTS_BYTES}\n{WEIGHTS_QUANT}");
    let grouped = |id: u32| {
        let consts = format!("const QUANT: u32 = {id}u;\nconst BLOCK_W: u32 = {per}u;\nconst BLOCK_BYTES: u32 = {bytes}u;\nconst GROUP: u32 = {}u;", f.group());
        [&consts, WEIGHTS_BYTES, WEIGHTS_GROUPED].join("\n")
    };
    let format = match f {
        WeightFormat::F32 => [WEIGHTS_F32, K8_RUNS].join("\n"),
        WeightFormat::F16 => [WEIGHTS_F16, K8_RUNS].join("\n"),
        WeightFormat::BF16 => [WEIGHTS_BF16, K8_RUNS].join("\n"),
        WeightFormat::Q8_0 => quant(0),
        WeightFormat::Q4_0 => quant(1),
        WeightFormat::Q4_1 => quant(2),
        WeightFormat::Q5_0 => grouped(3),
        WeightFormat::Q5_1 => grouped(4),
        WeightFormat::IQ4_NL => grouped(5),
        WeightFormat::Q2_K => grouped(6),
        WeightFormat::Q3_K => grouped(7),
        WeightFormat::Q4_K => grouped(8),
        WeightFormat::Q5_K => grouped(9),
        WeightFormat::Q6_K => grouped(10),
    };
    [WEIGHTS_W8, &format].join("\n")
}

/// How the fused linear's input is normalized (`linear_io.wgsl`'s NORM).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Norm {
    None = 0,
    /// RMS computed by the kernel itself (decode).
    Inline = 1,
    /// RMS read from a buffer rms.wgsl filled (prefill).
    Rows = 2,
}

/// What the fused linear does with its results (`linear_io.wgsl`'s EPILOGUE and BIAS;
/// `combine.wgsl`'s MODE for the unfused path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Epi {
    Store { bias: bool },
    Add,
    Glu(Act),
}

impl Epi {
    pub fn code(self) -> u32 {
        match self {
            Epi::Store { .. } => 0,
            Epi::Add => 1,
            Epi::Glu(Act::Silu) => 2,
            Epi::Glu(Act::GeluTanh) => 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Shrink(Norm),
    /// Decode shape: a few rows, bandwidth-bound.
    Matvec(WeightFormat, Norm, Epi),
    /// Prefill shape: tiled (no silu·mul epilogue: `Combine` does it).
    Matmul(WeightFormat, Norm, Epi),
    RowNorms,
    /// x += gain·y/RMS(y) per row (`norm_add.wgsl`).
    NormAdd,
    /// 0: x *= c, 1: x = c·tanh(x/c) (`map.wgsl`).
    Map(u32),
    /// 0: + bias, 1: + y, 2: silu·mul, 3: gelu·mul (`combine.wgsl`).
    Combine(u32),
    Embed(WeightFormat),
    RopeAppend,
    /// Per-head RMSNorm of queries and keys (Qwen3), before RoPE.
    HeadNorm,
    /// Decode attention split over the context; `true`: RoPE and the cache append inside (a
    /// span of one row).
    AttentionSplit(bool),
    AttentionMerge,
    AttentionPrefill,
    Penalize,
    Mask,
    TopK,
    Pick,
    DoraGain(WeightFormat),
}

impl Kernel {
    /// The kernel's WGSL: its snippets in order, after the `enable` directives it needs.
    pub fn source(self, flags: ShaderFlags) -> String {
        let reduce = [if flags.subgroups { REDUCE_SUBGROUPS } else { REDUCE }, REDUCE_SCALAR].join("\n");
        let linear = |f: WeightFormat, body: &str| [&weights_snippet(f), ARENA, ROUTES, LINEAR_PARAMS, ACT, LINEAR_IO, LINEAR_LORA, body].join("\n");
        let body = match self {
            Kernel::Shrink(_) => [ARENA, ROUTES, LINEAR_PARAMS, &reduce, SHRINK].join("\n"),
            Kernel::Matvec(f, ..) => [&linear(f, MATVEC), reduce.as_str()].join("\n"),
            Kernel::Matmul(f, ..) => {
                let tile_t = if flags.f16_math { "alias tile_t = f16;" } else { "alias tile_t = f32;" };
                [tile_t, &linear(f, MATMUL)].join("\n")
            }
            Kernel::RowNorms => [LINEAR_PARAMS, &reduce, RMS].join("\n"),
            Kernel::NormAdd => [LINEAR_PARAMS, &reduce, NORM_ADD].join("\n"),
            Kernel::Map(_) => [ACT, MAP].join("\n"),
            Kernel::Combine(_) => [ACT, COMBINE].join("\n"),
            Kernel::Embed(f) => [&weights_snippet(f), EMBED].join("\n"),
            Kernel::RopeAppend => [ACT, ATTENTION_IO, ROPE_APPEND].join("\n"),
            Kernel::HeadNorm => [ACT, ATTENTION_IO, HEAD_NORM].join("\n"),
            Kernel::AttentionSplit(_) => [&reduce, ACT, ATTENTION_IO, ATTENTION_SPLIT].join("\n"),
            Kernel::AttentionMerge => [ACT, ATTENTION_IO, ATTENTION_MERGE].join("\n"),
            Kernel::AttentionPrefill => [ACT, ATTENTION_IO, ATTENTION_PREFILL].join("\n"),
            Kernel::Penalize => PENALIZE.to_string(),
            Kernel::Mask => MASK.to_string(),
            Kernel::TopK => TOP_K.to_string(),
            Kernel::Pick => PICK.to_string(),
            Kernel::DoraGain(f) => [&weights_snippet(f), ARENA, &reduce, DORA_GAIN].join("\n"),
        };
        // Directives lead the module; enabling a feature the device has is harmless where
        // a kernel does not use it. Naga (native) rejects `enable subgroups` and gates the
        // builtins on the device feature instead; browsers require the directive.
        let f16 = flags.f16_math && matches!(self, Kernel::Matmul(..));
        let enable_subgroups = flags.subgroups && cfg!(target_arch = "wasm32");
        let enables = [(f16, "enable f16;\n"), (enable_subgroups, "enable subgroups;\n")];
        enables.iter().filter(|e| e.0).map(|e| e.1).chain([body.as_str()]).collect()
    }

    /// The override constants that pick this variant.
    fn constants(self) -> Vec<(&'static str, f64)> {
        match self {
            Kernel::Shrink(n) => vec![("NORM", n as u32 as f64)],
            Kernel::Matvec(_, n, e) | Kernel::Matmul(_, n, e) => {
                vec![("NORM", n as u32 as f64), ("EPILOGUE", e.code() as f64), ("BIAS", matches!(e, Epi::Store { bias: true }) as u32 as f64)]
            }
            Kernel::Combine(mode) | Kernel::Map(mode) => vec![("MODE", mode as f64)],
            Kernel::AttentionSplit(fused) => vec![("FUSED", fused as u32 as f64)],
            _ => vec![],
        }
    }
}

#[derive(Clone)]
pub struct Pipeline {
    /// Unique id, part of bind-group cache keys.
    pub id: u64,
    pub pipeline: wgpu::ComputePipeline,
}

/// One device's pipelines (its `ShaderFlags` are fixed, so not part of the cache key).
pub struct Pipelines {
    cache: RefCell<HashMap<Kernel, Pipeline>>,
    flags: ShaderFlags,
}

impl Pipelines {
    pub fn new(flags: ShaderFlags) -> Pipelines {
        Pipelines { cache: Default::default(), flags }
    }

    /// How many pipelines have been compiled.
    pub fn len(&self) -> usize {
        self.cache.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, device: &wgpu::Device, kernel: Kernel, new_id: impl FnOnce() -> u64) -> Pipeline {
        if let Some(p) = self.cache.borrow().get(&kernel) {
            return p.clone();
        }
        let label = format!("{kernel:?}");
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(kernel.source(self.flags).into()),
        });
        let constants = kernel.constants();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
            cache: None,
        });
        let p = Pipeline { id: new_id(), pipeline };
        self.cache.borrow_mut().insert(kernel, p.clone());
        p
    }
}
