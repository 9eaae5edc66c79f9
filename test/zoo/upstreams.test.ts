/**
 * Downloads against loopback upstreams of every kind a user meets, written byte by byte on
 * plain sockets: HTTP/1.0 bodies delimited by the close of the connection, `Connection: close`
 * with a length, chunked, gzip in transit, resets and closes mid-body, stalls, redirect chains
 * and loops. Each either verifies its file or fails with an error that names the upstream and
 * what it did; none may kill the process or leave an unhandled rejection behind.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, test, type TestContext } from 'node:test';
import { brotliCompressSync, constants as zlib, deflateSync, gzipSync } from 'node:zlib';
import { guardedFetch } from '../../server/url-guard.js';
import { UpstreamError, UpstreamRefusedError } from '../../zoo/errors.js';
import { downloadFile, type DownloadFileParams } from '../../zoo/fetch/download-file.js';
import { blobKey } from '../../zoo/store.js';
import { openLocalStorage } from '../../zoo/storage/local.js';
import { readAll } from '../../zoo/storage/storage.js';
import { CLI, prng, sha256, tempDir } from '../helpers.js';
import { runCli } from './child.js';
import { fixtureBytes, TEST_CATALOGUE } from './fake-zoo.js';

const unhandled: unknown[] = [];
process.on('unhandledRejection', (err) => unhandled.push(err));
process.on('uncaughtException', (err) => unhandled.push(err));
afterEach(() => assert.deepEqual(unhandled.splice(0), [], 'no unhandled rejection or exception'));

/** Bytes that no compressor shrinks much, the same on every run. */
function payload(n: number, seed: number): Buffer {
  const r = prng(seed);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
}

const BIG = payload(300_000, 1);
const SMALL = payload(5000, 2);
const TEXT = Buffer.from(BIG.toString('base64'));
const ENCODED: Record<string, Buffer> = {
  gzip: gzipSync(TEXT),
  deflate: deflateSync(TEXT),
  br: brotliCompressSync(TEXT, { params: { [zlib.BROTLI_PARAM_QUALITY]: 4 } }),
  compress: TEXT,
};

interface SeenRequest {
  path: string;
  headers: Record<string, string>;
}

/** Answers one request on a raw socket; `n` counts the requests this upstream has seen. */
type Script = (req: SeenRequest, socket: Socket, n: number) => void;

/** A loopback upstream that reads one request per connection and hands the socket to `script`. */
async function upstream(t: TestContext, script: Script): Promise<{ url: (path: string) => string; seen: SeenRequest[] }> {
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const [line = '', ...fields] = head.slice(0, end).split('\r\n');
      const headers = Object.fromEntries(fields.map((f) => [f.slice(0, f.indexOf(':')).trim().toLowerCase(), f.slice(f.indexOf(':') + 1).trim()]));
      const req = { path: line.split(' ')[1] ?? '/', headers };
      seen.push(req);
      script(req, socket, seen.length - 1);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: (path) => `http://127.0.0.1:${port}${path}`, seen };
}

function head(status: string, fields: Record<string, string | number> = {}, version = '1.1'): string {
  return `HTTP/${version} ${status}\r\n${Object.entries(fields).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** Write `bytes` in pieces, then call `then` once they are flushed. */
function writeInPieces(socket: Socket, bytes: Buffer, piece: number, then: () => void): void {
  for (let off = 0; off < bytes.length; off += piece) socket.write(bytes.subarray(off, off + piece));
  socket.write(Buffer.alloc(0), then);
}

/** Send part of a body, then end the connection the given way once the client has it. */
function cut(socket: Socket, bytes: Buffer, how: 'close' | 'reset'): void {
  socket.write(bytes, () => setTimeout(() => (how === 'reset' ? socket.resetAndDestroy() : socket.end()), 30));
}

const CLIENTS: { name: string; fetch: typeof fetch | undefined }[] = [
  { name: 'default client', fetch: undefined },
  { name: 'URL-guarded client', fetch: guardedFetch({ allowList: ['127.0.0.1'], allowPrivate: true }) },
];

for (const client of CLIENTS) {
  const download = async (t: TestContext, url: string, extra: Partial<DownloadFileParams> = {}) => {
    const dir = await tempDir(t);
    return downloadFile({ url, dest: join(dir, 'file.partial'), retries: 2, backoffMs: 5, maxBackoffMs: 10, timeoutMs: 2000, fetch: client.fetch, ...extra });
  };
  const expectBig = { sha256: sha256(BIG), size: BIG.length };
  const expectSmall = { sha256: sha256(SMALL), size: SMALL.length };

  test(`${client.name}: HTTP/1.0 bodies delimited by the close of the connection are verified, every time`, async (t) => {
    const up = await upstream(t, (_req, socket, n) => {
      socket.write(head('200 OK', { 'Content-Type': 'application/octet-stream' }, '1.0'));
      // Vary how the body arrives, so that the close meets the reader at every point.
      writeInPieces(socket, BIG, [65_536, 16_384, 1000, BIG.length][n % 4]!, () => socket.end());
    });
    for (let i = 0; i < 12; i++) {
      const r = await download(t, up.url('/models/file.pth'), { expected: expectBig });
      assert.equal(r.sha256, expectBig.sha256);
      assert.equal(r.attempts, 1);
    }
  });

  test(`${client.name}: Connection: close with a Content-Length is verified`, async (t) => {
    const up = await upstream(t, (_req, socket) => {
      socket.write(head('200 OK', { 'Content-Length': BIG.length, Connection: 'close' }));
      socket.end(BIG);
    });
    for (let i = 0; i < 6; i++) assert.equal((await download(t, up.url('/f'), { expected: expectBig })).size, BIG.length);
  });

  test(`${client.name}: a chunked body is verified`, async (t) => {
    const up = await upstream(t, (_req, socket) => {
      socket.write(head('200 OK', { 'Transfer-Encoding': 'chunked', Connection: 'close' }));
      for (let off = 0; off < BIG.length; off += 7777) {
        const chunk = BIG.subarray(off, off + 7777);
        socket.write(`${chunk.length.toString(16)}\r\n`);
        socket.write(chunk);
        socket.write('\r\n');
      }
      socket.end('0\r\n\r\n');
    });
    const r = await download(t, up.url('/f'), { expected: expectBig });
    assert.equal(r.sha256, expectBig.sha256);
  });

  test(`${client.name}: a Content-Encoding is decoded in transit: the hash and size are of the decoded file`, async (t) => {
    const up = await upstream(t, (req, socket, n) => {
      const coding = req.path.slice(1);
      const bytes = ENCODED[coding]!;
      socket.write(head('200 OK', { 'Content-Encoding': coding, 'Content-Length': bytes.length, ETag: '"v1"', 'Accept-Ranges': 'bytes', Connection: 'close' }));
      // The first answer breaks off: bytes of an encoding cannot be resumed by range.
      if (n === 0) cut(socket, bytes.subarray(0, 1000), 'close');
      else socket.end(bytes);
    });
    const expected = { sha256: sha256(TEXT), size: TEXT.length };
    const r = await download(t, up.url('/gzip'), { expected });
    assert.deepEqual([r.sha256, r.size, r.attempts], [expected.sha256, expected.size, 2]);
    assert.equal(up.seen[1]!.headers['range'], undefined, 'no resume of encoded bytes');
    assert.equal(up.seen[0]!.headers['accept-encoding'], 'identity');
    for (const coding of ['deflate', 'br']) assert.equal((await download(t, up.url(`/${coding}`), { expected })).sha256, expected.sha256, coding);
    await assert.rejects(download(t, up.url('/compress'), { expected }), (e: unknown) => {
      assert.ok(e instanceof UpstreamRefusedError, String(e));
      assert.equal(e.message, `${up.url('/compress')}: sends Content-Encoding 'compress', which cannot be decoded`);
      return true;
    });
  });

  for (const how of ['close', 'reset'] as const) {
    const did = how === 'close' ? 'closed the connection' : 'reset the connection';

    test(`${client.name}: a connection ${how === 'close' ? 'closed' : 'reset'} mid-body is retried, resumed by range, and named when it persists`, async (t) => {
      const flaky = await upstream(t, (req, socket, n) => {
        const from = Number(/^bytes=(\d+)-$/.exec(req.headers['range'] ?? '')?.[1] ?? 0);
        const fields = { ETag: '"s1"', 'Accept-Ranges': 'bytes', Connection: 'close' };
        if (from > 0) {
          socket.write(head('206 Partial Content', { ...fields, 'Content-Length': SMALL.length - from, 'Content-Range': `bytes ${from}-${SMALL.length - 1}/${SMALL.length}` }));
          socket.end(SMALL.subarray(from));
        } else {
          socket.write(head('200 OK', { ...fields, 'Content-Length': SMALL.length }));
          if (n === 0) cut(socket, SMALL.subarray(0, 1234), how);
          else socket.end(SMALL);
        }
      });
      const r = await download(t, flaky.url('/f'), { expected: expectSmall });
      assert.equal(r.sha256, expectSmall.sha256);
      assert.equal(r.resumed, true);
      assert.equal(flaky.seen[1]!.headers['range'], 'bytes=1234-');

      const broken = await upstream(t, (_req, socket) => {
        socket.write(head('200 OK', { 'Content-Length': SMALL.length }));
        cut(socket, SMALL.subarray(0, 1234), how);
      });
      const url = broken.url('/models/broken.pth');
      await assert.rejects(download(t, url, { retries: 1 }), (e: unknown) => {
        assert.ok(e instanceof UpstreamError, String(e));
        assert.equal(e.message, `${url}: ${did} after 1234 of 5000 bytes`);
        return true;
      });
      assert.equal(broken.seen.length, 2, 'retried once');
    });

    test(`${client.name}: a close-delimited body ${how === 'close' ? 'closed' : 'reset'} short of the expected size is named, not taken`, async (t) => {
      const up = await upstream(t, (_req, socket) => {
        socket.write(head('200 OK', {}, '1.0'));
        cut(socket, SMALL.subarray(0, 1234), how);
      });
      const url = up.url('/short');
      await assert.rejects(download(t, url, { retries: 1, expected: expectSmall }), (e: unknown) => {
        assert.ok(e instanceof UpstreamError, String(e));
        assert.equal(e.message, `${url}: ${did} after 1234 of 5000 bytes`);
        return true;
      });
      assert.equal(up.seen.length, 2);
    });

    test(`${client.name}: an upstream that ${how === 'close' ? 'closes' : 'resets'} without answering, or right after its headers, is named`, async (t) => {
      const silent = await upstream(t, (_req, socket) => (how === 'reset' ? socket.resetAndDestroy() : socket.end()));
      await assert.rejects(download(t, silent.url('/a'), { retries: 0 }), (e: unknown) => {
        assert.ok(e instanceof UpstreamError, String(e));
        assert.equal(e.message, `${silent.url('/a')}: ${did} before answering`);
        return true;
      });
      const headersOnly = await upstream(t, (_req, socket) => {
        socket.write(head('200 OK', { 'Content-Length': SMALL.length }), () => setTimeout(() => (how === 'reset' ? socket.resetAndDestroy() : socket.end()), 30));
      });
      await assert.rejects(download(t, headersOnly.url('/b'), { retries: 0 }), (e: unknown) => {
        assert.ok(e instanceof UpstreamError, String(e));
        assert.equal(e.message, `${headersOnly.url('/b')}: ${did} after 0 of 5000 bytes`);
        return true;
      });
    });
  }

  test(`${client.name}: a stall before the answer or in the body is named with its length`, async (t) => {
    const up = await upstream(t, (req, socket) => {
      if (req.path === '/body') socket.write(`${head('200 OK', { 'Content-Length': SMALL.length })}${SMALL.subarray(0, 1000).toString('latin1')}`, 'latin1');
    });
    await assert.rejects(download(t, up.url('/answer'), { retries: 0, timeoutMs: 150 }), (e: unknown) => {
      assert.ok(e instanceof UpstreamError, String(e));
      assert.equal(e.message, `${up.url('/answer')}: stalled for 150 ms before answering`);
      return true;
    });
    await assert.rejects(download(t, up.url('/body'), { retries: 1, timeoutMs: 150 }), (e: unknown) => {
      assert.ok(e instanceof UpstreamError, String(e));
      assert.equal(e.message, `${up.url('/body')}: stalled for 150 ms after 1000 of 5000 bytes`);
      return true;
    });
    assert.equal(up.seen.filter((r) => r.path === '/body').length, 2);
  });

  test(`${client.name}: a redirect chain is followed to the file; a loop and a chain too long are refused by name`, async (t) => {
    const up = await upstream(t, (req, socket) => {
      const hop = /^\/hop\/(\d+)$/.exec(req.path);
      const redirect = (to: string) => socket.end(head('302 Found', { Location: to, 'Content-Length': 0, Connection: 'close' }));
      if (hop && Number(hop[1]) < 3) redirect(`/hop/${Number(hop[1]) + 1}`);
      else if (hop) {
        socket.write(head('200 OK', { 'Content-Length': BIG.length, Connection: 'close' }));
        socket.end(BIG);
      } else if (req.path === '/loop/a') redirect('/loop/b');
      else if (req.path === '/loop/b') redirect('/loop/a');
      else redirect(`${req.path}/x`);
    });
    const r = await download(t, up.url('/hop/0'), { expected: expectBig });
    assert.equal(r.sha256, expectBig.sha256);
    assert.equal(r.finalUrl, up.url('/hop/3'));

    await assert.rejects(download(t, up.url('/loop/a')), (e: unknown) => {
      assert.ok(e instanceof UpstreamRefusedError, String(e));
      assert.equal(e.message, `${up.url('/loop/a')}: too many redirects (a loop: ${up.url('/loop/a')} again)`);
      return true;
    });
    await assert.rejects(download(t, up.url('/deep'), { maxRedirects: 4 }), (e: unknown) => {
      assert.ok(e instanceof UpstreamRefusedError, String(e));
      assert.equal(e.message, `${up.url('/deep')}: too many redirects (more than 4, the last to ${up.url('/deep/x/x/x/x/x')})`);
      return true;
    });
  });
}

test('acs-hub pull against an upstream that ends its bodies by closing the connection exits 0 with the verified file, every time', async (t) => {
  const bytes = fixtureBytes('resnet18_tiny.pth');
  const up = await upstream(t, (req, socket, n) => {
    if (req.path !== '/models/resnet18-0da4b633.pth') {
      socket.end(head('404 Not Found', { 'Content-Length': 0 }, '1.0'));
      return;
    }
    // What `python3 -m http.server` does (HTTP/1.0, a length, the bytes, the close), and the
    // same without the length, the bytes written at once or in pieces.
    const length: Record<string, number> = n % 2 === 0 ? { 'Content-Length': bytes.length } : {};
    socket.write(head('200 OK', { 'Content-Type': 'application/octet-stream', ...length, 'Last-Modified': 'Mon, 01 Jan 2024 00:00:00 GMT' }, '1.0'));
    writeInPieces(socket, bytes, [bytes.length, 16_384, 4096, bytes.length][n % 4]!, () => socket.end());
  });
  // Four processes at once (two with the length, two without), each with its own store.
  const runs = await Promise.all(
    Array.from({ length: 4 }, async () => {
      const data = await tempDir(t);
      const r = await runCli(CLI, ['pull', 'torchvision/resnet18', '--json'], {
        ACS_HUB_CATALOGUE: TEST_CATALOGUE,
        ACS_HUB_TORCHVISION_URL: up.url('/models'),
        ACS_HUB_DATA_DIR: data,
        ACS_HUB_DOWNLOAD_BACKOFF_MS: '20',
      });
      return { ...r, data };
    }),
  );
  for (const r of runs) {
    assert.equal(r.code, 0, r.stderr);
    const done = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { event: string; sha256: string };
    assert.equal(done.sha256, sha256(bytes));
    const storage = await openLocalStorage({ root: join(r.data, 'objects') });
    assert.deepEqual(await readAll(storage, blobKey(sha256(bytes))), bytes);
  }
  assert.equal(up.seen.length, 4, 'one request per run');
});
