/**
 * Secrets never reach a log: a real `acs-hub serve` process at log level trace, on an S3 store
 * that answers downloads with presigned redirects, sent keys (valid and not), cookies, tokens
 * in query strings and in source URLs, a gated model fetched with the Hugging Face token, 4xx
 * and 5xx answers; then the whole of its output is searched for every secret.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { scrubText } from '../../server/log.js';
import { tempDir } from '../helpers.js';
import { GATED_TOKEN, startFakeZoo, TEST_CATALOGUE } from '../zoo/fake-zoo.js';
import { startS3rver } from '../zoo/s3rver.js';
import { startServer } from './serve.js';

const KEY = 'log-test-key-0f3a9c';
const WRONG = 'wrong-key-77d1e2';
const COOKIE = 'cookie-secret-5b8e41';
const PROXY = 'proxy-secret-c4a7f0';
const QUERY_TOKEN = 'query-token-9e2d6b';
const URL_SIG = 'url-signature-a1b2c3';
const URL_CRED = 'url-credential-d4e5f6';

test('scrubText: credentials, signing parameters, user-info and known secrets; the rest is kept', () => {
  const line = JSON.stringify({
    req: { url: '/x?a=1&token=T0&X-Amz-Signature=S1', headers: { authorization: 'weird-scheme', 'x-api-key': 'k', cookie: 'c=1', 'proxy-authorization': 'Basic cA==' } },
    res: { headers: { 'set-cookie': ['sc1=v', 'sc2=v'], location: 'https://h/b/k?X-Amz-Credential=C%2F1&X-Amz-Security-Token=ST&X-Amz-Expires=60' } },
    msg: 'fetching https://user:pw@host/p?sig=SG with Bearer abc.def and my-secret-value',
  });
  const out = scrubText(line, ['my-secret-value']);
  for (const secret of ['T0', 'S1', 'weird-scheme', '"k"', 'c=1', 'cA==', 'sc1=v', 'sc2=v', 'C%2F1', '=ST', 'pw@', 'SG', 'abc.def', 'my-secret-value']) assert.ok(!out.includes(secret), `${secret} in ${out}`);
  const parsed = JSON.parse(out) as { req: { url: string }; res: { headers: { location: string } }; msg: string };
  assert.equal(parsed.req.url, '/x?a=1&token=[REDACTED]&X-Amz-Signature=[REDACTED]');
  assert.match(parsed.res.headers.location, /^https:\/\/h\/b\/k\?X-Amz-Credential=\[REDACTED\]&X-Amz-Security-Token=\[REDACTED\]&X-Amz-Expires=60$/);
  assert.equal(parsed.msg, 'fetching https://user:[REDACTED]@host/p?sig=[REDACTED] with Bearer [REDACTED] and [REDACTED]');
});

test('a real server at log level trace prints no key, cookie, token or signature, whatever it answers', async (t) => {
  const zoo = await startFakeZoo(t);
  const s3 = await startS3rver(t, ['acs-hub']);
  const dir = await tempDir(t);
  const server = await startServer(t, {
    ...s3.env,
    ACS_HUB_S3_URL: 's3://acs-hub/logs',
    ACS_HUB_S3_ENDPOINT: s3.endpoint,
    ACS_HUB_S3_CONDITIONAL_WRITES: 'settle',
    ACS_HUB_REDIRECT_DOWNLOADS: 'true',
    ACS_HUB_DATA_DIR: join(dir, 'data'),
    ACS_HUB_CATALOGUE: TEST_CATALOGUE,
    ACS_HUB_TORCHVISION_URL: `${zoo.origin}/models`,
    ACS_HUB_HF_ENDPOINT: zoo.origin,
    ACS_HUB_HF_TOKEN: GATED_TOKEN,
    ACS_HUB_URL_ALLOW_LIST: '127.0.0.1',
    ACS_HUB_ALLOW_PRIVATE_URLS: 'true',
    ACS_HUB_API_KEYS: KEY,
    ACS_HUB_LOG_LEVEL: 'trace',
    ACS_HUB_DOWNLOAD_RETRIES: '0',
    ACS_HUB_CLAIM_SETTLE_MS: '20',
    ACS_HUB_CLAIM_POLL_MS: '20',
    ACS_HUB_THREADS: '1',
  });
  const { url } = server;
  const call = (path: string, headers: Record<string, string>, init: RequestInit = {}) => fetch(`${url}${path}`, { ...init, headers, redirect: 'manual' });
  const keyed = { Authorization: `Bearer ${KEY}`, Cookie: `session=${COOKIE}`, 'Proxy-Authorization': `Basic ${PROXY}` };

  assert.equal((await call('/v1/zoo', keyed)).status, 200);
  assert.equal((await call(`/v1/checkpoints/${'0'.repeat(32)}`, keyed)).status, 404);
  const json = { 'Content-Type': 'application/json' };
  const body = JSON.stringify({ source: { zoo: 'torchvision/resnet18' }, mode: 'acs' });
  assert.equal((await call('/v1/conversions', { ...json, Authorization: `Bearer ${WRONG}`, Cookie: `session=${COOKIE}` }, { method: 'POST', body })).status, 401);
  assert.equal((await call('/v1/conversions', { ...json, 'X-Api-Key': KEY }, { method: 'POST', body })).status, 401);
  assert.equal((await call('/v1/conversions', { ...json, Authorization: KEY }, { method: 'POST', body })).status, 401);
  assert.equal((await call(`/v1/zoo?token=${QUERY_TOKEN}&sig=${QUERY_TOKEN}`, keyed)).status, 400);
  assert.equal((await call(`/metrics?token=${QUERY_TOKEN}`, { 'X-Api-Key': KEY })).status, 401);

  // A gated model, fetched with the Hugging Face token, converted, and answered with a presigned redirect.
  const gated = await call('/v1/zoo/acme/resnet18.gated/acs/model.onnx', keyed);
  assert.equal(gated.status, 307, `${gated.status} ${await gated.text()}`);
  const location = new URL(gated.headers.get('location') ?? '');
  const signature = location.searchParams.get('X-Amz-Signature') ?? '';
  const credential = location.searchParams.get('X-Amz-Credential') ?? '';
  assert.ok(signature.length >= 32 && credential.length > 8, location.href);
  assert.equal(zoo.requests.filter((r) => r.headers.authorization === `Bearer ${GATED_TOKEN}`).length > 0, true, 'the token was sent upstream');

  // A 5xx answer: the upstream fails and there is no retry.
  zoo.fail('/models/resnet34-deadbeef.pth', { kind: 'status', status: 500 });
  const failed = await call('/v1/zoo/torchvision/resnet34.imagenet1k_v1/acs/model.onnx', keyed);
  assert.ok(failed.status >= 500, `${failed.status}`);

  // A conversion job from a presigned-looking URL that fails upstream (its message names the URL).
  const source = `${zoo.origin}/private/model.pth?X-Amz-Signature=${URL_SIG}&X-Amz-Credential=${URL_CRED}&token=${QUERY_TOKEN}`;
  const job = (await (await call('/v1/conversions', { ...json, ...keyed }, { method: 'POST', body: JSON.stringify({ source: { url: source }, mode: 'acs' }) })).json()) as { id: string };
  for (let i = 0; i < 200; i++) {
    const state = (await (await call(`/v1/conversions/${job.id}`, keyed)).json()) as { status: string };
    if (state.status === 'failed') break;
    assert.notEqual(state.status, 'succeeded');
    await new Promise((r) => setTimeout(r, 25));
  }

  server.proc.kill('SIGTERM');
  await server.exited;
  const log = server.stdout() + server.stderr();
  // The lines that would have carried the secrets are there, scrubbed.
  assert.match(log, /"authorization":"\[REDACTED\]"/);
  assert.match(log, /"x-api-key":"\[REDACTED\]"/);
  assert.match(log, /"cookie":"\[REDACTED\]"/);
  assert.match(log, /"location":"[^"]*X-Amz-Signature=\[REDACTED\]/);
  assert.match(log, /"statusCode":50\d/);
  assert.match(log, /private\/model\.pth: HTTP 404/, 'the failed job is logged');
  for (const [name, secret] of Object.entries({ KEY, WRONG, COOKIE, PROXY, QUERY_TOKEN, URL_SIG, URL_CRED, GATED_TOKEN, signature, credential })) {
    assert.ok(!log.includes(secret), `${name} (${secret}) is in the log:\n${log.split('\n').filter((l) => l.includes(secret)).join('\n')}`);
  }
});
