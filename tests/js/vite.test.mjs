// The packed tarball in a minimal Vite app (tests/vite-app): installed by `npm pack` into a
// fresh folder, bundled by `vite build`, served as static files and run in headless Chromium.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { serve } from '../../scripts/serve.mjs';
import { launch, open } from './browser.mjs';

const root = resolve('.');
const app = join(root, 'test-output', 'vite-app');
const TINY = join(root, 'tests/fixtures/tiny');
const REF = JSON.parse(readFileSync(join(TINY, 'reference.json')));

test('a Vite app bundles the installed tarball and runs it in Chromium (main thread and worker)', { timeout: 300_000 }, async () => {
  rmSync(app, { recursive: true, force: true });
  cpSync(join(root, 'tests/vite-app'), app, { recursive: true });
  const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', app], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop();
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'vite-app', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', join(app, tarball)], { cwd: app, stdio: 'inherit' });
  // The model and adapter as static files (Vite copies public/ into dist/).
  cpSync(join(TINY, 'llama-hf'), join(app, 'public/tiny/llama-hf'), { recursive: true });
  cpSync(join(TINY, 'adapters/qv-r4'), join(app, 'public/tiny/qv-r4'), { recursive: true });
  // Vite from this repo's dev dependencies; it resolves 'lorafuse' from the app's node_modules.
  execFileSync(join(root, 'node_modules/.bin/vite'), ['build', '--logLevel', 'warn'], { cwd: app, stdio: 'inherit' });
  const assets = readdirSync(join(app, 'dist/assets'));
  assert.ok(assets.some((f) => f.endsWith('.wasm')), `the wasm was emitted as an asset: ${assets}`);
  assert.ok(assets.filter((f) => f.endsWith('.js')).length >= 2, `the worker was bundled as its own chunk: ${assets}`);

  const { server, url } = await serve(join(app, 'dist'));
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await open(browser, `${url}/index.html`, 'appReady');
    const r = await page.evaluate((ids) => window.runApp(ids), REF.prompt_ids);
    // The bundled thread workers start (in the page and inside the bundled worker): the page
    // is cross-origin isolated.
    const threads = Math.min(r.cores, 4);
    for (const backend of ['webgpu', 'cpu']) assert.deepEqual(r[backend], { backend, base: [4.5, 9], lora: [3, 9.75], threads });
    assert.equal(r.worker.threads, threads, r.worker.threadsNote);
    const want = new Float32Array(readFileSync(join(TINY, 'adapters/qv-r4/expected_logits.f32')).buffer.slice(0));
    const V = r.worker.vocab;
    for (let p = 0; p < want.length / V; p++) {
      let num = 0, den = 0;
      for (let j = 0; j < V; j++) {
        num += (r.worker.logits[p * V + j] - want[p * V + j]) ** 2;
        den += want[p * V + j] ** 2;
      }
      assert.ok(Math.sqrt(num / den) <= 1e-4, `position ${p}: relative L2 ${Math.sqrt(num / den)} vs PEFT`);
    }
    assert.match(r.worker.refused, /^FormatError|^ConfigError/);
    assert.ok(r.worker.progress > 0, 'load progress was reported');
    assert.ok(r.worker.text.length > 0);
    assert.equal(r.worker.adapterErrorExported, 'function');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    server.close();
  }
});
