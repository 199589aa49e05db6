// Base weight rows in bfloat16, two per word (low half first): a bf16 is the top half of an
// f32. w_at, w_at4, and the decode kernel's k8/w8 (cols % 8 == 0).
@group(0) @binding(0) var<storage, read> w: array<u32>;

fn w_at(o: u32, k: u32, cols: u32) -> f32 {
    let i = o * cols + k;
    let word = w[i >> 1u];
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}

fn bf4(a: u32, b: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(a << 16u, a & 0xffff0000u, b << 16u, b & 0xffff0000u));
}

fn w_at4(o: u32, k: u32, cols: u32) -> vec4<f32> {
    let i = (o * cols + k) >> 1u;
    return bf4(w[i], w[i + 1u]);
}

fn w8(o: u32, g: u32, cols: u32) -> W8 {
    let i = (o * cols) / 2u + 4u * g;
    return W8(bf4(w[i], w[i + 1u]), bf4(w[i + 2u], w[i + 3u]));
}
