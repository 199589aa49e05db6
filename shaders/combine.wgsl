// The fused linear's epilogues where one pass cannot finish them (a group split over several
// weight bindings, or prefill's silu·mul): the weights' results were stored side by side in
// `y`; MODE 0 adds the bias `y` to every row of `out`, 1 adds `y` to `out`, 2 writes
// out[r, c] = silu(y[r, c])·y[r, cols + c], 3 the same with GELU (act.wgsl's glu).

override MODE: u32 = 0u;

struct CombineParams {
    len: u32,      // elements of out
    cols: u32,     // row width of out
    in_cols: u32,  // row width of y (MODE 2)
    pad: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<uniform> p: CombineParams;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.len) {
        return;
    }
    switch MODE {
        case 0u: {
            out[i] += y[i % p.cols];
        }
        case 1u: {
            out[i] += y[i];
        }
        default: {
            let at = (i / p.cols) * p.in_cols + i % p.cols;
            out[i] = glu(y[at], y[at + p.cols], MODE == 3u);
        }
    }
}
