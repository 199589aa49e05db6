// Reading adapter factors from a layer's arena (`arena: array<u32>`, declared by the kernel).
// Each adapter has its own format (`FactorFormat::code`, in the high half of a route entry's
// rank word): f32, one word per value; f16, two halves per word; int16, two codes per word
// (value 2i in the low half) and then one f32 step per rank. DoRA gains are always f32 words.
// A format is uniform over a route entry: the switch diverges only where one workgroup
// serves entries of different formats (lora_matmul's rows), which costs speed, not results.

const FACTORS_F16: u32 = 1u;
const FACTORS_I16: u32 = 2u;

// Value j of the factor at `off` (for int16 the code: `lora_rank_scale` has the steps).
fn lora_at(fmt: u32, off: u32, j: u32) -> f32 {
    switch fmt {
        case FACTORS_F16: {
            return unpack2x16float(arena[off + (j >> 1u)])[j & 1u];
        }
        case FACTORS_I16: {
            let w = arena[off + (j >> 1u)];
            // Shift the wanted half to the top, then sign-extend it down.
            return f32(bitcast<i32>(w << (16u - 16u * (j & 1u))) >> 16u);
        }
        default: {
            return bitcast<f32>(arena[off + j]);
        }
    }
}

// int16: A [rank, cols] at a_off and B [rows, rank] at b_off, rank k's step in each,
// multiplied (the shrink applies it to T[k]); 1 for the formats stored as values.
fn lora_rank_scale(fmt: u32, a_off: u32, b_off: u32, rank: u32, cols: u32, rows: u32, k: u32) -> f32 {
    if (fmt != FACTORS_I16) {
        return 1.0;
    }
    let sa = bitcast<f32>(arena[a_off + (rank * cols + 1u) / 2u + k]);
    let sb = bitcast<f32>(arena[b_off + (rows * rank + 1u) / 2u + k]);
    return sa * sb;
}
