// Adapter factors stored as f32: one arena word per value. The kernel declares
// `arena: array<u32>` (DoRA gains are always f32 words, read with bitcast).
fn lora_at(off: u32, j: u32) -> f32 {
    return bitcast<f32>(arena[off + j]);
}

// Factors are stored as they are: no per-rank step (see arena_i16.wgsl).
fn lora_rank_scale(a_off: u32, b_off: u32, rank: u32, cols: u32, rows: u32, k: u32) -> f32 {
    return 1.0;
}
