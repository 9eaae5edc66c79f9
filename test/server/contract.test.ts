import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT } from '../helpers.js';

const exec = promisify(execFile);

test('the committed API types are what openapi-typescript generates from openapi.yaml (npm run gen:api)', async () => {
  const { stdout } = await exec(process.execPath, [join(ROOT, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), join(ROOT, 'openapi.yaml')], { maxBuffer: 16 * 1024 * 1024 });
  const committed = readFileSync(join(ROOT, 'server', 'api', 'schema.d.ts'), 'utf8');
  assert.equal(stdout.trim(), committed.trim(), 'server/api/schema.d.ts drifted from openapi.yaml: run npm run gen:api');
});
