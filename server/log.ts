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
 */
import { pino, type DestinationStream, type Logger } from 'pino';

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
}

/** The server's logger (see the module comment). */
export function createLogger(params: LoggerParams): Logger {
  const secrets = (params.secrets ?? []).filter((s) => s.length >= 6);
  return pino({ level: params.level, base: { service: 'acs-hub' }, hooks: { streamWrite: (line) => scrubText(line, secrets) } }, params.destination);
}
