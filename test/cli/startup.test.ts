/**
 * What each subcommand loads: a command loads its own module when it runs, so `--help`,
 * `inspect` and the zoo listing start without onnxruntime, sharp, the S3 client or the HTTP
 * server's API page bundle (together most of a second of start-up), and the commands that
 * need them still get them. Reading the configuration does not load the server's logger. The packages are read from the CommonJS module cache of the CLI's
 * own process when it exits (every one of these packages is loaded through it).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, fixture, tempDir } from '../helpers.js';

/** Printed on stderr at exit: the node_modules packages the process loaded. */
const REPORT = `
import { createRequire } from 'node:module';
const cache = createRequire(process.execPath).cache;
process.on('exit', () => {
  const names = new Set();
  for (const file of Object.keys(cache)) {
    const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\/(.*)$/.exec(file);
    if (m) names.add(m[2] === 'swagger-ui-bundle.js' ? m[1] + '/swagger-ui-bundle.js' : m[1]);
  }
  process.stderr.write('loaded: ' + JSON.stringify([...names]) + '\\n');
});
`;

async function loaded(args: string[], env: Record<string, string> = {}): Promise<{ packages: string[]; code: number; stderr: string }> {
  const { code, stderr } = await cli(args, { env, node: ['--import', `data:text/javascript,${encodeURIComponent(REPORT)}`] });
  const line = /^loaded: (.*)$/m.exec(stderr);
  assert.ok(line, `the CLI reported what it loaded: ${stderr}`);
  return { packages: JSON.parse(line[1]!) as string[], code, stderr };
}

const HEAVY = ['onnxruntime-node', 'sharp', '@aws-sdk/client-s3', 'express', 'pino', 'pino-pretty', 'swagger-ui-dist/swagger-ui-bundle.js'];

test('--help, inspect and zoo list load neither onnxruntime, sharp, the S3 client, the HTTP server nor its logger', async (t) => {
  const data = await tempDir(t);
  for (const args of [['--help'], ['inspect', '--json', fixture('goldens', 'resnet18', 'model.pth')], ['zoo', 'list', '--data', data]]) {
    const { packages, code, stderr } = await loaded(args);
    assert.equal(code, 0, stderr);
    for (const heavy of HEAVY) assert.ok(!packages.includes(heavy), `acs-hub ${args[0]} loaded ${heavy}`);
  }
});

test('the commands that need them load onnxruntime, the S3 client and the server (its API page bundle only as a file)', async (t) => {
  const data = await tempDir(t);
  const infer = await loaded(['infer', fixture('goldens', 'resnet18', 'model.pth')]);
  assert.equal(infer.code, 2, 'infer without --input is a usage error');
  assert.ok(infer.packages.includes('onnxruntime-node'), infer.packages.join());
  // An S3 store loads the S3 client (here one that refuses the connection); a local one does not.
  const s3 = await loaded(['pull', 'torchvision/resnet18.imagenet1k_v1', '--s3', 's3://bucket/prefix'], {
    ACS_HUB_S3_ENDPOINT: 'http://127.0.0.1:9',
    ACS_HUB_S3_FORCE_PATH_STYLE: 'true',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    AWS_MAX_ATTEMPTS: '1',
  });
  assert.notEqual(s3.code, 0, 'nothing listens on the S3 endpoint');
  assert.ok(s3.packages.includes('@aws-sdk/client-s3'), s3.packages.join());
  const local = await loaded(['pull', 'torchvision/resnet18.imagenet1k_v1', '--from-file', join(data, 'missing.pth'), '--data', data]);
  assert.notEqual(local.code, 0, 'the file to import is missing');
  assert.ok(!local.packages.includes('@aws-sdk/client-s3'), 'a local store does not load the S3 client');
  const serve = await loaded(['serve', '--help']);
  assert.equal(serve.code, 0, serve.stderr);
  assert.ok(serve.packages.includes('express'), serve.packages.join());
  assert.ok(!serve.packages.includes('swagger-ui-dist/swagger-ui-bundle.js'), 'the API page bundle is served as a file, never run in Node');
});
