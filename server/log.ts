/**
 * The server's logger: structured pino lines with no secret in any of them, whatever a line
 * carries (request and response headers, error messages and their fields, URLs, messages).
 * Every line is scrubbed as it is written, so a new log call needs no care of its own:
 *
 * - the value of any field named like a credential (`authorization`, `x-api-key`, `cookie`,
 *   `set-cookie`, `proxy-authorization`, `token`, `password`, ...) is replaced whole;
 * - in any string, the values of signing query parameters (`X-Amz-Signature`,
 *   `X-Amz-Credential`, `X-Amz-Security-Token`, `token`, `sig`, `signature`, ...), the password
 *   of a URL's user-info and `Bearer`/`Basic` credentials are replaced;
 * - the configured secrets themselves (API keys, the Hugging Face token) are replaced wherever
 *   they appear.
 *
 * Lines are JSON, or human-readable (pino-pretty) on a terminal: `format` `auto` chooses by
 * whether the destination is a TTY, `json` and `pretty` force one.
 */
import type { LogFormat } from './config.js';
import { pino, type DestinationStream, type Logger } from 'pino';
import { PinoPretty } from 'pino-pretty';

/** What a secret is replaced with. */
export const REDACTED = '[REDACTED]';

const JSON_STRING = String.raw`"(?:[^"\\]|\\.)*"`;
// Query parameters (and fields) that carry a credential or a signature.
const PARAMS = 'x-amz-signature|x-amz-credential|x-amz-security-token|token|access[-_]token|refresh[-_]token|session[-_]token|sig|signature|policy|key-pair-id';
const SECRET_FIELD = new RegExp(
  String.raw`("(?:authorization|proxy-authorization|x-api-key|api[-_]?keys?|cookie|set-cookie|password|secret|secret[-_]?access[-_]?key|${PARAMS})":)(${JSON_STRING}|\[\s*(?:${JSON_STRING}\s*,?\s*)*\])`,
  'gi',
);
const SECRET_PARAM = new RegExp(String.raw`([?&;](?:${PARAMS})=)[^&#\s"'<>\\]*`, 'gi');
const CREDENTIAL = /\b(Bearer|Basic)\s+(?!realm=)[A-Za-z0-9._~+/=-]+/gi;
const USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/[^/@\s:"]*):[^/@\s"]*@/gi;

/** `text` (a log line, a URL, a message) with every secret in it replaced; see the module comment. */
export function scrubText(text: string, secrets: readonly string[] = []): string {
  let out = text
    .replace(SECRET_FIELD, `$1"${REDACTED}"`)
    .replace(SECRET_PARAM, `$1${REDACTED}`)
    .replace(CREDENTIAL, `$1 ${REDACTED}`)
    .replace(USERINFO, `$1:${REDACTED}@`);
  for (const s of secrets) {
    for (const form of new Set([s, JSON.stringify(s).slice(1, -1)])) if (out.includes(form)) out = out.split(form).join(REDACTED);
  }
  return out;
}

/** Parameters of `createLogger`. */
export interface LoggerParams {
  /** pino level. */
  level: string;
  /** Values never to print (API keys, tokens); strings shorter than 6 characters are ignored. */
  secrets?: readonly string[];
  /** Where lines go. @default stdout */
  destination?: DestinationStream;
  /** `json`, `pretty` (human-readable lines) or `auto` (pretty when the destination is a terminal). @default 'auto' */
  format?: LogFormat;
  /** Whether the destination is a terminal, for `auto`. @default process.stdout.isTTY */
  tty?: boolean;
}

export type { LogFormat };

/** The server's logger (see the module comment). */
export function createLogger(params: LoggerParams): Logger {
  const secrets = (params.secrets ?? []).filter((s) => s.length >= 6);
  const format = params.format ?? 'auto';
  const tty = params.tty ?? (params.destination === undefined && process.stdout.isTTY === true);
  // pino-pretty as a stream in this thread (not a transport): it receives the scrubbed line.
  const destination =
    format === 'pretty' || (format === 'auto' && tty)
      ? PinoPretty({ destination: params.destination ?? 1, colorize: tty, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' })
      : params.destination;
  return pino({ level: params.level, base: { service: 'acs-hub' }, hooks: { streamWrite: (line) => scrubText(line, secrets) } }, destination);
}
