/**
 * Log lines: human-readable on a terminal, JSON otherwise, and either one forced by
 * `server.logFormat` (`ACS_HUB_LOG_FORMAT`); scrubbed in both. A real `acs-hub serve` with
 * each forced format, and the spec served at /openapi.yaml.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stripVTControlCharacters } from 'node:util';
import { test } from 'node:test';
import request from 'supertest';
import { parse as parseYaml } from 'yaml';
import { OPENAPI_PATH } from '../../server/app.js';
import { ConfigError, loadConfig } from '../../server/config.js';
import { createLogger, type LogFormat } from '../../server/log.js';
import { tempDir } from '../helpers.js';
import { testHub } from './hub.js';
import { startServer } from './serve.js';

const SECRET = 'log-format-secret-81c2f';

/** The lines a logger of `format` writes for one info line with a secret in it. */
function linesOf(format: LogFormat, tty: boolean): string[] {
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  const logger = createLogger({ level: 'info', format, tty, secrets: [SECRET], destination: destination as unknown as NodeJS.WritableStream & { write(s: string): boolean } });
  logger.info({ modelId: 'torchvision/resnet18', token: SECRET }, `pulled with ${SECRET}`);
  logger.flush();
  return stripVTControlCharacters(text).split('\n').filter(Boolean);
}

test('json lines off a terminal, pretty lines on one, and each format forced either way; secrets scrubbed in both', () => {
  for (const [format, tty, pretty] of [
    ['auto', false, false],
    ['auto', true, true],
    ['json', true, false],
    ['pretty', false, true],
  ] as const) {
    const lines = linesOf(format, tty);
    assert.ok(lines.length >= 1, `${format}/${tty}: no line`);
    const text = lines.join('\n');
    assert.ok(!text.includes(SECRET), `${format}/${tty}: the secret is in ${text}`);
    if (pretty) {
      assert.throws(() => JSON.parse(lines[0]!), `${format}/${tty}: ${lines[0]}`);
      assert.match(text, /INFO/);
      assert.match(text, /pulled with \[REDACTED\]/);
      assert.match(text, /modelId: "torchvision\/resnet18"/);
    } else {
      assert.equal(lines.length, 1);
      const line = JSON.parse(lines[0]!) as Record<string, unknown>;
      assert.equal(line.msg, 'pulled with [REDACTED]');
      assert.equal(line.modelId, 'torchvision/resnet18');
      assert.equal(line.level, 30);
    }
  }
});

test('server.logFormat: ACS_HUB_LOG_FORMAT sets it, auto by default, anything else stops start-up', () => {
  assert.equal(loadConfig({ env: {} }).server.logFormat, 'auto');
  assert.equal(loadConfig({ env: { ACS_HUB_LOG_FORMAT: 'pretty' } }).server.logFormat, 'pretty');
  assert.equal(loadConfig({ env: { ACS_HUB_LOG_FORMAT: 'json' } }).server.logFormat, 'json');
  assert.throws(() => loadConfig({ env: { ACS_HUB_LOG_FORMAT: 'xml' } }), (e: unknown) => e instanceof ConfigError && /ACS_HUB_LOG_FORMAT|logFormat/.test(e.message));
});

test('a real server writes pretty lines when told to, JSON lines when told to', async (t) => {
  const dir = await tempDir(t);
  for (const format of ['pretty', 'json'] as const) {
    const server = await startServer(t, { ACS_HUB_LOG_FORMAT: format, ACS_HUB_LOG_LEVEL: 'info', ACS_HUB_DATA_DIR: join(dir, format), ACS_HUB_OFFLINE: 'true' });
    const res = await fetch(`${server.url}/v1/nowhere`);
    assert.equal(res.status, 404);
    await res.text();
    for (let i = 0; i < 100 && !server.stdout().includes('/v1/nowhere'); i++) await new Promise((r) => setTimeout(r, 20));
    const line = server.stdout().split('\n').find((l) => l.includes('/v1/nowhere'));
    assert.ok(line !== undefined, server.stdout());
    if (format === 'json') assert.equal((JSON.parse(line) as { req: { url: string } }).req.url, '/v1/nowhere');
    else {
      assert.throws(() => JSON.parse(line));
      assert.match(server.stdout(), /INFO/);
    }
    server.proc.kill('SIGTERM');
    await server.exited;
  }
});

test('GET /openapi.yaml serves the spec itself as application/yaml, without a key when keys are set', async (t) => {
  const { hub } = await testHub(t, { server: { apiKeys: 'a-key-for-this-test' } });
  const res = await request(hub.app).get('/openapi.yaml').buffer(true).parse((r, cb) => {
    let s = '';
    r.setEncoding('utf8');
    r.on('data', (c: string) => (s += c));
    r.on('end', () => cb(null, s));
  });
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'] ?? '', /^application\/yaml/);
  assert.equal(res.body, readFileSync(OPENAPI_PATH, 'utf8'));
  const spec = parseYaml(res.body as string) as { paths: Record<string, unknown> };
  assert.ok(spec.paths['/openapi.yaml'], 'the spec describes its own path');
  await request(hub.app).get('/metrics').expect(401);
});
