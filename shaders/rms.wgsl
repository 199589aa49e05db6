// Each input row's 1/RMS, rs[r] = 1 / sqrt(mean(x[r]²) + eps), for the prefill kernels'
// NORM 2 (the norm's gain is applied as they load). One workgroup per row. Composed after
// linear_params.wgsl and reduce*.wgsl.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> rs: array<f32>;
@group(0) @binding(2) var<uniform> p: LinearParams;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, lane: Lane) {
    let r = wid.x + wid.y * p.wg_x;
    if (r >= p.n) {
        return; // the whole workgroup
    }
    var ss = 0.0;
    for (var k = lane.l; k < p.cols; k += 64u) {
        let v = x[r * p.cols + k];
        ss += v * v;
    }
    let total = workgroup_sum(lane, ss);
    if (lane.l == 0u) {
        rs[r] = inverseSqrt(total / f32(p.cols) + p.eps);
    }
}
