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

fn w_at4(o: u32, k: u32, cols: u32) -> vec4<f32> {
    return vec4<f32>(w_at(o, k, cols), w_at(o, k + 1u, cols), w_at(o, k + 2u, cols), w_at(o, k + 3u, cols));
}
