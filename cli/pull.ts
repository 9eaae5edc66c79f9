/** `acs-hub pull <zoo-id>`: fetch and verify a model into the cache (local disk or S3). */
import { findModel } from '../zoo/catalogue.js';
import type { DownloadProgress } from '../zoo/fetch/download-file.js';
import { importModelFile, pullModel, type PullResult } from '../zoo/pull-model.js';
import { onePositional, parse } from './args.js';
import { cliCatalogue, cliConfig, cliStorage, stagingDir, STORE_OPTIONS } from './context.js';

const USAGE = 'acs-hub pull <zoo-id> [--from-file FILE] [--json] [--revalidate] [--data DIR | --s3 s3://bucket/prefix] [--offline] [--config FILE]';

function mb(n: number): string {
  return (n / 1e6).toFixed(1);
}

/** A one-line progress bar on a terminal, redrawn at most ten times a second. */
function progressBar(id: string): (e: DownloadProgress) => void {
  let last = 0;
  const started = Date.now();
  return (e) => {
    const now = Date.now();
    if (now - last < 100 && e.bytes !== e.total) return;
    last = now;
    const rate = (e.bytes - e.resumedFrom) / Math.max(0.001, (now - started) / 1000);
    const width = 30;
    const done = e.total ? Math.min(width, Math.round((width * e.bytes) / e.total)) : 0;
    const bar = e.total ? `[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${((100 * e.bytes) / e.total).toFixed(0).padStart(3)}%` : '';
    process.stderr.write(`\r${id} ${bar} ${mb(e.bytes)}${e.total ? `/${mb(e.total)}` : ''} MB ${mb(rate)} MB/s\x1b[K`);
  };
}

/** Run the subcommand. */
export async function runPull(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' }, revalidate: { type: 'boolean' }, 'from-file': { type: 'string' }, ...STORE_OPTIONS }, USAGE);
  if (values.help) {
    process.stdout.write(
      `Usage: ${USAGE}\n\nDownload a zoo model (resuming a broken download), verify its hash, and store it.\n--from-file imports a copy obtained elsewhere (no network), after the same checks: the\ncatalogue's sha256 and size, torchvision's hash prefix.\n`,
    );
    return;
  }
  const id = onePositional(positionals, 'zoo model id', USAGE);
  const cfg = cliConfig(values);
  const entry = findModel(await cliCatalogue(cfg), id);
  const storage = await cliStorage(cfg);
  const tty = process.stderr.isTTY && !values.json;
  let onProgress: ((e: DownloadProgress) => void) | undefined;
  if (values.json) {
    let last = 0;
    onProgress = (e) => {
      const now = Date.now();
      if (now - last < 100 && e.bytes !== e.total) return;
      last = now;
      process.stdout.write(`${JSON.stringify({ event: 'progress', id: entry.id, bytes: e.bytes, total: e.total ?? null, attempt: e.attempt })}\n`);
    };
  } else if (tty) {
    onProgress = progressBar(entry.id);
  }
  const fromFile = values['from-file'];
  try {
    const r: PullResult =
      typeof fromFile === 'string'
        ? await importModelFile({ entry, storage, file: fromFile, sources: cfg.sources, maxBytes: cfg.download.maxBytes })
        : await pullModel({
            entry,
            storage,
            sources: cfg.sources,
            stagingDir: stagingDir(cfg),
            offline: cfg.offline,
            revalidate: values.revalidate === true,
            download: cfg.download,
            claims: cfg.claims,
            onProgress,
          });
    if (tty) process.stderr.write('\n');
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ event: 'done', ...r })}\n`);
    } else {
      process.stdout.write(`${r.id}: ${r.cached ? 'cached' : typeof fromFile === 'string' ? 'imported' : 'pulled'} ${mb(r.size)} MB, sha256 ${r.sha256}\n  ${storage.location}${storage.location.endsWith('/') ? '' : '/'}${r.key}\n`);
    }
  } finally {
    await storage.close();
  }
}
