// Block-quantized weight rows as the file stores them, bound as words (binding 0): byte,
// f16 and word reads at byte offsets, shared by weights_quant.wgsl and weights_grouped.wgsl.
@group(0) @binding(0) var<storage, read> w: array<u32>;

fn byte_at(b: u32) -> u32 {
    return (w[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

fn half_at(b: u32) -> f32 {
    return unpack2x16float(w[b >> 2u] >> ((b & 2u) * 8u)).x;
}

// The four bytes at byte offset b (b even), as one little-endian word.
fn u32_at(b: u32) -> u32 {
    let lo = w[b >> 2u];
    if ((b & 3u) == 0u) {
        return lo;
    }
    return (lo >> 16u) | (w[(b >> 2u) + 1u] << 16u);
}

// Four signed bytes of a word, widened.
fn i8x4(q: u32) -> vec4<f32> {
    return vec4<f32>(vec4<i32>(vec4<u32>(q << 24u, q << 16u, q << 8u, q)) >> vec4<u32>(24u));
}

// Four nibbles of a word (those at `shift` in each byte).
fn nib4(q: u32, shift: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u) >> vec4<u32>(shift)) & vec4<u32>(0xfu));
}

// The four bytes at byte offset b (b even), one per lane.
fn bytes4(b: u32) -> vec4<u32> {
    let q = u32_at(b);
    return vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u) & vec4<u32>(0xffu);
}
