// Structured output's token mask in place: per row a bitset over the vocabulary (rows
// without a constraint have every bit set); the logit of a token whose bit is clear becomes
// MASKED (`backend::select::MASKED`: finite, so no infinity reaches the selection).

struct MaskParams {
    n: u32,      // rows · vocab
    vocab: u32,
    words: u32,  // bitset words per row
    pad: u32,
}

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read> bits: array<u32>;
@group(0) @binding(2) var<uniform> p: MaskParams;

const MASKED: f32 = -1e30;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let row = i / p.vocab;
    let t = i - row * p.vocab;
    if (((bits[row * p.words + t / 32u] >> (t % 32u)) & 1u) == 0u) {
        logits[i] = MASKED;
    }
}
