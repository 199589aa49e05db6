// Adapter factors stored as f16, two values per arena word (A and B each start on a word):
// half the bytes a decode step reads for its adapters. No shader-f16 needed: the halves are
// widened with unpack2x16float. DoRA gains stay f32 words.
fn lora_at(off: u32, j: u32) -> f32 {
    return unpack2x16float(arena[off + (j >> 1u)])[j & 1u];
}

// Factors are stored as they are: no per-rank step (see arena_i16.wgsl).
fn lora_rank_scale(a_off: u32, b_off: u32, rank: u32, cols: u32, rows: u32, k: u32) -> f32 {
    return 1.0;
}
