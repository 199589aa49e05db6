// The other GGML block formats, kept as the file stores them: Q5_0, Q5_1, IQ4_NL (blocks of
// 32) and the K-quants Q2_K..Q6_K (blocks of 256 in groups of 16 or 32, each group with its
// own scale and min). Every weight is d_g·code + m_g (`dtype::group_scale` and `dtype::code`
// in src/formats/dtype.rs, the scalar reference); four consecutive weights share a group and
// a run of 4 bytes of each bit field, so they are decoded together from whole words. The
// composing code prepends `const QUANT: u32` (3: Q5_0, 4: Q5_1, 5: IQ4_NL, 6: Q2_K, 7: Q3_K,
// 8: Q4_K, 9: Q5_K, 10: Q6_K), `BLOCK_W` (weights per block), `BLOCK_BYTES`, `GROUP` and
// weights_bytes.wgsl.

var<private> IQ4_NL_VALUES: array<f32, 16> = array<f32, 16>(-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0, 1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0);

// The signed byte at b.
fn i8_at(b: u32) -> f32 {
    return f32(i32(byte_at(b) << 24u) >> 24u);
}

// (d, m) of group g of the block at byte `base`.
fn group_dm(base: u32, g: u32) -> vec2<f32> {
    if (QUANT == 3u || QUANT == 5u) {
        return vec2<f32>(half_at(base), 0.0);
    }
    if (QUANT == 4u) {
        return vec2<f32>(half_at(base), half_at(base + 2u));
    }
    if (QUANT == 6u) {
        let sc = byte_at(base + g);
        return vec2<f32>(half_at(base + 80u) * f32(sc & 0xfu), -(half_at(base + 82u) * f32(sc >> 4u)));
    }
    if (QUANT == 7u) {
        let lo = (byte_at(base + 96u + g % 8u) >> (4u * (g / 8u))) & 0xfu;
        let hi = (byte_at(base + 104u + g % 4u) >> (2u * (g / 4u))) & 3u;
        return vec2<f32>(half_at(base + 108u) * f32(i32(lo | (hi << 4u)) - 32), 0.0);
    }
    if (QUANT == 10u) {
        return vec2<f32>(half_at(base + 208u) * i8_at(base + 192u + g), 0.0);
    }
    // Q4_K, Q5_K: 6-bit scale and min from the 12 bytes at base + 4 (get_scale_min_k4).
    let s = base + 4u;
    var sc: u32;
    var m: u32;
    if (g < 4u) {
        sc = byte_at(s + g) & 63u;
        m = byte_at(s + g + 4u) & 63u;
    } else {
        sc = (byte_at(s + g + 4u) & 0xfu) | ((byte_at(s + g - 4u) >> 6u) << 4u);
        m = (byte_at(s + g + 4u) >> 4u) | ((byte_at(s + g) >> 6u) << 4u);
    }
    return vec2<f32>(half_at(base) * f32(sc), -(half_at(base + 2u) * f32(m)));
}

// Bits i of four bytes' lanes for lanes 0..3 of a word's bits j..j+3 (Q5's fifth bits).
fn word_bits4(q: u32, j: u32) -> vec4<u32> {
    return (vec4<u32>(q >> j) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u);
}

// The codes of weights j..j+3 (j % 4 == 0) of the block at byte `base`.
fn codes4(base: u32, j: u32) -> vec4<f32> {
    if (QUANT <= 5u) {
        // Nibbles: byte i of the 16 holds weight i (low) and i + 16 (high).
        let qs = select(select(6u, 8u, QUANT == 4u), 2u, QUANT == 5u);
        let nib = (bytes4(base + qs + j % 16u) >> vec4<u32>(select(0u, 4u, j >= 16u))) & vec4<u32>(0xfu);
        if (QUANT == 5u) {
            return vec4<f32>(IQ4_NL_VALUES[nib.x], IQ4_NL_VALUES[nib.y], IQ4_NL_VALUES[nib.z], IQ4_NL_VALUES[nib.w]);
        }
        let q = nib | (word_bits4(u32_at(base + select(2u, 4u, QUANT == 4u)), j) << vec4<u32>(4u));
        return vec4<f32>(q) - select(0.0, 16.0, QUANT == 3u);
    }
    let h = j / 128u;
    let r = j % 128u;
    if (QUANT <= 7u) {
        // 2-bit codes: byte 32h + i holds weights 128h + 32s + i at bits 2s.
        let q = (bytes4(base + select(16u, 32u, QUANT == 7u) + 32u * h + r % 32u) >> vec4<u32>(2u * (r / 32u))) & vec4<u32>(3u);
        if (QUANT == 6u) {
            return vec4<f32>(q);
        }
        let high = (bytes4(base + j % 32u) >> vec4<u32>(j / 32u)) & vec4<u32>(1u);
        return vec4<f32>(q | (high << vec4<u32>(2u))) - 4.0;
    }
    if (QUANT == 10u) {
        let lo = (bytes4(base + 64u * h + r % 64u) >> vec4<u32>(select(0u, 4u, r >= 64u))) & vec4<u32>(0xfu);
        let hi = (bytes4(base + 128u + 32u * h + r % 32u) >> vec4<u32>(2u * (r / 32u))) & vec4<u32>(3u);
        return vec4<f32>(lo | (hi << vec4<u32>(4u))) - 32.0;
    }
    // Q4_K, Q5_K: groups g = j / 32 in pairs share 32 bytes of nibbles (even g: low halves).
    let g = j / 32u;
    let qs = select(16u, 48u, QUANT == 9u);
    let nib = (bytes4(base + qs + 32u * (g / 2u) + j % 32u) >> vec4<u32>(4u * (g % 2u))) & vec4<u32>(0xfu);
    if (QUANT == 8u) {
        return vec4<f32>(nib);
    }
    let high = (bytes4(base + 16u + j % 32u) >> vec4<u32>(g)) & vec4<u32>(1u);
    return vec4<f32>(nib | (high << vec4<u32>(4u)));
}

// Four weights k..k+3 (k % 4 == 0): one group's scale and min, one run of each bit field.
fn w_at4(o: u32, k: u32, cols: u32) -> vec4<f32> {
    let base = (o * (cols / BLOCK_W) + k / BLOCK_W) * BLOCK_BYTES;
    let j = k % BLOCK_W;
    let dm = group_dm(base, j / GROUP);
    return dm.x * codes4(base, j) + dm.y;
}

fn w_at(o: u32, k: u32, cols: u32) -> f32 {
    return w_at4(o, k & ~3u, cols)[k & 3u];
}

// The decode kernel's groups of 8 weights (weights_w8.wgsl): runs of 8, two decodes of 4.
fn k8(g: u32) -> vec2<u32> {
    return vec2<u32>(8u * g, 8u * g + 4u);
}

fn w8(o: u32, g: u32, cols: u32) -> W8 {
    return W8(w_at4(o, 8u * g, cols), w_at4(o, 8u * g + 4u, cols));
}
