//! WGSL kernels, compiled once per (kernel, weight format) and cached. Matmul kernels are
//! composed from a weight-format snippet (`weights_*.wgsl`, which owns binding 0 and the
//! decode functions), the shared bindings (`lora_linear_io.wgsl`) and the kernel body, so a
//! new format is one new snippet.

use super::context::ShaderFlags;
use crate::formats::weights::WeightFormat;
use std::cell::RefCell;
use std::collections::HashMap;

const WEIGHTS_F32: &str = include_str!("../../shaders/weights_f32.wgsl");
const WEIGHTS_F16: &str = include_str!("../../shaders/weights_f16.wgsl");
const WEIGHTS_BF16: &str = include_str!("../../shaders/weights_bf16.wgsl");
const WEIGHTS_QUANT: &str = include_str!("../../shaders/weights_quant.wgsl");
const ARENA: &str = include_str!("../../shaders/arena.wgsl");
const LORA_LINEAR_IO: &str = include_str!("../../shaders/lora_linear_io.wgsl");
const LORA_SHRINK: &str = include_str!("../../shaders/lora_shrink.wgsl");
const LORA_MATVEC: &str = include_str!("../../shaders/lora_matvec.wgsl");
const LORA_MATMUL: &str = include_str!("../../shaders/lora_matmul.wgsl");
const EMBED: &str = include_str!("../../shaders/embed.wgsl");
const RMS_NORM: &str = include_str!("../../shaders/rms_norm.wgsl");
const ADD: &str = include_str!("../../shaders/add.wgsl");
const SILU_MUL: &str = include_str!("../../shaders/silu_mul.wgsl");
const ROPE: &str = include_str!("../../shaders/rope.wgsl");
const ATTENTION_PARAMS: &str = include_str!("../../shaders/attention_params.wgsl");
const ATTENTION: &str = include_str!("../../shaders/attention.wgsl");
const ATTENTION_PREFILL: &str = include_str!("../../shaders/attention_prefill.wgsl");
const PENALIZE: &str = include_str!("../../shaders/penalize.wgsl");
const TOP_K: &str = include_str!("../../shaders/top_k.wgsl");
const PICK: &str = include_str!("../../shaders/pick.wgsl");
const DORA_GAIN: &str = include_str!("../../shaders/dora_gain.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");
const REDUCE_SUBGROUPS: &str = include_str!("../../shaders/reduce_subgroups.wgsl");
const REDUCE_SCALAR: &str = include_str!("../../shaders/reduce_scalar.wgsl");

/// The WGSL decode snippet for a weight format (binding 0, `w_at`, `w_at4`).
pub fn weights_snippet(f: WeightFormat) -> String {
    let quant = |id: u32| format!("const QUANT: u32 = {id}u;\nconst BLOCK_BYTES: u32 = {}u;\n{WEIGHTS_QUANT}", f.block().1);
    match f {
        WeightFormat::F32 => WEIGHTS_F32.into(),
        WeightFormat::F16 => WEIGHTS_F16.into(),
        WeightFormat::BF16 => WEIGHTS_BF16.into(),
        WeightFormat::Q8_0 => quant(0),
        WeightFormat::Q4_0 => quant(1),
        WeightFormat::Q4_1 => quant(2),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    LoraShrink,
    /// Decode shape: a few rows, bandwidth-bound.
    LoraMatvec(WeightFormat),
    /// Prefill shape: tiled.
    LoraMatmul(WeightFormat),
    /// Model ops (`model_ops.rs`).
    Embed(WeightFormat),
    RmsNorm,
    Add,
    SiluMul,
    Rope,
    Attention,
    AttentionPrefill,
    Penalize,
    TopK,
    Pick,
    DoraGain(WeightFormat),
}

impl Kernel {
    /// The kernel's WGSL: its snippets in order, after the `enable` directives it needs.
    pub fn source(self, flags: ShaderFlags) -> String {
        let reduce = [if flags.subgroups { REDUCE_SUBGROUPS } else { REDUCE }, REDUCE_SCALAR].join("\n");
        let body = match self {
            Kernel::LoraShrink => [ARENA, &reduce, LORA_SHRINK].join("\n"),
            Kernel::LoraMatvec(f) => [&weights_snippet(f), ARENA, LORA_LINEAR_IO, &reduce, LORA_MATVEC].join("\n"),
            Kernel::LoraMatmul(f) => {
                let tile_t = if flags.f16_math { "alias tile_t = f16;" } else { "alias tile_t = f32;" };
                [tile_t, &weights_snippet(f), ARENA, LORA_LINEAR_IO, LORA_MATMUL].join("\n")
            }
            Kernel::Embed(f) => [&weights_snippet(f), EMBED].join("\n"),
            Kernel::RmsNorm => [&reduce, RMS_NORM].join("\n"),
            Kernel::Add => ADD.to_string(),
            Kernel::SiluMul => SILU_MUL.to_string(),
            Kernel::Rope => ROPE.to_string(),
            Kernel::Attention => [&reduce, ATTENTION_PARAMS, ATTENTION].join("\n"),
            Kernel::AttentionPrefill => [ATTENTION_PARAMS, ATTENTION_PREFILL].join("\n"),
            Kernel::Penalize => PENALIZE.to_string(),
            Kernel::TopK => TOP_K.to_string(),
            Kernel::Pick => PICK.to_string(),
            Kernel::DoraGain(f) => [&weights_snippet(f), ARENA, &reduce, DORA_GAIN].join("\n"),
        };
        // Directives lead the module; enabling a feature the device has is harmless where
        // a kernel does not use it. Naga (native) rejects `enable subgroups` and gates the
        // builtins on the device feature instead; browsers require the directive.
        let f16 = flags.f16_math && matches!(self, Kernel::LoraMatmul(_));
        let enable_subgroups = flags.subgroups && cfg!(target_arch = "wasm32");
        let enables = [(f16, "enable f16;\n"), (enable_subgroups, "enable subgroups;\n")];
        enables.iter().filter(|e| e.0).map(|e| e.1).chain([body.as_str()]).collect()
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
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let p = Pipeline { id: new_id(), pipeline };
        self.cache.borrow_mut().insert(kernel, p.clone());
        p
    }
}
