/**
 * torch.hub's file-name hash check: `resnet18-f37072fd.pth` promises that the file's sha256
 * starts with `f37072fd`. torch.hub takes the first match of `-([a-f0-9]*)\.` in the name and
 * compares it with the start of the hex digest; so does this.
 */
import { IntegrityError } from '../errors.js';

const HASH_REGEX = /-([a-f0-9]*)\./;

/** The sha256 prefix embedded in a file name, as torch.hub finds it; undefined when there is none. */
export function hashPrefixFromFilename(file: string): string | undefined {
  const m = HASH_REGEX.exec(file.slice(file.lastIndexOf('/') + 1));
  return m?.[1] || undefined;
}

/** Throw an `IntegrityError` when `sha256` (hex) does not start with the prefix in `file`'s name. */
export function checkHashPrefix(file: string, sha256: string): void {
  const prefix = hashPrefixFromFilename(file);
  if (prefix !== undefined && !sha256.startsWith(prefix)) {
    throw new IntegrityError(`${file}: sha256 ${sha256} does not start with '${prefix}', the hash prefix in its name`);
  }
}
