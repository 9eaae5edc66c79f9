import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import request from 'supertest';
import { OPENAPI_PATH } from '../../server/app.js';
import { WEB_DIR } from '../../server/routes/web.js';
import { testHub } from './hub.js';

const KEY = 'web-route-test-key';

test('the page, its files, /docs and /openapi.yaml: public with keys set, typed, revalidated, framed by a strict CSP', async (t) => {
  const { hub } = await testHub(t, { server: { apiKeys: KEY, protectReads: true } });
  const page = await request(hub.app).get('/').expect(200);
  assert.match(page.headers['content-type']!, /^text\/html; charset=utf-8/);
  assert.equal(page.headers['cache-control'], 'no-cache');
  assert.match(page.headers['content-security-policy']!, /script-src 'self';/);
  assert.match(page.headers['content-security-policy']!, /frame-ancestors 'none'/);
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  assert.equal(page.text, readFileSync(join(WEB_DIR, 'index.html'), 'utf8'));

  // Every file the two pages and their modules name answers, with the type its extension says.
  const types: Record<string, RegExp> = { js: /^text\/javascript/, css: /^text\/css/, svg: /^image\/svg\+xml/, png: /^image\/png/ };
  const docs = await request(hub.app).get('/docs').expect(200);
  const sources = [page.text, docs.text, ...readdirSync(WEB_DIR).filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(WEB_DIR, f), 'utf8'))];
  const named = new Set(sources.flatMap((s) => [...s.matchAll(/(?:href|src)="(\/(?:web|docs)\/[^"]+)"/g), ...s.matchAll(/from '\.\/([^']+)'/g)].map((m) => (m[1]!.startsWith('/') ? m[1]! : `/web/${m[1]}`))));
  assert.ok(named.size >= 8, [...named].join(' '));
  for (const path of named) {
    const res = await request(hub.app).get(path).expect(200);
    assert.match(res.headers['content-type']!, types[path.split('.').pop()!]!, path);
    assert.ok(res.headers['etag'], `${path} has an ETag`);
    await request(hub.app).get(path).set('If-None-Match', res.headers['etag']!).expect(304);
  }

  const spec = await request(hub.app).get('/openapi.yaml').expect(200);
  assert.match(spec.headers['content-type']!, /^application\/yaml/);
  assert.equal(spec.text, readFileSync(OPENAPI_PATH, 'utf8'));
  await request(hub.app).get('/openapi.yaml').set('If-None-Match', spec.headers['etag']!).expect(304);
  const head = await request(hub.app).head('/web/app.js').expect(200);
  assert.equal(head.headers['content-length'], String(readFileSync(join(WEB_DIR, 'app.js')).length));
  // The rest of the API still needs the key.
  await request(hub.app).get('/v1/zoo').expect(401);
});

test('no directory listing and no way out of the two folders: only listed files, by bare name', async (t) => {
  const { hub } = await testHub(t);
  const refused = [
    '/web/',
    '/web',
    '/web/..%2fpackage.json',
    '/web/%2e%2e%2fopenapi.yaml',
    '/web/..%5c..%5cpackage.json',
    '/web/%2e%2e/%2e%2e/package.json',
    '/web/../../package.json',
    '/docs/..%2f..%2fpackage.json',
    '/docs/index.html', // in swagger-ui-dist, but not one of the files /docs uses
    '/docs/swagger-initializer.js', // its initializer would load the petstore from the Internet
    '/docs/package.json',
    '/web/.eslintrc',
    '/web/app.js%00.png',
    '/web/APP.JS',
    `/web/${'a'.repeat(300)}.js`,
  ];
  for (const path of refused) {
    const res = await request(hub.app).get(path);
    assert.ok(res.status === 404 || res.status === 400, `${path}: ${res.status}`);
    assert.match(res.headers['content-type'] ?? '', /application\/problem\+json/, path);
    assert.doesNotMatch(res.text, /"name": "acs-hub"|"dependencies"/, path);
  }
  assert.match((await request(hub.app).get('/docs/').expect(200)).text, /swagger-ui-bundle\.js/, '/docs/ is the docs page, not a listing');
  // Writes to the page's paths are not routes.
  await request(hub.app).post('/web/app.js').send('x').expect(404);
  await request(hub.app).delete('/').expect(404);
});
