/**
 * Download one file over HTTP(S) into a local partial file, robustly:
 * - streamed to disk and hashed (sha256) on the way, with progress events;
 * - resumed with `Range` + `If-Range` after a broken attempt (or a previous process that died),
 *   restarting cleanly when the server answers 200 instead of 206;
 * - transient failures (timeouts, resets, dropped connections, 5xx, 429) retried with
 *   exponential backoff and jitter; permanent ones (4xx, a wrong hash) thrown at once; the
 *   message names the URL and what the upstream did ("closed the connection after 1234 of
 *   5000 bytes", "stalled for 30000 ms before answering");
 * - a body cut short is never taken for the file: its length (`Content-Length`, else the
 *   expected size) must be reached, whatever ended the connection;
 * - a body the server encodes in transit (`Content-Encoding: gzip`) is decoded: hashes and
 *   sizes are of the decoded file, and such a body is not resumed by range;
 * - a bound on the size, checked against `Content-Length` before and the count during;
 * - redirects followed by hand, dropping credentials on a cross-host redirect (a Hugging Face
 *   `resolve` URL redirects to a CDN that must never see the token), with the first response's
 *   headers handed to `inspect` (where the Hub puts `X-Repo-Commit` and `X-Linked-Etag`);
 *   a loop or a chain longer than `maxRedirects` is refused;
 * - `If-None-Match` revalidation: a 304 leaves everything as it was.
 *
 * The partial file `dest` and its sidecar `dest.meta.json` (the URL and the validator that the
 * bytes came with) live in a staging directory, never in the store: nothing partial is visible.
 * On success `dest` holds the whole verified file and the sidecar is gone.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AcsHubError, isRetryable } from '../../converters/errors.js';
import { DownloadTooLargeError, IntegrityError, UpstreamError, UpstreamRefusedError } from '../errors.js';
import { backoffDelay, parseRetryAfter } from './backoff.js';
import { checkHashPrefix } from './hash-prefix.js';
import { contentCodings, httpFetch, isDecodedCoding } from './http-fetch.js';

/** What the bytes must be. */
export interface DownloadExpectation {
  /** Full sha256 (hex). */
  sha256?: string;
  /** Size in bytes. */
  size?: number;
  /** A torch.hub-style file name whose `-<hex>.` the sha256 must start with. */
  hashPrefixOf?: string;
}

/** A response, as `inspect` sees it. */
export interface ResponseInfo {
  readonly url: string;
  readonly status: number;
  readonly headers: Headers;
}

/** A progress event. */
export interface DownloadProgress {
  readonly url: string;
  /** Bytes in the partial file so far (resumed ones included). */
  readonly bytes: number;
  /** Size of the whole file, when the server said or the expectation did. */
  readonly total: number | undefined;
  /** Bytes that were already there when this attempt started. */
  readonly resumedFrom: number;
  /** 1 for the first attempt. */
  readonly attempt: number;
}

/** Parameters of `downloadFile`. */
export interface DownloadFileParams {
  url: string;
  /** The partial file to write (and resume). */
  dest: string;
  /** Request headers, e.g. `Authorization` (dropped on a cross-host redirect). */
  headers?: Record<string, string>;
  expected?: DownloadExpectation;
  /**
   * Sees the first response of each attempt (before any redirect is followed); may return
   * further expectations (e.g. the sha256 from `X-Linked-Etag`) or throw to refuse.
   */
  inspect?: (first: ResponseInfo) => DownloadExpectation | void;
  /** An entity tag from an earlier download: sent as `If-None-Match`; a 304 means unchanged. */
  etag?: string;
  /** Largest acceptable size in bytes. @default 4 GiB */
  maxBytes?: number;
  /** Milliseconds without a response, or without a byte of the body, before an attempt is abandoned. @default 30_000 */
  timeoutMs?: number;
  /** Retries after the first attempt, for transient failures. @default 5 */
  retries?: number;
  /** First backoff delay. @default 500 */
  backoffMs?: number;
  /** Longest backoff delay. @default 30_000 */
  maxBackoffMs?: number;
  /** @default 10 */
  maxRedirects?: number;
  /** The network. @default httpFetch (node:http; see http-fetch.ts for why not the global fetch) */
  fetch?: typeof fetch;
  signal?: AbortSignal;
  onProgress?: (e: DownloadProgress) => void;
  /** Called before each retry with the error and the delay. */
  onRetry?: (e: { attempt: number; delayMs: number; error: Error }) => void;
  /** Randomness of the jitter. @default Math.random */
  random?: () => number;
}

/** What `downloadFile` did. */
export interface DownloadResult {
  /** The server answered 304 to `If-None-Match`: nothing was downloaded. */
  readonly notModified: boolean;
  readonly sha256: string;
  readonly size: number;
  /** The final response's `ETag`, for later revalidation. */
  readonly etag: string | undefined;
  /** The first response of the last attempt (the Hub's headers live there). */
  readonly first: ResponseInfo | undefined;
  /** The URL the bytes came from, after redirects. */
  readonly finalUrl: string;
  readonly attempts: number;
  /** Whether some bytes came from an earlier attempt or process. */
  readonly resumed: boolean;
}

interface PartialMeta {
  url: string;
  etag?: string;
  lastModified?: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

class AttemptTimeout extends Error {}

/** A URL without its query string and credentials, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString();
  } catch {
    return '<invalid URL>';
  }
}

async function readMeta(dest: string, url: string): Promise<{ offset: number; meta: PartialMeta | undefined }> {
  try {
    const meta = JSON.parse(await readFile(`${dest}.meta.json`, 'utf8')) as PartialMeta;
    const { size } = await stat(dest);
    if (meta.url === url && (meta.etag !== undefined || meta.lastModified !== undefined)) return { offset: size, meta };
  } catch {
    // No usable partial: start from zero.
  }
  await discard(dest);
  return { offset: 0, meta: undefined };
}

async function discard(dest: string): Promise<void> {
  await rm(dest, { force: true });
  await rm(`${dest}.meta.json`, { force: true });
}

async function hashExisting(dest: string, offset: number, hash: Hash): Promise<void> {
  if (offset === 0) return;
  for await (const chunk of createReadStream(dest, { start: 0, end: offset - 1 })) hash.update(chunk as Buffer);
}

function strongEtag(etag: string | null): string | undefined {
  return etag && !etag.startsWith('W/') ? etag : undefined;
}

function classifyStatus(res: Response, url: string): UpstreamError | UpstreamRefusedError {
  const where = redactUrl(url);
  if (res.status >= 500 || res.status === 429 || res.status === 408) {
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    return new UpstreamError(`${where}: HTTP ${res.status} ${res.statusText}`, { url: where, upstreamStatus: res.status, retryAfterMs });
  }
  const hint = res.status === 401 || res.status === 403 ? ' (a gated repository needs a token: set ACS_HUB_HF_TOKEN)' : '';
  return new UpstreamRefusedError(`${where}: HTTP ${res.status} ${res.statusText}${hint}`, { url: where, upstreamStatus: res.status });
}

function crossesHosts(from: URL, to: URL): boolean {
  return from.host !== to.host || (from.protocol === 'https:' && to.protocol !== 'https:');
}

/** Send a request, following redirects by hand; returns the final response and the first one's info. */
async function request(
  params: DownloadFileParams,
  headers: Record<string, string>,
  signal: AbortSignal,
  onFirst: (first: ResponseInfo) => void,
): Promise<{ res: Response; first: ResponseInfo; finalUrl: string }> {
  const doFetch = params.fetch ?? httpFetch;
  const max = params.maxRedirects ?? 10;
  let url = params.url;
  let hdrs = { ...headers };
  let first: ResponseInfo | undefined;
  const visited = new Set([url]);
  for (let hop = 0; ; hop++) {
    const res = await doFetch(url, { headers: hdrs, redirect: 'manual', signal });
    if (first === undefined) {
      first = { url, status: res.status, headers: res.headers };
      try {
        onFirst(first);
      } catch (err) {
        await res.body?.cancel().catch(() => undefined);
        throw err;
      }
    }
    const location = res.headers.get('location');
    if (!REDIRECTS.has(res.status) || location === null) return { res, first, finalUrl: url };
    await res.body?.cancel().catch(() => undefined);
    const where = redactUrl(params.url);
    if (!URL.canParse(location, url)) throw new UpstreamRefusedError(`${where}: redirected to '${location.slice(0, 200)}', which is not a URL`, { url: where, upstreamStatus: res.status });
    const next = new URL(location, url);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new UpstreamRefusedError(`${where}: redirected to a ${next.protocol} URL`, { url: where, upstreamStatus: res.status });
    if (visited.has(next.toString())) throw new UpstreamRefusedError(`${where}: too many redirects (a loop: ${redactUrl(next.toString())} again)`, { url: where });
    if (hop >= max) throw new UpstreamRefusedError(`${where}: too many redirects (more than ${max}, the last to ${redactUrl(next.toString())})`, { url: where });
    visited.add(next.toString());
    if (crossesHosts(new URL(url), next)) {
      hdrs = Object.fromEntries(Object.entries(hdrs).filter(([k]) => !CREDENTIAL_HEADERS.includes(k.toLowerCase())));
    }
    url = next.toString();
  }
}

function mergeExpectations(base: DownloadExpectation, extra: DownloadExpectation | void, url: string): DownloadExpectation {
  if (!extra) return base;
  if (base.sha256 && extra.sha256 && base.sha256 !== extra.sha256) {
    throw new IntegrityError(`${redactUrl(url)}: the server announces sha256 ${extra.sha256}, but ${base.sha256} is expected`);
  }
  if (base.size !== undefined && extra.size !== undefined && base.size !== extra.size) {
    throw new IntegrityError(`${redactUrl(url)}: the server announces ${extra.size} bytes, but ${base.size} are expected`);
  }
  return { ...extra, ...Object.fromEntries(Object.entries(base).filter(([, v]) => v !== undefined)) };
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, off, bytes.byteLength - off);
    off += bytesWritten;
  }
}

interface AttemptOutcome {
  notModified: boolean;
  sha256: string;
  size: number;
  etag: string | undefined;
  first: ResponseInfo;
  finalUrl: string;
  resumedFrom: number;
}

async function attempt(
  params: DownloadFileParams,
  n: number,
  allowResume: boolean,
  etagToRevalidate: string | undefined,
  state: { resumedFrom: number },
): Promise<AttemptOutcome> {
  const timeoutMs = params.timeoutMs ?? 30_000;
  const maxBytes = params.maxBytes ?? 4 * 1024 ** 3;
  const url = redactUrl(params.url);
  let where = url;
  let { offset, meta } = allowResume ? await readMeta(params.dest, params.url) : { offset: 0, meta: undefined };
  if (!allowResume) await discard(params.dest);

  const controller = new AbortController();
  const signal = params.signal ? AbortSignal.any([params.signal, controller.signal]) : controller.signal;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new AttemptTimeout()), timeoutMs);
  };

  const headers: Record<string, string> = { 'accept-encoding': 'identity', ...params.headers };
  if (offset > 0) {
    headers['range'] = `bytes=${offset}-`;
    headers['if-range'] = meta?.etag ?? meta?.lastModified ?? '';
  } else if (etagToRevalidate) {
    headers['if-none-match'] = etagToRevalidate;
  }

  let fh: FileHandle | undefined;
  // Where the body got to, once it started: for the messages about a connection that broke.
  let body: { bytes: number; total: number | undefined } | undefined;
  try {
    arm();
    let expected: DownloadExpectation = params.expected ?? {};
    // The first answer is checked before any redirect is followed: a Hub that announces the
    // wrong file is refused before a byte comes from its CDN.
    const { res, first, finalUrl } = await request(params, headers, signal, (f) => {
      expected = mergeExpectations(params.expected ?? {}, params.inspect?.(f), params.url);
    });
    if (finalUrl !== params.url) where = `${where} (redirected to ${redactUrl(finalUrl)})`;
    if (res.status === 304 && etagToRevalidate) {
      await res.body?.cancel().catch(() => undefined);
      return { notModified: true, sha256: '', size: 0, etag: etagToRevalidate, first, finalUrl, resumedFrom: 0 };
    }
    if (res.status === 416 && offset > 0) {
      await res.body?.cancel().catch(() => undefined);
      await discard(params.dest);
      throw new UpstreamError(`${where}: HTTP 416 for a resume at byte ${offset}; starting over`, { url, upstreamStatus: 416 });
    }
    if (res.status !== 200 && res.status !== 206) throw classifyStatus(res, params.url);

    // With a Content-Encoding, the bytes read are decoded and Content-Length counts encoded ones.
    const codings = contentCodings(res.headers.get('content-encoding'));
    const undecodable = codings.find((c) => !isDecodedCoding(c));
    if (undecodable !== undefined) {
      await res.body?.cancel().catch(() => undefined);
      throw new UpstreamRefusedError(`${where}: sends Content-Encoding '${undecodable}', which cannot be decoded`, { url, upstreamStatus: res.status });
    }
    const encoded = codings.length > 0;
    let announced: number | undefined;
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (!m || Number(m[1]) !== offset || encoded) {
        await res.body?.cancel().catch(() => undefined);
        await discard(params.dest);
        const what = encoded ? `encoded bytes (${codings.join(', ')})` : `range '${res.headers.get('content-range')}'`;
        throw new UpstreamError(`${where}: answered ${what} to a request from byte ${offset}; starting over`, { url, upstreamStatus: 206 });
      }
      announced = m[3] === '*' ? undefined : Number(m[3]);
    } else {
      // 200: the whole file, whatever was asked (the validator changed, or ranges are not supported).
      if (offset > 0) await discard(params.dest);
      offset = 0;
      const length = res.headers.get('content-length');
      announced = length !== null && !encoded ? Number(length) : undefined;
      // Decoded bytes cannot be resumed by a range of the encoded ones: no validator, no resume.
      meta = encoded ? { url: params.url } : { url: params.url, etag: strongEtag(res.headers.get('etag')), lastModified: res.headers.get('last-modified') ?? undefined };
    }
    if (announced !== undefined && announced > maxBytes) throw new DownloadTooLargeError(`${where}: ${announced} bytes is more than the limit of ${maxBytes}`);
    if (announced !== undefined && expected.size !== undefined && announced !== expected.size) {
      throw new IntegrityError(`${where}: the server sends ${announced} bytes, but ${expected.size} are expected`);
    }
    const total = announced ?? expected.size;

    await mkdir(dirname(params.dest), { recursive: true });
    if (offset === 0) await writeFile(`${params.dest}.meta.json`, JSON.stringify(meta));
    const hash = createHash('sha256');
    await hashExisting(params.dest, offset, hash);
    fh = await open(params.dest, offset === 0 ? 'w' : 'a');
    const resumedFrom = offset;
    state.resumedFrom = offset;
    if (!res.body) throw new UpstreamError(`${where}: empty response body`, { url });
    const reader = res.body.getReader();
    body = { bytes: offset, total };
    arm();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arm();
      body.bytes += value.byteLength;
      if (total !== undefined && body.bytes > total) {
        await reader.cancel().catch(() => undefined);
        throw new IntegrityError(`${where}: sends more than the ${total} bytes expected`);
      }
      if (body.bytes > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new DownloadTooLargeError(`${where}: more than the limit of ${maxBytes} bytes`);
      }
      hash.update(value);
      await writeAll(fh, value);
      params.onProgress?.({ url: params.url, bytes: body.bytes, total, resumedFrom, attempt: n });
    }
    clearTimeout(timer);
    await fh.sync();
    await fh.close();
    fh = undefined;
    const bytes = body.bytes;
    // Whatever ended it, a body short of its length is a broken connection, not the file.
    if (total !== undefined && bytes < total) throw new UpstreamError(`${where}: closed the connection ${progress(body)}`, { url });
    const sha256 = hash.digest('hex');
    if (expected.size !== undefined && bytes !== expected.size) throw new IntegrityError(`${where}: got ${bytes} bytes, but ${expected.size} are expected`);
    if (expected.sha256 !== undefined && sha256 !== expected.sha256) throw new IntegrityError(`${where}: sha256 is ${sha256}, but ${expected.sha256} is expected`);
    if (expected.hashPrefixOf !== undefined) checkHashPrefix(expected.hashPrefixOf, sha256);
    await rm(`${params.dest}.meta.json`, { force: true });
    return { notModified: false, sha256, size: bytes, etag: res.headers.get('etag') ?? undefined, first, finalUrl, resumedFrom };
  } catch (err) {
    if (params.signal?.aborted) throw params.signal.reason ?? err;
    if (controller.signal.aborted && controller.signal.reason instanceof AttemptTimeout) {
      throw new UpstreamError(`${where}: stalled for ${timeoutMs} ms ${progress(body)}`, { url, cause: err });
    }
    if (err instanceof AcsHubError) throw err;
    // A refusal by the caller's fetch (an address the policy forbids) is final, not a network fault.
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof AcsHubError) throw cause;
    throw new UpstreamError(`${where}: ${describeNetworkError(err, body)}`, { url, cause: err });
  } finally {
    clearTimeout(timer);
    await fh?.close().catch(() => undefined);
  }
}

/** How far a body got: "before answering", "after 1234 of 5000 bytes". */
function progress(body: { bytes: number; total: number | undefined } | undefined): string {
  if (body === undefined) return 'before answering';
  return body.total === undefined ? `after ${body.bytes} bytes` : `after ${body.bytes} of ${body.total} bytes`;
}

/** What the connection did, from the error of `fetch` or of its body (node:http's or undici's). */
function describeNetworkError(err: unknown, body: { bytes: number; total: number | undefined } | undefined): string {
  for (let e = err as (Error & { code?: string; syscall?: string; cause?: unknown }) | undefined; e instanceof Error; e = e.cause as typeof e) {
    // A reset (RST) fails a read; an early close (FIN) is "aborted", "socket hang up" or undici's "other side closed".
    if (e.code === 'ECONNRESET') return `${e.syscall === 'read' ? 'reset' : 'closed'} the connection ${progress(body)}`;
    if (e.code === 'UND_ERR_SOCKET' || e.code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return `closed the connection ${progress(body)}`;
  }
  const e = err as Error & { cause?: { code?: string; message?: string } };
  const cause = e.cause?.code ?? e.cause?.message;
  const message = cause ? `${e.message} (${cause})` : e.message;
  return body === undefined ? message : `${message} ${progress(body)}`;
}

/**
 * Download `params.url` into `params.dest`, verifying it; see the module comment for the
 * guarantees. Throws `UpstreamError` when every attempt failed transiently, and the permanent
 * errors (`UpstreamRefusedError`, `IntegrityError`, `DownloadTooLargeError`) at once.
 */
export async function downloadFile(params: DownloadFileParams): Promise<DownloadResult> {
  const retries = params.retries ?? 5;
  let allowResume = true;
  let freshAfterMismatch = false;
  let resumed = false;
  for (let n = 1; ; n++) {
    const state = { resumedFrom: 0 };
    try {
      const out = await attempt(params, n, allowResume, params.etag, state);
      resumed ||= out.resumedFrom > 0;
      return { notModified: out.notModified, sha256: out.sha256, size: out.size, etag: out.etag, first: out.first, finalUrl: out.finalUrl, attempts: n, resumed };
    } catch (err) {
      const error = err as Error;
      resumed ||= state.resumedFrom > 0;
      if (error instanceof IntegrityError || error instanceof DownloadTooLargeError || error instanceof UpstreamRefusedError) {
        await discard(params.dest);
        // Resumed bytes may be what went wrong (the file changed between attempts): one fresh try.
        if (error instanceof IntegrityError && state.resumedFrom > 0 && !freshAfterMismatch) {
          freshAfterMismatch = true;
          allowResume = false;
          continue;
        }
        throw error;
      }
      if (!isRetryable(error) || n > retries) throw error;
      allowResume = true;
      const retryAfterMs = error instanceof UpstreamError ? error.retryAfterMs : undefined;
      const delayMs = backoffDelay({ attempt: n, baseMs: params.backoffMs, maxMs: params.maxBackoffMs, retryAfterMs, random: params.random });
      params.onRetry?.({ attempt: n, delayMs, error });
      await sleep(delayMs, undefined, { signal: params.signal });
    }
  }
}
