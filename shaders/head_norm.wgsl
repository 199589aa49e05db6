// Qwen3's per-head RMSNorm of the queries and keys, in place in qkv, before RoPE: one
// thread per (row, head), the query heads with gain qn, the key heads (which follow them
// in a row) with kn. Composed after attention_io.wgsl; `p.scale` carries the epsilon.

@group(0) @binding(0) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> qn: array<f32>;
@group(0) @binding(2) var<storage, read> kn: array<f32>;
@group(0) @binding(3) var<uniform> p: AttnParams;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let per_row = p.heads + p.kv_heads;
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * per_row) {
        return;
    }
    let h = i % per_row;
    let at = (p.row0 + i / per_row) * p.q_stride + h * p.head_dim;
    var ss = 0.0;
    for (var d = 0u; d < p.head_dim; d++) {
        let x = qkv[at + d];
        ss += x * x;
    }
    let inv = 1.0 / sqrt(ss / f32(p.head_dim) + p.scale);
    let key = h >= p.heads;
    for (var d = 0u; d < p.head_dim; d++) {
        let g = select(qn[d], kn[d], key);
        qkv[at + d] = g * (qkv[at + d] * inv);
    }
}
