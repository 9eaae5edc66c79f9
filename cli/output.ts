/**
 * What the CLI prints. Checkpoint files carry names (zip entries, tensors, labels) that may hold
 * control characters; printed raw, an ESC starts an escape sequence the terminal would obey.
 * Every line the CLI builds from such text goes through `terminalSafe`.
 */

// C0 controls but the newline, DEL, and the C1 controls (U+009B is a one-character CSI).
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g;

/**
 * `text` with each control character written as a `\uXXXX` escape (the newline is kept). The
 * escape is also JSON's, so JSON output stays valid JSON.
 */
export function terminalSafe(text: string): string {
  return text.replace(CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Write `text` to stdout, control characters escaped. */
export function printOut(text: string): void {
  process.stdout.write(terminalSafe(text));
}

/** Write `text` to stderr, control characters escaped. */
export function printErr(text: string): void {
  process.stderr.write(terminalSafe(text));
}
