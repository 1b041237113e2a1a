/**
 * `Range` and the conditional headers of a file response (RFC 9110 §13, §14), for the
 * immutable, content-addressed files served by /files/{id}: one byte range at most.
 */
export type RangeAnswer = { start: number; end: number } | 'unsatisfiable' | undefined;

/**
 * `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `size` bytes: the inclusive range,
 * `unsatisfiable` (416), or undefined when the whole file is to be sent (no header, another
 * unit, several ranges, or one that cannot be parsed: a server may ignore those, §14.2).
 */
export function parseRange(header: string | undefined, size: number): RangeAnswer {
  if (!header) return undefined;
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Number(m[2]);
  if (start >= size) return 'unsatisfiable';
  if (end < start) return undefined; // invalid: ignored
  return { start, end: Math.min(end, size - 1) };
}

/** `If-None-Match` lists this entity tag (or `*`): weak comparison, as §13.1.2 asks. */
export function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => t.trim() === '*' || bare(t) === bare(etag));
}
