import buildContentDisposition from 'content-disposition';
import { extension } from 'mime-types';

/**
 * `Content-Disposition` for a served file (RFC 6266), built by the `content-disposition`
 * package (Express's own): a quoted ASCII `filename` for old clients and the exact name as
 * UTF-8 in `filename*` (RFC 8187), each escaped by the package, never by hand.
 */
export function contentDisposition(type: 'inline' | 'attachment', filename: string): string {
  return buildContentDisposition(filename, { type, fallback: asciiFallback(filename) });
}

/** "Facture é" → "Facture e"; anything else outside printable ASCII becomes `_`. */
function asciiFallback(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^\x20-\x7e]|%/g, '_'); // some clients percent-decode `filename`
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * "Facture Acme 023315" + application/pdf → "Facture Acme 023315.pdf", with the extension
 * of the type from `mime-types`. The name is NFKC-normalised *before* it is cleaned, so
 * that fullwidth ＂ ＼ ／ (which NFKC and NFKD turn into `"` `\` `/`) are cleaned too: no
 * quote, separator, control character or character Windows refuses is left in it.
 */
export function downloadName(documentName: string, contentType: string, thumbnail = false): string {
  const cleaned = documentName
    .replace(LONE_SURROGATE, '\ufffd') // not encodable in UTF-8
    .normalize('NFKC')
    .replace(/[\x00-\x1f\x7f"\\/:*?<>|]+/g, '_')
    .replace(/^[\s.]+|[\s.]+$/g, ''); // no hidden files, no trailing dots
  // Cut by code points: half a surrogate pair would make percent-encoding throw.
  const base = Array.from(cleaned).slice(0, 120).join('').trim() || 'document';
  const ext = thumbnail ? 'png' : extension(contentType) || 'bin';
  return `${base}${thumbnail ? '-thumbnail' : ''}.${ext}`;
}
