// Base weight rows in bfloat16, two per word (low half first): a bf16 is the top half of an f32.
@group(0) @binding(0) var<storage, read> w: array<u32>;

fn w_at(o: u32, k: u32, cols: u32) -> f32 {
    let i = o * cols + k;
    let word = w[i >> 1u];
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}

fn w_at4(o: u32, k: u32, cols: u32) -> vec4<f32> {
    let i = (o * cols + k) >> 1u;
    let a = w[i];
    let b = w[i + 1u];
    return bitcast<vec4<f32>>(vec4<u32>(a << 16u, a & 0xffff0000u, b << 16u, b & 0xffff0000u));
}
