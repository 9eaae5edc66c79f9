/**
 * The README's quick start, run as written: the block between `<!-- journey:start -->` and
 * `<!-- journey:end -->` in README.md, by bash with the real curl, against a real
 * `acs-hub serve` offline (no zoo reachable) on port 0. Only the server's address is put in
 * for `http://127.0.0.1:8080`; so the README cannot drift from what the server does.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { symlink, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT, tempDir } from './helpers.js';
import { startServer } from './server/serve.js';

const run = promisify(execFile);
const README_URL = 'http://127.0.0.1:8080';

/** The shell commands of the README's journey block. */
export function journeyBlock(readme: string): string {
  const start = readme.indexOf('<!-- journey:start -->');
  const end = readme.indexOf('<!-- journey:end -->');
  assert.ok(start >= 0 && end > start, 'README.md has no journey block');
  const m = /```sh\n([\s\S]*?)```/.exec(readme.slice(start, end));
  assert.ok(m, 'the journey block holds no sh code');
  return m[1]!;
}

async function bash(script: string, cwd: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('the README quick start runs as written against a real offline server, with curl', { timeout: 120_000 }, async (t) => {
  const block = journeyBlock(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  for (const step of ['/v1/uploads', '/v1/conversions', '/events', '-C -', '/infer', '/v2/models/']) assert.ok(block.includes(step), `the journey lacks ${step}`);
  for (const line of block.split('\n').filter((l) => /(^|\()curl /.test(l.trim()) || l.includes('$(curl '))) {
    assert.match(line, /curl -s?f|--fail/, `a curl line without -f: ${line}`);
  }
  const dir = await tempDir(t);
  // The block's paths are those of a clone: the working directory gets the repository's test/.
  await symlink(join(ROOT, 'test'), join(dir, 'test'));
  const server = await startServer(t, { ACS_HUB_OFFLINE: 'true', ACS_HUB_DATA_DIR: join(dir, 'data'), ACS_HUB_LOG_LEVEL: 'silent', ACS_HUB_TORCHVISION_URL: 'http://127.0.0.1:9/models', ACS_HUB_HF_ENDPOINT: 'http://127.0.0.1:9' });
  const script = block.split(README_URL).join(server.url);
  const r = await bash(script, dir);
  assert.equal(r.code, 0, `the journey failed:\n${r.stderr}\n${r.stdout}`);

  assert.match(r.stdout, /event: done/);
  const { checkpoints } = (await (await fetch(`${server.url}/v1/checkpoints`)).json()) as { checkpoints: { id: string }[] };
  assert.equal(checkpoints.length, 1, JSON.stringify(checkpoints));
  const cp = checkpoints[0]!.id;
  const served = Buffer.from(await (await fetch(`${server.url}/v1/checkpoints/${cp}/files/model.safetensors`)).arrayBuffer());
  const saved = readFileSync(join(dir, 'resnet18-acs.safetensors'));
  assert.ok(served.length > 10_000);
  assert.ok(saved.equals(served), 'the downloaded weights differ from the checkpoint');
  assert.match(r.stdout, /"schema":\s*"acs-hub\/card@1"/);
  assert.match(r.stdout, /"topK"/);
  assert.match(r.stdout, /"outputs":\s*\[/);
  assert.deepEqual([...readFileSync(join(dir, 'preview.png')).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'the preview is a PNG');

  // A broken download, resumed by the README's own line.
  const downloadLine = block.split('\n').find((l) => l.startsWith('curl ') && l.includes(' -C - '))!;
  await truncate(join(dir, 'resnet18-acs.safetensors'), Math.floor(saved.length / 3));
  const resumed = await bash(downloadLine, dir, { HUB: server.url, CP: cp });
  assert.equal(resumed.code, 0, resumed.stderr);
  const after = readFileSync(join(dir, 'resnet18-acs.safetensors'));
  assert.ok(after.equals(served), `the resumed file differs: ${after.length} bytes of ${served.length}; ${resumed.stderr}`);
  // With -f, an error is never saved as weights.
  const missing = await bash(downloadLine.replace('resnet18-acs.safetensors', 'missing.safetensors'), dir, { HUB: server.url, CP: 'f'.repeat(32) });
  assert.equal(missing.code, 22, missing.stderr);
  assert.throws(() => readFileSync(join(dir, 'missing.safetensors')), /ENOENT/);
});
