/**
 * bench/http, side by side in one run on this machine:
 * 1. throughput of 16 concurrent downloads of a 100 MB cached file from `acs-hub serve`
 *    against a minimal Node static-file server serving the same file;
 * 2. p50 / p99 latency of catalogue and checkpoint-metadata requests at 200 concurrent clients;
 * 3. the same metadata latency (20 clients) while two clients keep the inference engine busy
 *    with ResNet-18 ACS runs on 64^3 volumes, against the same with the engine idle.
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
import { encodeSafetensors } from '../converters/formats/safetensors.js';
import { concatChunks } from '../converters/io.js';
import { encodeNpy } from '../inference/volumes/index.js';
import { checkpointIdOf, recordCheckpoint } from '../zoo/store.js';
import { getOrConvert } from '../zoo/get-or-convert.js';
import { openLocalStorage } from '../zoo/storage/local.js';
import { resnetBasicStateDict } from './synthetic.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
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

/** GET (or POST `body` to) `url` and drain the answer; resolves with the bytes received. */
function get(url: string, agent: Agent, body?: { type: string; data: Uint8Array }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, method: body ? 'POST' : 'GET', headers: body ? { 'Content-Type': body.type, 'Content-Length': body.data.byteLength } : {} }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => (res.statusCode! < 300 ? resolve(n) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body ? Buffer.from(body.data.buffer, body.data.byteOffset, body.data.byteLength) : undefined);
  });
}

/** POST a JSON or binary body, parse the JSON answer. */
async function post(url: string, type: string, data: Uint8Array | string): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': type }, body: data });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

/** Upload a synthetic ResNet-18, convert it to ACS; the checkpoint id. */
async function convertedResnet18(hub: string): Promise<string> {
  const upload = await post(`${hub}/v1/uploads?filename=resnet18.safetensors`, 'application/octet-stream', concatChunks(encodeSafetensors(resnetBasicStateDict())));
  const job = await post(`${hub}/v1/conversions`, 'application/json', JSON.stringify({ source: { upload: upload['id'] }, mode: 'acs' }));
  for (;;) {
    const j = (await (await fetch(`${hub}/v1/conversions/${job['id'] as string}`)).json()) as { status: string; checkpointId?: string };
    if (j.status === 'succeeded') return j.checkpointId!;
    if (j.status !== 'queued' && j.status !== 'running') throw new Error(`conversion ${j.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Metadata latency with the engine idle, then while `busy` clients keep it running. */
async function underInference(hub: string, metaUrl: string, busy: number): Promise<void> {
  const id = await convertedResnet18(hub);
  const volume = { type: 'application/octet-stream', data: concatChunks([encodeNpy({ data: new Float32Array(3 * 64 ** 3).fill(0.5), shape: [3, 64, 64, 64] })]) };
  const inferUrl = `${hub}/v1/checkpoints/${id}/infer?raw=true`;
  const inferAgent = new Agent({ keepAlive: true, maxSockets: busy });
  await get(inferUrl, inferAgent, volume);
  const idle = await latency([metaUrl], 20, SECONDS);
  let running = true;
  let runs = 0;
  const load = Promise.all(
    Array.from({ length: busy }, async () => {
      while (running) {
        await get(inferUrl, inferAgent, volume);
        runs++;
      }
    }),
  );
  const loaded = await latency([metaUrl], 20, SECONDS);
  running = false;
  await load;
  inferAgent.destroy();
  console.log(`\nmetadata latency at 20 clients, engine idle and with ${busy} clients running ResNet-18 ACS on 64^3 (${(runs / SECONDS).toFixed(1)} inferences/s)`);
  console.log(`  engine idle   p50 ${idle.p50.toFixed(1)} ms  p99 ${idle.p99.toFixed(1)} ms  ${idle.rps.toFixed(0)} req/s`);
  console.log(`  engine busy   p50 ${loaded.p50.toFixed(1)} ms  p99 ${loaded.p99.toFixed(1)} ms  ${loaded.rps.toFixed(0)} req/s`);
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
    await recordCheckpoint(storage, result.prefix, result.manifest);
    await storage.close();
    const id = checkpointIdOf(result.prefix);
    const file = join(dir, 'data', 'objects', result.manifest.files[0]!.key);

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
    await underInference(hub.url, `${hub.url}/v1/checkpoints/${id}`, 2);
  } finally {
    for (const p of servers) p.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
