// Adapter factors stored as signed 16-bit codes, two per arena word (value 2i in the low
// half), each factor followed by one f32 step per rank (FactorFormat::I16): half the bytes
// of f32, and exact codes rather than f16's rounding. `lora_at` gives the code; the steps of
// rank k (A's and B's) multiply the shrink's T[k] once, so the expand reads codes only.
fn lora_at(off: u32, j: u32) -> f32 {
    let w = arena[off + (j >> 1u)];
    // Shift the wanted half to the top, then sign-extend it down.
    return f32(bitcast<i32>(w << (16u - 16u * (j & 1u))) >> 16u);
}

// A [rank, cols] at a_off and B [rows, rank] at b_off: rank k's step in each, multiplied.
fn lora_rank_scale(a_off: u32, b_off: u32, rank: u32, cols: u32, rows: u32, k: u32) -> f32 {
    let sa = bitcast<f32>(arena[a_off + (rank * cols + 1u) / 2u + k]);
    let sb = bitcast<f32>(arena[b_off + (rows * rank + 1u) / 2u + k]);
    return sa * sb;
}
