// Row-wise RMSNorm: out = x / sqrt(mean(x²) + eps) · gain. One workgroup per row.
// Composed after reduce.wgsl.

struct NormParams {
    cols: u32,
    eps: f32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gain: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: NormParams;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, lane: Lane) {
    let l = lane.l;
    let base = wid.x * p.cols;
    var s = 0.0;
    for (var k = l; k < p.cols; k += 64u) {
        let v = x[base + k];
        s += v * v;
    }
    let r = 1.0 / sqrt(workgroup_sum(lane, s) / f32(p.cols) + p.eps);
    for (var k = l; k < p.cols; k += 64u) {
        out[base + k] = x[base + k] * r * gain[k];
    }
}
