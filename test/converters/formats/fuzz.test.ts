import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { DEFAULT_BUDGETS } from '../../../converters/budgets.js';
import { AcsHubError } from '../../../converters/errors.js';
import { decodeCheckpoint } from '../../../converters/formats/index.js';
import { concatChunks } from '../../../converters/io.js';
import { fixture, prng } from '../../helpers.js';
import { CHEAP_UNITS, deep, HUGE_LENGTHS, legacyPth, memoChain, memoFanOut, OP, Program, stateDictWithExtra, zipPth } from './expensive.js';

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

const EXPENSIVE = 160;
const GLUE: readonly (readonly number[])[] = [[OP.POP], [OP.DUP], [OP.TUPLE1], [OP.TUPLE2], [OP.APPEND], [OP.SETITEM], [OP.MARK], [OP.LIST], [OP.EMPTY_DICT]];

/** A pickle body (no PROTO, no STOP) of 1 to 4 expensive segments, sized at random (mostly small). */
function expensiveBody(rand: () => number): Uint8Array {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const size = (max: number) => 1 + Math.floor(rand() ** 4 * max);
  const p = new Program();
  for (let s = 0, n = 1 + Math.floor(rand() * 4); s < n; s++) {
    switch (Math.floor(rand() * 6)) {
      case 0:
        memoFanOut(size(40), 1 + size(8), p);
        break;
      case 1:
        p.repeat(pick(CHEAP_UNITS), size(1_200_000));
        break;
      case 2:
        deep(pick(['tuple', 'list', 'dict'] as const), size(5000), p);
        break;
      case 3:
        memoChain(size(20_000), p);
        break;
      case 4:
        p.op(...pick(HUGE_LENGTHS));
        break;
      default:
        p.op(...pick(GLUE));
    }
  }
  return p.stop().subarray(2, -1);
}

test(`fuzz: ${EXPENSIVE} valid but expensive pickles yield a checkpoint or a typed error, with a bounded message`, () => {
  const rand = prng(0xb0d9e7);
  const outcomes = new Map<string, number>();
  for (let i = 0; i < EXPENSIVE; i++) {
    const body = expensiveBody(rand);
    const pickle = concatChunks([Uint8Array.of(OP.PROTO, 4), body, Uint8Array.of(OP.STOP)]);
    const wrap = Math.floor(rand() * 4);
    const bytes = wrap === 0 ? pickle : wrap === 1 ? legacyPth(pickle) : wrap === 2 ? zipPth(pickle) : stateDictWithExtra(body);
    const budgets = rand() < 0.3 ? { pickleObjects: 20_000, pickleMemo: 5000, nestingDepth: 16, pickleOpcodes: 200_000, errorMessageChars: 300 } : undefined;
    let outcome = 'checkpoint';
    try {
      const ckpt = decodeCheckpoint(bytes, { file: `expensive-${i}.pth`, budgets });
      assert.deepEqual([...ckpt.tensors.keys()], ['w'], `case ${i}`);
    } catch (err) {
      if (!(err instanceof AcsHubError)) assert.fail(`expensive case ${i} threw ${String(err)}\n${(err as Error).stack ?? ''}`);
      const max = budgets?.errorMessageChars ?? DEFAULT_BUDGETS.errorMessageChars;
      assert.ok(err.message.length <= max + 100, `case ${i}: message of ${err.message.length} characters`);
      outcome = err.code;
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  // The mix reaches the success path, the format errors and the budgets.
  for (const o of ['checkpoint', 'CHECKPOINT_FORMAT', 'LIMIT_EXCEEDED']) assert.ok((outcomes.get(o) ?? 0) > 0, `${o}: ${JSON.stringify([...outcomes])}`);
});
