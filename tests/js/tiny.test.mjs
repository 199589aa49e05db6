// Tiny fixture models in Node: all 21 variants from file URLs (GGUF and HF folders), an HF
// folder from {files} and a truncated safetensors shard.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import * as api from '../../pkg/index.js';
import { checkTinyModels } from './tiny-models.mjs';

const BASE = new URL('../fixtures/tiny/', import.meta.url);
const rt = await api.LoraRuntime.create({ backend: 'cpu' });

test('every architecture and format matches PyTorch (Node, CPU)', async () => {
  const { checked, failures } = await checkTinyModels(api, rt, BASE);
  assert.deepEqual(failures, []);
  assert.equal(checked, 22);
});

test('an HF folder given as {files}, with progress; a truncated shard is a FormatError', async () => {
  const dir = new URL('qwen2-hf/', BASE);
  const files = Object.fromEntries(readdirSync(dir).map((n) => [n, readFileSync(new URL(n, dir))]));
  const seen = [];
  const model = await rt.loadModel({ files }, { onProgress: (p) => seen.push(p) });
  assert.equal(model.info.architecture, 'qwen2');
  assert.equal(model.info.quantization, 'bf16');
  assert.equal(seen.at(-1).loaded, seen.at(-1).total);
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
