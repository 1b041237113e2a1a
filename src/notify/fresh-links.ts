import type { LinkSigner } from '../config.js';
import { signedFileUrl, verifyFileLink, type FileVariant } from '../lib/file-links.js';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * A message's body with its file links (`url`, `thumb_url`) signed afresh for this attempt.
 * The body was written when the event happened, and a message is retried for about 27 h —
 * past a link's life (LINK_TTL_S) — so each attempt carries links valid from the moment it
 * is sent; the `webhook-id` stays the same. Done on the text, not by parsing and
 * re-serialising the event's data, so nothing else in the body changes. Only links this
 * service signed are renewed (their signature is checked, expiry aside): a look-alike in a
 * document's name is left as it is, never turned into a valid link.
 */
export function withFreshFileLinks(body: string, links: LinkSigner, now = Date.now()): string {
  const pattern = new RegExp(`${escapeRegExp(links.publicUrl)}/files/(\\d{1,18})(/thumbnail)?\\?exp=(\\d{1,12})&sig=([A-Za-z0-9_-]{1,128})`, 'g');
  return body.replace(pattern, (link, id: string, thumb: string | undefined, exp: string, sig: string) => {
    const variant: FileVariant = thumb ? 'thumbnail' : 'file';
    // Expiry aside: `now` 0 lets an expired link of ours through the check.
    if (!verifyFileLink(links.secret, variant, Number(id), exp, sig, 0)) return link;
    return signedFileUrl(links, variant, Number(id), now);
  });
}
