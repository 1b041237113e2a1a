import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { Hono } from 'hono';
import type { Deps } from '../deps.js';
import { discardJob, listFailedJobs, retryFailedJob } from '../jobs/failed.js';
import { retryFailedFile } from './actions.js';
import { connectionsView, failedFiles, flowByHour, totals } from './data.js';
import { LOGIN_CSRF_COOKIE, newLoginNonce, newSession, readSession, sameString, SESSION_COOKIE, sessionTtlS, type Session } from './session.js';
import { Dashboard, LoginPage, MessagePage, type EndpointView } from './view.js';

/** The app's own API, called in-process with the admin token: the page acts exactly as a client would. */
export type CallApi = (path: string, init: { method: string; headers: Record<string, string> }) => Response | Promise<Response>;

type PageEnv = { Variables: { session: Session } };

/** What an action redirects back with: a code, never free text from the URL. */
const notices: Record<string, (n: string) => { text: string; bad: boolean }> = {
  replayed: (n) => ({ text: `Replay queued: ${n} failed message(s) will be sent again.`, bad: false }),
  enabled: () => ({ text: 'Endpoint enabled.', bad: false }),
  enable_unavailable: () => ({ text: 'Enabling an endpoint is not available in this version; a replay re-enables it.', bad: true }),
  job_retried: (n) => ({ text: `Job ${n} queued again.`, bad: false }),
  job_discarded: (n) => ({ text: `Job ${n} discarded.`, bad: false }),
  file_retried: (n) => ({ text: `The file of document ${n} will be fetched again.`, bad: false }),
  not_found: () => ({ text: 'That no longer exists.', bad: true }),
  conflict: () => ({ text: 'Not done: it is running, or has not failed.', bad: true }),
  failed: () => ({ text: 'Not done: the request was refused.', bad: true }),
  bad_time: () => ({ text: 'Not done: the time is not a valid date and time.', bad: true }),
};

export function pageRoutes(deps: Deps, callApi: CallApi) {
  const app = new Hono<PageEnv>();
  const secure = deps.config.publicUrl.startsWith('https:');
  const admin = { authorization: `Bearer ${deps.config.adminToken}` };
  const api = (method: string, path: string) => callApi(path, { method, headers: admin });

  const loginForm = (c: Context, status: 200 | 401 | 403, error?: string) => {
    const nonce = newLoginNonce();
    setCookie(c, LOGIN_CSRF_COOKIE, nonce, { httpOnly: true, sameSite: 'Strict', secure, path: '/login', maxAge: 600 });
    return c.html(<LoginPage nonce={nonce} error={error} />, status);
  };

  /** Actions need a session and the session's CSRF token in the form. */
  const guarded: MiddlewareHandler<PageEnv> = async (c, next) => {
    const session = readSession(deps.config.adminToken, getCookie(c, SESSION_COOKIE));
    if (!session) return c.html(<MessagePage title="Signed out" text="Your session has ended: sign in again." />, 401);
    const form = await c.req.parseBody();
    const token = typeof form._csrf === 'string' ? form._csrf : '';
    if (!token || !sameString(token, session.csrf)) {
      deps.log.warn({ path: c.req.path }, 'operator page: form without a valid CSRF token refused');
      return c.html(<MessagePage title="Refused" text="This form is not one the page gave you (missing or wrong CSRF token). Reload the page and try again." />, 403);
    }
    c.set('session', session);
    await next();
  };

  const back = (c: Context, notice: string, n: string | number = '') => c.redirect(`/?notice=${notice}${n === '' ? '' : `&n=${encodeURIComponent(String(n))}`}`, 303);

  app.get('/', async (c) => {
    const session = readSession(deps.config.adminToken, getCookie(c, SESSION_COOKIE));
    if (!session) return c.redirect('/login', 303);
    const [points, connections, failedJobs, files, endpoints] = await Promise.all([
      flowByHour(deps.db),
      connectionsView(deps.db),
      listFailedJobs(deps.db, 20),
      failedFiles(deps.db),
      loadEndpoints(api),
    ]);
    const code = c.req.query('notice');
    const n = (c.req.query('n') ?? '').replace(/[^0-9A-Za-z_-]/g, '').slice(0, 24);
    const notice = code && Object.hasOwn(notices, code) ? notices[code](n) : undefined;
    c.header('cache-control', 'no-store');
    return c.html(
      <Dashboard csrf={session.csrf} notice={notice} flow={totals(points)} points={points} connections={connections} endpoints={endpoints} failedJobs={failedJobs} failedFiles={files} />,
    );
  });

  app.get('/login', (c) => {
    if (readSession(deps.config.adminToken, getCookie(c, SESSION_COOKIE))) return c.redirect('/', 303);
    return loginForm(c, 200);
  });

  app.post('/login', async (c) => {
    const form = await c.req.parseBody();
    const nonce = getCookie(c, LOGIN_CSRF_COOKIE) ?? '';
    const sent = typeof form._csrf === 'string' ? form._csrf : '';
    if (!nonce || !sent || !sameString(nonce, sent)) return loginForm(c, 403, 'The sign-in form expired: try again.');
    const token = typeof form.token === 'string' ? form.token : '';
    if (!token || !sameString(token, deps.config.adminToken)) {
      deps.log.warn('operator page: sign-in with a wrong token refused');
      return loginForm(c, 401, 'That is not the admin token.');
    }
    const { cookie } = newSession(deps.config.adminToken);
    deleteCookie(c, LOGIN_CSRF_COOKIE, { path: '/login', secure });
    setCookie(c, SESSION_COOKIE, cookie, { httpOnly: true, sameSite: 'Strict', secure, path: '/', maxAge: sessionTtlS });
    return c.redirect('/', 303);
  });

  app.post('/logout', guarded, (c) => {
    deleteCookie(c, SESSION_COOKIE, { path: '/', secure });
    return c.redirect('/login', 303);
  });

  app.post('/ui/endpoints/:id/replay', guarded, async (c) => {
    const form = await c.req.parseBody();
    const raw = typeof form.since === 'string' ? form.since.trim() : '';
    let since = '';
    if (raw) {
      // datetime-local sends no zone: the form says UTC.
      const t = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(raw) ? Date.parse(`${raw}Z`) : NaN;
      if (Number.isNaN(t)) return back(c, 'bad_time');
      since = `?since=${encodeURIComponent(new Date(t).toISOString())}`;
    }
    const res = await api('POST', `/webhook-endpoints/${encodeURIComponent(c.req.param('id'))}/replay${since}`);
    if (res.status === 202) return back(c, 'replayed', ((await res.json()) as { replayed: number }).replayed);
    return back(c, res.status === 404 ? 'not_found' : 'failed');
  });

  app.post('/ui/endpoints/:id/enable', guarded, async (c) => {
    const res = await api('POST', `/webhook-endpoints/${encodeURIComponent(c.req.param('id'))}/enable`);
    if (res.ok) return back(c, 'enabled');
    if (res.status === 404) {
      const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
      // The route itself missing (an older build) is not the endpoint missing.
      return back(c, body?.error?.message?.startsWith('no route') ? 'enable_unavailable' : 'not_found');
    }
    return back(c, 'failed');
  });

  const jobId = (c: Context) => (/^\d{1,18}$/.test(c.req.param('id') ?? '') ? c.req.param('id')! : null);
  app.post('/ui/jobs/:id/retry', guarded, async (c) => {
    const id = jobId(c);
    if (!id) return back(c, 'not_found');
    const done = await retryFailedJob(deps.db, id);
    return done.ok ? back(c, 'job_retried', id) : back(c, done.reason === 'not_found' ? 'not_found' : 'conflict');
  });
  app.post('/ui/jobs/:id/discard', guarded, async (c) => {
    const id = jobId(c);
    if (!id) return back(c, 'not_found');
    const done = await discardJob(deps.db, id);
    return done.ok ? back(c, 'job_discarded', id) : back(c, done.reason === 'not_found' ? 'not_found' : 'conflict');
  });

  app.post('/ui/files/:id/retry', guarded, async (c) => {
    const raw = c.req.param('id');
    const id = /^\d{1,16}$/.test(raw) && Number.isSafeInteger(Number(raw)) ? Number(raw) : null;
    if (id === null || !(await retryFailedFile(deps.db, id))) return back(c, 'not_found');
    return back(c, 'file_retried', id);
  });

  return app;
}

/** Endpoints and their last attempts through the JSON API; null when it cannot be read. */
async function loadEndpoints(api: (method: string, path: string) => Response | Promise<Response>): Promise<EndpointView[] | null> {
  const res = await api('GET', '/webhook-endpoints');
  if (!res.ok) return null;
  const { endpoints } = (await res.json()) as { endpoints: Omit<EndpointView, 'deliveries'>[] };
  return Promise.all(
    endpoints.slice(0, 50).map(async (e) => {
      const d = await api('GET', `/webhook-endpoints/${encodeURIComponent(e.id)}/deliveries?limit=5`);
      const deliveries = d.ok ? ((await d.json()) as { deliveries: EndpointView['deliveries'] }).deliveries : [];
      return { ...e, deliveries };
    }),
  );
}
