// Base weight rows in IEEE half precision, two per word (low half first). unpack2x16float is
// core WGSL, so this needs no shader-f16 feature (SwiftShader has none). w_at, w_at4, and the
// decode kernel's k8/w8 (cols % 8 == 0: four whole words per group of 8).
@group(0) @binding(0) var<storage, read> w: array<u32>;

fn w_at(o: u32, k: u32, cols: u32) -> f32 {
    let i = o * cols + k;
    let pair = unpack2x16float(w[i >> 1u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}

fn w_at4(o: u32, k: u32, cols: u32) -> vec4<f32> {
    let i = (o * cols + k) >> 1u;
    return vec4<f32>(unpack2x16float(w[i]), unpack2x16float(w[i + 1u]));
}

fn w8(o: u32, g: u32, cols: u32) -> W8 {
    let i = (o * cols) / 2u + 4u * g;
    return W8(vec4<f32>(unpack2x16float(w[i]), unpack2x16float(w[i + 1u])), vec4<f32>(unpack2x16float(w[i + 2u]), unpack2x16float(w[i + 3u])));
}
