// A call's route table, the first words of its `lora` buffer (declared by the kernel, with
// `p: LinearParams`): row_start[parts·n + 1] (the entries of weight `pt`'s input row r are
// row_start[pt·n + r] .. row_start[pt·n + r + 1]), then 8 words per entry from word
// `p.entries`, then the T scratch from word `p.t_base` (the shrink writes it). `RouteEntry`
// is `gpu::layout::RouteEntry`.

struct RouteEntry {
    row: u32,
    a_off: u32,
    b_off: u32,
    rank_format: u32,  // rank | FactorFormat code << 16 (arena.wgsl)
    t_off: u32,
    coef: f32,
    g_off: u32,        // NO_GAIN: plain LoRA
    gw: f32,
}

const ROUTE_WORDS: u32 = 8u;
const NO_GAIN: u32 = 0xffffffffu;

fn route(e: u32) -> RouteEntry {
    let b = p.entries + e * ROUTE_WORDS;
    return RouteEntry(lora[b], lora[b + 1u], lora[b + 2u], lora[b + 3u], lora[b + 4u], bitcast<f32>(lora[b + 5u]), lora[b + 6u], bitcast<f32>(lora[b + 7u]));
}

// The entries of weight pt for input row r: [first, end).
fn route_span(pt: u32, r: u32) -> vec2<u32> {
    let i = pt * p.n + r;
    return vec2<u32>(lora[i], lora[i + 1u]);
}

fn entry_rank(e: RouteEntry) -> u32 {
    return e.rank_format & 0xffffu;
}

fn entry_format(e: RouteEntry) -> u32 {
    return e.rank_format >> 16u;
}

fn t_at(i: u32) -> f32 {
    return bitcast<f32>(lora[p.t_base + i]);
}
