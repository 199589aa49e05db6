// The fused linear for prefill (n >= 16 input rows), tiled 64 input rows x 64 group rows per
// workgroup, 16 x 16 threads each owning a 4 x 4 block of outputs; K advances 16 at a time
// through workgroup memory. NORM 2 scales the input tile by each row's 1/RMS (rms.wgsl) and
// the gain as it loads. The epilogue adds each row's adapters, s·T·Bᵀ (T from shrink.wgsl),
// inside the output tile, then stores (EPILOGUE 0, + bias) or adds (1) once.
// Composed after weights_*.wgsl (w_at / w_at4, binding 0), arena.wgsl, routes.wgsl,
// linear_params.wgsl, linear_io.wgsl and linear_lora.wgsl, and after `alias tile_t = f32;`
// or, with f16 math (shader-f16), `enable f16; alias tile_t = f16;`: the tiles hold tile_t
// and a K step's 16 products are summed in tile_t before the f32 accumulator takes them.

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;
// Transposed tiles, [k][row] and [k][out], so the inner loop reads 4 neighbours at once.
var<workgroup> xs: array<array<tile_t, 64>, 16>;
var<workgroup> ws: array<array<tile_t, 64>, 16>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n0 = wid.x * TN;
    let m0 = wid.y * TM;
    let tx = lid % 16u;
    let ty = lid / 16u;
    // Tile loading: thread loads 4 consecutive k of row / weight row `lr`.
    let lr = lid / 4u;
    let lk = (lid % 4u) * 4u;
    let aligned = p.cols % 4u == 0u;

    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.cols; k0 += TK) {
        let k = k0 + lk;
        var xv = vec4<f32>(0.0);
        let xr = m0 + lr;
        if (xr < p.n) {
            for (var j = 0u; j < 4u; j++) {
                if (k + j < p.cols) {
                    xv[j] = x[xr * p.cols + k + j];
                    if (NORM == 2u) {
                        xv[j] *= rs[xr] * gain[k + j];
                    }
                }
            }
        }
        var wv = vec4<f32>(0.0);
        let wr = n0 + lr + p.w_row0;
        if (n0 + lr < p.rows) {
            if (aligned && k < p.cols) {
                wv = w_at4(wr, k, p.cols);
            } else {
                for (var j = 0u; j < 4u; j++) {
                    if (k + j < p.cols) {
                        wv[j] = w_at(wr, k + j, p.cols);
                    }
                }
            }
        }
        for (var j = 0u; j < 4u; j++) {
            xs[lk + j][lr] = tile_t(xv[j]);
            ws[lk + j][lr] = tile_t(wv[j]);
        }
        workgroupBarrier();
        // Zeroed explicitly each K step: SwiftShader kept the previous step's sums.
        var part: array<vec4<tile_t>, 4>;
        for (var i = 0u; i < 4u; i++) {
            part[i] = vec4<tile_t>(0.0);
        }
        for (var kk = 0u; kk < TK; kk++) {
            let a = vec4<tile_t>(xs[kk][ty * 4u], xs[kk][ty * 4u + 1u], xs[kk][ty * 4u + 2u], xs[kk][ty * 4u + 3u]);
            let b = vec4<tile_t>(ws[kk][tx * 4u], ws[kk][tx * 4u + 1u], ws[kk][tx * 4u + 2u], ws[kk][tx * 4u + 3u]);
            part[0] += a.x * b;
            part[1] += a.y * b;
            part[2] += a.z * b;
            part[3] += a.w * b;
        }
        for (var i = 0u; i < 4u; i++) {
            acc[i] += vec4<f32>(part[i]);
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let row = m0 + ty * 4u + i;
        if (row >= p.n) {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let local = n0 + tx * 4u + j;
            if (local < p.rows) {
                let o = p.row0 + local;
                var y = acc[i][j];
                if (p.dora == 0u) {
                    y += lora_sum(o, row, 0u, 1u);
                } else {
                    y = dora_out(o, row, y);
                }
                write_out(o, row, y, 0.0);
            }
        }
    }
}
