/**
 * bench/http, side by side in one run on this machine:
 * 1. throughput of 16 concurrent downloads of a 100 MB cached file from `acs-hub serve`
 *    against a minimal Node static-file server serving the same file;
 * 2. p50 / p99 latency of catalogue and checkpoint-metadata requests at 200 concurrent clients.
 * Servers run as separate processes; the load generator is this process (same 2 cores).
 *
 *   npm run bench:http          (BENCH_SECONDS=5)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { CONVERTER_VERSION } from '../converters/convert.js';
import { recordCheckpoint, checkpointIdOf } from '../server/checkpoints.js';
import { getOrConvert } from '../zoo/get-or-convert.js';
import { openLocalStorage } from '../zoo/storage/local.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
const CLI = fileURLToPath(new URL('../server/cli/main.js', import.meta.url));
const STATIC = fileURLToPath(new URL('./static-server.js', import.meta.url));

function start(args: string[], env: Record<string, string> = {}): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve({ url: m[1]!, proc });
    });
    proc.once('exit', (code) => reject(new Error(`server exited (${code}): ${err}`)));
  });
}

/** GET `url` and drain the body; resolves with the bytes received. */
function get(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function downloads(url: string, parallel: number, rounds: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: parallel });
  await get(url, agent);
  const t0 = performance.now();
  let bytes = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let i = 0; i < rounds; i++) bytes += await get(url, agent);
    }),
  );
  agent.destroy();
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

async function latency(urls: string[], clients: number, seconds: number): Promise<{ p50: number; p99: number; rps: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const times: number[] = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; performance.now() < end; i++) {
        const t0 = performance.now();
        await get(urls[(c + i) % urls.length]!, agent);
        times.push(performance.now() - t0);
      }
    }),
  );
  agent.destroy();
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length * 0.5)]!, p99: times[Math.floor(times.length * 0.99)]!, rps: times.length / seconds };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'acs-bench-http-'));
  const servers: ChildProcess[] = [];
  try {
    // A cached "conversion" holding a 100 MB file, in a local store.
    const storage = await openLocalStorage({ root: join(dir, 'data', 'objects') });
    const size = 100 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const spec = { sourceSha256: 'a'.repeat(64), mode: 'acs', options: {}, converterVersion: CONVERTER_VERSION };
    const result = await getOrConvert({ storage, ...spec }, async (ctx) => {
      await ctx.writeFile('model.safetensors', Readable.from((function* () { for (let i = 0; i < size / chunk.length; i++) yield chunk; })()));
      return { mode: 'acs', architecture: { arch: 'bench' }, source: { file: 'bench' } };
    });
    await recordCheckpoint(storage, result.prefix, result.card);
    await storage.close();
    const id = checkpointIdOf(result.prefix);
    const file = join(dir, 'data', 'objects', result.card.files[0]!.key);

    const hub = await start([CLI, 'serve', '--port', '0', '--data', join(dir, 'data')], { ACS_HUB_LOG_LEVEL: 'error' });
    servers.push(hub.proc);
    const plain = await start([STATIC, file]);
    servers.push(plain.proc);
    const fileUrl = `${hub.url}/v1/checkpoints/${id}/files/model.safetensors`;
    console.log('bench/http: 16 concurrent downloads of a 100 MB cached file (2 rounds each), same machine');
    const rows: [string, number][] = [];
    for (let round = 0; round < 2; round++) {
      rows.push(['static', await downloads(`${plain.url}/model.safetensors`, 16, 2)]);
      rows.push(['acs-hub', await downloads(fileUrl, 16, 2)]);
    }
    const best = (name: string) => Math.max(...rows.filter(([n]) => n === name).map(([, v]) => v));
    const hubMbps = best('acs-hub');
    const staticMbps = best('static');
    console.log(`  minimal Node static server  ${staticMbps.toFixed(0)} MB/s`);
    console.log(`  acs-hub /v1/checkpoints/... ${hubMbps.toFixed(0)} MB/s   (${((100 * hubMbps) / staticMbps).toFixed(0)}% of the static server)`);
    console.log(`\nlatency at 200 concurrent clients, ${SECONDS} s each (keep-alive)`);
    for (const [name, urls] of [
      ['catalogue  GET /v1/zoo', [`${hub.url}/v1/zoo`]],
      ['metadata   GET /v1/zoo/{id}, /v1/checkpoints/{id}', [`${hub.url}/v1/zoo/torchvision/resnet50`, `${hub.url}/v1/checkpoints/${id}`]],
    ] as const) {
      const r = await latency([...urls], 200, SECONDS);
      console.log(`  ${name.padEnd(48)} p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  ${r.rps.toFixed(0)} req/s`);
    }
  } finally {
    for (const p of servers) p.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
