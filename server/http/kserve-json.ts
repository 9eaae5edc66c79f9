/**
 * Open Inference Protocol (KServe v2) JSON request bodies, read without `JSON.parse`.
 *
 * `JSON.parse` of a body of a few hundred megabytes builds JavaScript arrays of a hundred
 * million numbers, and past V8's array limits the process dies ("invalid size error") instead
 * of throwing. So this reader writes the `data` of every input straight into a Float32Array,
 * counted against `budgets.kserveElements` as it grows, and builds ordinary values only for the
 * rest of the request (names, shapes, parameters), which is bounded in bytes.
 */
import { budgetSetting, resolveBudgets, type Budgets } from '../../converters/budgets.js';
import { LimitExceededError } from '../../converters/errors.js';
import { httpError } from '../errors.js';

/** Parameters of `parseKServeJson`. */
export interface ParseKServeJsonParams {
  /** The JSON text, UTF-8. */
  bytes: Uint8Array;
  /** Bytes of JSON outside the tensor data (the request's names, shapes and parameters). */
  maxHeaderBytes: number;
  /** The setting `maxHeaderBytes` comes from, for messages. @default 'server.maxJsonBytes' */
  headerSetting?: string;
  /** Budgets: `kserveElements` (the data of all inputs together) and `nestingDepth`. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** Where a value sits in the request: the path `inputs[i].data` is read as tensor data. */
type Place = 'root' | 'inputs' | 'input' | 'other';

/** 10^0 .. 10^22: the powers of ten a double holds exactly. */
const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);
/** Significant digits a double's integer mantissa holds exactly (10^15 < 2^53). */
const EXACT_DIGITS = 15;

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;

class Parser {
  private pos = 0;
  /** Bytes of tensor data read so far (they do not count against the header's bytes). */
  private dataBytes = 0;
  private elements = 0;
  private input = 0;
  private readonly maxElements: number;
  private readonly maxDepth: number;

  constructor(
    private readonly b: Uint8Array,
    private readonly maxHeader: number,
    private readonly headerSetting: string,
    budgets: Partial<Budgets> | undefined,
  ) {
    const r = resolveBudgets(budgets);
    this.maxElements = r.kserveElements;
    this.maxDepth = r.nestingDepth;
  }

  parse(): unknown {
    const v = this.value(0, 'root');
    this.ws();
    if (this.pos !== this.b.length) this.fail('unexpected text after the JSON value');
    return v;
  }

  private fail(what: string): never {
    throw httpError('VALIDATION_FAILED', `the request is not valid JSON: ${what} at byte ${this.pos}`);
  }

  private ws(): void {
    const b = this.b;
    let p = this.pos;
    while (p < b.length && (b[p] === 0x20 || b[p] === 0x0a || b[p] === 0x0d || b[p] === 0x09)) p++;
    this.pos = p;
  }

  private header(): void {
    if (this.pos - this.dataBytes > this.maxHeader) {
      throw new LimitExceededError(`the request's JSON outside the tensor data is over ${this.maxHeader} bytes (${this.headerSetting})`);
    }
  }

  private deeper(depth: number): void {
    if (depth > this.maxDepth) throw new LimitExceededError(`the request's JSON nests deeper than ${this.maxDepth} levels (${budgetSetting('nestingDepth')})`);
  }

  private value(depth: number, at: Place): unknown {
    this.ws();
    this.header();
    const c = this.b[this.pos];
    if (c === 0x7b) return this.object(depth + 1, at);
    if (c === 0x5b) return this.array(depth + 1, at);
    if (c === 0x22) return this.string();
    if (c === 0x74) return this.literal('true', true);
    if (c === 0x66) return this.literal('false', false);
    if (c === 0x6e) return this.literal('null', null);
    if (c === 0x2d || isDigit(c)) return this.number();
    return this.fail(c === undefined ? 'unexpected end' : `unexpected character ${JSON.stringify(String.fromCharCode(c))}`);
  }

  private object(depth: number, at: Place): Record<string, unknown> {
    this.deeper(depth);
    this.pos++;
    const out: Record<string, unknown> = {};
    this.ws();
    if (this.b[this.pos] === 0x7d) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.b[this.pos] !== 0x22) this.fail('expected a property name');
      const key = this.string();
      this.ws();
      if (this.b[this.pos] !== 0x3a) this.fail("expected ':'");
      this.pos++;
      const value = at === 'input' && key === 'data' ? this.tensor(depth) : this.value(depth, at === 'root' && key === 'inputs' ? 'inputs' : 'other');
      // as JSON.parse does: an own property, even for "__proto__"
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      this.ws();
      const c = this.b[this.pos];
      if (c === 0x7d) {
        this.pos++;
        return out;
      }
      if (c !== 0x2c) this.fail("expected ',' or '}'");
      this.pos++;
    }
  }

  private array(depth: number, at: Place): unknown[] {
    this.deeper(depth);
    this.pos++;
    const out: unknown[] = [];
    this.ws();
    if (this.b[this.pos] === 0x5d) {
      this.pos++;
      return out;
    }
    for (;;) {
      if (at === 'inputs') this.input = out.length;
      out.push(this.value(depth, at === 'inputs' ? 'input' : 'other'));
      this.ws();
      const c = this.b[this.pos];
      if (c === 0x5d) {
        this.pos++;
        return out;
      }
      if (c !== 0x2c) this.fail("expected ',' or ']'");
      this.pos++;
    }
  }

  private string(): string {
    const b = this.b;
    const start = this.pos;
    let p = start + 1;
    while (p < b.length && b[p] !== 0x22) p += b[p] === 0x5c ? 2 : 1;
    if (p >= b.length) this.fail('unterminated string');
    this.pos = p + 1;
    this.header();
    try {
      return JSON.parse(Buffer.from(b.buffer, b.byteOffset + start, p + 1 - start).toString('utf8')) as string;
    } catch {
      this.pos = start;
      return this.fail('invalid string');
    }
  }

  private literal<T>(word: string, value: T): T {
    for (let i = 0; i < word.length; i++) if (this.b[this.pos + i] !== word.charCodeAt(i)) this.fail(`unexpected text (expected ${word})`);
    this.pos += word.length;
    return value;
  }

  /** A JSON number; up to 15 significant digits and 10^±22 without making a string. */
  private number(): number {
    const b = this.b;
    const start = this.pos;
    let p = start;
    const neg = b[p] === 0x2d;
    if (neg) p++;
    let mant = 0;
    let digits = 0;
    let exp10 = 0;
    let exact = true;
    const take = (fraction: boolean): void => {
      const d = b[p]! - 0x30;
      if (digits < EXACT_DIGITS) {
        mant = mant * 10 + d;
        if (mant > 0) digits++;
        if (fraction) exp10--;
      } else if (d !== 0 || !fraction) {
        exact = false;
      }
      p++;
    };
    if (b[p] === 0x30) p++;
    else if (isDigit(b[p])) while (isDigit(b[p])) take(false);
    else {
      this.pos = p;
      this.fail('expected a digit');
    }
    if (b[p] === 0x2e) {
      p++;
      if (!isDigit(b[p])) {
        this.pos = p;
        this.fail('expected a digit after the decimal point');
      }
      while (isDigit(b[p])) take(true);
    }
    if (b[p] === 0x65 || b[p] === 0x45) {
      p++;
      const eneg = b[p] === 0x2d;
      if (eneg || b[p] === 0x2b) p++;
      if (!isDigit(b[p])) {
        this.pos = p;
        this.fail('expected a digit in the exponent');
      }
      let e = 0;
      while (isDigit(b[p])) {
        if (e < 100_000) e = e * 10 + (b[p]! - 0x30);
        p++;
      }
      exp10 += eneg ? -e : e;
    }
    this.pos = p;
    if (exact && exp10 >= -22 && exp10 <= 22) {
      // One exactly rounded operation on exact operands: the double JSON.parse would give.
      const v = exp10 >= 0 ? mant * POW10[exp10]! : mant / POW10[-exp10]!;
      return neg ? -v : v;
    }
    return Number(Buffer.from(b.buffer, b.byteOffset + start, p - start).toString('latin1'));
  }

  /** An input's `data`: numbers in nested arrays, flattened into float32 as they are read. */
  private tensor(depth: number): Float32Array {
    const b = this.b;
    const where = `inputs[${this.input}].data`;
    this.ws();
    const from = this.pos;
    if (b[this.pos] !== 0x5b) throw httpError('VALIDATION_FAILED', `${where} must be an array of numbers`);
    const room = this.maxElements - this.elements;
    let out = new Float32Array(Math.min(4096, room));
    let n = 0;
    let level = 0;
    for (;;) {
      this.ws();
      if (b[this.pos] === 0x5b) {
        this.deeper(depth + ++level);
        this.pos++;
        this.ws();
        if (b[this.pos] !== 0x5d) continue;
        this.pos++;
        level--;
      } else {
        const c = b[this.pos];
        if (!(c === 0x2d || isDigit(c))) throw httpError('VALIDATION_FAILED', `${where}: element ${n} is not a number (at byte ${this.pos})`);
        const v = Math.fround(this.number());
        if (!Number.isFinite(v)) throw httpError('VALIDATION_FAILED', `${where}: element ${n} is not a finite float32`);
        if (n === out.length) {
          if (n >= room) {
            throw new LimitExceededError(`${where}: the inputs' data hold more than ${this.maxElements} elements, over the budget (${budgetSetting('kserveElements')})`);
          }
          const grown = new Float32Array(Math.min(2 * n, room));
          grown.set(out);
          out = grown;
        }
        out[n++] = v;
      }
      for (;;) {
        if (level === 0) {
          this.elements += n;
          this.dataBytes += this.pos - from;
          return out.subarray(0, n);
        }
        this.ws();
        const c = b[this.pos];
        if (c === 0x5d) {
          this.pos++;
          level--;
        } else if (c === 0x2c) {
          this.pos++;
          break;
        } else {
          this.fail("expected ',' or ']'");
        }
      }
    }
  }
}

/**
 * Parse a KServe v2 JSON request (see the module comment): the value of the document, where
 * each `inputs[i].data` is a Float32Array of its numbers, nested arrays flattened in order.
 * Malformed JSON is a `VALIDATION_FAILED` error naming the byte; a body past a budget is a
 * `LimitExceededError` naming the budget.
 */
export function parseKServeJson(params: ParseKServeJsonParams): unknown {
  return new Parser(params.bytes, params.maxHeaderBytes, params.headerSetting ?? 'server.maxJsonBytes', params.budgets).parse();
}
