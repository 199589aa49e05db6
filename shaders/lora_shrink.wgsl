// LoRA shrink: T[t_off + k] = coef * X[row] · A[k] for each route entry (row, adapter),
// times rank k's steps when the factors are stored as int16 codes (arena.wgsl).
// One workgroup per (entry, k); 64 threads stride over `cols` and reduce (reduce.wgsl or
// reduce_subgroups.wgsl, then reduce_scalar.wgsl).
// Route table layout (u32): row_start[n + 1], then 8 words per entry:
// row, a_off, b_off, rank | factor format << 16 (arena.wgsl: entry_rank, entry_format),
// t_off, coef (f32 bits), DoRA gain offset, DoRA weight.

struct Params {
    n: u32,
    cols: u32,
    rows: u32, // out features (where B's steps sit)
    pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> arena: array<u32>; // arena.wgsl: lora_at
@group(0) @binding(2) var<storage, read> routes: array<u32>;
@group(0) @binding(3) var<storage, read_write> t: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, lane: Lane) {
    let lid = lane.l;
    let e = p.n + 1u + wid.x * 8u;
    let row = routes[e];
    let a_off = routes[e + 1u];
    let b_off = routes[e + 2u];
    let rank = entry_rank(routes[e + 3u]);
    let fmt = entry_format(routes[e + 3u]);
    let t_off = routes[e + 4u];
    let coef = bitcast<f32>(routes[e + 5u]);
    let k = wid.y;
    // Workgroups past this entry's rank idle (the grid is sized for the largest rank).
    let live = k < rank;

    var s = 0.0;
    if (live) {
        let xo = row * p.cols;
        let ak = k * p.cols;
        for (var j = lid; j < p.cols; j += WG) {
            s += x[xo + j] * lora_at(fmt, a_off, ak + j);
        }
    }
    let total = workgroup_sum(lane, s);
    if (live && lid == 0u) {
        t[t_off + k] = coef * lora_rank_scale(fmt, a_off, b_off, rank, p.cols, p.rows, k) * total;
    }
}
