// Per row of logits: the k largest as (token, logit), largest first, ties to the lower token
// id — the order the CPU sampler sorts by. k passes of a workgroup max-reduction, each over
// the entries that come after the previous pick in that order. Only these k pairs per row
// are read back instead of the whole vocabulary. When asked, also the row's softmax mass
// Σ exp((l − max)·inv_t) over every token: with it, top-p and min-p decide from these k.

struct TopKParams {
    vocab: u32,
    k: u32,
    need_mass: u32, // some row has inv_t > 0
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> inv_t: array<f32>;      // per row; 0: no mass
@group(0) @binding(2) var<storage, read_write> out: array<u32>;  // per row k × (token, bits of logit), then (0, bits of mass) if need_mass
@group(0) @binding(3) var<uniform> p: TopKParams;

var<workgroup> best_v: array<f32, 256>;
var<workgroup> best_i: array<u32, 256>;

// (v, i) comes before (w, j) in the order: larger value first, then lower id.
fn before(v: f32, i: u32, w: f32, j: u32) -> bool {
    return v > w || (v == w && i < j);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let row = wid.x;
    let base = row * p.vocab;
    let row_out = row * (p.k + p.need_mass) * 2u;
    var prev_v = 0.0;  // unused until the first pick
    var prev_i = 0u;
    var first = true;
    var mx = 0.0;  // the row's max: the first pick
    for (var n = 0u; n < p.k; n++) {
        var bv = 0.0;  // unused while bi is the sentinel
        var bi = 0xffffffffu;
        for (var t = l; t < p.vocab; t += 256u) {
            let v = logits[base + t];
            let after_prev = first || before(prev_v, prev_i, v, t);
            if (after_prev && (bi == 0xffffffffu || before(v, t, bv, bi))) {
                bv = v;
                bi = t;
            }
        }
        best_v[l] = bv;
        best_i[l] = bi;
        workgroupBarrier();
        for (var stride = 128u; stride > 0u; stride >>= 1u) {
            if (l < stride) {
                let ov = best_v[l + stride];
                let oi = best_i[l + stride];
                if (oi != 0xffffffffu && (best_i[l] == 0xffffffffu || before(ov, oi, best_v[l], best_i[l]))) {
                    best_v[l] = ov;
                    best_i[l] = oi;
                }
            }
            workgroupBarrier();
        }
        prev_v = best_v[0];
        prev_i = best_i[0];
        if (first) {
            mx = prev_v;
        }
        first = false;
        if (l == 0u) {
            let o = row_out + n * 2u;
            out[o] = prev_i;
            out[o + 1u] = bitcast<u32>(prev_v);
        }
        workgroupBarrier();
    }
    if (p.need_mass != 0u) {
        let it = inv_t[row];
        var s = 0.0;
        for (var t = l; t < p.vocab; t += 256u) {
            s += exp((logits[base + t] - mx) * it);
        }
        best_v[l] = s;
        workgroupBarrier();
        for (var stride = 128u; stride > 0u; stride >>= 1u) {
            if (l < stride) {
                best_v[l] += best_v[l + stride];
            }
            workgroupBarrier();
        }
        if (l == 0u) {
            out[row_out + p.k * 2u] = 0u;
            out[row_out + p.k * 2u + 1u] = bitcast<u32>(best_v[0]);
        }
    }
}
