// Tiny fixture models in Node: all 35 variants from file URLs (GGUF and HF folders), an HF
// folder from {files} and a truncated safetensors shard.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdtempSync, cpSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as api from '../../pkg/index.js';
import { checkTinyModels } from './tiny-models.mjs';

const BASE = new URL('../fixtures/tiny/', import.meta.url);
const rt = await api.LoraRuntime.create({ backend: 'cpu' });

test('every architecture and format matches PyTorch (Node, CPU)', async () => {
  const { checked, failures } = await checkTinyModels(api, rt, BASE);
  assert.deepEqual(failures, []);
  assert.equal(checked, 35);
});

test('an HF folder given as {files}, with progress; a truncated shard is a FormatError', async () => {
  const dir = new URL('qwen2-hf/', BASE);
  const files = Object.fromEntries(readdirSync(dir).map((n) => [n, readFileSync(new URL(n, dir))]));
  const seen = [];
  const model = await rt.loadModel({ files }, { onProgress: (p) => seen.push(p) });
  assert.equal(model.info.architecture, 'qwen2');
  assert.equal(model.info.quantization, 'bf16');
  assert.equal(seen.at(-1).loaded, seen.at(-1).total);
  assert.deepEqual([...new Set(seen.map((p) => p.stage))], ['download', 'parse', 'ready']);
  assert.deepEqual(new Set(seen.map((p) => p.file)), new Set(Object.keys(files)));
  const cut = { ...files, 'model.safetensors': files['model.safetensors'].subarray(0, 5000) };
  const e = await rt.loadModel({ files: cut }).then(() => null, (e) => e);
  assert.ok(e instanceof api.FormatError, String(e));
  assert.match(e.message, /model\.safetensors: truncated at byte 5000: tensor \S+ needs bytes up to \d+/);
  const noConfig = { ...files };
  delete noConfig['config.json'];
  await assert.rejects(rt.loadModel({ files: noConfig }), (e) => e instanceof api.FormatError && /config\.json is missing/.test(e.message));
  // The model loaded before all this still answers.
  assert.ok((await model.forward([1, 2, 3])).length === 3 * model.info.vocabSize);
});

test('a shard index naming paths, URLs or no JSON is a FormatError; nothing is read outside the folder', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lorafuse-shards-'));
  try {
    cpSync(new URL('llama-hf-sharded/', BASE), dir, { recursive: true });
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    const url = pathToFileURL(dir + '/').href;
    const good = await rt.loadModel(url);
    assert.equal(good.info.architecture, 'llama');
    const outside = new URL('llama-hf/model.safetensors', BASE).href;
    for (const shard of ['../llama-hf/model.safetensors', outside, '/etc/hostname', 'sub/model.safetensors', '.hidden.safetensors', 'model.bin', 7]) {
      const [first] = Object.keys(index.weight_map);
      writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ ...index, weight_map: { ...index.weight_map, [first]: shard } }));
      const e = await rt.loadModel(url).then(() => null, (e) => e);
      assert.ok(e instanceof api.FormatError, `${shard}: ${e}`);
      assert.match(e.message, /names shard .*: shards must be plain file names ending in \.safetensors/);
    }
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
    await assert.rejects(rt.loadModel(url), (e) => e instanceof api.FormatError && /index\.json is not JSON/.test(e.message));
    assert.ok((await good.forward([1, 2, 3])).length === 3 * good.info.vocabSize);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a prompt that starts with an earlier generation reuses its KV cache: the same text, only new tokens run', async () => {
  const model = await rt.loadModel(new URL('llama-hf/', BASE).href);
  const opts = { maxTokens: 8, ignoreEos: true };
  const first = model.generate('Once upon a time', opts);
  const t1 = await first.text();
  assert.equal(first.cachedTokens, 0);
  assert.equal(model.promptCacheStats().entries, 1);
  const next = `Once upon a time${t1} and then`;
  const fresh = model.generate(next, { ...opts, promptCache: false });
  const want = await fresh.text();
  assert.equal(fresh.cachedTokens, 0);
  const reused = model.generate(next, opts);
  assert.equal(await reused.text(), want);
  const prompt = model.tokenize('Once upon a time').length;
  assert.ok(reused.cachedTokens >= prompt, `${reused.cachedTokens} cached, the first prompt has ${prompt} tokens`);
  const stats = model.promptCacheStats();
  assert.ok(stats.entries >= 1 && stats.bytes > 0 && stats.bytes <= stats.budget, JSON.stringify(stats));
  // A batch row reuses it too (adapter stacks are kept apart: tests/gpu_model.rs); a budget
  // of 0 keeps nothing.
  const batch = model.generateBatch([{ prompt: next }], opts);
  await batch.texts();
  assert.ok(batch.cachedTokens(0) > 0);
  model.setPromptCacheBudget(0);
  assert.equal(model.promptCacheStats().bytes, 0);
  const after = model.generate(next, opts);
  assert.equal(await after.text(), want);
  assert.equal(after.cachedTokens, 0);
  assert.throws(() => model.setPromptCacheBudget(-1), api.ConfigError);
  assert.throws(() => model.generate('x', { promptCash: false }), api.ConfigError);
  model.dispose();
});

test('a generation stopped early still leaves its prompt\'s KV cache', async () => {
  const model = await rt.loadModel(new URL('llama-hf/', BASE).href);
  const g = model.generate('Once upon a time', { maxTokens: 50, ignoreEos: true });
  for await (const piece of g) if (piece) break;
  assert.equal(model.promptCacheStats().entries, 1);
  const next = model.generate('Once upon a time there was', { maxTokens: 2, ignoreEos: true });
  await next.text();
  assert.ok(next.cachedTokens > 0, `${next.cachedTokens} cached`);
  model.dispose();
});
