// The shrink of a fused linear's adapters: T[t_off + k] = coef · norm(x[row]) · A[k] for every
// route entry of every weight of the group (one pass for q, k and v), times rank k's steps
// when the factors are int16 codes (arena.wgsl). One workgroup per (entry, k); 64 threads
// stride over `cols` and reduce. NORM (linear_io.wgsl's meaning): 1 computes the row's RMS
// here, 2 reads it from `rs`. Composed after arena.wgsl, routes.wgsl, linear_params.wgsl and
// reduce*.wgsl.

override NORM: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> arena: array<u32>; // arena.wgsl: lora_at
@group(0) @binding(2) var<storage, read_write> lora: array<u32>; // routes.wgsl; T is written
@group(0) @binding(3) var<storage, read> gain: array<f32>;
@group(0) @binding(4) var<storage, read> rs: array<f32>;
@group(0) @binding(5) var<uniform> p: LinearParams;

const WG: u32 = 64u;

// The weight an entry belongs to: entries are stored weight by weight.
fn entry_part(e: u32) -> u32 {
    var pt = 0u;
    for (var q = 1u; q < p.parts; q++) {
        if (e >= lora[q * p.n]) {
            pt = q;
        }
    }
    return pt;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, lane: Lane) {
    let l = lane.l;
    let e = wid.x;
    let en = route(e);
    let rank = entry_rank(en);
    let fmt = entry_format(en);
    let k = wid.y;
    // Workgroups past this entry's rank idle (the grid is sized for the largest rank).
    let live = k < rank;
    let xo = en.row * p.cols;

    var scale = 1.0;
    if (NORM == 1u) {
        var ss = 0.0;
        for (var j = l; j < p.cols; j += WG) {
            ss += x[xo + j] * x[xo + j];
        }
        scale = inverseSqrt(workgroup_sum(lane, ss) / f32(p.cols) + p.eps);
    } else if (NORM == 2u) {
        scale = rs[en.row];
    }
    var s = 0.0;
    if (live) {
        let ak = k * p.cols;
        for (var j = l; j < p.cols; j += WG) {
            var v = x[xo + j];
            if (NORM != 0u) {
                v *= gain[j];
            }
            s += v * lora_at(fmt, en.a_off, ak + j);
        }
    }
    let total = workgroup_sum(lane, s);
    if (live && l == 0u) {
        let rows = part_rows(entry_part(e));
        let step = lora_rank_scale(fmt, en.a_off, en.b_off, rank, p.cols, rows, k);
        lora[p.t_base + en.t_off + k] = bitcast<u32>(en.coef * step * total * scale);
    }
}
