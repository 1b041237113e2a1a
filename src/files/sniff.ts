import { open } from 'node:fs/promises';
import { fileTypeFromFile } from 'file-type';

/**
 * The real type of a downloaded file, from its bytes: providers label
 * PDFs `text/html` and login pages `application/pdf`, so their Content-Type is never trusted.
 * `file-type` knows binary formats by their magic numbers; HTML is text and has none, so
 * it is recognised here by the WHATWG MIME sniffing rules (the tags a browser would take
 * as the start of an HTML document).
 */

export interface Sniffed {
  mime: string;
  /** File extension without the dot, for download names. */
  ext: string;
}

const HEAD_BYTES = 1024;

export async function sniffFile(path: string): Promise<Sniffed> {
  const head = await readHead(path, HEAD_BYTES);
  const detected = await fileTypeFromFile(path);
  if (detected) {
    // XHTML starts with an XML declaration: still a page to render.
    if (detected.mime === 'application/xml' && looksLikeXhtml(head)) return { mime: 'text/html', ext: 'html' };
    return { mime: detected.mime, ext: detected.ext };
  }
  if (looksLikeHtml(head)) return { mime: 'text/html', ext: 'html' };
  if (looksLikeText(head)) return { mime: 'text/plain', ext: 'txt' };
  return { mime: 'application/octet-stream', ext: 'bin' };
}

async function readHead(path: string, n: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

// https://mimesniff.spec.whatwg.org/#rules-for-identifying-an-unknown-mime-type: each tag
// followed by a space or ">" ("tag-terminating byte"), after optional leading whitespace.
const HTML_TAGS = ['!DOCTYPE HTML', 'HTML', 'HEAD', 'SCRIPT', 'IFRAME', 'H1', 'DIV', 'FONT', 'TABLE', 'A', 'STYLE', 'TITLE', 'B', 'BODY', 'BR', 'P', '!--'];

export function looksLikeHtml(head: Buffer): boolean {
  const text = decodeHead(head).replace(/^[\t\n\f\r ]+/, '');
  if (!text.startsWith('<')) return false;
  const upper = text.slice(1, 16).toUpperCase();
  return HTML_TAGS.some((tag) => {
    if (!upper.startsWith(tag)) return false;
    const next = upper.charAt(tag.length);
    return tag === '!--' || next === ' ' || next === '>' || next === '\t' || next === '\n' || next === '\r';
  });
}

function looksLikeXhtml(head: Buffer): boolean {
  return /<html[\s>]/i.test(decodeHead(head));
}

/** No control bytes but whitespace: a text file rather than an unknown binary. */
function looksLikeText(head: Buffer): boolean {
  if (head.length === 0) return false;
  for (const b of head) if (b < 0x09 || (b > 0x0d && b < 0x20) || b === 0x7f) return false;
  return true;
}

function decodeHead(head: Buffer): string {
  // UTF-16 pages are rare enough among bills to leave to the octet-stream fallback.
  const bom = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  return head.subarray(bom).toString('latin1');
}
