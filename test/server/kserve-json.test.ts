import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AcsHubError } from '../../converters/errors.js';
import { parseKServeJson } from '../../server/http/kserve-json.js';
import { prng } from '../helpers.js';

const parse = (text: string, budgets = {}, maxHeaderBytes = 1 << 20) => parseKServeJson({ bytes: Buffer.from(text), maxHeaderBytes, budgets }) as Record<string, unknown>;
const dataOf = (v: Record<string, unknown>, i = 0) => (v['inputs'] as { data: Float32Array }[])[i]!.data;

function failsWith(code: string, pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AcsHubError, `expected a typed error, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

test('numbers read as JSON.parse reads them, then rounded to float32', () => {
  const r = prng(11);
  const numbers: number[] = [0, -0, 1, -1, 0.1, 1e-7, 123456789012345, 5e-324, 1.7976931348623157e308, 2 ** 53 + 2, 3.4028234663852886e38];
  for (let i = 0; i < 5000; i++) {
    const x = (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20);
    numbers.push(x, Math.fround(x), Math.round(x * 1000) / 1000, Math.floor(r() * 1e6) - 5e5);
  }
  const texts = numbers.map((x) => JSON.stringify(x));
  texts.push('1234567890123456789', '1E3', '-2.5e+2', '0.000000000000000000000000000001', '1.00000000000000000000001', '123.456e-10', '9007199254740993');
  const finite = texts.filter((t) => Number.isFinite(Math.fround(JSON.parse(t) as number)));
  const got = dataOf(parse(`{"inputs":[{"name":"x","data":[${finite.join(',')}]}]}`));
  const want = Float32Array.from(finite.map((t) => JSON.parse(t) as number));
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) assert.ok(Object.is(got[i], want[i]), `${finite[i]}: got ${got[i]}, JSON.parse gives ${want[i]}`);
  // numbers outside the data keep double precision
  const header = `{${texts.slice(0, 300).map((t, i) => `"k${i}":${t}`).join(',')}}`;
  assert.deepEqual(parse(header), JSON.parse(header));
});

test('the rest of the document reads as JSON.parse reads it; nested data is flattened in order', () => {
  const doc = { id: 'r\u00e9q "1"\n', parameters: { binary_data_output: true, n: null, list: [1, 'two', { three: [false] }] }, inputs: [{ name: 'input', shape: [1, 2, 2], datatype: 'FP32', data: [[[1, 2], [3, 4]], [[5, 6], [], [7, 8]]] }], outputs: [{ name: 'output', parameters: { binary_data: true } }] };
  const v = parse(JSON.stringify(doc, null, 2));
  assert.deepEqual(Array.from(dataOf(v)), [1, 2, 3, 4, 5, 6, 7, 8]);
  const { inputs, ...rest } = v;
  const { inputs: _, ...want } = doc;
  assert.deepEqual(rest, want);
  assert.deepEqual({ ...(inputs as Record<string, unknown>[])[0], data: undefined }, { ...doc.inputs[0], data: undefined });
  const proto = parse('{"__proto__":{"polluted":1},"inputs":[]}');
  assert.ok(Object.hasOwn(proto, '__proto__'), 'an own property, as JSON.parse makes it');
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('malformed JSON is VALIDATION_FAILED naming the byte; non-numbers in data are named', () => {
  for (const [text, at] of [['{"inputs":[{"data":[1,]}]}', /element 1 is not a number/], ['{"inputs":[{"data":[1 2]}]}', /at byte 22/], ['{"a":01}', /at byte 6/], ['{"a":1.}', /decimal point/], ['{"a":"x', /unterminated/], ['{"a":1} x', /after the JSON value/], ['{"inputs":[{"data":5}]}', /inputs\[0\]\.data must be an array/], ['{"inputs":[{},{"data":["1"]}]}', /inputs\[1\]\.data: element 0 is not a number/], ['{"inputs":[{"data":[1e39]}]}', /not a finite float32/]] as const) {
    assert.throws(() => parse(text), failsWith('VALIDATION_FAILED', at), text);
  }
});

test('budgets: elements of all inputs, bytes outside the data, nesting depth', () => {
  const data = (n: number) => `[${Array.from({ length: n }, (_, i) => i % 10).join(',')}]`;
  assert.equal(dataOf(parse(`{"inputs":[{"data":${data(5000)}}]}`, { kserveElements: 5000 })).length, 5000);
  assert.throws(() => parse(`{"inputs":[{"data":${data(5001)}}]}`, { kserveElements: 5000 }), failsWith('LIMIT_EXCEEDED', /more than 5000 elements.*budgets\.kserveElements/));
  assert.throws(() => parse(`{"inputs":[{"data":${data(3000)}},{"data":${data(3000)}}]}`, { kserveElements: 5000 }), failsWith('LIMIT_EXCEEDED', /inputs\[1\]\.data/));
  assert.throws(() => parse(`{"inputs":[{"data":[1]}]}`, { kserveElements: 0 }), failsWith('LIMIT_EXCEEDED', /budgets\.kserveElements/));
  // a long shape, parameters or name is not tensor data: it counts against the header's bytes
  assert.throws(() => parse(`{"inputs":[{"shape":${data(600)},"data":[1]}]}`, {}, 1000), failsWith('LIMIT_EXCEEDED', /outside the tensor data is over 1000 bytes \(server\.maxJsonBytes\)/));
  assert.throws(() => parse(`{"id":"${'x'.repeat(2000)}"}`, {}, 1000), failsWith('LIMIT_EXCEEDED', /over 1000 bytes/));
  assert.equal(dataOf(parse(`{"inputs":[{"data":${data(4000)}}]}`, {}, 100)).length, 4000, 'data does not count against the header');
  assert.throws(() => parse(`${'['.repeat(40)}${']'.repeat(40)}`, { nestingDepth: 32 }), failsWith('LIMIT_EXCEEDED', /deeper than 32 levels \(budgets\.nestingDepth\)/));
  assert.throws(() => parse(`{"inputs":[{"data":${'['.repeat(40)}1${']'.repeat(40)}}]}`, { nestingDepth: 32 }), failsWith('LIMIT_EXCEEDED', /budgets\.nestingDepth/));
});
