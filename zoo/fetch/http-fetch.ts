/**
 * The network of the downloads: a `fetch` on `node:http`/`node:https`, for the subset that
 * `downloadFile` uses (GET or HEAD, headers, `redirect: 'manual'`, a signal).
 *
 * Why not the global `fetch`: undici's HTTP/1 client, from 6.26 and 7.26 on (the lines that
 * run on Node 20), throws an uncatchable `AssertionError: assert(!this.paused)` from a socket's
 * 'end' handler when an upstream closes the connection while the reader applies backpressure,
 * which is what `python3 -m http.server` and many mirrors do after every body
 * (nodejs/undici#5360, fixed in undici 8, which needs Node 22). The global `fetch` runs on
 * whichever undici set the global dispatcher first, so it cannot be pinned either. Node's own
 * HTTP client reports the same events as errors on the response.
 *
 * As `fetch` does, bodies sent with a `Content-Encoding` (gzip, deflate, br) are decoded, and
 * the headers stay as the server sent them (`Content-Length` counts the encoded bytes).
 * Redirects are never followed: the caller sees the 3xx and its `Location`.
 */
import { lookup as dnsLookup } from 'node:dns';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { pipeline, Readable, type Duplex } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

/** Options of `createHttpFetch`. */
export interface HttpFetchOptions {
  /** Resolves host names (the URL guard checks the addresses here). @default dns.lookup */
  lookup?: LookupFunction;
}

/** The content codings that are decoded, by name. */
const DECODERS: Record<string, () => Duplex> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/** The codings of a `Content-Encoding` header, in the order they were applied. */
export function contentCodings(value: string | null): string[] {
  return (value ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
}

/** Whether `fetch` (this one or undici's) hands over the bytes of this coding decoded. */
export function isDecodedCoding(coding: string): boolean {
  return Object.hasOwn(DECODERS, coding);
}

const NULL_BODY = new Set([101, 204, 205, 304]);

function responseHeaders(res: IncomingMessage): Headers {
  const headers = new Headers();
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
    try {
      headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
    } catch {
      // A field that WHATWG headers refuse (a name outside the token characters) is dropped.
    }
  }
  return headers;
}

function toResponse(req: ClientRequest, res: IncomingMessage, method: string): Response {
  const status = res.statusCode ?? 0;
  if (status < 200 || status > 599) {
    res.destroy();
    throw new Error(`HTTP status ${status} is outside 200-599`);
  }
  let body: Readable | null = null;
  if (method !== 'HEAD' && !NULL_BODY.has(status)) {
    const codings = contentCodings(res.headers['content-encoding'] ?? null);
    const decoders = codings.every(isDecodedCoding) ? codings.reverse().map((c) => DECODERS[c]!()) : [];
    const out = decoders.length === 0 ? res : (pipeline([res, ...decoders], () => undefined) as unknown as Readable);
    // Node ends a body without a length quietly when the connection is reset: say it was not.
    req.on('error', (err) => {
      if (!res.complete) out.destroy(err);
    });
    body = out;
  } else {
    res.resume();
  }
  const statusText = (res.statusMessage ?? '').replace(/[^\t\x20-\x7e]/g, '');
  return new Response(body && (Readable.toWeb(body) as ReadableStream<Uint8Array>), { status, statusText, headers: responseHeaders(res) });
}

/** A `fetch` over `node:http(s)`; see the module comment for what it supports. */
export function createHttpFetch(options: HttpFetchOptions = {}): typeof fetch {
  const lookup = options.lookup ?? dnsLookup;
  return (input, init = {}) => {
    if (input instanceof Request) return Promise.reject(new TypeError('httpFetch takes a URL, not a Request'));
    const method = (init.method ?? 'GET').toUpperCase();
    if ((method !== 'GET' && method !== 'HEAD') || init.body != null) return Promise.reject(new TypeError('httpFetch sends GET and HEAD requests only'));
    if (init.redirect !== 'manual') return Promise.reject(new TypeError("httpFetch never follows redirects: pass redirect: 'manual'"));
    let url: URL;
    try {
      url = new URL(input);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.reject(new TypeError(`httpFetch fetches http(s) URLs, not ${url.protocol}`));
    const headers: Record<string, string> = { 'user-agent': 'acs-hub', ...Object.fromEntries(new Headers(init.headers)) };
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      // A connection per request (no pool): a socket resolved by one lookup never serves another.
      const req = request(url, { method, headers, agent: false, lookup, signal: init.signal ?? undefined }, (res) => {
        try {
          resolve(toResponse(req, res, method));
        } catch (err) {
          reject(err as Error);
        }
      });
      req.on('error', reject);
      req.end();
    });
  };
}

/** The default network of the downloads. */
export const httpFetch: typeof fetch = createHttpFetch();
