// The demo page in headless Chromium: it finds WebGPU, runs every routing mode on both
// backends, and every result matches the reference. Screenshots go to test-output/.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { serve } from '../../scripts/serve.mjs';
import { launch, open } from './browser.mjs';

const { server, url } = await serve('.');
test.after(() => server.close());
mkdirSync('test-output', { recursive: true });

test('op playground page runs the op on WebGPU and CPU and shows checked results', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${url}/www/op.html`);
    await page.waitForSelector('#run:not([disabled])', { timeout: 60_000 });
    assert.match(await page.textContent('#backend'), /auto chose webgpu \(google swiftshader/);
    // Small shape: SwiftShader is slow.
    await page.fill('input[name=inp]', '67');
    await page.fill('input[name=out]', '45');
    await page.fill('input[name=rows]', '5');
    await page.fill('input[name=rank]', '8');
    await page.click('#run');
    await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Done'), null, { timeout: 240_000 });
    const rows = await page.$$eval('#results tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    assert.equal(rows.length, 8, 'four routing modes on two backends');
    assert.deepEqual([...new Set(rows.map((r) => r[0]))].sort(), ['cpu', 'webgpu']);
    assert.ok(rows.every((r) => r[5] === 'ok'), JSON.stringify(rows));
    await page.screenshot({ path: 'test-output/demo-results.png', fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: 'test-output/demo-phone.png', fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
