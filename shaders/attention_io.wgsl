// What the attention kernels take (`gpu::layout::AttnParams`; rope_append.wgsl,
// attention_split.wgsl, attention_merge.wgsl, attention_prefill.wgsl), and the sliding
// window they apply. The queries are read from the batch's qkv tensor (row stride q_stride,
// queries first) at the span's rows row0 .., the output written at the same rows.

struct AttnParams {
    rows: u32,      // the span's new query rows, at positions pos0 ..
    row0: u32,      // the span's first row in the batch
    pos0: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    window: u32,    // 0: no window
    q_stride: u32,  // row stride of qkv
    scale: f32,
    chunks: u32,    // split: chunks of positions per (row, head), `chunk` positions each
    chunk: u32,
    pad: u32,
}

// First position a query whose positions end (exclusive) at `end` attends to.
fn window_start(end: u32, window: u32) -> u32 {
    if (window > 0u && end > window) {
        return end - window;
    }
    return 0u;
}
