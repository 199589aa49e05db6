// Embedding gather: out[i, :] = table[ids[i], :] for the ids that fall in this weight chunk
// (rows row0 .. row0+rows). Included after a weights_*.wgsl snippet, which owns binding 0.

struct EmbedParams {
    n: u32,
    cols: u32,
    row0: u32,
    rows: u32,
}

@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: EmbedParams;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let i = gid.y;
    if (k >= p.cols || i >= p.n) {
        return;
    }
    let id = ids[i];
    if (id < p.row0 || id >= p.row0 + p.rows) {
        return;
    }
    out[i * p.cols + k] = w_at(id - p.row0, k, p.cols);
}
