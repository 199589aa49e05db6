// Causal prefill attention, tiled (flash-attention 2 style), GQA, optional sliding window.
// A workgroup takes ROWS new query rows of one head, LANES threads per row; a lane keeps every
// LANES-th dimension of its row's query and output (at most PER_LANE floats each; 8 at head
// dim 64), so a thread's state stays small (the queries are read in place from qkv). (The
// arrays are indexed in loops bounded at run time; a head-dim-specialised constant bound
// would let compilers keep them in registers.)
// K and V pass through workgroup memory a tile of positions at a time: the lanes' partial
// dot products become the tile's scores, and every lane of a row keeps the row's running max
// and softmax sum (an online, max-subtracted softmax, rescaled once per tile) and its dims of
// the output. No scores outlive a tile: memory stays O(rows) however long the prompt. Head
// dims up to MAX_HD (the host checks). Composed after attention_io.wgsl.

const ROWS: u32 = 16u;
const LANES: u32 = 8u;
const WG: u32 = 128u;      // ROWS × LANES
const MAX_HD: u32 = 256u;
const PER_LANE: u32 = MAX_HD / LANES;
// K and V tiles take 2 × 4 KiB, the lanes' partial dot products 4 KiB and the scores 0.5 KiB:
// inside WebGPU's guaranteed 16 KiB of workgroup memory.
const TILE_WORDS: u32 = 1024u;
const TILE: u32 = 8u;      // positions per tile at most (= LANES: one score per lane to sum)

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> kc: array<f32>;
@group(0) @binding(2) var<storage, read> vc: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: AttnParams;

var<workgroup> kt: array<f32, TILE_WORDS>;
var<workgroup> vt: array<f32, TILE_WORDS>;
var<workgroup> part: array<f32, 1024>;  // [ROWS][LANES][TILE]: a lane's dims of q·k
var<workgroup> scores: array<f32, 128>; // [ROWS][TILE]

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let hd = p.head_dim;
    let h = wid.y;
    let g = h / (p.heads / p.kv_heads);
    let kvw = p.kv_heads * hd;
    let r = l / LANES;
    let lane = l % LANES;
    let i0 = wid.x * ROWS;
    let i = i0 + r;
    let live = i < p.rows;

    // This row's positions [start, end), and the workgroup's: the union over its rows.
    let end = p.pos0 + i + 1u;
    let start = window_start(end, p.window);
    let wg_end = p.pos0 + min(i0 + ROWS, p.rows);
    let wg_start = window_start(p.pos0 + i0 + 1u, p.window);

    // This lane's dims: lane, lane + LANES, ...
    var qr: array<f32, PER_LANE>;
    var acc: array<f32, PER_LANE>;
    let dims = (hd + LANES - 1u - lane) / LANES;
    let qo = (p.row0 + i) * p.q_stride + h * hd;
    let oo = (p.row0 + i) * p.heads * hd + h * hd;
    for (var d = 0u; d < dims; d++) {
        if (live) {
            qr[d] = qkv[qo + lane + d * LANES] * p.scale;
        }
        acc[d] = 0.0;
    }
    var m = -3.0e38;
    var sum = 0.0;

    let tile = min(TILE_WORDS / hd, TILE);
    for (var t0 = wg_start; t0 < wg_end; t0 += tile) {
        let n = min(tile, wg_end - t0);
        for (var x = l; x < n * hd; x += WG) {
            let at = (t0 + x / hd) * kvw + g * hd + x % hd;
            kt[x] = kc[at];
            vt[x] = vc[at];
        }
        workgroupBarrier();
        for (var j = 0u; j < n; j++) {
            var s = 0.0;
            for (var d = 0u; d < dims; d++) {
                s += qr[d] * kt[j * hd + lane + d * LANES];
            }
            part[(r * LANES + lane) * TILE + j] = s;
        }
        workgroupBarrier();
        // Lane j sums position j's score over the row's lanes.
        if (lane < n) {
            var s = 0.0;
            for (var k = 0u; k < LANES; k++) {
                s += part[(r * LANES + k) * TILE + lane];
            }
            scores[r * TILE + lane] = capped(s, p.softcap);
        }
        workgroupBarrier();
        // The tile's positions this row sees (a contiguous run: causal end, window start).
        let j0 = max(start, t0) - t0;
        let hi = min(end, t0 + n);
        let j1 = select(0u, hi - t0, hi > t0);
        if (live && j0 < j1) {
            var tm = m;
            for (var j = j0; j < j1; j++) {
                tm = max(tm, scores[r * TILE + j]);
            }
            // Online softmax: rescale what is summed so far once, to the tile's new max.
            let c = exp(m - tm);
            sum *= c;
            for (var d = 0u; d < dims; d++) {
                acc[d] *= c;
            }
            m = tm;
            for (var j = j0; j < j1; j++) {
                let w = exp(scores[r * TILE + j] - m);
                sum += w;
                for (var d = 0u; d < dims; d++) {
                    acc[d] += w * vt[j * hd + lane + d * LANES];
                }
            }
        }
        workgroupBarrier();
    }
    if (live) {
        for (var d = 0u; d < dims; d++) {
            out[oo + lane + d * LANES] = acc[d] / sum;
        }
    }
}
