// The chat demo end to end in headless Chromium: with the real SmolLM2 and the demo adapters
// (progress, streaming chat, adapters changing the voice as described, JSON mode, the side-by-side batch,
// a bad dropped adapter, a reload served from the cache), and with a tiny model and PEFT
// fixtures on a WebGPU runtime. Screenshots go to test-output/ (look at them).
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { serve } from '../../scripts/serve.mjs';
import { launch } from './browser.mjs';

const { server, url, requests } = await serve('.');
test.after(() => server.close());
mkdirSync('test-output', { recursive: true });
const MODEL_PATH = '/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf';

async function ask(page, adapter, text) {
  await page.check(`input[name=adapter][value="${adapter}"]`);
  await page.fill('#input', text);
  const before = await page.$$eval('.msg.bot', (m) => m.length);
  await page.click('#send');
  await page.waitForFunction((n) => document.querySelectorAll('.msg.bot').length > n && !document.querySelector('#send').disabled, before, { timeout: 120_000 });
  return page.$$eval('.msg.bot', (m) => m.at(-1).children[1].textContent);
}

test('chat demo: load, stream, adapters, side by side, bad adapter, cached reload', { timeout: 600_000 }, async () => {
  const browser = await launch({ webgpu: true });
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  try {
    const progress = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    const t0 = performance.now();
    await page.goto(`${url}/www/?backend=cpu`); // SmolLM2 on SwiftShader's WebGPU would take minutes per reply
    // Progress is shown while loading and reaches 100%.
    await page.waitForFunction(() => /\(\d+%\)/.test(document.querySelector('#load-text').textContent), null, { timeout: 60_000 });
    progress.push(await page.textContent('#load-text'));
    await page.screenshot({ path: 'test-output/chat-loading.png' });
    await page.waitForSelector('body[data-ready=true]', { timeout: 180_000 });
    const readyMs = performance.now() - t0;
    assert.match(await page.textContent('#load-text'), /\(100%\)/);
    // The demo server isolates the page: the CPU runs on the machine's cores (at most 4).
    const cores = await page.evaluate(() => Math.min(navigator.hardwareConcurrency, 4));
    assert.match(await page.textContent('#backend'), new RegExp(`CPU \\(wasm SIMD128, ${cores} threads?`));
    const names = await page.$$eval('.adapter[data-name]', (l) => l.map((x) => x.dataset.name));
    assert.deepEqual(names.sort(), ['caps', 'json', 'pirate']);

    const t1 = performance.now();
    const plain = await ask(page, '', 'Tell me about the moon.');
    console.log(`# demo: model + 3 adapters ready in ${readyMs.toFixed(0)} ms (first visit), first reply (96 tokens) in ${(performance.now() - t1).toFixed(0)} ms`);
    assert.ok(plain.length > 20, plain);
    // A follow-up continues the conversation from its cache: the badge says how much of the
    // prompt (the whole first turn) was served from it.
    const followUp = await ask(page, '', 'And about the sun?');
    assert.ok(followUp.length > 20, followUp);
    const badge = await page.textContent('#speed');
    const [, cached, promptTokens] = badge.match(/first token [\d.]+ s · (\d+)\/(\d+) prompt tokens cached/) ?? [];
    assert.ok(Number(cached) > 20 && Number(cached) < Number(promptTokens), badge);
    console.log(`# demo: follow-up ${badge}`);
    const caps = await ask(page, 'caps', 'Tell me about the moon.');
    const letters = caps.replace(/[^a-zA-Z]/g, '');
    const upper = letters.replace(/[^A-Z]/g, '').length / Math.max(1, letters.length);
    assert.ok(upper > 0.8, `caps adapter: ${upper} uppercase in ${JSON.stringify(caps)}`);
    const pirate = await ask(page, 'pirate', 'Tell me about the moon.');
    assert.match(pirate, /Arr|matey|\bye\b|Yo ho/i, pirate);
    const json = await ask(page, 'json', 'Tell me about the moon.');
    assert.match(json.trim(), /^\{\s*"answer"\s*:/, json);
    // JSON mode: picks the json adapter and enforces the example schema on every token; the
    // answer parses and keeps the schema's rules, and the page says so.
    await page.check('input[name=adapter][value=""]');
    await page.check('#json-mode');
    assert.ok(await page.isChecked('input[name=adapter][value=json]'), 'JSON mode selects the json adapter');
    const t3 = performance.now();
    const structured = JSON.parse(await ask(page, 'json', 'Tell me about the moon.'));
    console.log(`# demo: JSON mode answer in ${(performance.now() - t3).toFixed(0)} ms: ${JSON.stringify(structured)}`);
    assert.deepEqual(Object.keys(structured), ['answer', 'keywords']);
    assert.ok(typeof structured.answer === 'string' && structured.answer.length <= 300, structured.answer);
    assert.ok(Array.isArray(structured.keywords) && structured.keywords.length >= 1 && structured.keywords.length <= 3);
    assert.ok(structured.keywords.every((k) => typeof k === 'string' && [...k].length <= 24), JSON.stringify(structured.keywords));
    assert.equal(await page.$$eval('.msg.bot', (m) => m.at(-1).querySelector('.check')?.textContent), 'valid JSON ✓');
    await page.screenshot({ path: 'test-output/chat-adapters.png', fullPage: true });
    await page.uncheck('#json-mode');

    // Side by side: one batched pass fills a column per adapter and one for the base.
    await page.fill('#input', 'Tell me about rain.');
    await page.click('#compare');
    await page.waitForFunction(() => !document.querySelector('#compare').disabled && document.querySelectorAll('.col .out').length === 4, null, { timeout: 180_000 });
    const cols = await page.$$eval('.col .out', (c) => c.map((x) => x.textContent));
    assert.ok(cols.every((t) => t.length > 10), JSON.stringify(cols));
    assert.equal(new Set(cols).size, 4);
    await page.screenshot({ path: 'test-output/chat-side-by-side.png', fullPage: true });

    // A dropped file that is not an adapter: the drop handler shows a typed error in the page.
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array([71, 71, 85, 70, 3, 0, 0, 0, 1])], 'broken.gguf'));
      document.querySelector('#drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await page.waitForFunction(() => !document.querySelector('#error').hidden, null, { timeout: 30_000 });
    assert.match(await page.textContent('#error'), /FormatError: .*broken\.gguf|FormatError: .*truncated/i);

    // A bad adapter (another model's shapes): a clear message, and the chat still works.
    await page.evaluate(async () => {
      const cfg = new TextEncoder().encode(JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj'] }));
      const header = JSON.stringify({ 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { dtype: 'F32', shape: [4, 64], data_offsets: [0, 1024] },
        'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { dtype: 'F32', shape: [64, 4], data_offsets: [1024, 2048] } });
      const h = new TextEncoder().encode(header + ' '.repeat((8 - ((8 + header.length) % 8)) % 8));
      const st = new Uint8Array(8 + h.length + 2048);
      new DataView(st.buffer).setBigUint64(0, BigInt(h.length), true);
      st.set(h, 8);
      await window.addUserAdapter('wrong-model', [new File([cfg], 'adapter_config.json'), new File([st], 'adapter_model.safetensors')]);
    });
    assert.match(await page.textContent('#error'), /ShapeError: .*lora_A\.weight has shape \[4, 64\]/);
    await page.screenshot({ path: 'test-output/chat-bad-adapter.png', fullPage: true });
    assert.deepEqual(await page.$$eval('.adapter[data-name]', (l) => l.map((x) => x.dataset.name).sort()), ['caps', 'json', 'pirate']);
    assert.ok((await ask(page, '', 'Say hello.')).length > 0);

    // Reload: the model comes from the cache, not the network.
    const before = requests.filter((r) => r === MODEL_PATH).length;
    const t2 = performance.now();
    await page.reload();
    await page.waitForSelector('body[data-ready=true]', { timeout: 180_000 });
    console.log(`# demo: reload ready in ${(performance.now() - t2).toFixed(0)} ms (from the cache)`);
    assert.equal(requests.filter((r) => r === MODEL_PATH).length, before, 'no second download of the model');
    // Kept in the Origin Private File System (Chromium can write it from a stream), whole.
    const opfs = await page.evaluate(async () => (await import('/pkg/worker-client.js')).LoraWorker.cacheUsage({ name: 'lorafuse-demo', storage: 'opfs' }));
    const kept = opfs.entries.find((e) => e.url.endsWith('SmolLM2-135M-Instruct.Q4_1.gguf'));
    assert.ok(kept && kept.bytes > 90e6 && opfs.entries.length >= 7, JSON.stringify(opfs.entries.map((e) => [e.url.split('/').slice(-2).join('/'), e.bytes])));
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: 'test-output/chat-phone.png', fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('chat demo on a WebGPU runtime with a tiny model and PEFT fixtures', { timeout: 300_000 }, async () => {
  // The page takes ?model= and ?adapters= (a manifest whose paths are relative to it).
  writeFileSync('test-output/tiny-manifest.json', JSON.stringify([
    { name: 'qv-r4', description: 'PEFT fixture: r=4 on q/v', path: '../tests/fixtures/tiny/adapters/qv-r4/' },
    { name: 'all-linear-r8', description: 'PEFT fixture: r=8 on every linear', path: '../tests/fixtures/tiny/adapters/all-linear-r8/' },
  ]));
  const browser = await launch({ webgpu: true });
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  try {
    await page.goto(`${url}/www/?model=/tests/fixtures/tiny/llama-hf/&adapters=/test-output/tiny-manifest.json`);
    await page.waitForSelector('body[data-ready=true]', { timeout: 120_000 });
    assert.match(await page.textContent('#load-text'), /llama-hf: .*\(100%\)/);
    assert.match(await page.textContent('#backend'), /^WebGPU: /);
    const base = await ask(page, '', 'Hello');
    assert.ok(base.length > 0);
    await page.fill('#input', 'Hello');
    await page.click('#compare');
    await page.waitForFunction(() => !document.querySelector('#compare').disabled && document.querySelectorAll('.col .out').length === 3, null, { timeout: 120_000 });
    const cols = await page.$$eval('.col .out', (c) => c.map((x) => x.textContent));
    assert.ok(cols.every((t) => t.length > 0), JSON.stringify(cols));
    // Greedy: the base column (64 tokens) starts the plain reply (96 tokens).
    assert.ok(base.startsWith(cols[0]), `base column ${JSON.stringify(cols[0])} vs reply ${JSON.stringify(base)}`);
    assert.ok(new Set(cols).size > 1, `the adapters change the output: ${JSON.stringify(cols)}`);
    await page.screenshot({ path: 'test-output/chat-tiny-webgpu.png', fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
