//! The GPU-side layouts, each defined once: every struct here mirrors the WGSL struct of the
//! same name in `shaders/` field by field (`tests/gpu_layouts.rs` parses the shaders and
//! checks names, offsets and sizes against `LAYOUTS`).

/// A `#[repr(C)]` plain-old-data struct whose field offsets are listed for the layout test.
macro_rules! gpu_structs {
    ($($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty,)* })*) => {
        $(
            $(#[$m])*
            #[repr(C)]
            #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
            pub struct $name { $($(#[$fm])* pub $f: $t,)* }
        )*
        /// (WGSL struct name, size in bytes, [(field, byte offset)]) of every GPU-side struct.
        pub const LAYOUTS: &[(&str, usize, &[(&str, usize)])] = &[
            $((stringify!($name), std::mem::size_of::<$name>(), &[$((stringify!($f), std::mem::offset_of!($name, $f)),)*]),)*
        ];
    };
}

gpu_structs! {
    /// One (row, adapter) pair of a call's route table (`routes.wgsl`), after the table's
    /// `row_start` words.
    pub struct RouteEntry {
        pub row: u32,
        pub a_off: u32,
        pub b_off: u32,
        /// The rank, and `FactorFormat::code` above bit 16.
        pub rank_format: u32,
        /// Offset of this entry's `rank` values in the T scratch.
        pub t_off: u32,
        pub coef: f32,
        /// DoRA gain offset (`NO_GAIN` for plain LoRA), and the call's weight on the adapter.
        pub g_off: u32,
        pub gw: f32,
    }

    /// The fused linear's kernels (`linear_io.wgsl`: shrink, matvec, matmul, row norms).
    pub struct LinearParams {
        /// Input rows.
        pub n: u32,
        /// In features.
        pub cols: u32,
        /// Output rows of the group this dispatch covers, from group row `row0`.
        pub rows: u32,
        pub row0: u32,
        /// Where group row `row0` sits in the bound weight chunk.
        pub w_row0: u32,
        /// Row stride of the output, and the column group row 0 lands in.
        pub out_cols: u32,
        pub col0: u32,
        /// Weights in the group (1..=3) and where each ends, in group rows.
        pub parts: u32,
        pub end0: u32,
        pub end1: u32,
        pub end2: u32,
        /// Words where the route entries and the T scratch start in the call's `lora` buffer.
        pub entries: u32,
        pub t_base: u32,
        /// Some entry has a DoRA gain: the base term is kept apart to be scaled.
        pub dora: u32,
        pub eps: f32,
        /// Workgroups along x (outputs are spread over x and y).
        pub wg_x: u32,
    }

    /// Element-wise epilogues of the unfused path (`combine.wgsl`).
    pub struct CombineParams {
        pub len: u32,
        /// Row width of the output.
        pub cols: u32,
        /// Row width of the input (silu·mul: gate and up side by side).
        pub in_cols: u32,
        pub pad: u32,
    }

    /// Attention over the KV cache (`attention_io.wgsl`).
    pub struct AttnParams {
        /// The span's rows, its first row in the batch, its first position.
        pub rows: u32,
        pub row0: u32,
        pub pos0: u32,
        pub heads: u32,
        pub kv_heads: u32,
        pub head_dim: u32,
        /// 0: no window.
        pub window: u32,
        /// Row stride of the qkv tensor.
        pub q_stride: u32,
        pub scale: f32,
        /// Decode: chunks the positions are split into, and positions per chunk.
        pub chunks: u32,
        pub chunk: u32,
        /// Scores soft-capped to softcap·tanh(s/softcap); 0: not capped.
        pub softcap: f32,
    }

    /// Element-wise scale or soft-cap (`map.wgsl`).
    pub struct MapParams {
        pub len: u32,
        pub c: f32,
        pub pad0: u32,
        pub pad1: u32,
    }

    /// Embedding gather (`embed.wgsl`).
    pub struct EmbedParams {
        pub n: u32,
        pub cols: u32,
        pub row0: u32,
        pub rows: u32,
    }

    /// DoRA gains (`dora_gain.wgsl`).
    pub struct DoraParams {
        /// In features.
        pub cols: u32,
        /// Weight rows in this chunk, and the first output row they hold.
        pub rows: u32,
        pub out_base: u32,
        pub rank: u32,
        pub a_off: u32,
        pub b_off: u32,
        pub g_off: u32,
        pub scale: f32,
        /// All rows of the weight (B's length).
        pub out_rows: u32,
        /// The factors' format (arena.wgsl).
        pub fmt: u32,
        /// Where output row `out_base` sits in the bound chunk.
        pub w_row0: u32,
        pub pad: u32,
    }

    /// The repetition penalty (`penalize.wgsl`).
    pub struct PenalizeParams {
        pub n: u32,
        pub pad0: u32,
        pub pad1: u32,
        pub pad2: u32,
    }

    /// Structured output's token mask (`mask.wgsl`).
    pub struct MaskParams {
        pub n: u32,
        pub vocab: u32,
        pub words: u32,
        pub pad: u32,
    }

    /// Top-k selection (`top_k.wgsl`).
    pub struct TopKParams {
        pub vocab: u32,
        pub k: u32,
        /// The (Σ exp(l − max), mass) pair after the k: some row has inv_t > 0 or needs_lse.
        pub need_mass: u32,
        /// Some row wants its log-sum-exp (`SelectRow::lse`): the pair's first word.
        pub need_lse: u32,
    }

    /// The pick from a selection (`pick.wgsl`).
    pub struct PickParams {
        pub k: u32,
        pub need_mass: u32,
        pub rows: u32,
        /// `DRAW_MARGIN`.
        pub margin: f32,
    }

    /// A row's draw (`Draw` in select.rs, as `pick.wgsl` reads it).
    pub struct Draw {
        /// 0: the CPU picks (the row brought no draw).
        pub wanted: u32,
        /// 1 / temperature; 0: greedy.
        pub inv_t: f32,
        /// 0: all candidates.
        pub top_k: u32,
        pub top_p: f32,
        pub min_p: f32,
        /// The sampler's next uniform in [0, 1).
        pub uniform: f32,
        /// The candidates are the row's best only, and the mass is the whole row's.
        pub partial: u32,
        pub pad: u32,
    }
}

/// `RouteEntry::g_off` of adapters without a DoRA gain (`routes.wgsl`'s `NO_GAIN`).
pub use crate::backend::routing::NO_GAIN;
