// RoPE and the KV cache append for one span of rows: the queries rotated in place in qkv,
// the keys rotated into the cache at positions pos0 .., the values copied there. One thread
// per (row, item): the row's query pairs, key pairs and values, rotate-half pairing
// (x[d], x[d + hd/2]) within each head. cos/sin per (batch row, pair) come from the host,
// computed in f64 as on the CPU path. Composed after attention_io.wgsl.

@group(0) @binding(0) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> cs: array<vec2<f32>>;  // [batch rows, head_dim / 2]
@group(0) @binding(2) var<storage, read_write> kc: array<f32>;
@group(0) @binding(3) var<storage, read_write> vc: array<f32>;
@group(0) @binding(4) var<uniform> p: AttnParams;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let half = p.head_dim / 2u;
    let qp = p.heads * half;
    let kp = p.kv_heads * half;
    let kvw = p.kv_heads * p.head_dim;
    let per_row = qp + kp + kvw;
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * per_row) {
        return;
    }
    let r = i / per_row;
    let j = i % per_row;
    let row = p.row0 + r;
    let at = row * p.q_stride;
    let cache = (p.pos0 + r) * kvw;
    if (j < qp + kp) {
        // A rotation pair: head h's dims d and d + half, of the queries or of the keys.
        let key = j >= qp;
        let jj = select(j, j - qp, key);
        let d = jj % half;
        let base = select(0u, p.heads * p.head_dim, key) + (jj / half) * p.head_dim + d;
        let c = cs[row * half + d];
        let x0 = qkv[at + base];
        let x1 = qkv[at + base + half];
        let y0 = x0 * c.x - x1 * c.y;
        let y1 = x1 * c.x + x0 * c.y;
        if (key) {
            let kd = base - p.heads * p.head_dim;
            kc[cache + kd] = y0;
            kc[cache + kd + half] = y1;
        } else {
            qkv[at + base] = y0;
            qkv[at + base + half] = y1;
        }
    } else {
        let v = j - qp - kp;
        vc[cache + v] = qkv[at + p.heads * p.head_dim + kvw + v];
    }
}
