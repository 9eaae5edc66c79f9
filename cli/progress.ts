/** Progress of a conversion on the terminal: a download bar, then one line per phase. */
import type { ConversionProgress } from '../zoo/convert-model.js';

/** A progress callback that draws on stderr when it is a terminal, and stays quiet otherwise. */
export function progressPrinter(stream: NodeJS.WriteStream = process.stderr): (e: ConversionProgress) => void {
  const tty = stream.isTTY === true;
  let last = 0;
  let drawing = false;
  return (e) => {
    if (e.phase === 'downloading') {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100 && e.bytes !== e.total) return;
      last = now;
      const pct = e.total ? ` ${((100 * e.bytes) / e.total).toFixed(0).padStart(3)}%` : '';
      stream.write(`\rdownloading ${(e.bytes / 1e6).toFixed(1)}${e.total ? `/${(e.total / 1e6).toFixed(1)}` : ''} MB${pct}\x1b[K`);
      drawing = true;
      return;
    }
    if (drawing) {
      stream.write('\n');
      drawing = false;
    }
    if (e.phase === 'converting') stream.write('converting\n');
  };
}
