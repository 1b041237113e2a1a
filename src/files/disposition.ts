/**
 * `Content-Disposition` with a safe file name (RFC 6266): an ASCII `filename` for old
 * clients and the exact name as UTF-8 in `filename*` (RFC 8187). Nothing in the name can
 * end the header parameter, climb directories or reach a shell: quotes, backslashes,
 * slashes, control characters and the characters Windows refuses become `_`.
 */
export function contentDisposition(type: 'inline' | 'attachment', filename: string): string {
  const ascii = filename
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '') // "Facture é" → "Facture e"
    .replace(/[^\x20-\x7e]|%/g, '_'); // some clients percent-decode `filename`
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${type}; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

const EXTENSIONS: Record<string, string> = {
  'application/pdf': 'pdf',
  'text/html': 'html',
  'text/plain': 'txt',
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/gif': 'gif',
  'image/webp': 'webp',
  'image/tiff': 'tif',
  'application/zip': 'zip',
  'application/xml': 'xml',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'application/msword': 'doc',
  'application/x-cfb': 'doc',
};

/** "Facture Acme 023315" + application/pdf → "Facture Acme 023315.pdf", cleaned. */
export function downloadName(documentName: string, contentType: string, thumbnail = false): string {
  const cleaned = documentName
    .replace(/[\x00-\x1f\x7f"\\/:*?<>|]+/g, '_')
    .replace(/^[\s.]+|[\s.]+$/g, ''); // no hidden files, no trailing dots
  // Cut by code points: half a surrogate pair would make encodeURIComponent throw.
  const base = Array.from(cleaned).slice(0, 120).join('').trim() || 'document';
  const ext = thumbnail ? 'png' : (EXTENSIONS[contentType.split(';')[0].trim()] ?? 'bin');
  return `${base}${thumbnail ? '-thumbnail' : ''}.${ext}`;
}
