/** Argument parsing shared by the subcommands (node:util parseArgs with clear errors). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A command line that does not parse: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** What `parse` returns: node's `parseArgs` result for `options` and `--help`. */
export type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O & { help: { type: 'boolean'; short: 'h' } }; allowPositionals: true; strict: true }>>;

/** Parse `argv` against `options`, turning parse failures into a `UsageError`. */
export function parse<O extends Options>(argv: string[], options: O, usage: string): Parsed<O> {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]} (usage: ${usage})`);
  }
}

/** Exactly one positional argument, or a usage error naming it. */
export function onePositional(positionals: string[], what: string, usage: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected one ${what}, got ${positionals.length} (usage: ${usage})`);
  return positionals[0]!;
}
