// The penalties in place (`Penalty` in select.rs): entries are (logit index, scale bits,
// minus bits); positive logits are divided by the scale, others multiplied, then minus is
// subtracted (one entry per penalized token and row).

struct PenalizeParams {
    n: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read> entries: array<u32>;
@group(0) @binding(2) var<uniform> p: PenalizeParams;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let at = entries[3u * i];
    let scale = bitcast<f32>(entries[3u * i + 1u]);
    let minus = bitcast<f32>(entries[3u * i + 2u]);
    let l = logits[at];
    logits[at] = select(l * scale, l / scale, l > 0.0) - minus;
}
