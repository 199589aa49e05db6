// Base weight rows in f32, read as raw words so every format binds the same way.
// Included ahead of a matmul kernel; provides w_at (any k) and w_at4 (k % 4 == 0, cols % 4 == 0).
@group(0) @binding(0) var<storage, read> w: array<u32>;

fn w_at(o: u32, k: u32, cols: u32) -> f32 {
    return bitcast<f32>(w[o * cols + k]);
}

fn w_at4(o: u32, k: u32, cols: u32) -> vec4<f32> {
    let i = o * cols + k;
    return bitcast<vec4<f32>>(vec4<u32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]));
}
