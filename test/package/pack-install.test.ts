/**
 * The npm package as a user gets it: `npm pack`, installed into a fresh project offline from
 * the npm cache (which `npm ci` filled) without this repository's `.npmrc`, then its CLI run
 * (`--version`, `zoo list`, the catalogue and labels from the package) and the README's
 * typed-client snippet type-checked with tsc against the installed package.
 *
 * `npm install --offline <tarball>` alone would need the registry's metadata of every
 * dependency, which `npm ci` does not cache; the project gets a lockfile made from this
 * repository's (the same versions, resolved and integrity), so only cached tarballs are read.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT, tempDir } from '../helpers.js';

const run = promisify(execFile);

interface LockEntry {
  version?: string;
  dev?: boolean;
  [k: string]: unknown;
}

/** The one `ts` block of README.md under the heading `heading`. */
export function readmeSnippet(heading: string): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf(heading);
  assert.ok(at >= 0, `README.md has no '${heading}'`);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, `no ts block under '${heading}'`);
  return m[1]!;
}

/** A lockfile for a project that depends on the tarball only: the repository's production packages under it. */
function consumerLock(tarball: string): unknown {
  const repo = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; dependencies: Record<string, string>; bin: Record<string, string>; engines: Record<string, string>; license: string };
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: { [pkg.name]: `file:${tarball}` } },
    [`node_modules/${pkg.name}`]: { version: pkg.version, resolved: `file:${tarball}`, license: pkg.license, dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines },
  };
  for (const [path, entry] of Object.entries(repo.packages)) {
    if (!path.startsWith('node_modules/') || entry.dev) continue;
    // This repository's lockfile leaves out the registry's tarball URLs; without one npm would ask the registry.
    const name = typeof entry.name === 'string' ? entry.name : path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const resolved = entry.resolved ?? (entry.version ? `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${entry.version}.tgz` : undefined);
    packages[path] = { ...entry, resolved };
  }
  return { name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages };
}

test('npm pack, an offline install into a fresh project, the CLI, and the README client snippet type-checked', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir(t);
  // No scripts: dist/ is what the tests run against, built by `npm test` (and `prepare` on a real pack).
  // Not the settings of an `npm test` that runs this (its npm_config_* and npm_package_*): a user's plain shell.
  const env: Record<string, string | undefined> = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
  env.npm_config_update_notifier = 'false';
  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, env, maxBuffer: 16 * 1024 * 1024 });
  const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string; mode: number }[] }[];
  const files = new Set(info!.files.map((f) => f.path));
  for (const need of ['package.json', 'openapi.yaml', 'zoo/catalogue.json', 'zoo/labels/imagenet-1k.json', 'dist/cli/main.js', 'dist/index.js', 'dist/index.d.ts', 'dist/server/api/client.d.ts', 'dist/server/api/schema.d.ts', 'dist/converters/fence/fence-worker.js', 'dist/inference/runtime/session-worker.js']) {
    assert.ok(files.has(need), `the package lacks ${need}`);
  }
  for (const f of files) assert.ok(!f.startsWith('dist/test/') && !f.startsWith('dist/bench/') && !f.endsWith('.map'), `the package ships ${f}`);
  assert.equal(info!.files.find((f) => f.path === 'dist/cli/main.js')!.mode & 0o111, 0o111, 'the bin is not executable in the package');

  const project = join(dir, 'consumer');
  await run('mkdir', [project]);
  await run('mv', [join(dir, info!.filename), project]);
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module', dependencies: { 'acs-hub': `file:${info!.filename}` } }));
  await writeFile(join(project, 'package-lock.json'), JSON.stringify(consumerLock(info!.filename)));
  // The one variable of an offline install: onnxruntime-node's postinstall would fetch CUDA binaries.
  const installEnv = { ...env, ONNXRUNTIME_NODE_INSTALL: 'skip' };
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund'], { cwd: project, env: installEnv, maxBuffer: 16 * 1024 * 1024 });
  assert.ok((await readdir(join(project, 'node_modules'))).includes('acs-hub'));

  const bin = join(project, 'node_modules', '.bin', 'acs-hub');
  assert.ok(statSync(join(project, 'node_modules', 'acs-hub', 'dist', 'cli', 'main.js')).mode & 0o100);
  const version = await run(bin, ['--version'], { cwd: project, env });
  assert.equal(version.stdout.trim(), JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
  const npx = await run('npx', ['--offline', 'acs-hub', 'zoo', 'list', '--json'], { cwd: project, env, maxBuffer: 16 * 1024 * 1024 });
  const listed = JSON.parse(npx.stdout) as { id: string }[];
  assert.ok(listed.some((m) => m.id === 'torchvision/resnet18.imagenet1k_v1'), npx.stdout.slice(0, 200));
  const show = await run(bin, ['zoo', 'show', 'torchvision/resnet50'], { cwd: project, env });
  assert.match(show.stdout, /resnet50/);

  // The README's snippet, as a user's file, checked against the installed types (no skipLibCheck).
  await writeFile(join(project, 'client.ts'), `${readmeSnippet('### A typed client')}\nexport { data };\n`);
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')] }, files: ['client.ts'] }),
  );
  const tsc = await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: project }).catch((e: { stdout: string }) => ({ stdout: e.stdout, failed: true }));
  assert.ok(!('failed' in tsc), `tsc:\n${tsc.stdout}`);
  // The library entry point loads in the installed package.
  const lib = await run(process.execPath, ['--input-type=module', '-e', "import * as hub from 'acs-hub'; import { createAcsHubClient } from 'acs-hub/client'; console.log(typeof hub.convert, typeof hub.readCheckpointFile, typeof hub.readVolume, typeof createAcsHubClient)"], { cwd: project });
  assert.equal(lib.stdout.trim(), 'function function function function');
});
