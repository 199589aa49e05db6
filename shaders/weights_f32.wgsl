// Base weight rows in f32, read as raw words so every format binds the same way. Provides
// w_at (any k), w_at4 (k % 4 == 0, cols % 4 == 0) and, for the decode kernel, k8/w8: the 8
// weights of group g of a row (cols % 8 == 0) and the two runs of 4 inputs they multiply.
@group(0) @binding(0) var<storage, read> w: array<u32>;

fn w_at(o: u32, k: u32, cols: u32) -> f32 {
    return bitcast<f32>(w[o * cols + k]);
}

fn w_at4(o: u32, k: u32, cols: u32) -> vec4<f32> {
    let i = o * cols + k;
    return bitcast<vec4<f32>>(vec4<u32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]));
}

fn w8(o: u32, g: u32, cols: u32) -> W8 {
    return W8(w_at4(o, 8u * g, cols), w_at4(o, 8u * g + 4u, cols));
}
