// Random all-linear PEFT adapters (adapter_config.json + adapter_model.safetensors as bytes),
// seeded, for a model of the given shapes: used by bench/adapters.mjs and the memory checks.

/** SmolLM2-135M's shapes: layers, hidden, intermediate, k/v width, and every projection [out, in]. */
export const SMOLLM2 = (() => {
  const L = 30, D = 576, F = 1536, KV = 192;
  return { L, D, F, KV, MODULES: { q_proj: [D, D], k_proj: [KV, D], v_proj: [KV, D], o_proj: [D, D], gate_proj: [F, D], up_proj: [F, D], down_proj: [D, F] } };
})();
const PATH = { q_proj: 'self_attn', k_proj: 'self_attn', v_proj: 'self_attn', o_proj: 'self_attn', gate_proj: 'mlp', up_proj: 'mlp', down_proj: 'mlp' };

/** A random rank-r adapter on every projection of every layer, as {files}. */
export function peftAdapter(r, seed, { L, MODULES }) {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.02;
  const header = {};
  const parts = [];
  let off = 0;
  for (let i = 0; i < L; i++) {
    for (const [m, [out, inp]] of Object.entries(MODULES)) {
      for (const [part, shape] of [['lora_A', [r, inp]], ['lora_B', [out, r]]]) {
        const data = Float32Array.from({ length: shape[0] * shape[1] }, rnd);
        header[`base_model.model.model.layers.${i}.${PATH[m]}.${m}.${part}.weight`] = { dtype: 'F32', shape, data_offsets: [off, off + data.byteLength] };
        parts.push(data);
        off += data.byteLength;
      }
    }
  }
  let h = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - ((8 + h.length) % 8)) % 8;
  h = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const st = new Uint8Array(8 + h.length + off);
  new DataView(st.buffer).setBigUint64(0, BigInt(h.length), true);
  st.set(h, 8);
  let at = 8 + h.length;
  for (const p of parts) (st.set(new Uint8Array(p.buffer), at), (at += p.byteLength));
  const cfg = { peft_type: 'LORA', r, lora_alpha: 2 * r, target_modules: Object.keys(MODULES), bias: 'none' };
  return { files: { 'adapter_config.json': new TextEncoder().encode(JSON.stringify(cfg)), 'adapter_model.safetensors': st } };
}
