// The public API in Node (CPU backend, wasm SIMD128).
import test from 'node:test';
import assert from 'node:assert/strict';
import * as api from '../../pkg/index.js';
import { standardCases, runCases, checkErrors } from './cases.mjs';

test('auto picks the CPU in Node and says why', async () => {
  const rt = await api.LoraRuntime.create();
  assert.equal(rt.backend, 'cpu');
  assert.equal(rt.adapterPrecision, 'f32', 'adapter factors are stored exactly by default (PEFT to 1e-4 for any adapter)');
  assert.match(rt.device, /SIMD128/);
  assert.match(rt.fallbackReason, /WebGPU/);
  assert.equal(rt.prefillMath, 'f32');
  assert.equal((await api.LoraRuntime.create({ prefillMath: 'f16' })).prefillMath, 'f32', 'f16 math needs WebGPU with shader-f16');
  await assert.rejects(api.LoraRuntime.create({ prefillMath: 'f64' }), (e) => e instanceof api.ConfigError && /prefillMath "f64"/.test(e.message));
  await assert.rejects(api.LoraRuntime.create({ backend: 'webgpu' }), api.BackendError);
  await assert.rejects(api.LoraRuntime.create({ backend: 'tpu' }), api.ConfigError);
});

test('fused LoRA linear matches the f64 reference (cpu)', async () => {
  const rt = await api.LoraRuntime.create({ backend: 'cpu', adapterPrecision: 'f32' });
  const { checks, failures } = await runCases(api, rt, standardCases());
  assert.deepEqual(failures, []);
  assert.ok(checks >= 80, `${checks} checks`);
});

test('bad input throws typed errors and loses nothing (cpu)', async () => {
  const rt = await api.LoraRuntime.create({ backend: 'cpu' });
  assert.deepEqual(await checkErrors(api, rt), []);
});
