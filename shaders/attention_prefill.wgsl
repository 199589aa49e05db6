// Causal prefill attention, tiled (flash-attention style), GQA, optional sliding window.
// A workgroup takes 64 new query rows of one head, one row per thread. K and V pass through
// workgroup memory a tile of positions at a time, and each thread keeps its row's running max,
// softmax sum and output (an online, max-subtracted softmax), so no scores are stored: memory
// stays O(rows) however long the prompt. Head dims up to MAX_HD (the host checks). Composed
// after attention_params.wgsl.

const ROWS: u32 = 64u;
const MAX_HD: u32 = 256u;
// K and V tiles take 2 × 8 KiB: WebGPU's guaranteed 16 KiB of workgroup memory.
const TILE_WORDS: u32 = 2048u;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kc: array<f32>;
@group(0) @binding(2) var<storage, read> vc: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: AttnParams;

var<workgroup> kt: array<f32, TILE_WORDS>;
var<workgroup> vt: array<f32, TILE_WORDS>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let hd = p.head_dim;
    let h = wid.y;
    let g = h / (p.heads / p.kv_heads);
    let kvw = p.kv_heads * hd;
    let i0 = wid.x * ROWS;
    let i = i0 + l;
    let live = i < p.rows;

    // This row's positions [start, end), and the workgroup's: the union over its rows.
    let end = p.pos0 + i + 1u;
    let start = window_start(end, p.window);
    let wg_end = p.pos0 + min(i0 + ROWS, p.rows);
    let wg_start = window_start(p.pos0 + i0 + 1u, p.window);

    var qr: array<f32, MAX_HD>;
    var acc: array<f32, MAX_HD>;
    let qo = (i * p.heads + h) * hd;
    if (live) {
        for (var e = 0u; e < hd; e++) {
            qr[e] = q[qo + e] * p.scale;
            acc[e] = 0.0;
        }
    }
    var m = -3.0e38;
    var sum = 0.0;

    let tile = TILE_WORDS / hd;
    for (var t0 = wg_start; t0 < wg_end; t0 += tile) {
        let n = min(tile, wg_end - t0);
        for (var x = l; x < n * hd; x += 64u) {
            let at = (t0 + x / hd) * kvw + g * hd + x % hd;
            kt[x] = kc[at];
            vt[x] = vc[at];
        }
        workgroupBarrier();
        if (live) {
            for (var j = 0u; j < n; j++) {
                let t = t0 + j;
                if (t < start || t >= end) {
                    continue;
                }
                var s = 0.0;
                for (var e = 0u; e < hd; e++) {
                    s += qr[e] * kt[j * hd + e];
                }
                // Online softmax: rescale what is summed so far when the max rises.
                var w = 1.0;
                if (s > m) {
                    let c = exp(m - s);
                    sum *= c;
                    for (var e = 0u; e < hd; e++) {
                        acc[e] *= c;
                    }
                    m = s;
                } else {
                    w = exp(s - m);
                }
                sum += w;
                for (var e = 0u; e < hd; e++) {
                    acc[e] += w * vt[j * hd + e];
                }
            }
        }
        workgroupBarrier();
    }
    if (live) {
        for (var e = 0u; e < hd; e++) {
            out[qo + e] = acc[e] / sum;
        }
    }
}
