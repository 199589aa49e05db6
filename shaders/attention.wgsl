// Causal attention of new query rows against the KV cache, GQA, optional sliding window.
// One workgroup per (query row, head): scores go to a scratch row, softmax is max-subtracted,
// then each thread sums one or more output dims over the positions. Composed after
// reduce.wgsl and attention_params.wgsl.

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kc: array<f32>;
@group(0) @binding(2) var<storage, read> vc: array<f32>;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: AttnParams;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, lane: Lane) {
    let l = lane.l;
    let i = wid.x;
    let h = wid.y;
    let hd = p.head_dim;
    let end = p.pos0 + i + 1u;
    let start = window_start(end, p.window);
    let g = h / (p.heads / p.kv_heads);
    let kvw = p.kv_heads * hd;
    let qo = (i * p.heads + h) * hd;
    let so = (i * p.heads + h) * p.span;

    var m = -3.0e38;
    for (var t = start + l; t < end; t += 64u) {
        var d = 0.0;
        let ko = t * kvw + g * hd;
        for (var e = 0u; e < hd; e++) {
            d += q[qo + e] * kc[ko + e];
        }
        d *= p.scale;
        scores[so + t - start] = d;
        m = max(m, d);
    }
    let mx = workgroup_max(lane, m);
    var s = 0.0;
    for (var t = start + l; t < end; t += 64u) {
        let e = exp(scores[so + t - start] - mx);
        scores[so + t - start] = e;
        s += e;
    }
    let total = workgroup_sum(lane, s);
    storageBarrier();
    for (var e = l; e < hd; e += 64u) {
        var acc = 0.0;
        for (var t = start; t < end; t++) {
            acc += scores[so + t - start] * vc[t * kvw + g * hd + e];
        }
        out[qo + e] = acc / total;
    }
}
