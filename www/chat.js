// The demo: SmolLM2 in a Web Worker (lorafuse/worker), cached after the first visit, with the
// demo adapters, a scale per adapter, side-by-side comparison as one batched pass, and
// drag-and-drop of your own PEFT folder or GGUF LoRA file, and a JSON mode (a schema enforced
// on every token, with the json adapter). The chat goes through the
// OpenAI-style API: a conversation continues while its adapter stays selected, each turn
// starting from the last one's KV cache (the badge shows speed and cached prompt tokens).
import { LoraWorker } from '/pkg/worker-client.js';

// ?model=<url>&adapters=<manifest url> point the page at another model (the tests use a tiny
// one); ?backend=cpu|webgpu overrides the automatic choice.
const params = new URLSearchParams(location.search);
const MODEL = new URL(params.get('model') ?? '../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf', location.href).href;
const MANIFEST = new URL(params.get('adapters') ?? 'adapters/manifest.json', location.href).href;
const MODEL_NAME = decodeURIComponent(MODEL.replace(/\/$/, '').split('/').pop()).replace(/\.gguf$/, '');
const CACHE = 'lorafuse-demo';
const $ = (s) => document.querySelector(s);

function showError(e) {
  $('#error').hidden = false;
  $('#error').textContent = `${e.name ?? 'Error'}: ${e.message ?? e}`;
}
function clearError() {
  $('#error').hidden = true;
}
const mib = (b) => (b / 2 ** 20).toFixed(1);

let worker, model;
let chatTemplate = true; // models without one get the raw text as the prompt
const prompt = (text) => (chatTemplate ? [{ role: 'user', content: text }] : text);
const adapters = new Map(); // name → {description, scale}

function addMessage(who, text, cls) {
  const div = document.createElement('div');
  div.className = `msg ${cls}`;
  const name = document.createElement('span');
  name.className = 'who';
  name.textContent = who;
  const body = document.createElement('span');
  body.textContent = text;
  div.append(name, body);
  $('#log').append(div);
  $('#log').scrollTop = $('#log').scrollHeight;
  return body;
}

function addAdapterRow(name, description) {
  const label = document.createElement('label');
  label.className = 'adapter';
  label.dataset.name = name;
  label.innerHTML = `<input type="radio" name="adapter"><span><b></b><small class="muted"></small>
    <input type="range" min="0" max="2" step="0.1" value="1" aria-label="scale"><small class="scale">scale 1.0</small></span>`;
  label.querySelector('input[type=radio]').value = name;
  label.querySelector('b').textContent = name;
  label.querySelector('small.muted').textContent = description;
  const range = label.querySelector('input[type=range]');
  range.addEventListener('input', async () => {
    label.querySelector('.scale').textContent = `scale ${Number(range.value).toFixed(1)}`;
    await model.setAdapterScale(name, Number(range.value)).catch(showError);
  });
  $('#adapter-list').append(label);
  adapters.set(name, { description });
}

const selected = () => document.querySelector('input[name=adapter]:checked')?.value || null;

let running;
async function run(task) {
  clearError();
  running = new AbortController();
  for (const b of ['#send', '#compare']) $(b).disabled = true;
  $('#stop').disabled = false;
  try {
    await task(running.signal);
  } catch (e) {
    if (e.name !== 'AbortError') showError(e);
  } finally {
    for (const b of ['#send', '#compare']) $(b).disabled = false;
    $('#stop').disabled = true;
  }
}

async function stream(s, into) {
  const t0 = performance.now();
  let n = 0;
  for await (const piece of s) {
    into.textContent += piece;
    n++;
    $('#speed').hidden = false;
    $('#speed').textContent = `${(n / ((performance.now() - t0) / 1000)).toFixed(1)} tok/s`;
    $('#log').scrollTop = $('#log').scrollHeight;
  }
}

/** Decode speed, time to first token and prompt tokens served by the prefix cache. */
function showUsage(u) {
  $('#speed').hidden = false;
  $('#speed').textContent = `${u.extra.decode_tokens_per_s.toFixed(1)} tok/s · first token ${u.extra.time_to_first_token_s.toFixed(2)} s · ` +
    `${u.prompt_tokens_details.cached_tokens}/${u.prompt_tokens} prompt tokens cached`;
}

// The conversation: its adapter and messages. Choosing another adapter starts a new one.
let thread = { adapter: undefined, messages: [] };

// JSON mode: the answer is constrained token by token to a JSON Schema (response_format);
// turning it on also picks the `json` adapter, trained to answer in JSON, when it is loaded.
const EXAMPLE_SCHEMA = {
  type: 'object',
  properties: {
    answer: { type: 'string', maxLength: 300 },
    keywords: { type: 'array', items: { type: 'string', maxLength: 24 }, minItems: 1, maxItems: 3 },
  },
  required: ['answer', 'keywords'],
};
$('#schema').value = JSON.stringify(EXAMPLE_SCHEMA, null, 2);
$('#json-mode').addEventListener('change', () => {
  $('#schema-box').hidden = !$('#json-mode').checked;
  if ($('#json-mode').checked && adapters.has('json')) document.querySelector('input[name=adapter][value=json]').checked = true;
});

/** The response_format JSON mode asks for (null when off); a schema that is not JSON throws. */
function responseFormat() {
  if (!$('#json-mode').checked) return null;
  const text = $('#schema').value.trim();
  if (!text) return { type: 'json_object' };
  let schema;
  try {
    schema = JSON.parse(text);
  } catch (e) {
    throw Object.assign(new Error(`the schema is not JSON: ${e.message}`), { name: 'ConfigError' });
  }
  return { type: 'json_schema', json_schema: { name: 'answer', schema } };
}

/** Under JSON mode: the answer pretty-printed, with a badge saying it parsed. */
function showJson(body) {
  const badge = document.createElement('span');
  badge.className = 'check';
  try {
    body.textContent = JSON.stringify(JSON.parse(body.textContent), null, 2);
    badge.textContent = 'valid JSON ✓';
  } catch {
    badge.textContent = 'not valid JSON';
    badge.classList.add('bad');
  }
  body.after(badge);
}

$('#ask').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('#input').value.trim();
  if (!text) return;
  const adapter = selected();
  run(async (signal) => {
    $('#columns').hidden = true;
    const format = responseFormat();
    if (thread.adapter !== adapter) thread = { adapter, messages: [] };
    addMessage('you', text, 'user');
    const body = addMessage(adapter ?? 'base model', '', 'bot');
    if (!chatTemplate) {
      await stream(model.generate(prompt(text), { adapter, maxTokens: format ? 160 : 96, signal, ...(format ? { responseFormat: format } : {}) }), body);
      return format && showJson(body);
    }
    thread.messages.push({ role: 'user', content: text });
    const t0 = performance.now();
    let n = 0;
    try {
      const request = { model: adapter ?? 'base', messages: thread.messages, temperature: 0, max_tokens: format ? 160 : 96, stream: true, stream_options: { include_usage: true } };
      if (format) request.response_format = format;
      const chunks = await model.chat.completions.create(request, { signal });
      for await (const c of chunks) {
        const piece = c.choices[0]?.delta.content;
        if (piece) {
          body.textContent += piece;
          $('#speed').hidden = false;
          $('#speed').textContent = `${(++n / ((performance.now() - t0) / 1000)).toFixed(1)} tok/s`;
          $('#log').scrollTop = $('#log').scrollHeight;
        }
        if (c.usage) showUsage(c.usage);
      }
    } finally {
      // The model's own text (the next turn's prompt starts with it: its KV cache is reused).
      thread.messages.push({ role: 'assistant', content: body.textContent });
    }
    if (format) showJson(body);
  });
});

$('#compare').addEventListener('click', () => {
  const text = $('#input').value.trim();
  if (!text) return;
  run(async (signal) => {
    const names = [null, ...adapters.keys()];
    const cols = $('#columns');
    cols.replaceChildren();
    cols.hidden = false;
    const bodies = names.map((n) => {
      const col = document.createElement('div');
      col.className = 'col';
      col.innerHTML = '<h3></h3><div class="out"></div>';
      col.querySelector('h3').textContent = n ?? 'base model';
      cols.append(col);
      return col.querySelector('.out');
    });
    const batch = model.generateBatch(names.map((adapter) => ({ prompt: prompt(text), adapter })), { maxTokens: 64, signal });
    await Promise.all(batch.streams.map((s, i) => stream(s, bodies[i])));
  });
});

$('#stop').addEventListener('click', () => running?.abort());

$('#clear-cache').addEventListener('click', async () => {
  await LoraWorker.clearCache(CACHE);
  $('#clear-cache').textContent = 'cache cleared';
});

// Drag and drop: a PEFT folder (adapter_config.json + adapter_model.safetensors) or a .gguf.
async function filesOf(entry, out = []) {
  if (entry.isFile) out.push(await new Promise((res, rej) => entry.file(res, rej)));
  else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
      if (!batch.length) break;
      for (const e of batch) await filesOf(e, out);
    }
  }
  return out;
}
const drop = $('#drop');
drop.addEventListener('dragover', (e) => (e.preventDefault(), drop.classList.add('over')));
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
  const files = entries.length ? (await Promise.all(entries.map((en) => filesOf(en)))).flat() : [...e.dataTransfer.files];
  await addUserAdapter(entries[0]?.name ?? files[0]?.name ?? 'mine', files);
});

/** Loads dropped files as an adapter named after the folder or file; errors go to the page. */
async function addUserAdapter(label, files) {
  clearError();
  const name = label.replace(/\.gguf$/, '').replace(/[^\w.-]+/g, '-') || 'mine';
  const gguf = files.find((f) => f.name.endsWith('.gguf'));
  const source = gguf ?? { files: Object.fromEntries(files.map((f) => [f.name, f])) };
  try {
    const info = await model.loadAdapter(name, source, { replace: true });
    if (!adapters.has(name)) addAdapterRow(name, `your adapter: rank ${info.rank}, ${mib(info.bytes)} MiB`);
  } catch (e) {
    showError(e);
  }
}
window.addUserAdapter = addUserAdapter; // for the tests: they cannot synthesize folder drops

async function main() {
  $('#model-name').textContent = MODEL_NAME.replace(/\.Q\w+$/, '');
  worker = await LoraWorker.create({ backend: params.get('backend') ?? 'auto' });
  $('#backend').textContent = worker.backend === 'webgpu' ? `WebGPU: ${worker.device}` : worker.device;
  if (worker.backend !== 'webgpu' && worker.threadsNote) $('#backend').title = worker.threadsNote;
  if (worker.fallbackReason) $('#backend').title = `WebGPU unavailable: ${worker.fallbackReason}`;
  model = await worker.loadModel(MODEL, {
    cache: CACHE,
    onProgress: ({ loaded, total }) => {
      const pct = total ? (100 * loaded) / total : 0;
      $('#bar-fill').style.width = `${pct}%`;
      $('#load-text').textContent = `Loading ${MODEL_NAME}: ${mib(loaded)} of ${total ? mib(total) : '?'} MiB (${pct.toFixed(0)}%)`;
    },
  });
  chatTemplate = await model.applyChatTemplate([{ role: 'user', content: 'hi' }]).then(() => true, () => false);
  const manifest = await (await fetch(MANIFEST)).json();
  for (const a of manifest) {
    await model.loadAdapter(a.name, new URL(a.path, MANIFEST).href, { cache: CACHE });
    addAdapterRow(a.name, a.description);
  }
  $('#loading').hidden = true;
  $('#app').hidden = false;
  document.body.dataset.ready = 'true';
}
main().catch((e) => {
  showError(e);
  $('#load-text').textContent = 'Could not load the model.';
});
