/**
 * A separate process for the multi-process tests: asks `getOrConvert` for one conversion with a
 * trivial deterministic producer (optionally slow), and prints one JSON line per event:
 * `{"event":"producing"}` when its producer starts, `{"event":"done",...}` at the end.
 *
 *     node convert-child.js '<json: {store, spec, chunks, chunkDelayMs, claims, pauseAfterFirstMs?}>'
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { getOrConvert } from '../../zoo/get-or-convert.js';
import { openStorage, type StorageSettings } from '../../zoo/storage/open-storage.js';
import type { ClaimOptions } from '../../zoo/storage/claim.js';
import type { ConversionSpec } from '../../zoo/store.js';

interface ChildParams {
  store: StorageSettings;
  spec: ConversionSpec;
  /** Size of the output in 64 KiB chunks. */
  chunks: number;
  /** Delay between chunks, to be killed half-way. */
  chunkDelayMs: number;
  claims: ClaimOptions;
  /** Wait this long after the first file is stored (`{"event":"first-file"}`), to be killed with outputs but no card. */
  pauseAfterFirstMs?: number;
}

/** The deterministic output of the trivial producer: chunk i is sha256(spec, i) repeated. */
export function outputChunk(spec: ConversionSpec, i: number): Buffer {
  const seed = createHash('sha256').update(JSON.stringify(spec)).update(String(i)).digest();
  return Buffer.concat(Array.from({ length: 2048 }, () => seed));
}

async function main(): Promise<void> {
  const p = JSON.parse(process.argv[2]!) as ChildParams;
  const storage = await openStorage(p.store);
  const say = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
  const result = await getOrConvert({ storage, ...p.spec, claims: p.claims }, async (ctx) => {
    say({ event: 'producing', pid: process.pid });
    let i = 0;
    const body = new Readable({
      read() {
        if (i === p.chunks) {
          this.push(null);
          return;
        }
        const chunk = outputChunk(p.spec, i++);
        if (i === 2) say({ event: 'writing' });
        setTimeout(() => this.push(chunk), p.chunkDelayMs);
      },
    });
    await ctx.writeFile('model.bin', body);
    if (p.pauseAfterFirstMs) {
      say({ event: 'first-file' });
      await new Promise((r) => setTimeout(r, p.pauseAfterFirstMs));
    }
    await ctx.writeFile('notes.txt', `made by ${p.spec.mode}\n`);
    return { producer: 'convert-child', mode: p.spec.mode };
  });
  say({ event: 'done', produced: result.produced, prefix: result.prefix, files: result.manifest.files, createdAt: result.manifest.createdAt });
  await storage.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
