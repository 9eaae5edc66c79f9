import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { DEFAULT_BUDGETS, type Budgets } from '../../../converters/budgets.js';
import { AcsHubError } from '../../../converters/errors.js';
import { decodeCheckpoint } from '../../../converters/formats/index.js';
import { PickleWriter } from '../../../converters/formats/pickle.js';
import { encodeSafetensors } from '../../../converters/formats/safetensors.js';
import { encodeZip } from '../../../converters/formats/zip.js';
import { concatChunks } from '../../../converters/io.js';
import { fixture } from '../../helpers.js';
import { BOMBS, deep, deflatedPth, legacyPth, memoChain, OP, Program, stateDictPickle, zipPth } from './expensive.js';

const MiB = 1024 * 1024;
/** What a message may add to the budget: boundMessage's "... (N more characters)". */
const MESSAGE_SLACK = 100;
/** Peak memory a bomb may add to the process that decodes it. */
const MAX_GROWTH = 300 * MiB;

interface Outcome {
  code: string;
  name: string;
  message: string;
  messageLength: number;
  growth: number;
}

const exec = promisify(execFile);

/** Make and decode `BOMBS[name]` in a child process with the default budgets; its peak memory is its own. */
async function decodeInChild(name: string): Promise<Outcome> {
  const script = `
    const { BOMBS } = await import(${JSON.stringify(new URL('./expensive.js', import.meta.url).href)});
    const { decodeCheckpoint } = await import(${JSON.stringify(new URL('../../../converters/formats/index.js', import.meta.url).href)});
    const { file, bytes } = BOMBS[${JSON.stringify(name)}]();
    const before = process.memoryUsage().rss;
    let r = { code: 'none', name: '', message: '', messageLength: 0 };
    try { decodeCheckpoint(bytes, { file }); }
    catch (e) { r = { code: e.code ?? '', name: e.name, message: String(e.message).slice(0, 4000), messageLength: String(e.message).length }; }
    r.growth = process.resourceUsage().maxRSS * 1024 - before;
    process.stdout.write(JSON.stringify(r));`;
  // The timeout only stops a run that hangs; the test asserts no speed.
  const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', script], { timeout: 120_000, maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as Outcome;
}

function assertBoundedMessage(message: string, max = DEFAULT_BUDGETS.errorMessageChars): void {
  assert.ok(message.length <= max + MESSAGE_SLACK, `message of ${message.length} characters: ${message.slice(0, 200)}`);
}

/** Decode in this process and return the typed error it must end with. */
function refusal(bytes: Uint8Array, file: string, budgets?: Partial<Budgets>): AcsHubError {
  try {
    decodeCheckpoint(bytes, { file, budgets });
  } catch (err) {
    assert.ok(err instanceof AcsHubError, `expected a typed error, got ${String(err)}\n${(err as Error).stack ?? ''}`);
    assertBoundedMessage(err.message, budgets?.errorMessageChars);
    return err;
  }
  return assert.fail(`${file} was accepted`);
}

function assertLimit(err: AcsHubError, budget: keyof Budgets): void {
  assert.equal(err.code, 'LIMIT_EXCEEDED', err.message);
  assert.ok(err.message.includes(`budgets.${budget}`), `'${err.message}' names budgets.${budget}`);
}

const EXPECTED: Record<keyof typeof BOMBS, { code: string; mentions: RegExp }> = {
  'memo-bomb': { code: 'CHECKPOINT_FORMAT', mentions: /unsupported legacy torch protocol \[\[\[\[/ },
  'memo-bomb-key': { code: 'CHECKPOINT_FORMAT', mentions: /top-level keys are '\(\[\[\[/ },
  'empty-dicts': { code: 'LIMIT_EXCEEDED', mentions: /budgets\.pickleObjects/ },
  memoize: { code: 'LIMIT_EXCEEDED', mentions: /budgets\.pickleMemo/ },
  'zip-bomb': { code: 'LIMIT_EXCEEDED', mentions: /budgets\.compressionRatio/ },
  'zip-bomb-lying': { code: 'CHECKPOINT_FORMAT', mentions: /inflates to more than its declared 1048576 bytes/ },
};

for (const name of Object.keys(BOMBS)) {
  test(`budgets: ${name} is refused with the default budgets, in bounded memory and a bounded message`, async () => {
    const r = await decodeInChild(name);
    const exp = EXPECTED[name]!;
    assert.equal(r.code, exp.code, `${r.name}: ${r.message.slice(0, 300)}`);
    assert.match(r.message, exp.mentions);
    assert.ok(r.messageLength <= DEFAULT_BUDGETS.errorMessageChars + MESSAGE_SLACK, `message of ${r.messageLength} characters`);
    assert.ok(r.growth < MAX_GROWTH, `peak memory grew by ${(r.growth / MiB).toFixed(0)} MiB`);
  });
}

test('budgets: containers nested thousands deep are LIMIT_EXCEEDED, not a stack overflow', () => {
  for (const kind of ['tuple', 'list', 'dict'] as const) {
    assertLimit(refusal(deep(kind, 100_000).stop(), `deep-${kind}.pth`), 'nestingDepth');
    assertLimit(refusal(zipPth(deep(kind, 100_000).stop()), `deep-${kind}-zip.pth`), 'nestingDepth');
  }
  assertLimit(refusal(deep('list', 20).stop(), 'twenty.pth', { nestingDepth: 10 }), 'nestingDepth');
  const json = `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
  const header = new TextEncoder().encode(json);
  const st = concatChunks([new Uint8Array(new BigUint64Array([BigInt(header.length)]).buffer), header]);
  assertLimit(refusal(st, 'deep.safetensors'), 'nestingDepth');
});

test('budgets: a chain linked through the memo (deeper than the count sees) is still described in a bounded message', () => {
  const err = refusal(legacyPth(memoChain(100_000).stop()), 'chain.pth');
  assert.equal(err.code, 'CHECKPOINT_FORMAT');
  assert.match(err.message, /protocol \[\[\[\[\[/);
  assert.ok(err.message.length < 200, err.message);
});

test('budgets: opcodes, objects and the memo are counted against the budgets given', () => {
  const real = readFileSync(fixture('formats', 'resnet18_tiny.pth'));
  assert.equal(decodeCheckpoint(real, { file: 'r.pth' }).tensors.size, 122);
  assertLimit(refusal(real, 'r.pth', { pickleOpcodes: 1000 }), 'pickleOpcodes');
  assertLimit(refusal(real, 'r.pth', { pickleObjects: 1000 }), 'pickleObjects');
  assertLimit(refusal(real, 'r.pth', { pickleMemo: 100 }), 'pickleMemo');
  // A stack of values that build nothing still counts.
  assertLimit(refusal(new Program().repeat([OP.NONE], 2000).stop(), 'nones.pth', { pickleObjects: 1000 }), 'pickleObjects');
});

test('budgets: what an allowed global copies from its arguments is counted', () => {
  // OrderedDict(pairs) called again and again on one memoised list of 1000 pairs.
  const w = new PickleWriter();
  w.global('collections', 'OrderedDict');
  const head = w.finish().subarray(0, -1);
  const p = new Program(2).raw(head.subarray(2)).op(OP.POP, OP.EMPTY_LIST, OP.MARK);
  for (let i = 0; i < 1000; i++) p.op(OP.BININT2, i & 0xff, i >> 8, OP.NONE, OP.TUPLE2);
  p.op(OP.APPENDS, OP.TUPLE1, OP.LONG_BINPUT, 1, 0, 0, 0, OP.POP);
  p.repeat([OP.LONG_BINGET, 0, 0, 0, 0, OP.LONG_BINGET, 1, 0, 0, 0, OP.REDUCE, OP.POP], 2000);
  assertLimit(refusal(zipPth(p.op(OP.NONE).stop()), 'ordered.pth'), 'pickleObjects');
});

test('budgets: a zip entry is held to its budgets before it is inflated', () => {
  assertLimit(refusal(deflatedPth([2]), 'entry.pth', { unpackedEntryBytes: MiB }), 'unpackedEntryBytes');
  assertLimit(refusal(deflatedPth([2, 2]), 'total.pth', { unpackedTotalBytes: 3 * MiB, compressionRatio: 1e6 }), 'unpackedTotalBytes');
  // Entries of 1 MiB escape the per-entry ratio, not the archive's.
  assertLimit(refusal(deflatedPth(new Array<number>(40).fill(1)), 'many.pth'), 'compressionRatio');
  // Within the budgets the same archive reads, zeros and all.
  const ok = decodeCheckpoint(deflatedPth([1, 1]), { file: 'ok.pth', budgets: { compressionRatio: 1e6 } });
  assert.deepEqual([...ok.tensors.values()].map((t) => t.data.length), [MiB, MiB]);
});

test('budgets: strided views may not copy more than their storages hold', () => {
  // Three views repeating one byte 32 Mi times each (stride 0): within 64 MiB, two are copied.
  const big = 32 * MiB;
  const pkl = stateDictPickle(['a', 'b', 'c'].map((name) => ({ name, storage: '0', numel: 1, size: [big], stride: [0] })));
  const bytes = zipPth(pkl, [{ name: 'archive/data/0', data: Uint8Array.of(7) }]);
  const err = refusal(bytes, 'strided.pth');
  assert.equal(err.code, 'LIMIT_EXCEEDED');
  assert.match(err.message, /strided tensors up to 'c'/);
});

test('budgets: messages quoting the file are cut to budgets.errorMessageChars', () => {
  const long = 'x'.repeat(1_000_000);
  // A tensor name of a million characters with a bad dtype.
  const header = new TextEncoder().encode(JSON.stringify({ [long]: { dtype: 'Q9', shape: [1], data_offsets: [0, 1] } }));
  const st = concatChunks([new Uint8Array(new BigUint64Array([BigInt(header.length)]).buffer), header, new Uint8Array(1)]);
  assert.match(refusal(st, 'long.safetensors').message, /more characters\)$/);
  // A refused global with a module name of a million characters.
  const pkl = new Program(2).op(OP.GLOBAL).raw(new TextEncoder().encode(`${long}\nsystem\n`)).stop();
  const unsafe = refusal(pkl, 'global.pkl');
  assert.equal(unsafe.code, 'UNSAFE_PICKLE');
  assert.ok(((unsafe as unknown as { global: string }).global).length < 300);
  // A zip whose first entry's folder has a name of 60,000 characters.
  const zip = concatChunks(encodeZip([{ name: `${'y'.repeat(60_000)}/data`, data: [new Uint8Array(1)] }]));
  assert.match(refusal(zip, 'names.pth').message, /has no 'y+/);
  // And a smaller budget is honoured.
  assertBoundedMessage(refusal(st, 'long.safetensors', { errorMessageChars: 100 }).message, 100);
  // The largest real checkpoint names pass through untouched.
  const sd = new Map([[long.slice(0, 300), { dtype: 'U8' as const, shape: [1], data: new Uint8Array(1) }]]);
  assert.equal([...decodeCheckpoint(concatChunks(encodeSafetensors(sd)), { file: 'ok.safetensors' }).tensors.keys()][0], long.slice(0, 300));
});
