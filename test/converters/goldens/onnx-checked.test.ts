import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { Mode } from '../../../converters/convert.js';
import { convertFile } from '../../../converters/convert-file.js';
import { concatChunks } from '../../../converters/io.js';
import { encodeOutput } from '../../../converters/outputs.js';
import { fixture, sha256 } from '../../helpers.js';
import { loadFamily } from './goldens.js';

// tools/goldens/check_onnx.py ran onnx.checker.check_model(full_check=True) on each of these
// files as written by `acs-hub convert`, and recorded their hashes.
const checked = JSON.parse(readFileSync(fixture('goldens', 'onnx-checked.json'), 'utf8')) as Record<string, string>;

test(`every written ONNX file passed onnx.checker with full_check (${Object.keys(checked).length} files)`, async () => {
  assert.ok(Object.keys(checked).length >= 100);
  const byFamily = new Map<string, string[]>();
  for (const key of Object.keys(checked)) {
    const [fam, name] = key.split('/') as [string, string];
    byFamily.set(fam, [...(byFamily.get(fam) ?? []), name]);
  }
  for (const [fam, names] of byFamily) {
    const f = loadFamily(fam);
    for (const name of names) {
      const c = f.cases.find((x) => x.name === name)!;
      const result = await convertFile(fixture('goldens', fam, f.source), {
        mode: c.mode as Mode,
        axis: c.options.axis,
        inChannels: c.options.inChannels,
        head: c.options.head ?? 'keep',
      });
      const bytes = concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!);
      assert.equal(sha256(bytes), checked[`${fam}/${name}`], `${fam}/${name}: the ONNX file changed since onnx.checker saw it; rerun tools/goldens/check_onnx.py`);
    }
  }
});
