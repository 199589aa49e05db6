// The public API in headless Chromium: WebGPU (SwiftShader) and the CPU path, through the
// repo's built package, plus the fallback when WebGPU is off.
import test from 'node:test';
import assert from 'node:assert/strict';
import { serve } from '../../scripts/serve.mjs';
import { launch, open } from './browser.mjs';

const { server, url } = await serve('.');
test.after(() => server.close());

/** Runs `body(page)` on the test page in a fresh Chromium (`webgpu`: with SwiftShader's adapter). */
async function onPage(webgpu, body) {
  const browser = await launch({ webgpu });
  try {
    const { page } = await open(browser, `${url}/tests/js/page.html`);
    return await body(page);
  } finally {
    await browser.close();
  }
}

// WebGPU with subgroup reductions where the adapter offers them (SwiftShader does, with
// 4-wide subgroups), and with the workgroup-memory fallback.
for (const [backend, subgroups] of [['webgpu', true], ['webgpu', false], ['cpu', true]]) {
  test(`fused LoRA linear in Chromium on ${backend}${subgroups ? '' : ' without subgroups'}`, { timeout: 600_000 }, async () => {
    await onPage(true, async (page) => {
      const r = await page.evaluate(([b, s]) => window.suite(b, { subgroups: s }), [backend, subgroups]);
      console.log(`# ${backend}: ${r.info.device}: subgroups ${r.info.subgroups} (offered: ${r.info.offered}): ${r.checks} checks in ${r.ms.toFixed(0)} ms`);
      assert.equal(r.info.backend, backend);
      if (backend === 'webgpu') assert.match(r.info.device.toLowerCase(), /swiftshader|webgpu|google/);
      if (backend === 'webgpu') assert.ok(r.info.offered, "Chromium's SwiftShader offers subgroups (without them this test covers one path)");
      assert.equal(r.info.subgroups, backend === 'webgpu' && subgroups, 'subgroups run exactly where asked for and offered');
      assert.ok(r.info.pageUntouched, "the page's GPUAdapter.requestDevice is its own again, and gives no unasked features");
      assert.equal(r.info.prefillMath, 'f32', 'f16 prefill math falls back to f32 without shader-f16');
      assert.deepEqual(r.failures, []);
      assert.ok(r.checks >= 40, `${r.checks} checks`);
    });
  });
}

test('auto picks WebGPU when Chromium offers an adapter', async () => {
  await onPage(true, async (page) => {
    const { info } = await page.evaluate(() => window.suite('auto'));
    assert.equal(info.backend, 'webgpu');
    assert.equal(info.fallbackReason, null);
  });
});

test('auto falls back to the CPU when WebGPU is off', async () => {
  await onPage(false, async (page) => {
    const { info } = await page.evaluate(() => window.suite('auto'));
    assert.equal(info.backend, 'cpu');
    assert.ok(info.fallbackReason, 'a reason is given');
    const err = await page.evaluate(() => window.suite('webgpu').then(() => null, (e) => e.name));
    assert.equal(err, 'BackendError');
  });
});

test('models in Chromium: 35 tiny fixtures (GGUF and HF folders) on WebGPU and CPU, and SmolLM2', { timeout: 600_000 }, async () => {
  await onPage(true, async (page) => {
    // The whole model on WebGPU (SwiftShader) and on the CPU path, against PyTorch.
    for (const backend of ['webgpu', 'cpu']) {
      const tiny = await page.evaluate((b) => window.tinyModels(b), backend);
      assert.deepEqual(tiny.failures, [], backend);
      assert.equal(tiny.subgroups, backend === 'webgpu', 'the WebGPU models reduce with subgroups');
      assert.equal(tiny.checked, 35, backend);
    }
    const smol = await page.evaluate(() => window.smolLM2());
    console.log(`# SmolLM2 in Chromium: load ${smol.loadMs.toFixed(0)} ms, 32 tokens in ${smol.genMs.toFixed(0)} ms`);
    assert.deepEqual(smol.tokens, smol.want);
    assert.equal(smol.progress, 1);
    assert.ok(smol.events > 3);
  });
});

test('PEFT adapters in Chromium match PEFT', { timeout: 300_000 }, async () => {
  await onPage(true, async (page) => {
    const held = {};
    // The default stores factors exactly (f32: PEFT to 1e-4). 16-bit factors, opt-in: int16
    // codes with per-rank scales on both backends, f16 on WebGPU only (asking the CPU for f16
    // gives int16). These tiny random models amplify the rounding (about 1e-5 on SmolLM2:
    // tests/smollm2.rs), which is why 16 bits cannot be the default under a 1e-4 promise.
    for (const [backend, precision, stored, tol] of [
      ['webgpu', 'default', 'f32', 1e-4], ['cpu', 'default', 'f32', 1e-4], ['webgpu', 'i16', 'i16', 5e-3], ['webgpu', 'f16', 'f16', 5e-2],
      ['cpu', 'f16', 'i16', 5e-3],
    ]) {
      const { backend: ran, stored: got, errs, afterUnload, bytes, memory, rounding, counts } = await page.evaluate(([b, p]) => window.peftAdapters(b, p), [backend, precision]);
      assert.equal(ran, backend);
      // WebGPU: a decode-shaped forward with six stacked adapters is one submit of at most 10
      // dispatches per layer (4 of them the adapters' shrinks) plus the embedding and lm_head.
      if (backend === 'webgpu') {
        assert.equal(counts.submits, 1, JSON.stringify(counts));
        assert.ok(counts.dispatches > 0 && counts.dispatches <= 10 * counts.layers + 3, JSON.stringify(counts));
      } else {
        assert.equal(counts, null);
      }
      assert.equal(got, stored, `${backend} ${precision}`);
      assert.deepEqual(Object.keys(errs).sort(), ['all-linear-r8', 'dora', 'layers-1', 'patterns', 'qv-r4', 'rslora'], backend);
      for (const [n, e] of Object.entries(errs)) assert.ok(e <= tol, `${backend} ${precision} ${n}: ${e}`);
      held[`${backend}-${precision}`] = bytes;
      // What storage did to the factors, per adapter: nothing in f32, int16's per-rank steps
      // on these random factors (no outliers) well under f16's rounding.
      const [lo, hi] = { f32: [0, 0], i16: [1e-6, 1e-4], f16: [1e-4, 1e-3] }[stored];
      for (const [n, e] of Object.entries(rounding)) assert.ok(e >= lo && e <= hi, `${backend} ${precision} ${n} rounding error ${e}`);
      console.log(`# ${backend} ${precision}: rounding errors ${Object.values(rounding).map((e) => e.toExponential(1)).join(' ')}`);
      // Memory held is what the adapters report, before and after unloading one from the
      // middle of the arenas (at most a 16-byte empty buffer per layer more), and the rest
      // still match PEFT.
      const what = `${backend} ${precision} memory ${JSON.stringify(memory)}`;
      assert.ok(memory.before - bytes <= 1024 && memory.after - memory.live <= 1024 && memory.empty <= 1024, what);
      assert.equal(memory.live, bytes - memory.mid, what);
      assert.equal(Object.keys(afterUnload).length, 5);
      for (const [n, e] of Object.entries(afterUnload)) assert.ok(e <= tol, `${backend} ${precision} ${n} after an unload: ${e}`);
    }
    // 16-bit factors: half the bytes (DoRA gains stay f32; int16 adds a scale per rank, 2/64
    // of a factor in these hidden-64 models), and the rounding shows in the logits
    // (exactness on rounded factors is checked natively, tests/gpu_model.rs).
    const ratio = held['webgpu-f16'] / held['webgpu-default'];
    assert.ok(ratio > 0.5 && ratio < 0.52, `f16/f32 adapter bytes ${ratio}`);
    const gpuRatio = held['webgpu-i16'] / held['webgpu-default'];
    assert.ok(gpuRatio > 0.5 && gpuRatio < 0.54, `int16/f32 adapter bytes on WebGPU ${gpuRatio}`);
    assert.equal(held['webgpu-i16'], held['cpu-f16'], 'int16 takes the same words on both backends');
    const cpuRatio = held['cpu-f16'] / held['cpu-default'];
    assert.ok(cpuRatio > 0.5 && cpuRatio < 0.54, `int16/f32 adapter bytes ${cpuRatio}`);
    assert.equal(held['cpu-default'], held['webgpu-default']);
    // Per adapter: each in its own format within one model's arenas, each within its
    // format's tolerance of PEFT.
    const mixed = await page.evaluate(() => window.mixedPrecision());
    const tol = { f32: 1e-4, i16: 5e-3, f16: 5e-2 };
    // ("auto" for layers-1: the default runtime's f32)
    assert.deepEqual(Object.values(mixed).map(([p]) => p), ['f32', 'f16', 'i16', 'f32'], JSON.stringify(mixed));
    for (const [n, [p, e]] of Object.entries(mixed)) assert.ok(e <= tol[p], `mixed precisions: ${n} in ${p}: ${e}`);
    console.log(`# WebGPU, one model, mixed precisions: ${Object.entries(mixed).map(([n, [p, e]]) => `${n} ${p} ${e.toExponential(1)}`).join(', ')}`);
    const bad = await page.evaluate(() => window.tryCreate({ adapterPrecision: 'f8' }));
    assert.match(bad, /^ConfigError: unknown adapterPrecision "f8"/);
    const badSubgroups = await page.evaluate(() => window.tryCreate({ subgroups: 'no' }));
    assert.match(badSubgroups, /^ConfigError: subgroups must be true or false, got "no"/);
  });
});

test('WebGPU device lost mid-generation: the model moves to the CPU and the generation finishes', { timeout: 120_000 }, async () => {
  await onPage(true, async (page) => {
    const r = await page.evaluate(() => window.deviceLoss());
    assert.equal(r.before, 'webgpu');
    assert.equal(r.after, 'cpu');
    assert.ok(r.pieces >= 4, `${r.pieces} pieces`);
    assert.equal(r.fallbacks.length, 2);
    assert.deepEqual(r.late, ['cpu', true], 'a load on the lost device lands on the CPU');
    assert.match(r.reason, /GPU/);
    assert.deepEqual(r.got, r.want, 'the same 12 tokens as a CPU-only run');
    assert.ok(r.sameLogits, 'after the move, forward is the CPU path with the adapter at its scale');
    assert.deepEqual(r.precisions, [['half f16', 'qv f32'], ['half i16', 'qv f32']], 'adapters keep their precision on the CPU (f16 as int16)');
  });
});

test('lorafuse/worker: device lost mid-generation, the worker moves the model to the CPU and says so', { timeout: 120_000 }, async () => {
  await onPage(true, async (page) => {
    const r = await page.evaluate(() => window.workerDeviceLoss());
    assert.deepEqual([r.before, r.after], ['webgpu', 'cpu']);
    assert.equal(r.fallbacks.length, 1);
    assert.equal(r.reason, r.fallbacks[0]);
    assert.deepEqual(r.got, r.want);
    assert.equal(r.subgroups, true, "the worker's runtime reduces with subgroups (SwiftShader offers them)");
  });
});

test('lorafuse/worker in Chromium: same text and tokens as the main thread, typed errors, batches', { timeout: 120_000 }, async () => {
  await onPage(false, async (page) => {
    const r = await page.evaluate(() => window.workerCheck());
    assert.equal(r.workerText, r.text);
    assert.deepEqual(r.workerTokens, r.tokens);
    assert.ok(r.progress > 0);
    assert.equal(r.err, 'AdapterError:true');
    assert.equal(r.texts.length, 2);
    assert.deepEqual(r.runtime, ['f32', 'f32'], "the worker's runtime options and what runs");
    assert.ok(r.chat[0].length > 0 && r.chat.every((t) => t === r.chat[0]), JSON.stringify(r.chat));
    assert.equal(r.aborted, 'AbortError');
    assert.deepEqual(r.stages, ['download', 'parse', 'ready']);
    assert.ok(r.usage.completionTokens === r.workerTokens.length && r.usage.timeToFirstTokenMs > 0, JSON.stringify(r.usage));
  });
});

test('structured output in Chromium: JSON under a schema on WebGPU (mask.wgsl) as on the CPU', { timeout: 300_000 }, async () => {
  const schema = {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 99 }, pets: { type: 'array', items: { enum: ['cat', 'dog'] }, maxItems: 2 } },
    required: ['name', 'age', 'pets'],
  };
  await onPage(true, async (page) => {
    const r = await page.evaluate((s) => window.jsonCheck(s), schema);
    assert.deepEqual([r.webgpu.backend, r.cpu.backend], ['webgpu', 'cpu']);
    for (const b of ['webgpu', 'cpu']) {
      for (const text of [r[b].greedy, ...r[b].sampled]) {
        const v = JSON.parse(text);
        assert.ok(typeof v.name === 'string' && v.name.length <= 12 && Number.isInteger(v.age) && v.age >= 0 && v.age <= 99, text);
        assert.ok(Array.isArray(v.pets) && v.pets.length <= 2 && v.pets.every((p) => p === 'cat' || p === 'dog') && Object.keys(v).length === 3, text);
      }
      assert.equal(typeof JSON.parse(r[b].object), 'object', r[b].object);
      assert.deepEqual(r[b].reasons, ['stop', 'stop', 'stop']);
    }
    assert.equal(r.webgpu.greedy, r.cpu.greedy);
    assert.equal(r.webgpu.object, r.cpu.object);
  });
});

for (const storage of ['opfs', 'cache-api']) {
  test(`cache management in Chromium (${storage}): isCached for files and folders, usage in bytes, deletion, a cut download`, { timeout: 120_000 }, async () => {
    await onPage(false, async (page) => {
      const r = await page.evaluate((s) => window.cacheCheck(s), storage);
      assert.deepEqual(r.before, [false, false]);
      assert.deepEqual(r.after, [true, true, true, false], 'the file, the sharded folder and the adapter are cached; another folder is not');
      // Every entry's bytes are the file's.
      for (const e of r.usage.entries) assert.equal(e.bytes, r.sizes[e.url], e.url);
      assert.equal(r.usage.bytes, Object.values(r.sizes).reduce((a, b) => a + b, 0));
      assert.ok(r.usage.entries.some((e) => e.url.endsWith('llama-q4_0.gguf')) && r.usage.entries.some((e) => e.url.endsWith('.safetensors.index.json')));
      assert.deepEqual([r.fetched, r.same], [[], true], 'a second load reads the cache, not the network');
      assert.deepEqual([r.cut, r.afterCut], ['AbortError', false], 'an aborted download leaves no entry');
      assert.equal(r.partial, false, 'a folder missing a shard is not cached');
      assert.ok(r.removed[0] >= 3 && r.removed[1] === 1, JSON.stringify(r.removed));
      assert.ok(r.left.every((u) => u.includes('/adapters/qv-r4/')), JSON.stringify(r.left));
      assert.deepEqual(r.cleared, [true, 0]);
    });
  });
}
