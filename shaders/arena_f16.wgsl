// Adapter factors stored as f16, two values per arena word (A and B each start on a word):
// half the bytes a decode step reads for its adapters. No shader-f16 needed: the halves are
// widened with unpack2x16float. DoRA gains stay f32 words.
fn lora_at(off: u32, j: u32) -> f32 {
    return unpack2x16float(arena[off + (j >> 1u)])[j & 1u];
}
