/** A path parameter as one string (the validator has checked its pattern already). */
import type { Request } from 'express';

export function param(req: Request, name: string): string {
  const v = (req.params as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(v) ? v.join('/') : (v ?? '');
}
