import { powensSignature } from '../../src/inbound/signature.js';

/** Headers of a Powens-signed delivery (README: Try it). */
export function powensHeaders(secret: string, path: string, rawBody: string | Buffer, date = new Date().toISOString()) {
  const body = typeof rawBody === 'string' ? Buffer.from(rawBody) : rawBody;
  return { 'bi-signature-date': date, 'bi-signature': powensSignature(secret, 'POST', path, date, body) };
}

/** A CONNECTION_SYNCED payload in the contract's shape, built from parts. */
export function syncedPayload(opts: {
  idWebhookData?: number;
  userId?: number;
  connectionId?: number;
  state?: string | null;
  lastUpdate?: string;
  subscriptions: { id: number; label?: string; documents?: { id: number; type?: string; date?: string; url?: string | null; name?: string; total_amount?: number }[] }[];
  captchaRequired?: boolean;
  errorMessage?: string | null;
}) {
  const userId = opts.userId ?? 7;
  const connectionId = opts.connectionId ?? 31;
  return {
    ...(opts.idWebhookData === undefined ? {} : { id_webhook_data: opts.idWebhookData }),
    user: { id: userId },
    connection: {
      id: connectionId,
      id_user: userId,
      id_connector: 40,
      state: opts.state ?? null,
      error_message: opts.errorMessage ?? null,
      last_update: opts.lastUpdate ?? '2026-11-20T08:00:00Z',
      next_try: null,
      active: true,
      captcha_required: opts.captchaRequired ?? false,
      subscriptions: opts.subscriptions.map((s) => ({
        id: s.id,
        id_connection: connectionId,
        id_user: userId,
        number: `N${s.id}`,
        label: s.label ?? `Contract ${s.id}`,
        subscriber: 'Mr John Doe',
        validity: null,
        renewdate: null,
        documents: (s.documents ?? []).map((d) => ({
          id: d.id,
          id_subscription: s.id,
          name: d.name ?? `Bill ${d.id}`,
          type: d.type ?? 'bill',
          date: d.date ?? '2026-11-01',
          duedate: null,
          number: String(d.id),
          issuer: 'Acme',
          total_amount: d.total_amount ?? 42.5,
          untaxed_amount: null,
          vat: null,
          currency: 'EUR',
          url: d.url === undefined ? null : d.url,
          has_file_on_website: d.url != null,
        })),
      })),
    },
  };
}
