/**
 * A loopback HTTP server that plays the public zoo: download.pytorch.org (`/models/<file>`),
 * the Hugging Face Hub (`/{repo}/resolve/{revision}/{file}`, answered with the Hub's headers and
 * a redirect to a second loopback "CDN" server on another port) and GitHub releases (also
 * redirected to the CDN). It serves real-format fixture files under the real URL paths, with
 * ranges, ETags and scripted failures: a dropped connection half-way, a 503, a stall, a slow
 * trickle, an answer of 200 to a range request, corrupted bytes.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fixture } from '../helpers.js';

/** A scripted failure, used once per request, in order. */
export type Failure =
  | { kind: 'status'; status: number; retryAfter?: string }
  | { kind: 'drop'; after: number }
  | { kind: 'stall'; after: number }
  | { kind: 'ignore-range' }
  | { kind: 'trickle'; chunk: number; intervalMs: number }
  | { kind: 'corrupt' };

/** One request the servers saw. */
export interface SeenRequest {
  server: 'zoo' | 'cdn';
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  status?: number;
}

interface Blob {
  bytes: Buffer;
  sha256: string;
  etag: string;
}

interface HubRepo {
  commit: string;
  gatedToken?: string;
}

function blobOf(bytes: Buffer): Blob {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { bytes, sha256, etag: `"${sha256}"` };
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The loopback zoo. */
export class FakeZoo {
  readonly requests: SeenRequest[] = [];
  origin = '';
  cdnOrigin = '';
  private readonly files = new Map<string, Blob>();
  private readonly redirects = new Map<string, { blobPath: string; repo?: HubRepo }>();
  private readonly failures = new Map<string, Failure[]>();
  private readonly zoo: Server;
  private readonly cdn: Server;

  constructor() {
    this.zoo = createServer((req, res) => this.handle('zoo', req, res));
    this.cdn = createServer((req, res) => this.handle('cdn', req, res));
  }

  /** Start both servers. */
  async start(): Promise<this> {
    this.origin = await listen(this.zoo);
    this.cdnOrigin = await listen(this.cdn);
    return this;
  }

  /** Stop both servers, cutting any stalled or trickling response. */
  async close(): Promise<void> {
    for (const s of [this.zoo, this.cdn]) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }

  /** Base URLs to configure the code under test with. */
  get sources() {
    return {
      torchvision: { baseUrl: `${this.origin}/models`, timeoutMs: 2_000 },
      huggingface: { baseUrl: this.origin, timeoutMs: 2_000, token: '' },
      github: { baseUrl: this.origin, timeoutMs: 2_000 },
    };
  }

  /** Serve bytes as torchvision does: `/models/<file>`. */
  torchvision(file: string, bytes: Buffer): this {
    this.files.set(`/models/${file}`, blobOf(bytes));
    return this;
  }

  /** A Hub repository file: the resolve URL redirects to the CDN with the Hub's headers. */
  huggingface(repo: string, revision: string, file: string, bytes: Buffer, opts: { commit?: string; gatedToken?: string } = {}): this {
    const blob = blobOf(bytes);
    const blobPath = `/repos/${blob.sha256}`;
    this.files.set(blobPath, blob);
    const commit = opts.commit ?? (/^[0-9a-f]{40}$/.test(revision) ? revision : createHash('sha1').update(repo).digest('hex'));
    this.redirects.set(`/${repo}/resolve/${revision}/${file}`, { blobPath, repo: { commit, gatedToken: opts.gatedToken } });
    return this;
  }

  /** A GitHub release asset, redirected to the CDN. */
  github(repo: string, tag: string, file: string, bytes: Buffer): this {
    const blob = blobOf(bytes);
    const blobPath = `/releases/${blob.sha256}`;
    this.files.set(blobPath, blob);
    this.redirects.set(`/${repo}/releases/download/${tag}/${file}`, { blobPath });
    return this;
  }

  /** Script failures for the next requests of a public path (applied where its bytes are served). */
  fail(publicPath: string, ...failures: Failure[]): this {
    const target = this.redirects.get(publicPath)?.blobPath ?? publicPath;
    this.failures.set(target, [...(this.failures.get(target) ?? []), ...failures]);
    return this;
  }

  /** Requests for the bytes behind a public path (GETs that reached the file). */
  hits(publicPath: string): SeenRequest[] {
    const target = this.redirects.get(publicPath)?.blobPath ?? publicPath;
    return this.requests.filter((r) => r.path.split('?')[0] === target && r.method === 'GET');
  }

  private handle(server: 'zoo' | 'cdn', req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    const seen: SeenRequest = { server, method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers };
    this.requests.push(seen);
    res.on('finish', () => (seen.status = res.statusCode));
    if (server === 'zoo') {
      const redirect = this.redirects.get(path);
      if (redirect) return this.redirect(req, res, redirect);
      if (path.startsWith('/models/')) return this.serve(req, res, path);
    } else if (this.files.has(path) && !path.startsWith('/models/')) {
      return this.serve(req, res, path);
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
  }

  private redirect(req: IncomingMessage, res: ServerResponse, r: { blobPath: string; repo?: HubRepo }): void {
    const blob = this.files.get(r.blobPath)!;
    if (r.repo?.gatedToken !== undefined && req.headers.authorization !== `Bearer ${r.repo.gatedToken}`) {
      res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end('Access to this repository is restricted.');
      return;
    }
    const headers: Record<string, string> = { location: `${this.cdnOrigin}${r.blobPath}?X-Amz-Signature=loopback` };
    if (r.repo) {
      headers['x-repo-commit'] = r.repo.commit;
      headers['x-linked-etag'] = blob.etag;
      headers['x-linked-size'] = String(blob.bytes.length);
      headers['etag'] = blob.etag;
    }
    res.writeHead(302, headers).end();
  }

  private serve(req: IncomingMessage, res: ServerResponse, path: string): void {
    const blob = this.files.get(path);
    if (!blob) {
      res.writeHead(404).end('Not Found');
      return;
    }
    const failure = req.method === 'GET' ? this.failures.get(path)?.shift() : undefined;
    if (failure?.kind === 'status') {
      res.writeHead(failure.status, failure.retryAfter ? { 'retry-after': failure.retryAfter } : {}).end('Service Unavailable');
      return;
    }
    if (req.headers['if-none-match'] === blob.etag) {
      res.writeHead(304, { etag: blob.etag }).end();
      return;
    }
    let bytes = failure?.kind === 'corrupt' ? Buffer.from(blob.bytes.map((b, i) => (i === 100 ? b ^ 0xff : b))) : blob.bytes;
    let status = 200;
    const headers: Record<string, string> = { etag: blob.etag, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (range && failure?.kind !== 'ignore-range' && (ifRange === undefined || ifRange === blob.etag)) {
      const start = Number(range[1]);
      if (start >= bytes.length) {
        res.writeHead(416, { 'content-range': `bytes */${bytes.length}` }).end();
        return;
      }
      headers['content-range'] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
      bytes = bytes.subarray(start);
      status = 206;
    }
    headers['content-length'] = String(bytes.length);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (failure?.kind === 'drop') {
      // Let the client take in what was sent before the connection goes.
      res.write(bytes.subarray(0, failure.after), () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    if (failure?.kind === 'stall') {
      res.write(bytes.subarray(0, failure.after));
      return;
    }
    if (failure?.kind === 'trickle') {
      let off = 0;
      const tick = (): void => {
        if (res.destroyed) return;
        const next = bytes.subarray(off, off + failure.chunk);
        off += next.length;
        if (off >= bytes.length) {
          res.end(next);
          return;
        }
        res.write(next);
        setTimeout(tick, failure.intervalMs);
      };
      tick();
      return;
    }
    res.end(bytes);
  }
}

/** The test catalogue's entries and the fixture files that play them. */
export const TEST_CATALOGUE = fixture('zoo', 'catalogue.json');

/** Fixture bytes by file name under test/fixtures/formats. */
export function fixtureBytes(name: string): Buffer {
  return readFileSync(fixture('formats', name));
}

/** The gated repository's token. */
export const GATED_TOKEN = 'hf_loopback_token';

/** A loopback zoo serving every entry of the test catalogue. */
export async function startFakeZoo(t: { after(fn: () => Promise<void>): void }): Promise<FakeZoo> {
  const zoo = new FakeZoo()
    .torchvision('resnet18-0da4b633.pth', fixtureBytes('resnet18_tiny.pth'))
    .torchvision('densenet121-9c97425b.pth', fixtureBytes('densenet121_tiny.pth'))
    .torchvision('resnet34-deadbeef.pth', fixtureBytes('resnet18_tiny.pth'))
    .torchvision('resnet152-73fdccd0.pth', fixtureBytes('resnet18_tiny.legacy.pth'))
    .huggingface('timm/resnet18.tiny_test', '0123456789abcdef0123456789abcdef01234567', 'model.safetensors', fixtureBytes('resnet18_tiny.safetensors'))
    .huggingface('timm/convnext_tiny.fb_in22k_ft_in1k', '9652db768d961382dea070578e6e38d85e44ff7b', 'model.safetensors', fixtureBytes('dtypes.safetensors'))
    .huggingface('acme/resnet18.gated', 'main', 'model.safetensors', fixtureBytes('resnet18_tiny.safetensors'), { gatedToken: GATED_TOKEN })
    .github('mlmed/torchxrayvision', 'v1', 'pc-nih-rsna-siim-vin-resnet50-test512-e400-state.pt', fixtureBytes('wrapped_state_dict.pth'));
  await zoo.start();
  t.after(() => zoo.close());
  return zoo;
}
