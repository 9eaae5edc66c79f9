/** A hub app for the tests: a temporary store, the loopback zoo, silent logs, responses validated. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createApp, type AcsHubApp } from '../../server/app.js';
import { loadConfig, type ConfigOverrides, type HubConfig } from '../../server/config.js';
import { startFakeZoo, TEST_CATALOGUE, type FakeZoo } from '../zoo/fake-zoo.js';
import { mkdtemp, rm } from 'node:fs/promises';
import request from 'supertest';
import { tmpdir } from 'node:os';

export interface TestHub {
  hub: AcsHubApp;
  cfg: Readonly<HubConfig>;
  zoo: FakeZoo;
  dir: string;
}

/** Test configuration on top of a loopback zoo. */
export function testConfig(zoo: FakeZoo, dir: string, extra: ConfigOverrides = {}): Readonly<HubConfig> {
  return loadConfig({
    env: {},
    overrides: {
      dataDir: join(dir, 'data'),
      catalogue: TEST_CATALOGUE,
      ...extra,
      sources: {
        torchvision: { baseUrl: `${zoo.origin}/models`, timeoutMs: 5_000 },
        huggingface: { baseUrl: zoo.origin, timeoutMs: 5_000, token: '' },
        github: { baseUrl: zoo.origin, timeoutMs: 5_000 },
      },
      download: { retries: 1, backoffMs: 10, maxBackoffMs: 20, ...extra.download },
      claims: { settleMs: 20, pollMs: 20, leaseMs: 5_000, ...extra.claims },
      server: { logLevel: 'silent', validateResponses: true, urlAllowList: '127.0.0.1', allowPrivateUrls: true, ...extra.server },
      inference: { threads: 1, autotune: false, ...extra.inference },
    },
  });
}

/** A hub app over a fresh store and loopback zoo, closed when the test ends. */
export async function testHub(t: { after(fn: () => Promise<void>): void }, extra: ConfigOverrides = {}): Promise<TestHub> {
  const zoo = await startFakeZoo(t);
  const dir = await mkdtemp(join(tmpdir(), 'acs-hub-test-'));
  const cfg = testConfig(zoo, dir, extra);
  const hub = await createApp(cfg);
  t.after(async () => {
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { hub, cfg, zoo, dir };
}

/** Poll a conversion job until it finishes; its last state. */
export async function finishedJob(app: Parameters<typeof request>[0], id: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 400; i++) {
    const r = await request(app).get(`/v1/conversions/${id}`).expect(200);
    if (r.body.finishedAt) return r.body as Record<string, unknown>;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`job ${id} did not finish`);
}

/** The test hub, listening on a loopback port (closed when the test ends); `url` is its origin. */
export async function listeningHub(t: { after(fn: () => Promise<void>): void }, extra: ConfigOverrides = {}): Promise<TestHub & { url: string; server: Server }> {
  const th = await testHub(t, extra);
  const server = createServer(th.hub.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { ...th, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
