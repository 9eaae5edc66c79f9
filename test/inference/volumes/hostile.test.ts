import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AcsHubError } from '../../../converters/errors.js';
import { readVolume } from '../../../inference/volumes/index.js';
import { fixture } from '../../helpers.js';

const files = JSON.parse(readFileSync(fixture('volumes', 'hostile', 'expected.json'), 'utf8')) as Record<string, { code: string; message: string }>;

for (const [name, exp] of Object.entries(files)) {
  test(`refuses hostile ${name} with ${exp.code}`, async () => {
    const path = fixture('volumes', 'hostile', name);
    await assert.rejects(readVolume(path), (err: unknown) => {
      assert.ok(err instanceof AcsHubError, `expected a typed error, got ${String(err)}`);
      assert.equal(err.code, exp.code, err.message);
      assert.ok(err.message.toLowerCase().includes(exp.message.toLowerCase()), `message '${err.message}' should mention '${exp.message}'`);
      assert.ok(err.message.includes(path), `message '${err.message}' names the file`);
      return true;
    });
  });
}
