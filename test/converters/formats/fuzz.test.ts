import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AcsHubError } from '../../../converters/errors.js';
import { decodeCheckpoint } from '../../../converters/formats/index.js';
import { fixture, prng } from '../../helpers.js';

const TARGETS = [
  'dtypes.pth',
  'dtypes.legacy.pth',
  'dtypes.safetensors',
  'wrapped_net.pth',
  'pytorch_model.bin',
  'small_cnn.onnx',
  'typed_fields.onnx',
];
const MUTATIONS = 2500;

/** One random corruption: flip bytes, truncate, splice random bytes, or plant extreme integers. */
function mutate(src: Uint8Array, rand: () => number): Uint8Array {
  const out = Uint8Array.from(src);
  const at = () => Math.floor(rand() * out.length);
  switch (Math.floor(rand() * 5)) {
    case 0:
      for (let i = 0, n = 1 + Math.floor(rand() * 8); i < n; i++) out[at()] = Math.floor(rand() * 256);
      return out;
    case 1:
      return out.subarray(0, at());
    case 2: {
      const p = at();
      const junk = Uint8Array.from({ length: 1 + Math.floor(rand() * 16) }, () => Math.floor(rand() * 256));
      const joined = new Uint8Array(out.length + junk.length);
      joined.set(out.subarray(0, p));
      joined.set(junk, p);
      joined.set(out.subarray(p), p + junk.length);
      return joined;
    }
    case 3: {
      const p = Math.min(at(), Math.max(0, out.length - 8));
      const extremes = [0xff, 0x7f, 0x80, 0x00];
      const fill = extremes[Math.floor(rand() * extremes.length)]!;
      out.fill(fill, p, Math.min(out.length, p + 1 + Math.floor(rand() * 8)));
      return out;
    }
    default: {
      const a = at();
      const b = at();
      out.copyWithin(a, b, Math.min(out.length, b + 1 + Math.floor(rand() * 64)));
      return out;
    }
  }
}

for (const name of TARGETS) {
  test(`fuzz: ${MUTATIONS} mutations of ${name} yield only the project's typed errors`, () => {
    const src = readFileSync(fixture('formats', name));
    const rand = prng(0xacd5 ^ name.length * 7919);
    const rssBefore = process.memoryUsage().rss;
    let refused = 0;
    for (let i = 0; i < MUTATIONS; i++) {
      const bytes = mutate(src, rand);
      try {
        decodeCheckpoint(bytes, { file: name });
      } catch (err) {
        if (!(err instanceof AcsHubError)) {
          assert.fail(`mutation ${i} of ${name} threw ${String(err)}\n${(err as Error).stack ?? ''}`);
        }
        refused++;
      }
    }
    assert.ok(refused > MUTATIONS / 20, `most mutations are refused (${refused})`);
    const grown = process.memoryUsage().rss - rssBefore;
    assert.ok(grown < 512 * 1024 * 1024, `memory stays bounded (grew ${grown} bytes)`);
  });
}
