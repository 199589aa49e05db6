// Rotary embedding in place, rotate-half pairing (x[d], x[d + half]) within each head.
// cos/sin come per (row, d) from the host, computed in f64 as on the CPU path, so long
// positions lose no precision to an f32 angle.

struct RopeParams {
    rows: u32,
    cols: u32,
    head_dim: u32,
    pad0: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> cs: array<vec2<f32>>;  // [rows, head_dim / 2] (cos, sin)
@group(0) @binding(2) var<uniform> p: RopeParams;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let pairs = p.cols / 2u;
    if (i >= p.rows * pairs) {
        return;
    }
    let half = p.head_dim / 2u;
    let row = i / pairs;
    let j = i % pairs;
    let a = row * p.cols + (j / half) * p.head_dim + j % half;
    let b = a + half;
    let c = cs[row * half + j % half];
    let x0 = x[a];
    let x1 = x[b];
    x[a] = x0 * c.x - x1 * c.y;
    x[b] = x1 * c.x + x0 * c.y;
}
