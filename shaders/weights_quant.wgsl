// GGML block-quantized weight rows (Q8_0, Q4_0, Q4_1), kept as the file stores them: blocks
// of 32 weights, each an f16 scale d (Q4_1: then an f16 min m) and the quants. Blocks are
// 34 / 18 / 20 bytes, so reads are byte-addressed into the word array. The composing code
// prepends `const BLOCK_BYTES`, `const QUANT: u32` (0: Q8_0, 1: Q4_0, 2: Q4_1).
@group(0) @binding(0) var<storage, read> w: array<u32>;

fn byte_at(b: u32) -> u32 {
    return (w[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

fn half_at(b: u32) -> f32 {
    return unpack2x16float(byte_at(b) | (byte_at(b + 1u) << 8u)).x;
}

fn w_at(o: u32, k: u32, cols: u32) -> f32 {
    let base = (o * (cols / 32u) + k / 32u) * BLOCK_BYTES;
    let j = k % 32u;
    let d = half_at(base);
    if (QUANT == 0u) {
        let q = byte_at(base + 2u + j);
        return d * f32(i32(q << 24u) >> 24u); // sign-extend the i8
    }
    let qs = base + select(2u, 4u, QUANT == 2u);
    let q = (byte_at(qs + j % 16u) >> select(0u, 4u, j >= 16u)) & 0xfu;
    if (QUANT == 1u) {
        return d * (f32(q) - 8.0);
    }
    return d * f32(q) + half_at(base + 2u);
}

// Four weights k..k+3 (k % 4 == 0): one block, its scale (and min) read once, and one
// 4-byte run of quants (Q4: the same nibble half of 4 consecutive bytes).
fn w_at4(o: u32, k: u32, cols: u32) -> vec4<f32> {
    let base = (o * (cols / 32u) + k / 32u) * BLOCK_BYTES;
    let j = k % 32u;
    let d = half_at(base);
    if (QUANT == 0u) {
        let q0 = base + 2u + j;
        let q = vec4<u32>(byte_at(q0), byte_at(q0 + 1u), byte_at(q0 + 2u), byte_at(q0 + 3u));
        return d * vec4<f32>((vec4<i32>(q << vec4<u32>(24u)) >> vec4<u32>(24u)));
    }
    let q0 = base + select(2u, 4u, QUANT == 2u) + j % 16u;
    let shift = select(0u, 4u, j >= 16u);
    let q = (vec4<u32>(byte_at(q0), byte_at(q0 + 1u), byte_at(q0 + 2u), byte_at(q0 + 3u)) >> vec4<u32>(shift)) & vec4<u32>(0xfu);
    if (QUANT == 1u) {
        return d * (vec4<f32>(q) - 8.0);
    }
    return d * vec4<f32>(q) + half_at(base + 2u);
}
