// DoRA's per-output gain g_o = m_o / ‖W_o + scale·B_o·A‖₂ for the rows of one weight chunk,
// computed from the weight as stored and the factors in the arena, without a merged copy.
// On entry the gain slot holds the magnitude m; it is overwritten with g. One workgroup per
// output row. Composed after a weights_*.wgsl snippet (binding 0), arena.wgsl and reduce.wgsl.

struct DoraParams {
    cols: u32,      // in features
    rows: u32,      // weight rows in this chunk
    out_base: u32,  // first output of this chunk
    rank: u32,
    a_off: u32,
    b_off: u32,
    g_off: u32,
    scale: f32,
    out_rows: u32,  // all rows of the weight (B's length)
    fmt: u32,       // the factors' format (arena.wgsl)
    w_row0: u32,    // where output row out_base sits in the bound weight chunk
    pad: u32,
}

@group(0) @binding(1) var<storage, read_write> arena: array<u32>; // arena.wgsl: lora_at
@group(0) @binding(2) var<uniform> p: DoraParams;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, lane: Lane) {
    let l = lane.l;
    let o = wid.x;
    let go = p.out_base + o;
    var s = 0.0;
    for (var k = l; k < p.cols; k += 64u) {
        var d = 0.0;
        for (var j = 0u; j < p.rank; j++) {
            let step = lora_rank_scale(p.fmt, p.a_off, p.b_off, p.rank, p.cols, p.out_rows, j);
            d += step * lora_at(p.fmt, p.b_off, go * p.rank + j) * lora_at(p.fmt, p.a_off, j * p.cols + k);
        }
        let v = w_at(p.w_row0 + o, k, p.cols) + p.scale * d;
        s += v * v;
    }
    let total = workgroup_sum(lane, s);
    if (l == 0u) {
        arena[p.g_off + go] = bitcast<u32>(bitcast<f32>(arena[p.g_off + go]) / sqrt(total));
    }
}
