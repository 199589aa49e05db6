// The expand of the fused linear's adapters, shared by matvec.wgsl and matmul.wgsl: for
// output (group row) o and input row r, Σ over the route entries of o's weight and r of
// T[t_off + k]·B[o', k] (o' = o's row in its weight), and DoRA's scaling of the base term.
// Composed after arena.wgsl, routes.wgsl and linear_params.wgsl.

// Σ T·B over ranks k = k0, k0 + step, … of every plain entry (and of DoRA ones when `all`).
fn lora_sum(o: u32, r: u32, k0: u32, step: u32) -> f32 {
    let pt = part_of(o);
    let b_row = o - part_start(pt);
    let span = route_span(pt, r);
    var s = 0.0;
    for (var e = span.x; e < span.y; e++) {
        let en = route(e);
        let rank = entry_rank(en);
        let fmt = entry_format(en);
        for (var k = k0; k < rank; k += step) {
            s += t_at(en.t_off + k) * lora_at(fmt, en.b_off, b_row * rank + k);
        }
    }
    return s;
}

// With DoRA entries (p.dora != 0) the base term `base` of output o, row r, is kept apart:
// y = base + Σ plain lora + Σ_DoRA (gw·(g − 1)·base + g·lora).
fn dora_out(o: u32, r: u32, base: f32) -> f32 {
    let pt = part_of(o);
    let b_row = o - part_start(pt);
    let span = route_span(pt, r);
    var y = base;
    for (var e = span.x; e < span.y; e++) {
        let en = route(e);
        let rank = entry_rank(en);
        let fmt = entry_format(en);
        var s = 0.0;
        for (var k = 0u; k < rank; k++) {
            s += t_at(en.t_off + k) * lora_at(fmt, en.b_off, b_row * rank + k);
        }
        if (en.g_off == NO_GAIN) {
            y += s;
        } else {
            let g = bitcast<f32>(arena[en.g_off + b_row]);
            y += en.gw * (g - 1.0) * base + g * s;
        }
    }
    return y;
}
