// The packed tarball, installed into a fresh folder, used the way an app would: imported
// by name from Node, and from an unbundled browser page through an import map.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { serve } from '../../scripts/serve.mjs';
import { launch, open } from './browser.mjs';

const root = resolve('.');
const app = join(root, 'test-output', 'pack-app');
rmSync(app, { recursive: true, force: true });
mkdirSync(app, { recursive: true });
const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', app], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop();
writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'pack-app', private: true, type: 'module' }));
execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', join(app, tarball)], { cwd: app, stdio: 'inherit' });

// y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ for W = [[1,2,3],[4,5,6]], A = [[1,0,-1]], B = [[2],[-1]], s = 0.5,
// x = [0.5, -1, 2]: base [4.5, 9], x·Aᵀ = -1.5, so with the adapter [3, 9.75]. The default
// int16 adapter factors round B's -1 to a code step (2/32767): 9.75 to within 1e-4.
const APP_CODE = `
  const rt = await LoraRuntime.create(BACKEND);
  const layer = rt.loraLinear({ weight: Float32Array.of(1, 2, 3, 4, 5, 6), outFeatures: 2, inFeatures: 3 });
  layer.addAdapter('user', { a: [1, 0, -1], b: [2, -1], rank: 1, scale: 0.5 });
  const x = Float32Array.of(0.5, -1, 2);
  const result = { backend: rt.backend, base: [...await layer.run(x, 1)], lora: [...await layer.run(x, 1, { adapter: 'user' })].map((v) => Math.round(v * 1e4) / 1e4) };
`;

test('installed tarball works from Node by package name', () => {
  writeFileSync(join(app, 'main.mjs'), `import { LoraRuntime } from 'lorafuse';\nconst BACKEND = undefined;\n${APP_CODE}\nconsole.log(JSON.stringify(result));\n`);
  const out = JSON.parse(execFileSync('node', ['main.mjs'], { cwd: app, encoding: 'utf8' }));
  assert.deepEqual(out, { backend: 'cpu', base: [4.5, 9], lora: [3, 9.75] });
});

test('installed tarball works from an unbundled page (import map), WebGPU and CPU', async () => {
  writeFileSync(
    join(app, 'index.html'),
    `<!doctype html><script type="importmap">{"imports": {"lorafuse": "./node_modules/lorafuse/pkg/index.js"}}</script>
<script type="module">
  import { LoraRuntime } from 'lorafuse';
  window.check = async (backend) => { const BACKEND = { backend }; ${APP_CODE} return result; };
  window.suiteReady = true;
</script>`,
  );
  const { server, url } = await serve(app);
  const browser = await launch({ webgpu: true });
  try {
    const { page } = await open(browser, `${url}/index.html`);
    for (const backend of ['webgpu', 'cpu']) {
      assert.deepEqual(await page.evaluate((b) => window.check(b), backend), { backend, base: [4.5, 9], lora: [3, 9.75] });
    }
  } finally {
    await browser.close();
    server.close();
  }
});

test('installed tarball passes the full suite in Chromium', { timeout: 600_000 }, async () => {
  const { server, url } = await serve(root);
  const browser = await launch({ webgpu: true });
  try {
    const pkg = '/test-output/pack-app/node_modules/lorafuse/pkg/index.js';
    const { page } = await open(browser, `${url}/tests/js/page.html?pkg=${encodeURIComponent(pkg)}`);
    const r = await page.evaluate(() => window.suite('webgpu'));
    assert.deepEqual(r.failures, []);
    assert.ok(r.checks >= 40);
  } finally {
    await browser.close();
    server.close();
  }
});

test('the installed package type-checks a typed example of the whole API, and its chat API against the openai package\'s types (tsc --noEmit)', () => {
  for (const f of ['example.ts', 'openai.ts']) copyFileSync(join(root, 'tests/types', f), join(app, f));
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, target: 'es2022', module: 'esnext', moduleResolution: 'bundler', lib: ['es2022', 'dom', 'dom.iterable'], noEmit: true,
      // The openai package is the repo's dev dependency, not the app's.
      paths: { openai: [join(root, 'node_modules/openai')] },
    },
    files: ['example.ts', 'openai.ts'],
  }));
  execFileSync(join(root, 'node_modules/.bin/tsc'), ['-p', join(app, 'tsconfig.json')], { cwd: app, stdio: 'inherit' });
});
