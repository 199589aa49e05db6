// CPU worker threads: the threaded build in Node (worker_threads) and in Chromium on a
// cross-origin isolated page, the single-threaded build where the page is not isolated.
// Threads take whole weight rows, so outputs are bit-identical for any thread count.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { serve } from '../../scripts/serve.mjs';
import { launch, open } from './browser.mjs';
import * as api from '../../pkg/index.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('./threads-run.mjs', import.meta.url));

/** SmolLM2 with a random adapter on `threads` threads, in its own process (one build per realm). */
async function smolLM2(threads) {
  const { stdout } = await run(process.execPath, [SCRIPT, String(threads)], { maxBuffer: 1 << 26 });
  return JSON.parse(stdout);
}

test('Node: SmolLM2 with an adapter gives the same logits, bit for bit, on 1 and 2 threads', { timeout: 300_000 }, async () => {
  const one = await smolLM2(1);
  const two = await smolLM2(2);
  assert.equal(one.threads, 1);
  assert.equal(two.threads, 2, `2 threads run (${two.note})`);
  assert.equal(two.note, null);
  assert.equal(one.logits.length, 2 * 49152, 'two positions of logits');
  assert.ok(one.logits.every(Number.isFinite));
  assert.deepEqual(two.logits, one.logits);
  assert.deepEqual(two.tokens, one.tokens);
  console.log(`# decode ${one.tokS.toFixed(1)} tok/s on 1 thread, ${two.tokS.toFixed(1)} on 2 (16 tokens; noisy)`);
});

test('threads must be "auto" or an integer 1..64', async () => {
  for (const threads of [0, 1.5, 65, 'many', null]) {
    await assert.rejects(api.LoraRuntime.create({ backend: 'cpu', threads }), (e) => e.name === 'ConfigError', String(threads));
  }
});

test("the realm's first create() picks the build and starts the workers; later ones say when they get fewer", async () => {
  const two = await api.LoraRuntime.create({ backend: 'cpu', threads: 2 });
  assert.equal(two.threads, 2);
  assert.equal(two.threadsNote, undefined);
  const four = await api.LoraRuntime.create({ backend: 'cpu', threads: 4 });
  assert.equal(four.threads, 2);
  assert.match(four.threadsNote, /2 threads were started by this page's first LoraRuntime.create/);
  const one = await api.LoraRuntime.create({ backend: 'cpu', threads: 1 });
  assert.equal(one.threads, 1, 'a page-wide cap');
  assert.equal(one.threadsNote, undefined);
  await api.LoraRuntime.create({ backend: 'cpu', threads: 2 });
  assert.equal(two.threads, 2, 'raised back to the workers started');
  for (const rt of [two, four, one]) rt.dispose();
});

test('Chromium: the CPU kernels on 2 threads in an isolated page; 1 thread, with the reason, in one that is not', { timeout: 300_000 }, async () => {
  for (const isolate of [true, false]) {
    const { server, url } = await serve('.', 0, { isolate });
    const browser = await launch({ webgpu: false });
    try {
      const { page } = await open(browser, `${url}/tests/js/page.html`);
      const r = await page.evaluate(() => window.threadsSuite(2));
      console.log(`# isolated ${r.isolated}: ${r.threads} threads (${r.cores} cores), ${r.checks} checks${r.note ? `: ${r.note}` : ''}`);
      assert.equal(r.isolated, isolate);
      assert.equal(r.threads, isolate ? 2 : 1);
      if (!isolate) assert.match(r.note, /cross-origin isolated/);
      assert.deepEqual(r.failures, []);
      assert.ok(r.checks >= 60, `${r.checks} checks`);
    } finally {
      await browser.close();
      server.close();
    }
  }
});
