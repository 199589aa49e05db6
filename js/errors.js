// Error classes: every failure a caller can cause is one of these, never a panic.

/** Base class of every error lorafuse throws on bad input or a failing backend. */
export class LoraError extends Error {}
/** Lengths or shapes that do not fit (weight, x, A, B, rows). */
export class ShapeError extends LoraError {}
/** Unknown or duplicate adapter names, bad ranks. */
export class AdapterError extends LoraError {}
/** Bad option values: NaN or infinite numbers, unknown dtypes, backends or options. */
export class ConfigError extends LoraError {}
/** The requested backend is unavailable, or the GPU failed. */
export class BackendError extends LoraError {}
/** A file that is truncated, corrupt or not what it claims to be. */
export class FormatError extends LoraError {}
/** Valid input lorafuse does not handle (yet): a quant type, an architecture. */
export class UnsupportedError extends LoraError {}
/** A hard limit, such as the model's context length, would be exceeded. */
export class LimitError extends LoraError {}
/** The operation was aborted by its AbortSignal. */
export class AbortError extends LoraError {}

const KINDS = { ShapeError, AdapterError, ConfigError, BackendError, FormatError, UnsupportedError, LimitError, AbortError };
// `name` by string, not from the constructor: bundlers minify class names.
for (const [name, Kind] of Object.entries({ LoraError, ...KINDS })) {
  Object.defineProperty(Kind.prototype, 'name', { value: name, writable: true, configurable: true });
}

function translate(e) {
  const Kind = e && KINDS[e.name];
  return Kind && !(e instanceof LoraError) ? new Kind(e.message) : e;
}
export function call(fn) {
  try {
    return fn();
  } catch (e) {
    throw translate(e);
  }
}
export async function callAsync(fn) {
  try {
    return await fn();
  } catch (e) {
    throw translate(e);
  }
}

