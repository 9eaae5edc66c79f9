/** A real `acs-hub serve --port 0` process for the tests, killed when the test ends if still running. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { CLI } from '../helpers.js';

export interface ServerProcess {
  url: string;
  proc: ChildProcess;
  /** Resolves with [code, signal] when the process exits. */
  exited: Promise<unknown[]>;
  stderr: () => string;
  /** Everything the process printed on stdout (its log lines) so far. */
  stdout: () => string;
}

/** Start the server with `env` on top of this process's environment; resolves once it listens. */
export async function startServer(t: { after(fn: () => void): void }, env: Record<string, string>): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [CLI, 'serve', '--port', '0'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  // Listened for from the start, so that an early exit is not missed.
  const exited = once(proc, 'exit');
  let err = '';
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 20_000);
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/[^ ]+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once('exit', (code) => reject(new Error(`server exited (${code}): ${err}`)));
  });
  return { url, proc, exited, stderr: () => err, stdout: () => out };
}
