// Where model bytes come from: a URL (fetched, streamed), a Response, a Blob/File, an
// ArrayBuffer or typed array. Everything becomes an async iterable of Uint8Array chunks,
// so a file is streamed into place instead of being copied whole into wasm memory.
import { ConfigError, FormatError } from './errors.js';

const CHUNK = 4 << 20;

function baseName(s) {
  return String(s).split(/[?#]/)[0].split('/').filter(Boolean).pop() || 'model.gguf';
}

async function* slices(bytes) {
  for (let i = 0; i < bytes.length; i += CHUNK) yield bytes.subarray(i, i + CHUNK);
}

async function* readStream(stream) {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

async function fromResponse(res, name) {
  if (!res.ok) throw new FormatError(`${name}: HTTP ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get('content-length')) || undefined;
  return { name, total, chunks: res.body ? readStream(res.body) : slices(new Uint8Array(await res.arrayBuffer())) };
}

/** {name, total?, chunks} for any supported source. */
export async function openSource(source, { signal, fileName } = {}) {
  if (source instanceof Uint8Array) return { name: fileName ?? 'model.gguf', total: source.length, chunks: slices(source) };
  if (ArrayBuffer.isView(source)) {
    const b = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    return { name: fileName ?? 'model.gguf', total: b.length, chunks: slices(b) };
  }
  if (source instanceof ArrayBuffer) return { name: fileName ?? 'model.gguf', total: source.byteLength, chunks: slices(new Uint8Array(source)) };
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    return { name: fileName ?? source.name ?? 'model.gguf', total: source.size, chunks: readStream(source.stream()) };
  }
  if (typeof Response !== 'undefined' && source instanceof Response) return fromResponse(source, fileName ?? baseName(source.url));
  if (typeof source === 'string' || source instanceof URL) {
    const url = new URL(source, globalThis.location?.href ?? `file://${globalThis.process?.cwd?.() ?? ''}/`);
    const name = fileName ?? baseName(url.pathname);
    if (url.protocol === 'file:') {
      const fs = await import(/* @vite-ignore */ 'node:fs');
      const total = (await fs.promises.stat(url)).size;
      return { name, total, chunks: fs.createReadStream(url, { highWaterMark: CHUNK }) };
    }
    return fromResponse(await fetch(url, { signal }), name);
  }
  throw new ConfigError('model source must be a URL, Response, Blob, ArrayBuffer or Uint8Array');
}
