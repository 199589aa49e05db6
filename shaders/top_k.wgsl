// Per row of logits: the k largest as (token, logit), largest first, ties to the lower token
// id — the order the CPU sampler sorts by (f32 total order). Only these k pairs per row are
// read back instead of the whole vocabulary. When asked, also the row's softmax mass
// Σ exp((l − max)·inv_t) over every token: with it, top-p and min-p decide from these k.
//
// One workgroup per row. Up to SMALL_K picks (greedy is k = 1): one max-reduction pass per
// pick. Larger k (at most MAX_K): a radix select finds the k-th largest key in four passes of
// 8 bits, one more pass collects the keys above it and, in id order, the ties it needs, then
// a bitonic sort in workgroup memory orders them: five passes over the row for any k instead
// of k (plus, only when equal logits straddle the cut, an ordered pass over the row up to the
// last tie it needs; plus the mass pass when asked).

struct TopKParams {
    vocab: u32,
    k: u32,
    need_mass: u32, // the pair after the k: some row has inv_t > 0 or wants its log-sum-exp
    need_lse: u32,  // the pair's first word: Σ exp(l − max) at temperature 1
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> inv_t: array<f32>;      // per row; 0: no mass
@group(0) @binding(2) var<storage, read_write> out: array<u32>;  // per row k × (token, bits of logit), then (bits of Σ exp(l − max) or 0, bits of mass) if need_mass
@group(0) @binding(3) var<uniform> p: TopKParams;

const WG: u32 = 256u;
const SMALL_K: u32 = 4u;
const MAX_K: u32 = 256u;  // = WG: one candidate per thread in the sort
const NONE: u32 = 0xffffffffu;

var<workgroup> red: array<u32, 256>;  // reductions and scans
var<workgroup> red_i: array<u32, 256>;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> n_cand: atomic<u32>;
var<workgroup> cand_k: array<u32, 256>;
var<workgroup> cand_i: array<u32, 256>;
var<workgroup> chosen: vec3<u32>;  // radix digit, ties still needed, keys with that prefix
var<workgroup> mass: array<f32, 256>;
var<workgroup> mass1: array<f32, 256>;

// f32 → u32 whose unsigned order is the f32 total order (-NaN < -inf < ... < -0 < +0 < ... < NaN).
fn key(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// The f32 bits of a key, kept as u32 so no float operation can touch them (NaN payloads).
fn unkey(k: u32) -> u32 {
    return select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u);
}

// (a, i) comes before (b, j): larger key first, then lower id.
fn before(a: u32, i: u32, b: u32, j: u32) -> bool {
    return a > b || (a == b && i < j);
}

// Inclusive sum over threads 0..=l of `v`, left in red[l]; red[255] is the total.
fn scan_up(l: u32, v: u32) {
    red[l] = v;
    workgroupBarrier();
    for (var s = 1u; s < WG; s <<= 1u) {
        var add = 0u;
        if (l >= s) {
            add = red[l - s];
        }
        workgroupBarrier();
        red[l] += add;
        workgroupBarrier();
    }
}

// k passes of a max-reduction, each over the entries after the previous pick in the order.
fn pick_each(l: u32, base: u32, row_out: u32) {
    var prev_k = 0u;  // unused until the first pick
    var prev_i = 0u;
    var first = true;
    for (var n = 0u; n < p.k; n++) {
        var bk = 0u;  // unused while bi is NONE
        var bi = NONE;
        for (var t = l; t < p.vocab; t += WG) {
            let kt = key(logits[base + t]);
            let after_prev = first || before(prev_k, prev_i, kt, t);
            if (after_prev && (bi == NONE || before(kt, t, bk, bi))) {
                bk = kt;
                bi = t;
            }
        }
        red[l] = bk;
        red_i[l] = bi;
        workgroupBarrier();
        for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
            if (l < stride) {
                let ok = red[l + stride];
                let oi = red_i[l + stride];
                if (oi != NONE && (red_i[l] == NONE || before(ok, oi, red[l], red_i[l]))) {
                    red[l] = ok;
                    red_i[l] = oi;
                }
            }
            workgroupBarrier();
        }
        prev_k = red[0];
        prev_i = red_i[0];
        first = false;
        if (l == 0u) {
            out[row_out + n * 2u] = prev_i;
            out[row_out + n * 2u + 1u] = unkey(prev_k);
        }
        workgroupBarrier();
    }
}

// Appends (key, token) to the candidates.
fn push(kt: u32, t: u32) {
    let at = atomicAdd(&n_cand, 1u);
    cand_k[at] = kt;
    cand_i[at] = t;
}

// Radix select of the k-th key, collection, sort.
fn select_sort(l: u32, base: u32, row_out: u32) {
    var prefix = 0u;
    var mask = 0u;
    var need = p.k;  // how many of the keys matching `prefix` are still to take
    var with_prefix = 0u;
    for (var digit = 0u; digit < 4u; digit++) {
        let shift = 24u - 8u * digit;
        atomicStore(&hist[l], 0u);
        workgroupBarrier();
        for (var t = l; t < p.vocab; t += WG) {
            let kt = key(logits[base + t]);
            if ((kt & mask) == prefix) {
                atomicAdd(&hist[(kt >> shift) & 255u], 1u);
            }
        }
        workgroupBarrier();
        // Suffix sums over digits: thread l holds the count of digits >= 255 - l.
        scan_up(l, atomicLoad(&hist[255u - l]));
        let at_or_above = red[l];
        let above = at_or_above - atomicLoad(&hist[255u - l]);
        if (above < need && at_or_above >= need) {
            chosen = vec3<u32>(255u - l, need - above, at_or_above - above);
        }
        let c = workgroupUniformLoad(&chosen);
        prefix |= c.x << shift;
        mask |= 255u << shift;
        need = c.y;
        with_prefix = c.z;
    }
    // `prefix` is now the k-th key: p.k - need keys lie above it, and `need` of the
    // `with_prefix` keys equal to it are taken, the lowest ids first.
    if (l == 0u) {
        atomicStore(&n_cand, 0u);
    }
    workgroupBarrier();
    let all_ties = need == with_prefix;
    for (var t = l; t < p.vocab; t += WG) {
        let kt = key(logits[base + t]);
        if (kt > prefix || (all_ties && kt == prefix)) {
            push(kt, t);
        }
    }
    if (!all_ties) {
        // Ties at the cut (rare: equal logits): in id order, a chunk of WG ids at a time.
        var taken = 0u;
        for (var c0 = 0u; c0 < p.vocab; c0 += WG) {
            let t = c0 + l;
            let eq = u32(t < p.vocab && key(logits[base + min(t, p.vocab - 1u)]) == prefix);
            scan_up(l, eq);
            if (eq == 1u && taken + red[l] <= need) {
                push(prefix, t);
            }
            taken += workgroupUniformLoad(&red[WG - 1u]);
            if (taken >= need) {
                break;
            }
        }
    }
    workgroupBarrier();
    // Bitonic sort of all WG slots, the empty ones (id NONE, key 0) last.
    if (l >= p.k) {
        cand_k[l] = 0u;
        cand_i[l] = NONE;
    }
    workgroupBarrier();
    for (var size = 2u; size <= WG; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            let o = l ^ stride;
            if (o > l) {
                let up = (l & size) == 0u;
                if (before(cand_k[l], cand_i[l], cand_k[o], cand_i[o]) != up) {
                    let k = cand_k[l];
                    let i = cand_i[l];
                    cand_k[l] = cand_k[o];
                    cand_i[l] = cand_i[o];
                    cand_k[o] = k;
                    cand_i[o] = i;
                }
            }
            workgroupBarrier();
        }
    }
    if (l < p.k) {
        out[row_out + l * 2u] = cand_i[l];
        out[row_out + l * 2u + 1u] = unkey(cand_k[l]);
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let row = wid.x;
    let base = row * p.vocab;
    let row_out = row * (p.k + p.need_mass) * 2u;
    if (p.k <= SMALL_K || p.k > MAX_K) {
        pick_each(l, base, row_out);
    } else {
        select_sort(l, base, row_out);
    }
    if (p.need_mass != 0u) {
        storageBarrier();
        workgroupBarrier();
        let mx = bitcast<f32>(out[row_out + 1u]);  // the first pick: the row's max
        let it = inv_t[row];
        var s = 0.0;
        var s1 = 0.0;
        for (var t = l; t < p.vocab; t += WG) {
            let d = logits[base + t] - mx;
            s += exp(d * it);
            if (p.need_lse != 0u) {
                s1 += exp(d);
            }
        }
        mass[l] = s;
        mass1[l] = s1;
        workgroupBarrier();
        for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
            if (l < stride) {
                mass[l] += mass[l + stride];
                mass1[l] += mass1[l + stride];
            }
            workgroupBarrier();
        }
        if (l == 0u) {
            out[row_out + p.k * 2u] = bitcast<u32>(mass1[0]);
            out[row_out + p.k * 2u + 1u] = bitcast<u32>(mass[0]);
        }
    }
}
