// Crafted files through the built package in Node, one process, beside a loaded model: each
// is refused with its typed error within seconds, grows wasm memory by at most 16 MiB (a
// refused file holds nothing), and the model loaded before gives the same logits after all
// of them (in wasm a panic or a failed allocation would abort the module and lose it).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import * as api from '../../pkg/index.js';

const TINY = new URL('../fixtures/tiny/', import.meta.url);
const REF = JSON.parse(readFileSync(new URL('reference.json', TINY)));
const gguf = new Uint8Array(readFileSync(new URL('llama-f32.gguf', TINY)));
const folder = (dir) => Object.fromEntries(readdirSync(new URL(`${dir}/`, TINY)).map((f) => [f, new Uint8Array(readFileSync(new URL(`${dir}/${f}`, TINY)))]));
const text = (s) => new TextEncoder().encode(s);

/** Where the value of GGUF metadata `key` starts (after its u64 length, bytes and u32 type). */
function valueAt(bytes, key) {
  const k = text(key);
  const want = new Uint8Array(8 + k.length);
  new DataView(want.buffer).setBigUint64(0, BigInt(k.length), true);
  want.set(k, 8);
  for (let i = 0; i + want.length <= bytes.length; i++) {
    if (want.every((b, j) => bytes[i + j] === b)) return i + want.length + 4;
  }
  throw new Error(`${key} not found`);
}

/** A copy of the tiny GGUF with `patch(bytes, view)` applied. */
function patched(patch) {
  const b = gguf.slice();
  patch(b, new DataView(b.buffer));
  return { files: { 'crafted.gguf': b } };
}

/** The tiny llama HF folder with some of its files replaced. */
function hf(replace) {
  return { files: { ...folder('llama-hf'), ...replace } };
}

function safetensorsClaiming(headerBytes) {
  const b = new Uint8Array(80);
  new DataView(b.buffer).setBigUint64(0, BigInt(headerBytes), true);
  b.set(text('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'), 8);
  return b;
}

const config = JSON.parse(new TextDecoder().decode(folder('llama-hf')['config.json']));
const tokenizerConfig = JSON.parse(new TextDecoder().decode(folder('llama-hf')['tokenizer_config.json']));
const tokenizer = JSON.parse(new TextDecoder().decode(folder('llama-hf')['tokenizer.json']));

// [what, source, error class, message pattern]
const MODELS = [
  ['a GGUF cut in half', { files: { 'crafted.gguf': gguf.slice(0, gguf.length >> 1) } }, api.FormatError, /truncated/],
  ['a GGUF cut inside its header', { files: { 'crafted.gguf': gguf.slice(0, 700) } }, api.FormatError, /truncated/],
  ['not a GGUF (bad magic)', patched((b) => b.set(text('GGUX'), 0)), api.FormatError, /./],
  ['a metadata string of 2^40 bytes', patched((b, v) => v.setBigUint64(valueAt(b, 'general.name'), 1n << 40n, true)), api.FormatError, /./],
  ['a vocabulary array of 2^40 entries', patched((b, v) => v.setBigUint64(valueAt(b, 'tokenizer.ggml.tokens') + 4, 1n << 40n, true)), api.FormatError, /./],
  ['2^24 layers', patched((b, v) => v.setUint32(valueAt(b, 'llama.block_count'), 1 << 24, true)), api.FormatError, /implausible/],
  ['heads whose widths wrap 32 bits', patched((b, v) => {
    v.setUint32(valueAt(b, 'llama.attention.head_count'), 65537, true);
    v.setUint32(valueAt(b, 'llama.attention.head_count_kv'), 65537, true);
    v.setUint32(valueAt(b, 'llama.rope.dimension_count'), 65536, true);
  }), api.FormatError, /implausible/],
  ['a NaN in a weight', patched((b, v) => v.setFloat32(b.length - 4, NaN, true)), api.ConfigError, /must be finite/],
  ['a safetensors header claiming 2.5 GiB', hf({ 'model.safetensors': safetensorsClaiming(2.5 * 2 ** 30) }), api.FormatError, /./],
  ['2^32 + 1 attention heads', hf({ 'config.json': text(JSON.stringify({ ...config, num_attention_heads: 2 ** 32 + 1 })) }), api.FormatError, /implausible/],
  ['a tokenizer id of 4194303', hf({ 'tokenizer.json': text(JSON.stringify({ ...tokenizer, added_tokens: [...tokenizer.added_tokens, { ...tokenizer.added_tokens[0], id: 4194303, content: '<far>' }] })) }), api.LoraError, /./],
  ['a chat template that never finishes', hf({ 'tokenizer_config.json': text(JSON.stringify({ ...tokenizerConfig, chat_template: '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}' })) }), api.LimitError, /steps/],
];

const rt = await api.LoraRuntime.create({ backend: 'cpu' });
const model = await rt.loadModel(new URL('llama-f32.gguf', TINY).href);
const before = await model.forward(REF.prompt_ids);
await model.loadAdapter('qv', new URL('adapters/qv-r4/', TINY).href);
const withAdapter = await model.forward(REF.prompt_ids, { adapter: 'qv' });

/** Runs `load`, which must fail with `cls` matching `pattern`, quickly and within 16 MiB. */
async function refused(what, load, cls, pattern) {
  const [mem, t0] = [api.LoraRuntime.wasmMemoryBytes(), performance.now()];
  const e = await load().then(() => null, (err) => err);
  const [ms, grew] = [performance.now() - t0, api.LoraRuntime.wasmMemoryBytes() - mem];
  assert.ok(e instanceof cls, `${what}: ${e?.name}: ${e?.message}`);
  assert.match(e.message, pattern, what);
  assert.ok(ms < 5000, `${what}: ${ms} ms`);
  assert.ok(grew <= 16 * 2 ** 20, `${what}: wasm memory grew ${grew} bytes`);
  console.log(`# ${what}: ${e.name} in ${ms.toFixed(0)} ms, +${(grew / 2 ** 20).toFixed(1)} MiB: ${e.message.slice(0, 100)}`);
}

test('crafted model files: typed errors, bounded time and memory, the loaded model unharmed', async () => {
  for (const [what, source, cls, pattern] of MODELS) await refused(what, () => rt.loadModel(source), cls, pattern);
  assert.deepEqual(await model.forward(REF.prompt_ids), before, 'base logits after every refused file');
});

test('crafted adapters: typed errors, the loaded model and its adapter unharmed', async () => {
  const qv = folder('adapters/qv-r4');
  const cfg = JSON.parse(new TextDecoder().decode(qv['adapter_config.json']));
  const nan = qv['adapter_model.safetensors'].slice();
  new DataView(nan.buffer).setFloat32(nan.length - 4, NaN, true);
  const adapters = [
    ['an adapter for another model (Gemma 3: one key/value head)', { files: folder('adapters/gemma3-rslora') }, api.ShapeError, /k_proj/],
    ['an adapter for fused projections the model lacks', { files: folder('adapters/phi3-fused') }, api.ShapeError, /gate_up_proj.* does not belong/],
    ['a NaN in lora_B', { files: { ...qv, 'adapter_model.safetensors': nan } }, api.ConfigError, /must be finite/],
    ['r = 2^32 + 4', { files: { ...qv, 'adapter_config.json': text(JSON.stringify({ ...cfg, r: 2 ** 32 + 4 })) } }, api.FormatError, /out of range/],
    ['an adapter file cut short', { files: { ...qv, 'adapter_model.safetensors': qv['adapter_model.safetensors'].slice(0, 200) } }, api.FormatError, /./],
    ['a GGUF model offered as an adapter', { files: { 'x.gguf': gguf } }, api.FormatError, /not a GGUF LoRA adapter/],
  ];
  for (const [what, source, cls, pattern] of adapters) await refused(what, () => model.loadAdapter('bad', source), cls, pattern);
  assert.deepEqual(model.adapters().map((a) => a.name), ['qv']);
  assert.deepEqual(await model.forward(REF.prompt_ids, { adapter: 'qv' }), withAdapter, 'adapter logits after every refused adapter');
  assert.deepEqual(await model.forward(REF.prompt_ids), before);
});
