// What the attention kernels take (`gpu::layout::AttnParams`; rope_append.wgsl,
// attention_split.wgsl, attention_merge.wgsl, attention_prefill.wgsl, head_norm.wgsl), the
// sliding window and the soft-capping they apply. Composed after act.wgsl. The queries are read from the batch's qkv tensor (row stride q_stride,
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
    softcap: f32,   // scores capped to softcap·tanh(s / softcap); 0: not capped
}

// A score as the softmax takes it (Gemma 2's soft-capping; act.wgsl's tanh_safe).
fn capped(s: f32, softcap: f32) -> f32 {
    if (softcap > 0.0) {
        return softcap * tanh_safe(s / softcap);
    }
    return s;
}

// First position a query whose positions end (exclusive) at `end` attends to.
fn window_start(end: u32, window: u32) -> u32 {
    if (window > 0u && end > window) {
        return end - window;
    }
    return 0u;
}
