// Row-wise RMSNorm: out = x / sqrt(mean(x²) + eps) · gain. One workgroup per row.

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

var<workgroup> part: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let base = wid.x * p.cols;
    var s = 0.0;
    for (var k = l; k < p.cols; k += 64u) {
        let v = x[base + k];
        s += v * v;
    }
    part[l] = s;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (l < stride) {
            part[l] += part[l + stride];
        }
        workgroupBarrier();
    }
    let r = 1.0 / sqrt(part[0] / f32(p.cols) + p.eps);
    for (var k = l; k < p.cols; k += 64u) {
        out[base + k] = x[base + k] * r * gain[k];
    }
}
