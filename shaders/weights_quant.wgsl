// GGML block-quantized weight rows (Q8_0, Q4_0, Q4_1), kept as the file stores them: blocks
// of 32 weights, each an f16 scale d (Q4_1: then an f16 min m) and the quants. Blocks are
// 34 / 18 / 20 bytes, so reads are byte-addressed into the word array; Q4_1's blocks are
// whole words, the others' halves (a u32 of quants may straddle two words: two loads and a
// funnel shift; weights_bytes.wgsl). The composing code prepends `const BLOCK_BYTES`,
// `const QUANT: u32` (0: Q8_0, 1: Q4_0, 2: Q4_1) and weights_bytes.wgsl.
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
        return d * i8x4(u32_at(base + 2u + j));
    }
    let q = nib4(u32_at(base + select(2u, 4u, QUANT == 2u) + j % 16u), select(0u, 4u, j >= 16u));
    if (QUANT == 1u) {
        return d * (q - 8.0);
    }
    return d * q + half_at(base + 2u);
}

// The decode kernel's groups of 8 weights (weights_w8.wgsl): four threads share a block.
// Q8_0: thread t of a block takes its 8 consecutive quants 8t..8t+7. Q4: one word of quants,
// whose low nibbles are weights 4t..4t+3 and high nibbles 16+4t..16+4t+3.
fn k8(g: u32) -> vec2<u32> {
    let b = 32u * (g / 4u);
    let t = g % 4u;
    if (QUANT == 0u) {
        return vec2<u32>(b + 8u * t, b + 8u * t + 4u);
    }
    return vec2<u32>(b + 4u * t, b + 16u + 4u * t);
}

fn w8(o: u32, g: u32, cols: u32) -> W8 {
    let base = (o * (cols / 32u) + g / 4u) * BLOCK_BYTES;
    let t = g % 4u;
    if (QUANT == 0u) {
        let d = half_at(base);
        return W8(d * i8x4(u32_at(base + 2u + 8u * t)), d * i8x4(u32_at(base + 6u + 8u * t)));
    }
    if (QUANT == 1u) {
        let d = half_at(base);
        let q = u32_at(base + 2u + 4u * t);
        return W8(d * (nib4(q, 0u) - 8.0), d * (nib4(q, 4u) - 8.0));
    }
    // Q4_1: 20-byte blocks are whole words: d and m in the first, the quants after.
    let i = base / 4u;
    let dm = unpack2x16float(w[i]);
    let q = w[i + 1u + t];
    return W8(dm.x * nib4(q, 0u) + dm.y, dm.x * nib4(q, 4u) + dm.y);
}
