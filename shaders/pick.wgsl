// Per row: the token the CPU sampler (`Sampler::pick` in src/model/sample.rs) would pick
// from the row's top_k selection with the draw given, so that one u32 per row comes back
// instead of the selection. The selection is what top_k.wgsl wrote: k (token, logit bits)
// pairs best first, then (0, mass bits) when need_mass.
//
// The sampler works in f64 and this in f32, so a pick is returned only when it is certain:
// every boundary it depends on (the draw between two candidates' intervals, the running sum
// against top-p, a probability against the min-p floor) lies further than `margin` from
// where f32 put it. Otherwise the row gets UNDECIDED and the CPU reads its selection and
// decides (one thread per row; at most k = 256 candidates, read twice).

struct PickParams {
    k: u32,
    need_mass: u32,
    rows: u32,
    margin: f32,  // DRAW_MARGIN: relative to the kept mass, absolute against top_p
}

// A row's draw (`Draw` in sample.rs).
struct Draw {
    wanted: u32,   // 0: the CPU picks (the row brought no draw)
    inv_t: f32,    // 1 / temperature; 0: greedy
    top_k: u32,    // 0: all candidates
    top_p: f32,
    min_p: f32,
    uniform: f32,  // the sampler's next uniform in [0, 1)
    partial: u32,  // the candidates are the row's best only, and the mass is the whole row's
    pad: u32,
}

@group(0) @binding(0) var<storage, read> sel: array<u32>;
@group(0) @binding(1) var<storage, read> draws: array<Draw>;
@group(0) @binding(2) var<storage, read_write> picks: array<u32>;
@group(0) @binding(3) var<uniform> p: PickParams;

const UNDECIDED: u32 = 0xffffffffu;
const MASKED: f32 = -1e30;

var<private> base: u32;
var<private> l0: f32;
var<private> inv_t: f32;
var<private> total: f32;

fn finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

fn logit(i: u32) -> f32 {
    return bitcast<f32>(sel[base + 2u * i + 1u]);
}

// Candidate i's probability (the row's mass, or the candidates' sum, normalizes it).
fn prob(i: u32) -> f32 {
    return exp((logit(i) - l0) * inv_t) / total;
}

fn pick_row(row: u32) -> u32 {
    let d = draws[row];
    if (d.wanted == 0u) {
        return UNDECIDED;
    }
    base = row * (p.k + p.need_mass) * 2u;
    if (d.inv_t == 0.0) {
        return sel[base];  // greedy: the best candidate
    }
    inv_t = d.inv_t;
    l0 = logit(0u);
    var n = p.k;
    if (d.top_k > 0u) {
        n = min(n, d.top_k);
    }
    // Candidates a constraint refused (mask.wgsl's MASKED, best-first so at the end) are
    // never picked, as the sampler drops them.
    while (n > 1u && logit(n - 1u) <= MASKED) {
        n -= 1u;
    }
    let partial = d.partial != 0u;
    if (partial) {
        total = bitcast<f32>(sel[base + 2u * p.k + 1u]);
    } else {
        total = 1.0;  // prob() divides by it: the candidates' own sum, computed here
        var s = 0.0;
        for (var i = 0u; i < n; i++) {
            s += prob(i);
        }
        total = s;
    }
    if (!finite(l0) || !finite(total) || !(total > 0.0)) {
        return UNDECIDED;
    }
    for (var i = 0u; i < n; i++) {
        if (!finite(logit(i))) {
            return UNDECIDED;
        }
    }
    let m = p.margin;
    let cut = d.top_p < 1.0 || d.min_p > 0.0;
    var keep = n;
    var decided = !partial;
    if (d.top_p < 1.0) {
        // The first candidate whose running sum reaches top_p.
        var acc = 0.0;
        for (var i = 0u; i < n; i++) {
            acc += prob(i);
            if (acc >= d.top_p - m) {
                if (acc < d.top_p + m) {
                    return UNDECIDED;
                }
                keep = i + 1u;
                decided = true;
                break;
            }
        }
    }
    if (d.min_p > 0.0) {
        // The candidates at least min_p times as likely as the best (at least one).
        let floor = prob(0u) * d.min_p;
        var above = n;
        for (var i = 1u; i < n; i++) {
            let q = prob(i);
            if (q < floor * (1.0 + m)) {
                if (q > floor * (1.0 - m)) {
                    return UNDECIDED;
                }
                above = i;
                break;
            }
        }
        decided = decided || above < n;
        keep = min(keep, above);
    }
    if (cut && !decided) {
        return UNDECIDED;
    }
    // Without a cut the whole row is kept: the mass makes its probabilities sum to 1.
    let open = partial && !cut;
    var kept = 1.0;
    if (!open) {
        kept = 0.0;
        for (var i = 0u; i < keep; i++) {
            kept += prob(i);
        }
    }
    let r = d.uniform * kept;
    var below = 0.0;
    var pick = keep;
    for (var i = 0u; i < keep; i++) {
        let q = prob(i);
        if (r < below + q) {
            pick = i;
            break;
        }
        below += q;
    }
    var upper_edge = pick + 1u < keep || open;
    if (pick == keep) {
        if (open) {
            return UNDECIDED;  // the draw lies in the rest of the row
        }
        pick = keep - 1u;  // past the last kept by rounding: the last kept
        below -= prob(pick);
        upper_edge = false;
    }
    if (pick > 0u && r - below < m * kept) {
        return UNDECIDED;
    }
    if (upper_edge && below + prob(pick) - r < m * kept) {
        return UNDECIDED;
    }
    return sel[base + 2u * pick];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    if (row < p.rows) {
        picks[row] = pick_row(row);
    }
}
