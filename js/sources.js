// Where model bytes come from. A single file (GGUF): a URL, Response, Blob/File,
// ArrayBuffer or typed array. A Hugging Face folder: a URL ending in "/", an array or
// FileList of Files, or {files: {name: source}}. Every file becomes an async iterable of
// Uint8Array chunks, so it streams into place instead of being copied whole into wasm.
import { nodeBuiltin } from './node.js';
import { ConfigError, FormatError } from './errors.js';
import { clearStore, openStore } from './cache.js';

const CHUNK = 4 << 20;
const HF_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];

function baseName(s) {
  return String(s).split(/[?#]/)[0].split('/').filter(Boolean).pop() || 'model.gguf';
}

async function* slices(bytes) {
  for (let i = 0; i < bytes.length; i += CHUNK) yield bytes.subarray(i, i + CHUNK);
}

async function* readStream(stream) {
  const reader = stream.getReader();
  let done = false;
  try {
    for (;;) {
      const r = await reader.read();
      if ((done = r.done)) return;
      yield r.value;
    }
  } finally {
    // Stopped early (an abort, a refused file): the download stops too.
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

function bytesOf(source) {
  if (source instanceof Uint8Array) return source;
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  return undefined;
}

function fromResponse(res, name) {
  if (!res.ok) throw new FormatError(`${name}: HTTP ${res.status} ${res.statusText}`.trim());
  // Content-Length counts the encoded bytes: only without a content encoding is it the file's.
  const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
  const total = encoded ? undefined : Number(res.headers.get('content-length')) || undefined;
  return { name, total, chunks: res.body ? readStream(res.body) : (async function* () { yield new Uint8Array(await res.arrayBuffer()); })() };
}

function resolveUrl(source) {
  return new URL(source, globalThis.location?.href ?? `file://${globalThis.process?.cwd?.() ?? ''}/`);
}

/** Fetches through the store `cache` names (cache.js): a reload then costs no download. */
async function cachedFetch(url, signal, cache) {
  const store = await openStore(cache);
  if (!store) return fetch(url, { signal });
  return (await store.get(url.href)) ?? store.save(url.href, await fetch(url, { signal }));
}

async function fetchFile(url, name, signal, cache) {
  if (url.protocol === 'file:') {
    const fs = await nodeBuiltin('fs');
    let total;
    try {
      total = (await fs.promises.stat(url)).size;
    } catch {
      throw new FormatError(`${name}: no such file (${url.pathname})`);
    }
    return { name, total, chunks: fs.createReadStream(url, { highWaterMark: CHUNK }) };
  }
  return fromResponse(await cachedFetch(url, signal, cache), name);
}

/** One file: {name, total?, chunks}. */
async function openOne(source, name, signal, cache) {
  const b = bytesOf(source);
  if (b) return { name, total: b.length, chunks: slices(b) };
  if (typeof Blob !== 'undefined' && source instanceof Blob) return { name, total: source.size, chunks: readStream(source.stream()) };
  if (typeof Response !== 'undefined' && source instanceof Response) return fromResponse(source, name);
  if (typeof source === 'string' || source instanceof URL) return fetchFile(resolveUrl(source), name, signal, cache);
  throw new ConfigError(`${name}: a model file must be a URL, Response, Blob, ArrayBuffer or Uint8Array`);
}

const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'];
const SHARD_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]*\.safetensors$/;
const MAX_SHARDS = 1024;

/** A Hugging Face folder at a URL: its JSON files, then its safetensors (sharded or not). */
async function openFolder(url, signal, adapter, cache) {
  const get = async (name, optional) => {
    try {
      return await fetchFile(new URL(name, url), name, signal, cache);
    } catch (e) {
      if (optional && e instanceof FormatError) return undefined;
      throw e;
    }
  };
  if (adapter) return Promise.all(ADAPTER_FILES.map((n) => get(n, false)));
  const files = (await Promise.all(HF_FILES.map((n, i) => get(n, i >= 2)))).filter(Boolean);
  const index = await get('model.safetensors.index.json', true);
  if (index) {
    let text = '';
    for await (const c of index.chunks) text += new TextDecoder().decode(c, { stream: true });
    let map;
    try {
      map = JSON.parse(text).weight_map ?? {};
    } catch (e) {
      throw new FormatError(`model.safetensors.index.json is not JSON: ${e.message}`);
    }
    const shards = [...new Set(Object.values(map))].sort();
    if (!shards.length) throw new FormatError('model.safetensors.index.json lists no shards');
    // Shard names become URLs beside the index: plain file names only (an absolute or
    // relative path would read elsewhere: in Node a "file:" name reads the local disk).
    const bad = shards.find((s) => typeof s !== 'string' || !SHARD_NAME.test(s));
    if (bad !== undefined) throw new FormatError(`model.safetensors.index.json names shard ${JSON.stringify(bad)}: shards must be plain file names ending in .safetensors`);
    if (shards.length > MAX_SHARDS) throw new FormatError(`model.safetensors.index.json lists ${shards.length} shards (at most ${MAX_SHARDS})`);
    for (const s of shards) files.push(await get(s, false));
  } else {
    files.push(await get('model.safetensors', false));
  }
  return files;
}

/** Every file of a model (or, with `adapter`, a PEFT adapter) source: [{name, total?, chunks}]. */
export async function openSources(source, { signal, fileName, adapter = false, cache } = {}) {
  if (typeof source === 'string' && source.endsWith('/')) return openFolder(resolveUrl(source), signal, adapter, cache);
  if (source instanceof URL && source.pathname.endsWith('/')) return openFolder(source, signal, adapter, cache);
  const list =
    source && typeof source === 'object' && source.files && !(typeof Blob !== 'undefined' && source instanceof Blob)
      ? Object.entries(source.files)
      : Array.isArray(source) || (typeof FileList !== 'undefined' && source instanceof FileList)
        ? Array.from(source, (f) => [f.name, f])
        : undefined;
  if (list) {
    // JSON first: the loader reads configs before weights arrive.
    list.sort(([a], [b]) => Number(!a.endsWith('.json')) - Number(!b.endsWith('.json')) || a.localeCompare(b));
    return Promise.all(list.map(([name, s]) => openOne(s, baseName(name), signal, cache)));
  }
  const name =
    fileName ??
    (typeof source === 'string' || source instanceof URL ? baseName(source) : source?.name ?? (source?.url ? baseName(source.url) : 'model.gguf'));
  return [await openOne(source, name, signal, cache)];
}

/** What `cache` holds: every URL with its bytes, and their sum. */
export async function cacheUsage(cache) {
  const store = await openStore(cache);
  const entries = store ? await store.list() : [];
  return { entries, bytes: entries.reduce((a, e) => a + e.bytes, 0) };
}

/**
 * Whether loading `source` (a file URL, or a folder URL ending in "/") would be served by
 * `cache` without a download: the file, or a folder's weights (adapter_model.safetensors,
 * model.safetensors, or every shard its cached index names) with its config.
 */
export async function isCached(source, cache) {
  const store = await openStore(cache);
  if (!store) return false;
  const url = resolveUrl(source);
  const has = (u) => store.has(u.href);
  if (!url.pathname.endsWith('/')) return has(url);
  const at = (n) => new URL(n, url);
  if (await has(at('adapter_model.safetensors'))) return has(at('adapter_config.json'));
  if (!(await has(at('config.json')))) return false;
  if (await has(at('model.safetensors'))) return true;
  const index = await store.get(at('model.safetensors.index.json').href);
  if (!index) return false;
  let shards;
  try {
    shards = [...new Set(Object.values((await index.json()).weight_map ?? {}))];
  } catch {
    return false;
  }
  return shards.length > 0 && shards.every((s) => typeof s === 'string' && SHARD_NAME.test(s)) && (await Promise.all(shards.map((s) => has(at(s))))).every(Boolean);
}

/** Deletes `source`'s entries from `cache` (a file, or everything under a folder URL); resolves to how many. */
export async function deleteCached(source, cache) {
  const store = await openStore(cache);
  if (!store) return 0;
  const url = resolveUrl(source).href;
  const folder = url.endsWith('/');
  let n = 0;
  for (const e of await store.list()) {
    if (folder ? e.url.startsWith(url) : e.url === url) n += (await store.remove(e.url)) ? 1 : 0;
  }
  return n;
}

/**
 * The cache calls LoraRuntime and LoraWorker both offer as statics (the caches belong to the
 * origin, so the page and its worker see the same ones).
 */
export const cacheCalls = {
  /** Deletes a cache filled through the `cache` option of loadModel/loadAdapter (js/cache.js). */
  clearCache: async (cache) => clearStore(cache),
  /** Whether loadModel/loadAdapter of `source` with this `cache` would download nothing. */
  isCached: async (source, { cache } = {}) => isCached(source, cache),
  /** Removes `source` (a file, or all of a folder) from `cache`; resolves to the entries removed. */
  deleteCached: async (source, { cache } = {}) => deleteCached(source, cache),
  /** What `cache` holds: {entries: [{url, bytes}], bytes}. */
  cacheUsage: async (cache) => cacheUsage(cache),
};
