// Fused LoRA matrix-vector product for decode (n < 16 rows):
//   y[r, o] = X[r] · W[o] + Σ_entries(r) T[t_off..t_off+rank] · B[o, :]
// One workgroup per output row o and block of 4 input rows. Its 64 threads stride over the
// weight row, then over the adapters' ranks: the LoRA term is just more terms of the same
// dot product, so one reduction yields the finished value and y is written once.
// Composed after weights_*.wgsl (w_at / w_at4, binding 0), arena.wgsl, lora_linear_io.wgsl and
// reduce.wgsl (or reduce_subgroups.wgsl).

const WG: u32 = 64u;

// Σ T[t_off + k]·B[go, k] over k = k0, k0 + step, … < rank, for route entry e.
fn lora_part(e: u32, go: u32, k0: u32, step: u32) -> f32 {
    let base = p.n + 1u + e * 8u;
    let b_off = routes[base + 2u];
    let rank = entry_rank(routes[base + 3u]);
    let fmt = entry_format(routes[base + 3u]);
    let t_off = routes[base + 4u];
    var s = 0.0;
    for (var k = k0; k < rank; k += step) {
        s += t[t_off + k] * lora_at(fmt, b_off, go * rank + k);
    }
    return s;
}

fn x4(r: u32, k: u32) -> vec4<f32> {
    let i = r * p.cols + k;
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, lane: Lane) {
    let lid = lane.l;
    let o = wid.x + wid.y * p.wg_x;
    if (o >= p.rows) {
        return; // whole workgroup: o depends only on the workgroup id
    }
    let r0 = wid.z * 4u;
    let nr = min(4u, p.n - r0);
    var acc = vec4<f32>(0.0);
    if (p.cols % 4u == 0u) {
        for (var k = lid * 4u; k < p.cols; k += WG * 4u) {
            let wv = w_at4(o, k, p.cols);
            for (var r = 0u; r < nr; r++) {
                acc[r] += dot(wv, x4(r0 + r, k));
            }
        }
    } else {
        for (var k = lid; k < p.cols; k += WG) {
            let wv = w_at(o, k, p.cols);
            for (var r = 0u; r < nr; r++) {
                acc[r] += wv * x[(r0 + r) * p.cols + k];
            }
        }
    }
    let go = p.out_base + o;
    // Plain LoRA: more terms of the same dot product. With DoRA the base is needed alone,
    // so the adapters are added after the reduction instead.
    if (p.dora == 0u) {
        for (var r = 0u; r < nr; r++) {
            let row = r0 + r;
            for (var e = routes[row]; e < routes[row + 1u]; e++) {
                acc[r] += lora_part(e, go, lid, WG);
            }
        }
    }
    let v = reduce64(lane, acc, false);
    if (lid == 0u) {
        for (var r = 0u; r < nr; r++) {
            var out = v[r];
            if (p.dora != 0u) {
                let row = r0 + r;
                for (var e = routes[row]; e < routes[row + 1u]; e++) {
                    let lora = lora_part(e, go, 0u, 1u);
                    let base = p.n + 1u + e * 8u;
                    let g_off = routes[base + 6u];
                    if (g_off == NO_GAIN) {
                        out += lora;
                    } else {
                        let g = bitcast<f32>(arena[g_off + go]);
                        out += bitcast<f32>(routes[base + 7u]) * (g - 1.0) * v[r] + g * lora;
                    }
                }
            }
            y[(r0 + r) * p.y_stride + go] = out;
        }
    }
}
