import assert from 'node:assert/strict';
import { test } from 'node:test';
import onnxProto from 'onnx-proto';
import {
  bfloat16ToFloat,
  DTYPE_NAMES,
  DTYPES,
  dtypeFromOnnx,
  dtypeFromTorchDtype,
  dtypeFromTorchStorage,
  floatToBFloat16,
  floatToHalf,
  fromFloat32,
  halfToFloat,
  toFloat32,
} from '../../converters/dtypes.js';
import { UnsupportedError } from '../../converters/errors.js';

test('the dtype tables agree with each other', () => {
  const onnxTypes = onnxProto.onnx.TensorProto.DataType as unknown as Record<string, number>;
  const expectedOnnx: Record<string, string> = {
    F64: 'DOUBLE', F32: 'FLOAT', F16: 'FLOAT16', BF16: 'BFLOAT16', I64: 'INT64', I32: 'INT32',
    I16: 'INT16', I8: 'INT8', U8: 'UINT8', BOOL: 'BOOL',
  };
  assert.deepEqual(DTYPE_NAMES.sort(), Object.keys(expectedOnnx).sort());
  for (const name of DTYPE_NAMES) {
    const info = DTYPES[name];
    assert.equal(info.name, name);
    assert.equal(info.array.BYTES_PER_ELEMENT, info.itemsize, `${name}: array and itemsize disagree`);
    assert.equal(info.onnx, onnxTypes[expectedOnnx[name]!], `${name}: ONNX element type`);
    assert.equal(dtypeFromOnnx(info.onnx), name);
    assert.equal(dtypeFromTorchStorage(info.torchStorage), name);
    assert.equal(dtypeFromTorchDtype(info.torchDtype), name);
  }
  for (const key of ['torchStorage', 'torchDtype', 'onnx'] as const) {
    const values = DTYPE_NAMES.map((d) => DTYPES[d][key]);
    assert.equal(new Set(values).size, values.length, `${key} values are unique`);
  }
  assert.throws(() => dtypeFromOnnx(14), UnsupportedError);
  assert.throws(() => dtypeFromTorchStorage('ComplexFloatStorage'), /ComplexFloatStorage/);
});

test('half and bfloat16 words widen and narrow exactly', () => {
  const cases: [number, number][] = [
    [0x0000, 0], [0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x0001, 2 ** -24], [0x0400, 2 ** -14],
    [0x3555, 0.333251953125], [0x7c00, Infinity], [0xfc00, -Infinity],
  ];
  for (const [bits, value] of cases) {
    assert.equal(halfToFloat(bits), value);
    assert.equal(floatToHalf(value), bits);
  }
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00, 'ties round to even');
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02, 'ties round to even (up)');
  assert.equal(floatToHalf(1e6), 0x7c00, 'overflow to infinity');
  assert.equal(bfloat16ToFloat(0x3f80), 1);
  assert.equal(floatToBFloat16(1), 0x3f80);
  assert.equal(floatToBFloat16(1 + 2 ** -8), 0x3f80, 'ties round to even');
  assert.equal(floatToBFloat16(-3.140625), 0xc049);
  const widened = toFloat32('F16', Uint16Array.from([0x3c00, 0xc000]));
  assert.deepEqual([...widened], [1, -2]);
  assert.deepEqual([...(fromFloat32('BF16', widened) as Uint16Array)], [0x3f80, 0xc000]);
});
