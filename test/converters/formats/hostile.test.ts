import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AcsHubError } from '../../../converters/errors.js';
import { readCheckpointFile } from '../../../converters/formats/index.js';
import { fixture } from '../../helpers.js';

const { marker, files } = JSON.parse(readFileSync(fixture('formats', 'hostile', 'expected.json'), 'utf8')) as {
  marker: string;
  files: Record<string, { code: string; message: string }>;
};

for (const [name, exp] of Object.entries(files)) {
  test(`refuses hostile ${name} with ${exp.code}`, async () => {
    const path = fixture('formats', 'hostile', name);
    await assert.rejects(readCheckpointFile(path), (err: unknown) => {
      assert.ok(err instanceof AcsHubError, `expected a typed error, got ${String(err)}`);
      assert.equal(err.code, exp.code, err.message);
      assert.ok(err.message.includes(exp.message), `message '${err.message}' should mention '${exp.message}'`);
      assert.ok(err.message.includes(path), 'message names the file');
      return true;
    });
    assert.equal(existsSync(marker), false, 'nothing the pickle asked for happened');
  });
}
