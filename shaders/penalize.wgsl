// The repetition penalty in place: entries are (logit index, penalty bits); positive logits
// are divided by the penalty, others multiplied (one entry per distinct token and row).

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
    let at = entries[2u * i];
    let penalty = bitcast<f32>(entries[2u * i + 1u]);
    let l = logits[at];
    logits[at] = select(l * penalty, l / penalty, l > 0.0);
}
