// What both attention kernels take (attention.wgsl for decode, attention_prefill.wgsl), laid
// out as `AttnParams` in src/gpu/model_ops.rs, and the sliding window both apply.

struct AttnParams {
    rows: u32,      // new query rows, at positions pos0 ..
    pos0: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    window: u32,    // 0: no window
    span: u32,      // decode kernel: scratch stride per (row, head), pos0 + rows
    scale: f32,
}

// First position a query whose positions end (exclusive) at `end` attends to.
fn window_start(end: u32, window: u32) -> u32 {
    if (window > 0u && end > window) {
        return end - window;
    }
    return 0u;
}
