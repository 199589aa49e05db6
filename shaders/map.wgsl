// x ← f(x) element-wise: MODE 0 scales by c (Gemma's embedding scale √hidden), 1 soft-caps
// to c·tanh(x/c) (Gemma 2's final logits). Composed after act.wgsl.

override MODE: u32 = 0u;

struct MapParams {
    len: u32,
    c: f32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: MapParams;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.len) {
        return;
    }
    if (MODE == 0u) {
        x[i] *= p.c;
    } else {
        x[i] = p.c * tanh_safe(x[i] / p.c);
    }
}
