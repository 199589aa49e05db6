// x[r] += gain · y[r] / RMS(y[r]): a norm applied to a sublayer's output before the residual
// add (Gemma's post-attention and post-MLP norms). One workgroup per row. Composed after
// linear_params.wgsl and reduce*.wgsl.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> gain: array<f32>;
@group(0) @binding(3) var<uniform> p: LinearParams;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, lane: Lane) {
    let r = wid.x + wid.y * p.wg_x;
    if (r >= p.n) {
        return; // the whole workgroup
    }
    var ss = 0.0;
    for (var k = lane.l; k < p.cols; k += 64u) {
        let v = y[r * p.cols + k];
        ss += v * v;
    }
    let inv = 1.0 / sqrt(workgroup_sum(lane, ss) / f32(p.cols) + p.eps);
    for (var k = lane.l; k < p.cols; k += 64u) {
        let at = r * p.cols + k;
        x[at] += gain[k] * (y[at] * inv);
    }
}
