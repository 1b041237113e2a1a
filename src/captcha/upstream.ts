/**
 * The aggregator's re-sync call: `PUT {UPSTREAM_API_URL}/users/{id_user}/
 * connections/{id}` with the bearer token — Powens' "force a synchronisation" request. Its
 * answer only says the request was taken; the outcome comes later as a CONNECTION_SYNCED.
 */

export interface Upstream {
  url: string;
  token?: string;
  timeoutMs?: number;
}

/**
 * `reason` is short and shown in the API (`captcha.upstream_error`, user tokens included);
 * `detail` adds the URL and the start of the answer, for the history and the log.
 */
export type ResyncResult = { ok: true; status: number } | { ok: false; status: number | null; reason: string; detail: string };

const DEFAULT_TIMEOUT_MS = 30_000;

export async function requestResync(upstream: Upstream, userId: number, connectionId: number): Promise<ResyncResult> {
  const url = `${upstream.url}/users/${userId}/connections/${connectionId}`;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (upstream.token) headers.authorization = `Bearer ${upstream.token}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'PUT',
      headers,
      redirect: 'error',
      signal: AbortSignal.timeout(upstream.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? 'timed out' : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { ok: false, status: null, reason: why, detail: `PUT ${url}: ${why}` };
  }
  // Read the body either way (frees the socket); keep a little of it to explain a refusal.
  const body = await res.text().catch(() => '');
  if (res.ok) return { ok: true, status: res.status };
  return { ok: false, status: res.status, reason: `HTTP ${res.status}`, detail: `PUT ${url}: HTTP ${res.status} ${body.slice(0, 200)}`.trim() };
}
