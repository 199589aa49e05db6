// Merges attention_split.wgsl's chunks: per (head, row), M = max of the chunks' maxima, the
// output Σ_c e^(m_c − M)·o_c / Σ_c e^(m_c − M)·l_c. One workgroup per (head, row), a thread
// per output dim. Composed after attention_io.wgsl.

@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: AttnParams;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let h = wid.x;
    let i = wid.y;
    let hd = p.head_dim;
    let base = (i * p.heads + h) * p.chunks * (2u + hd);
    var mx = -3.0e38;
    for (var c = 0u; c < p.chunks; c++) {
        mx = max(mx, part[base + c * (2u + hd)]);
    }
    var total = 0.0;
    for (var c = 0u; c < p.chunks; c++) {
        let at = base + c * (2u + hd);
        total += exp(part[at] - mx) * part[at + 1u];
    }
    for (var d = l; d < hd; d += 64u) {
        var acc = 0.0;
        for (var c = 0u; c < p.chunks; c++) {
            let at = base + c * (2u + hd);
            acc += exp(part[at] - mx) * part[at + 2u + d];
        }
        out[(p.row0 + i) * p.heads * hd + h * hd + d] = acc / total;
    }
}
