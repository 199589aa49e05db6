// Adapter factors stored as f32: one arena word per value. The kernel declares
// `arena: array<u32>` (DoRA gains are always f32 words, read with bitcast).
fn lora_at(off: u32, j: u32) -> f32 {
    return bitcast<f32>(arena[off + j]);
}
