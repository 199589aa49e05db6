// The fused linear for decode (n < 16 input rows): out ⟵ epilogue(norm(x)·Wᵀ + adapters).
// A workgroup computes two group rows (EPILOGUE 2, 3: gate row o and up row end0 + o) for a
// block of up to 4 input rows. Its 64 threads stride over the weight rows 8 weights at a time
// (k8/w8: whole words of quants, dequantized in registers, each weight used for every input
// row), then over the adapters' ranks: the LoRA term is more terms of the same dot product,
// so one reduction (subgroups, or a tree) yields the finished value. NORM 1 computes each
// input row's RMS first (one more reduction); NORM 2 reads it from `rs`. Rows whose width is not a multiple of 8 take a
// scalar path. Composed after a weights_*.wgsl snippet, arena.wgsl, routes.wgsl,
// linear_params.wgsl, linear_io.wgsl, linear_lora.wgsl and reduce*.wgsl.

const WG: u32 = 64u;

// Input row r from column k, 4 values, times the norm's gain where there is one (its 1/RMS
// is applied by the caller).
fn x4(r: u32, k: u32) -> vec4<f32> {
    let i = r * p.cols + k;
    let v = vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
    if (NORM == 0u) {
        return v;
    }
    return v * vec4<f32>(gain[k], gain[k + 1u], gain[k + 2u], gain[k + 3u]);
}

fn x1(r: u32, k: u32) -> f32 {
    let v = x[r * p.cols + k];
    if (NORM == 0u) {
        return v;
    }
    return v * gain[k];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, lane: Lane) {
    let l = lane.l;
    let unit = wid.x + wid.y * p.wg_x;
    // The workgroup's two group rows (o1 may be past the end: it is then computed as o0 and
    // not written).
    var o0 = p.row0 + 2u * unit;
    var o1 = o0 + 1u;
    var live1 = 2u * unit + 1u < p.rows;
    if (EPILOGUE >= 2u) {
        o0 = p.row0 + unit;
        o1 = p.end0 + o0;
        live1 = true;
    }
    if (o0 - p.row0 >= p.rows) {
        return; // the whole workgroup: depends on the workgroup id only
    }
    if (!live1) {
        o1 = o0;
    }
    let wr0 = o0 - p.row0 + p.w_row0;
    let wr1 = o1 - p.row0 + p.w_row0;
    let r0 = wid.z * 4u;
    let nr = min(4u, p.n - r0);

    // Prologue: each input row's 1/RMS.
    var scale = vec4<f32>(1.0);
    if (NORM == 1u) {
        var ss = vec4<f32>(0.0);
        for (var k = l; k < p.cols; k += WG) {
            for (var r = 0u; r < nr; r++) {
                let v = x[(r0 + r) * p.cols + k];
                ss[r] += v * v;
            }
        }
        scale = inverseSqrt(reduce64(lane, ss, false) / f32(p.cols) + p.eps);
    } else if (NORM == 2u) {
        for (var r = 0u; r < nr; r++) {
            scale[r] = rs[r0 + r];
        }
    }

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    if (p.cols % 8u == 0u) {
        for (var g = l; g < p.cols / 8u; g += WG) {
            let k = k8(g);
            var xl: array<vec4<f32>, 4>;
            var xh: array<vec4<f32>, 4>;
            for (var r = 0u; r < nr; r++) {
                xl[r] = x4(r0 + r, k.x) * scale[r];
                xh[r] = x4(r0 + r, k.y) * scale[r];
            }
            let w0 = w8(wr0, g, p.cols);
            let w1 = w8(wr1, g, p.cols);
            for (var r = 0u; r < nr; r++) {
                acc0[r] += dot(w0.lo, xl[r]) + dot(w0.hi, xh[r]);
                acc1[r] += dot(w1.lo, xl[r]) + dot(w1.hi, xh[r]);
            }
        }
    } else {
        for (var k = l; k < p.cols; k += WG) {
            let a = w_at(wr0, k, p.cols);
            let b = w_at(wr1, k, p.cols);
            for (var r = 0u; r < nr; r++) {
                let v = x1(r0 + r, k) * scale[r];
                acc0[r] += a * v;
                acc1[r] += b * v;
            }
        }
    }
    // Plain LoRA: more terms of the same dot products. With DoRA the base is needed alone,
    // so the adapters are added after the reduction instead.
    if (p.dora == 0u) {
        for (var r = 0u; r < nr; r++) {
            acc0[r] += lora_sum(o0, r0 + r, l, WG);
            acc1[r] += lora_sum(o1, r0 + r, l, WG);
        }
    }
    let v0 = reduce64(lane, acc0, false);
    let v1 = reduce64(lane, acc1, false);
    // Lane r finishes input row r.
    if (l < nr) {
        let r = r0 + l;
        var y0 = v0[l];
        var y1 = v1[l];
        if (p.dora != 0u) {
            y0 = dora_out(o0, r, y0);
            y1 = dora_out(o1, r, y1);
        }
        if (EPILOGUE >= 2u) {
            write_out(o0, r, y0, y1);
        } else {
            write_out(o0, r, y0, 0.0);
            if (live1) {
                write_out(o1, r, y1, 0.0);
            }
        }
    }
}
