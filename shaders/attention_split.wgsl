// Causal attention of a few new query rows (decode) against the KV cache, GQA, optional
// sliding window, split over the context (flash-decoding): one workgroup per (chunk of
// positions, head, row), so that one token's attention fills many workgroups. Each keeps its
// chunk's scores in workgroup memory, its max and softmax sum; with one chunk it writes the
// output, else its unnormalized output and (max, sum) for attention_merge.wgsl. q and the
// cache are as rope_append.wgsl left them, or, with FUSED (a span of one row: decode), this
// kernel does rope_append's work itself: it rotates the row's query and key as it loads them,
// uses the new key and value from qkv for the newest position, and the workgroups of the
// first head of each KV group and the last chunk write them into the cache (nothing in this
// dispatch reads the cache there). Composed after reduce*.wgsl and attention_io.wgsl.

override FUSED: bool = false;

const WG: u32 = 64u;
const MAX_CHUNK: u32 = 256u;  // positions per chunk at most (the host picks p.chunk <= this)
const MAX_HD: u32 = 256u;

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read_write> kc: array<f32>;
@group(0) @binding(2) var<storage, read_write> vc: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;  // [rows, heads, chunks, 2 + head_dim]
@group(0) @binding(5) var<storage, read> cs: array<vec2<f32>>;    // FUSED: rope_append.wgsl's table
@group(0) @binding(6) var<uniform> p: AttnParams;

var<workgroup> qs: array<f32, MAX_HD>;
var<workgroup> sc: array<f32, MAX_CHUNK>;
var<workgroup> kn: array<f32, MAX_HD>;  // FUSED: the newest position's key and value
var<workgroup> vn: array<f32, MAX_HD>;

// Pair (x0, x1) rotated by the angle whose (cos, sin) is c.
fn rotate(x0: f32, x1: f32, c: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(x0 * c.x - x1 * c.y, x1 * c.x + x0 * c.y);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, lane: Lane) {
    let l = lane.l;
    let c = wid.x;
    let h = wid.y;
    let i = wid.z;
    let hd = p.head_dim;
    let g = h / (p.heads / p.kv_heads);
    let kvw = p.kv_heads * hd;
    let end = p.pos0 + i + 1u;
    let start = window_start(end, p.window);
    let lo = start + c * p.chunk;
    let hi = min(end, lo + p.chunk);  // empty for rows with fewer chunks than the grid

    let qo = (p.row0 + i) * p.q_stride + h * hd;
    let newest = end - 1u;
    if (FUSED) {
        let half = hd / 2u;
        let row = p.row0 + i;
        let ko = row * p.q_stride + p.heads * hd + g * hd;
        let vo = row * p.q_stride + (p.heads + p.kv_heads) * hd + g * hd;
        for (var d = l; d < half; d += WG) {
            let c = cs[row * half + d];
            let q = rotate(qkv[qo + d], qkv[qo + d + half], c);
            qs[d] = q.x * p.scale;
            qs[d + half] = q.y * p.scale;
            let k = rotate(qkv[ko + d], qkv[ko + d + half], c);
            kn[d] = k.x;
            kn[d + half] = k.y;
        }
        for (var d = l; d < hd; d += WG) {
            vn[d] = qkv[vo + d];
        }
        workgroupBarrier();
        let writer = h % (p.heads / p.kv_heads) == 0u && newest >= lo && newest < hi;
        if (writer) {
            for (var d = l; d < hd; d += WG) {
                kc[newest * kvw + g * hd + d] = kn[d];
                vc[newest * kvw + g * hd + d] = vn[d];
            }
        }
    } else {
        for (var d = l; d < hd; d += WG) {
            qs[d] = qkv[qo + d] * p.scale;
        }
        workgroupBarrier();
    }
    var m = -3.0e38;
    for (var t = lo + l; t < hi; t += WG) {
        let ko = t * kvw + g * hd;
        var s = 0.0;
        if (FUSED && t == newest) {
            for (var d = 0u; d < hd; d++) {
                s += qs[d] * kn[d];
            }
        } else {
            for (var d = 0u; d < hd; d++) {
                s += qs[d] * kc[ko + d];
            }
        }
        s = capped(s, p.softcap);
        sc[t - lo] = s;
        m = max(m, s);
    }
    let mx = workgroup_max(lane, m);
    var sum = 0.0;
    for (var t = lo + l; t < hi; t += WG) {
        let e = exp(sc[t - lo] - mx);
        sc[t - lo] = e;
        sum += e;
    }
    let total = workgroup_sum(lane, sum);
    workgroupBarrier();
    let po = ((i * p.heads + h) * p.chunks + c) * (2u + hd);
    for (var d = l; d < hd; d += WG) {
        var acc = 0.0;
        for (var t = lo; t < hi; t++) {
            var v: f32;
            if (FUSED && t == newest) {
                v = vn[d];
            } else {
                v = vc[t * kvw + g * hd + d];
            }
            acc += sc[t - lo] * v;
        }
        if (p.chunks == 1u) {
            out[(p.row0 + i) * p.heads * hd + h * hd + d] = acc / total;
        } else {
            part[po + 2u + d] = acc;
        }
    }
    if (p.chunks > 1u && l == 0u) {
        part[po] = mx;
        part[po + 1u] = total;
    }
}
