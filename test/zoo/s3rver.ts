/**
 * A real S3-protocol server for the tests: s3rver (from npm) run as a separate process through
 * its command line, bound to 127.0.0.1 on a free port, with its data in a temporary folder;
 * stopped and removed when the test ends.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers.js';

/** A running s3rver. */
export interface S3rver {
  endpoint: string;
  /** Buckets created at start. */
  buckets: string[];
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Environment for a child process using the standard AWS credential chain. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** Start s3rver with the given buckets; stopped by `t.after`. */
export async function startS3rver(t: { after(fn: () => Promise<void>): void }, buckets: string[] = ['acs-hub']): Promise<S3rver> {
  const dir = await mkdtemp(join(tmpdir(), 'acs-hub-s3rver-'));
  const args = [join(ROOT, 'node_modules', 's3rver', 'bin', 's3rver.js'), '-d', dir, '-a', '127.0.0.1', '-p', '0', '--silent', '--no-vhost-buckets'];
  for (const b of buckets) args.push('--configure-bucket', b);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3rver did not start in 15 s: ${err}`)), 15_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with ${code}: ${err}`));
    });
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await rm(dir, { recursive: true, force: true });
  };
  t.after(stop);
  const endpoint = `http://127.0.0.1:${port}`;
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  return {
    endpoint,
    buckets,
    credentials,
    env: { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_REGION: 'us-east-1' },
    stop,
  };
}
