// PEFT adapters through the public API in Node: loaded from folders and file maps, used per
// request in forward and generate, swapped, scaled, unloaded; against PEFT's logits.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as api from '../../pkg/index.js';

const TINY = new URL('../fixtures/tiny/', import.meta.url);
const REF = JSON.parse(readFileSync(new URL('reference.json', TINY)));
const AREF = JSON.parse(readFileSync(new URL('adapters/reference.json', TINY)));
// The default runtime: PEFT's logits within 1e-4 for every fixture adapter (int16, opt-in,
// misses that on these tiny models: it is measured in Chromium at 5e-3).
const rt = await api.LoraRuntime.create({ backend: 'cpu' });

function maxRel(got, want, V) {
  let worst = 0;
  for (let p = 0; p < want.length / V; p++) {
    let num = 0, den = 0;
    for (let j = 0; j < V; j++) {
      num += (got[p * V + j] - want[p * V + j]) ** 2;
      den += want[p * V + j] ** 2;
    }
    worst = Math.max(worst, Math.sqrt(num / den));
  }
  return worst;
}
const expected = (n) => new Float32Array(readFileSync(new URL(`adapters/${n}/expected_logits.f32`, TINY)).buffer.slice(0));

test('PEFT adapters on the other architectures match PEFT (Qwen2/3, Mistral, fused Phi-3 projections, Gemma 2/3)', async () => {
  const names = Object.keys(AREF).filter((n) => AREF[n].base !== 'llama');
  assert.ok(names.includes('phi3-fused') && names.includes('qwen3-all-linear'), names.join());
  for (const n of names) {
    const model = await rt.loadModel(new URL(`${AREF[n].base}-hf/`, TINY).href);
    const info = await model.loadAdapter(n, new URL(`adapters/${n}/`, TINY).href);
    const got = await model.forward(REF.prompt_ids, { adapter: n });
    const err = maxRel(got, expected(n), model.info.vocabSize);
    assert.ok(err <= 1e-4, `${n}: ${err}`);
    // Fused projections are reported by PEFT's module names.
    if (n.startsWith('phi3')) assert.ok(info.targets.some((t) => t.endsWith('self_attn.qkv_proj')), info.targets.join());
    model.dispose();
  }
});

test('PEFT adapters match PEFT, per request, with swap, scale, stack and unload', async () => {
  assert.equal(rt.adapterPrecision, 'f32');
  const model = await rt.loadModel(new URL('llama-hf/', TINY).href);
  const V = model.info.vocabSize;
  const base = await model.forward(REF.prompt_ids);
  const names = Object.keys(AREF).filter((n) => AREF[n].base === 'llama');
  for (const n of names) {
    const info = await model.loadAdapter(n, new URL(`adapters/${n}/`, TINY).href);
    assert.equal(info.name, n);
    assert.ok(info.bytes > 0 && info.targets.length > 0);
    assert.deepEqual([info.precision, info.roundingError], ['f32', 0]);
  }
  assert.deepEqual(model.adapters().map((a) => a.name).sort(), names.sort());
  for (const n of names) {
    const got = await model.forward(REF.prompt_ids, { adapter: n });
    assert.ok(maxRel(got, expected(n), V) <= 1e-4, `${n}: ${maxRel(got, expected(n), V)}`);
  }
  // Base again, exactly; {adapter: null} is the base.
  assert.deepEqual(await model.forward(REF.prompt_ids, { adapter: null }), base);
  // Generation with an adapter follows its logits: greedy = argmax of PEFT's logits at the
  // prompt's last position.
  const first = await model.generate(REF.prompt, { adapter: 'qv-r4', maxTokens: 1 });
  await first.text();
  assert.equal(first.tokens[0], AREF['qv-r4'].argmax.at(-1));
  // Scale, stack, unload.
  model.setAdapterScale('qv-r4', 0);
  assert.deepEqual(await model.forward(REF.prompt_ids, { adapter: 'qv-r4' }), base);
  model.setAdapterScale('qv-r4', 1);
  const stacked = await model.forward(REF.prompt_ids, { adapters: [{ name: 'qv-r4', weight: 0.5 }, { name: 'layers-1', weight: 0.5 }] });
  assert.ok(maxRel(stacked, base, V) > 1e-3);
  model.unloadAdapter('qv-r4');
  await assert.rejects(model.forward(REF.prompt_ids, { adapter: 'qv-r4' }), api.AdapterError);
  assert.ok(maxRel(await model.forward(REF.prompt_ids, { adapter: 'rslora' }), expected('rslora'), V) <= 1e-4);
  model.dispose();
});

test('adapters from {files}; bad adapters are typed errors and change nothing', async () => {
  const model = await rt.loadModel(new URL('llama-hf/', TINY).href);
  const dir = new URL('adapters/qv-r4/', TINY);
  const files = Object.fromEntries(['adapter_config.json', 'adapter_model.safetensors'].map((n) => [n, readFileSync(new URL(n, dir))]));
  await model.loadAdapter('a', { files });
  const before = await model.forward(REF.prompt_ids, { adapter: 'a' });
  await assert.rejects(model.loadAdapter('a', { files }), api.AdapterError);
  const cfg = JSON.parse(files['adapter_config.json']);
  const bad = (patch) => ({ files: { ...files, 'adapter_config.json': new TextEncoder().encode(JSON.stringify({ ...cfg, ...patch })) } });
  await assert.rejects(model.loadAdapter('b', bad({ use_qalora: true })), (e) => e instanceof api.UnsupportedError && /use_qalora/.test(e.message));
  await assert.rejects(model.loadAdapter('b', bad({ r: 16 })), (e) => e instanceof api.FormatError && /rank 4, but the config says 16/.test(e.message));
  const mistral = await rt.loadModel(new URL('mistral-hf/', TINY).href);
  await assert.rejects(mistral.loadAdapter('x', { files }), (e) => e instanceof api.ShapeError && /v_proj\.lora_B\.weight \[32, 4\]/.test(e.message));
  // Replacing works, and keeps the name.
  await model.loadAdapter('a', new URL('adapters/layers-1/', TINY).href, { replace: true });
  assert.notDeepEqual(await model.forward(REF.prompt_ids, { adapter: 'a' }), before);
  assert.deepEqual(model.adapters().map((a) => a.name), ['a']);
  await assert.rejects(model.forward(REF.prompt_ids, { adapter: 'a', adapters: [] }), api.ConfigError);
  assert.throws(() => model.generate('hi', { adapter: 'nope' }), api.AdapterError);
});

test('GGUF LoRA adapters (llama.cpp converter) by URL and as raw bytes match PEFT', async () => {
  const model = await rt.loadModel(new URL('llama-hf/', TINY).href);
  const V = model.info.vocabSize;
  await model.loadAdapter('g1', new URL('adapters/qv-r4.gguf', TINY).href);
  await model.loadAdapter('g2', readFileSync(new URL('adapters/all-linear-r8.gguf', TINY)));
  assert.ok(maxRel(await model.forward(REF.prompt_ids, { adapter: 'g1' }), expected('qv-r4'), V) <= 1e-4);
  assert.ok(maxRel(await model.forward(REF.prompt_ids, { adapter: 'g2' }), expected('all-linear-r8'), V) <= 1e-4);
});

test('generateBatch: rows with different adapters in one batched pass equal single runs', async () => {
  const model = await rt.loadModel(new URL('llama-hf/', TINY).href);
  for (const n of ['qv-r4', 'all-linear-r8']) await model.loadAdapter(n, new URL(`adapters/${n}/`, TINY).href);
  const items = [
    { prompt: REF.prompt, adapter: 'qv-r4' },
    { prompt: 'Hello, world' },
    { prompt: REF.prompt, adapters: [{ name: 'all-linear-r8', weight: 0.8 }] },
  ];
  const batch = model.generateBatch(items, { maxTokens: 8 });
  const texts = await batch.texts();
  for (let i = 0; i < items.length; i++) {
    const { prompt, ...choice } = items[i];
    const single = model.generate(prompt, { maxTokens: 8, ...choice });
    assert.equal(texts[i], await single.text(), `row ${i}`);
    assert.deepEqual(batch.tokens(i), single.tokens, `row ${i} tokens`);
    assert.equal(batch.finishReason(i), 'length');
  }
  assert.notDeepEqual(batch.tokens(0), batch.tokens(2));
  // Rows can be consumed one by one; an unknown adapter is refused up front.
  const b2 = model.generateBatch([{ prompt: 'a' }, { prompt: 'b', adapter: 'qv-r4' }], { maxTokens: 3 });
  let first = '';
  for await (const p of b2.streams[1]) first += p;
  assert.equal(b2.tokens(1).length, 3);
  assert.throws(() => model.generateBatch([{ prompt: 'x', adapter: 'nope' }]), api.AdapterError);
});

test('precision per adapter: auto keeps int16 unless an outlier would coarsen a rank, then f32; roundingError says what storage did', async () => {
  const i16 = await api.LoraRuntime.create({ backend: 'cpu', adapterPrecision: 'i16' });
  assert.equal(i16.adapterPrecision, 'i16');
  const model = await i16.loadModel(new URL('llama-hf/', TINY).href);
  const V = model.info.vocabSize;
  const dir = new URL('adapters/qv-r4/', TINY);
  const files = Object.fromEntries(['adapter_config.json', 'adapter_model.safetensors'].map((n) => [n, readFileSync(new URL(n, dir))]));
  const plain = await model.loadAdapter('plain', { files });
  // One value of one lora_B, 1000x that tensor's largest: its rank's int16 step grows 1000x.
  const st = new Uint8Array(files['adapter_model.safetensors']);
  const n = Number(new DataView(st.buffer, st.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(st.subarray(8, 8 + n)));
  const [, t] = Object.entries(header).find(([k, v]) => k.endsWith('lora_B.weight') && v.dtype === 'F32');
  const at = 8 + n + t.data_offsets[0];
  const data = new Float32Array(st.slice(at, 8 + n + t.data_offsets[1]).buffer);
  data[0] = 1000 * data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const spiky = st.slice();
  spiky.set(new Uint8Array(data.buffer), at);
  const withOutlier = { files: { ...files, 'adapter_model.safetensors': spiky } };
  const auto = await model.loadAdapter('outlier', withOutlier);
  const forced = await model.loadAdapter('outlier-i16', withOutlier, { precision: 'i16' });
  const exact = await model.loadAdapter('plain-f32', { files }, { precision: 'f32' });
  console.log(`# int16 roundingError: qv-r4 ${plain.roundingError.toExponential(1)}, with an outlier ${forced.roundingError.toExponential(1)}`);
  assert.deepEqual([plain.precision, auto.precision, forced.precision, exact.precision], ['i16', 'f32', 'i16', 'f32']);
  assert.ok(plain.roundingError > 1e-6 && plain.roundingError < 1e-4, `plain ${plain.roundingError}`);
  assert.ok(forced.roundingError > 2e-4 && forced.roundingError > 10 * plain.roundingError, `outlier in int16: ${forced.roundingError}`);
  assert.deepEqual([auto.roundingError, exact.roundingError], [0, 0]);
  assert.deepEqual(model.adapters().map((a) => [a.name, a.precision]), [['outlier', 'f32'], ['outlier-i16', 'i16'], ['plain', 'i16'], ['plain-f32', 'f32']]);
  // f32 and int16 adapters side by side, alone and stacked, give what an all-f32 model gives
  // (int16 within its rounding), and the f32 one exactly.
  const ref = await rt.loadModel(new URL('llama-hf/', TINY).href);
  await ref.loadAdapter('outlier', withOutlier);
  await ref.loadAdapter('plain', { files });
  const same = async (opts, tol) => {
    const [got, want] = [await model.forward(REF.prompt_ids, opts), await ref.forward(REF.prompt_ids, opts)];
    assert.ok(maxRel(got, want, V) <= tol, `${JSON.stringify(opts)}: ${maxRel(got, want, V)}`);
  };
  await same({ adapter: 'outlier' }, 1e-6);
  await same({ adapter: 'plain' }, 5e-3);
  await same({ adapters: [{ name: 'outlier', weight: 0.5 }, { name: 'plain', weight: 0.5 }] }, 5e-3);
  assert.ok(maxRel(await model.forward(REF.prompt_ids, { adapter: 'plain-f32' }), expected('qv-r4'), V) <= 1e-4);
  await assert.rejects(model.loadAdapter('x', { files }, { precision: 'f8' }), (e) => e instanceof api.ConfigError && /unknown precision "f8"/.test(e.message));
  assert.equal(model.adapters().length, 4, 'a failed load leaves nothing behind');
  // The CPU's 16 bits are int16: asking for f16 gives it.
  assert.equal((await model.loadAdapter('half', { files }, { precision: 'f16' })).precision, 'i16');
});
