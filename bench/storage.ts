/**
 * bench/storage: put and get throughput (MB/s) of one 100 MB object on both storage backends,
 * side by side in one run: local disk (temp name + fsync + rename) and S3 (multipart upload,
 * streamed GET) against a real S3-protocol server (s3rver) on loopback. Each operation runs
 * three times; the median is reported with the best.
 *
 *   npm run bench:storage            (or: node dist/bench/storage.js [MB])
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { openLocalStorage } from '../zoo/storage/local.js';
import { openS3Storage } from '../zoo/storage/s3.js';
import type { ObjectStorage } from '../zoo/storage/storage.js';
import { startS3rver } from '../test/zoo/s3rver.js';

const MB = Number(process.argv[2] ?? 100);
const RUNS = 3;
const CHUNK = 1 << 20;

function body(data: Buffer): Readable {
  let off = 0;
  return new Readable({
    read() {
      this.push(off < data.length ? data.subarray(off, (off += CHUNK)) : null);
    },
  });
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function measure(storage: ObjectStorage, data: Buffer, digest: string): Promise<{ put: number[]; get: number[] }> {
  const put: number[] = [];
  const get: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const key = `bench/object-${i}`;
    put.push(data.length / 1e6 / (await timed(async () => void (await storage.write(key, body(data))))));
    get.push(
      data.length /
        1e6 /
        (await timed(async () => {
          const hash = createHash('sha256');
          for await (const chunk of await storage.read(key)) hash.update(chunk as Buffer);
          if (hash.digest('hex') !== digest) throw new Error(`${storage.location}: read back different bytes`);
        })),
    );
    await storage.delete(key);
  }
  return { put, get };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const stops: (() => Promise<void>)[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'acs-hub-bench-'));
  try {
    const data = randomBytes(MB * 1e6);
    const digest = createHash('sha256').update(data).digest('hex');
    const s3rver = await startS3rver({ after: (fn) => stops.push(fn) }, ['bench']);
    const backends: [string, ObjectStorage][] = [
      ['local disk', await openLocalStorage({ root: join(dir, 'objects') })],
      ['s3 (s3rver, loopback)', await openS3Storage({ bucket: 'bench', endpoint: s3rver.endpoint, credentials: s3rver.credentials, conditionalWrites: 'settle' })],
    ];
    const rows: string[] = [];
    for (const [name, storage] of backends) {
      const r = await measure(storage, data, digest);
      rows.push(
        `${name.padEnd(24)} ${median(r.put).toFixed(0).padStart(8)} ${Math.max(...r.put).toFixed(0).padStart(8)} ${median(r.get).toFixed(0).padStart(10)} ${Math.max(...r.get).toFixed(0).padStart(8)}`,
      );
      await storage.close();
    }
    process.stdout.write(`storage throughput, one ${MB} MB object, ${RUNS} runs each (MB/s)\n`);
    process.stdout.write(`${'backend'.padEnd(24)} ${'put med'.padStart(8)} ${'put best'.padStart(8)} ${'get med'.padStart(10)} ${'get best'.padStart(8)}\n`);
    process.stdout.write(`${rows.join('\n')}\n`);
  } finally {
    for (const stop of stops) await stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
