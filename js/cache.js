// Where fetched model and adapter files are kept between visits (the `cache` load option):
// the Origin Private File System where the browser has it (files on disk, written as they
// stream in and read back as disk-backed Files, so a 1 GB model is never held in memory to be
// cached), else the Cache API. Both stores answer the same calls (get, save, has, list,
// remove); clearStore deletes one. `cache` is a name, or {name, storage: 'auto' | 'opfs' | 'cache-api'}.
import { ConfigError } from './errors.js';

const ROOT = 'lorafuse-cache';
const STORAGES = ['auto', 'opfs', 'cache-api'];

/** Whether this context can write OPFS files from a stream (Chromium, Firefox; Safari 18+). */
function hasOpfs() {
  return typeof navigator !== 'undefined' && typeof navigator.storage?.getDirectory === 'function' &&
    typeof globalThis.FileSystemFileHandle?.prototype?.createWritable === 'function' && !!globalThis.crypto?.subtle;
}

/** The `cache` option as {name, storage}; undefined without one. */
export function cacheSpec(cache) {
  if (cache == null || cache === '') return undefined;
  const { name, storage = 'auto' } = typeof cache === 'string' ? { name: cache } : cache;
  if (typeof name !== 'string' || !name || /[/\\]/.test(name) || name === '.' || name === '..') {
    throw new ConfigError(`cache must be a name (no slashes) or {name, storage}, got ${JSON.stringify(cache)}`);
  }
  if (!STORAGES.includes(storage)) throw new ConfigError(`cache storage must be one of ${STORAGES.join(', ')}, got ${JSON.stringify(storage)}`);
  return { name, storage: storage === 'auto' ? (hasOpfs() ? 'opfs' : 'cache-api') : storage };
}

/** The store for `cache`, or undefined where its storage is missing (Node, insecure pages). */
export async function openStore(cache) {
  const spec = cacheSpec(cache);
  if (!spec) return undefined;
  if (spec.storage === 'opfs') return hasOpfs() ? opfsStore(spec.name) : undefined;
  return typeof caches === 'undefined' ? undefined : cacheApiStore(await caches.open(spec.name));
}

/**
 * Deletes the whole cache `cache` (a plain name: in both storages, so that nothing an earlier
 * version cached in the Cache API stays behind); resolves to whether there was one.
 */
export async function clearStore(cache) {
  const spec = cacheSpec(cache);
  if (!spec) return false;
  const both = typeof cache === 'string' || !cache.storage || cache.storage === 'auto';
  let had = false;
  if ((both || spec.storage === 'opfs') && hasOpfs()) {
    const root = await (await navigator.storage.getDirectory()).getDirectoryHandle(ROOT, { create: true });
    had = await root.removeEntry(spec.name, { recursive: true }).then(() => true, () => false);
  }
  if ((both || spec.storage === 'cache-api') && typeof caches !== 'undefined') had = (await caches.delete(spec.name)) || had;
  return had;
}

/** Bytes of a cached response: its Content-Length, else its body's size. */
async function responseBytes(res) {
  const n = Number(res.headers.get('content-length'));
  return Number.isFinite(n) && n > 0 && (res.headers.get('content-encoding') ?? 'identity') === 'identity' ? n : (await res.blob()).size;
}

function cacheApiStore(store) {
  return {
    /** A cached file as a Response, or undefined. */
    async get(url) {
      return store.match(url);
    },
    /**
     * Keeps a copy of `res` (a full disk only costs the cache) while the caller reads it; the
     * caller's read ends once the copy is stored. (The copy is a tee: whatever the slower of
     * the two readers has not taken yet waits in memory, one reason OPFS is preferred.)
     */
    async save(url, res) {
      if (!res.ok || !res.body) return res;
      const put = store.put(url, res.clone()).catch(() => {});
      const reader = res.body.getReader();
      const body = new ReadableStream({
        async pull(ctl) {
          const { done, value } = await reader.read();
          if (!done) return ctl.enqueue(value);
          await put;
          ctl.close();
        },
        cancel: (reason) => reader.cancel(reason),
      });
      return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
    },
    async has(url) {
      return !!(await store.match(url));
    },
    async list() {
      const out = [];
      for (const req of await store.keys()) out.push({ url: req.url, bytes: await responseBytes(await store.match(req)) });
      return out;
    },
    async remove(url) {
      return store.delete(url);
    },
  };
}

async function hexDigest(text) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * One directory per cache; per URL a data file named by the URL's SHA-256 and, written only
 * once the data is complete, `<hash>.json` with {url, bytes}: a file without its record (a
 * download cut short) is never served.
 */
async function opfsStore(name) {
  const root = await (await navigator.storage.getDirectory()).getDirectoryHandle(ROOT, { create: true });
  const dir = await root.getDirectoryHandle(name, { create: true });
  const handle = (file) => dir.getFileHandle(file).catch(() => undefined);
  const record = async (key) => {
    const h = await handle(`${key}.json`);
    try {
      return h && JSON.parse(await (await h.getFile()).text());
    } catch {
      return undefined;
    }
  };
  /** The complete data file of `url`, with its record, or undefined. */
  const entry = async (url) => {
    const key = await hexDigest(url);
    const [rec, data] = [await record(key), await handle(key)];
    const file = data && (await data.getFile());
    return rec?.url === url && file?.size === rec.bytes ? { key, file } : undefined;
  };
  const writeRecord = async (key, rec) => {
    const w = await (await dir.getFileHandle(`${key}.json`, { create: true })).createWritable();
    await w.write(JSON.stringify(rec));
    await w.close();
  };
  return {
    async get(url) {
      const e = await entry(url);
      return e && new Response(e.file.stream(), { headers: { 'content-length': String(e.file.size) } });
    },
    /**
     * Writes `res`'s body to disk as it is read (each chunk written before it is handed on:
     * nothing piles up in memory); its record follows the last chunk. A read stopped early,
     * or a write that fails (quota), leaves no entry and does not disturb the load.
     */
    async save(url, res) {
      if (!res.ok || !res.body) return res;
      const key = await hexDigest(url);
      await dir.removeEntry(`${key}.json`).catch(() => {});
      let w = await (await dir.getFileHandle(key, { create: true })).createWritable().catch(() => undefined);
      let bytes = 0;
      const drop = async () => {
        const x = w;
        w = undefined;
        await x?.abort().catch(() => {});
      };
      const reader = res.body.getReader();
      const body = new ReadableStream({
        async pull(ctl) {
          let r;
          try {
            r = await reader.read();
          } catch (e) {
            await drop(); // the download failed: nothing is kept
            throw e;
          }
          const { done, value } = r;
          if (done) {
            if (w) {
              await w.close().then(() => writeRecord(key, { url, bytes }), drop).catch(() => {});
            }
            try {
              ctl.close();
            } catch {} // cancelled meanwhile
            return;
          }
          if (w) {
            await w.write(value).then(() => (bytes += value.byteLength), drop);
          }
          ctl.enqueue(value);
        },
        async cancel(reason) {
          await drop();
          await reader.cancel(reason);
        },
      });
      return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
    },
    async has(url) {
      return !!(await entry(url));
    },
    async list() {
      const out = [];
      for await (const [file, h] of dir.entries()) {
        if (!file.endsWith('.json') || h.kind !== 'file') continue;
        const rec = await record(file.slice(0, -5));
        if (rec && (await entry(rec.url))) out.push({ url: rec.url, bytes: rec.bytes });
      }
      return out;
    },
    async remove(url) {
      const key = await hexDigest(url);
      const had = !!(await record(key));
      await dir.removeEntry(`${key}.json`).catch(() => {});
      await dir.removeEntry(key).catch(() => {});
      return had;
    },
  };
}
