import type { Child, FC } from 'hono/jsx';
import type { FailedJob } from '../jobs/failed.js';
import type { ConnectionsView, FailedFile, Flow, HourPoint } from './data.js';
import { css } from './style.js';

/** The operator page, rendered on the server: plain HTML forms, no script. */

export interface EndpointView {
  id: string;
  url: string;
  description: string | null;
  disabled: boolean;
  disabled_reason?: string | null;
  health?: { success_rate: number | null; last_success_at: string | null; consecutive_failures: number; disabled_reason: string | null };
  deliveries: { message_id: string; event_type: string; attempt: number; status_code: number | null; error: string | null; duration_ms: number; at: string }[];
}

export interface DashboardProps {
  csrf: string;
  notice?: { text: string; bad: boolean };
  flow: Flow;
  points: HourPoint[];
  connections: ConnectionsView;
  endpoints: EndpointView[] | null;
  failedJobs: FailedJob[];
  failedFiles: FailedFile[];
}

const when = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString().slice(0, 16).replace('T', ' ') + ' UTC' : '—');

const Layout: FC<{ title: string; children?: Child }> = ({ title, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{title}</title>
      <style dangerouslySetInnerHTML={{ __html: css }} />
    </head>
    <body>{children}</body>
  </html>
);

export const LoginPage: FC<{ nonce: string; error?: string }> = ({ nonce, error }) => (
  <Layout title="docrelay — sign in">
    <main>
      <form class="login" method="post" action="/login">
        <h1>docrelay operator</h1>
        {error ? (
          <p class="bad" role="alert">
            {error}
          </p>
        ) : null}
        <input type="hidden" name="_csrf" value={nonce} />
        <label for="token">Admin token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus />
        <button class="primary" type="submit">
          Sign in
        </button>
      </form>
    </main>
  </Layout>
);

export const MessagePage: FC<{ title: string; text: string }> = ({ title, text }) => (
  <Layout title={`docrelay — ${title}`}>
    <main>
      <section class="login" role="alert">
        <h1>{title}</h1>
        <p>{text}</p>
        <p>
          <a href="/">Back to the operator page</a>
        </p>
      </section>
    </main>
  </Layout>
);

const Csrf: FC<{ token: string }> = ({ token }) => <input type="hidden" name="_csrf" value={token} />;

/** A one-button form (CSRF-protected POST); `description` names the action for screen readers. */
const PostButton: FC<{ action: string; csrf: string; label: string; description: string }> = (p) => (
  <form class="inline" method="post" action={p.action}>
    <Csrf token={p.csrf} />
    <button type="submit" aria-label={p.description}>
      {p.label}
    </button>
  </form>
);

const hasRows = (c: Child): boolean => (Array.isArray(c) ? c.some(hasRows) : c != null && c !== false);

/**
 * A data table that scrolls sideways on a narrow screen. Named by the heading `labelledBy`
 * or by a caption for screen readers; with `empty`, that text stands instead of an empty table.
 */
const Table: FC<{ labelledBy?: string; caption?: string; columns: Child[]; empty?: string; children?: Child }> = (p) =>
  p.empty !== undefined && !hasRows(p.children) ? (
    <p class="muted">{p.empty}</p>
  ) : (
    <div class="table">
      <table aria-labelledby={p.labelledBy}>
        {p.caption ? <caption class="sr-only">{p.caption}</caption> : null}
        <thead>
          <tr>
            {p.columns.map((col) => (
              <th scope="col">{col}</th>
            ))}
          </tr>
        </thead>
        <tbody>{p.children}</tbody>
      </table>
    </div>
  );

const series: { key: keyof Flow; label: string; color: string }[] = [
  { key: 'webhooks', label: 'webhooks in', color: '#0969da' },
  { key: 'documents', label: 'documents added', color: '#8250df' },
  { key: 'deliveriesOk', label: 'deliveries ok', color: '#1a7f37' },
  { key: 'deliveriesFailed', label: 'deliveries failed', color: '#cf222e' },
];

/**
 * Four lines over the last 24 hours, in inline SVG (no chart library, no script). The SVG
 * stretches to any width at a fixed height (its strokes do not scale), and its labels are
 * HTML, so they stay readable on a phone.
 */
const Chart: FC<{ points: HourPoint[]; flow: Flow }> = ({ points, flow }) => {
  const w = 1000;
  const h = 100;
  const max = Math.max(1, ...points.flatMap((p) => series.map((s) => p[s.key])));
  const x = (i: number) => (i * w) / Math.max(1, points.length - 1);
  const y = (v: number) => 2 + (h - 4) * (1 - v / max);
  const summary = series.map((s) => `${flow[s.key]} ${s.label}`).join(', ');
  return (
    <figure class="chart">
      <div class="axis">
        <span>{max} per hour</span>
      </div>
      <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-labelledby="chart-title">
        <title id="chart-title">Last 24 hours, per hour: {summary}</title>
        <line x1="0" y1={y(0)} x2={w} y2={y(0)} stroke="currentColor" stroke-opacity="0.3" vector-effect="non-scaling-stroke" />
        <line x1="0" y1={y(max)} x2={w} y2={y(max)} stroke="currentColor" stroke-opacity="0.15" stroke-dasharray="3 3" vector-effect="non-scaling-stroke" />
        {series.map((s) => (
          <polyline
            fill="none"
            stroke={s.color}
            stroke-width="2"
            stroke-linejoin="round"
            vector-effect="non-scaling-stroke"
            points={points.map((p, i) => `${x(i).toFixed(1)},${y(p[s.key]).toFixed(1)}`).join(' ')}
          />
        ))}
      </svg>
      <div class="axis">
        <span>{points.length ? when(points[0].hour).slice(11, 16) : ''}</span>
        <span>{points.length ? when(points[points.length - 1].hour).slice(11) : ''}</span>
      </div>
      <ul class="legend">
        {series.map((s) => (
          <li>
            <span style={`background:${s.color}`} />
            {s.label}
          </li>
        ))}
      </ul>
    </figure>
  );
};

const FlowSection: FC<{ flow: Flow; points: HourPoint[] }> = ({ flow, points }) => {
  const stat = (label: string, value: number, cls = '') => (
    <div>
      <dt>{label}</dt>
      <dd class={cls}>{value}</dd>
    </div>
  );
  return (
    <section class="wide" aria-labelledby="flow">
      <h2 id="flow">Last 24 hours</h2>
      <dl class="stats">
        {stat('Webhooks in', flow.webhooks)}
        {stat('Documents added', flow.documents)}
        {stat('Files ready', flow.filesReady, 'ok')}
        {stat('Files failed', flow.filesFailed, flow.filesFailed ? 'bad' : '')}
        {stat('Deliveries ok', flow.deliveriesOk, 'ok')}
        {stat('Deliveries failed', flow.deliveriesFailed, flow.deliveriesFailed ? 'bad' : '')}
        {stat('Mails sent', flow.mailsSent)}
        {stat('Mails failed', flow.mailsFailed, flow.mailsFailed ? 'bad' : '')}
      </dl>
      <Chart points={points} flow={flow} />
    </section>
  );
};

const ConnectionsSection: FC<{ c: ConnectionsView }> = ({ c }) => (
  <section aria-labelledby="connections">
    <h2 id="connections">Connections</h2>
    {c.byState.length === 0 ? <p class="muted">No connections yet.</p> : null}
    <Table caption="Connections by state" columns={['State', 'Count']}>
      {c.byState.map((s) => (
        <tr>
          <td>{s.state}</td>
          <td class="num">{s.n}</td>
        </tr>
      ))}
    </Table>
    <h3 id="captcha-retrying">Captcha retries due</h3>
    <Table labelledBy="captcha-retrying" columns={['Connection', 'User', 'Attempts', 'Next retry']} empty="None.">
      {c.retrying.map((r) => (
        <tr data-connection={r.id}>
          <td>{r.id}</td>
          <td>{r.userId}</td>
          <td class="num">{r.attempts}</td>
          <td>{when(r.nextRetryAt)}</td>
        </tr>
      ))}
    </Table>
    <h3 id="captcha-gave-up">Gave up after captchas</h3>
    <Table labelledBy="captcha-gave-up" columns={['Connection', 'User', 'Attempts', 'Since']} empty="None.">
      {c.gaveUp.map((r) => (
        <tr data-connection={r.id}>
          <td>{r.id}</td>
          <td>{r.userId}</td>
          <td class="num">{r.attempts}</td>
          <td>{when(r.since)}</td>
        </tr>
      ))}
    </Table>
  </section>
);

/** ok, failing or disabled: from `health` when the API gives it, else from the last attempts. */
export function endpointStatus(e: EndpointView): { label: string; cls: string } {
  if (e.disabled) return { label: `disabled${e.disabled_reason ?? e.health?.disabled_reason ? ` (${e.disabled_reason ?? e.health?.disabled_reason})` : ''}`, cls: 'bad' };
  const last = e.deliveries[0];
  const failures = e.health ? e.health.consecutive_failures : last && !(last.status_code && last.status_code >= 200 && last.status_code < 300) ? 1 : 0;
  if (failures > 0) return { label: e.health ? `failing (${failures} in a row)` : 'failing', cls: 'bad' };
  return last ? { label: 'ok', cls: 'ok' } : { label: 'no deliveries yet', cls: 'muted' };
}

const EndpointsSection: FC<{ endpoints: EndpointView[] | null; csrf: string }> = ({ endpoints, csrf }) => (
  <section class="wide" aria-labelledby="endpoints">
    <h2 id="endpoints">Webhook endpoints</h2>
    {endpoints === null ? <p class="bad">The endpoint list could not be read.</p> : null}
    {endpoints?.length === 0 ? <p class="muted">No endpoints registered.</p> : null}
    {(endpoints ?? []).map((e) => {
      const status = endpointStatus(e);
      return (
        <article class="endpoint" data-endpoint={e.id} aria-labelledby={`ep-${e.id}`}>
          <h3 id={`ep-${e.id}`}>
            <span class="url">{e.url}</span>{' '}
            <span class={`badge ${status.cls}`} data-status>
              {status.label}
            </span>
          </h3>
          <p class="muted">
            {e.id}
            {e.description ? ` — ${e.description}` : ''}
            {e.health
              ? ` — success rate ${e.health.success_rate === null ? '—' : `${Math.round(e.health.success_rate * 100)} %`}, last success ${when(e.health.last_success_at)}`
              : ''}
          </p>
          <form class="inline" method="post" action={`/ui/endpoints/${e.id}/replay`}>
            <Csrf token={csrf} />
            <label for={`since-${e.id}`}>Failed messages since (UTC, optional)</label>
            <input id={`since-${e.id}`} name="since" type="datetime-local" />
            <button type="submit">Replay</button>
          </form>
          {e.disabled ? (
            <form class="inline" method="post" action={`/ui/endpoints/${e.id}/enable`}>
              <Csrf token={csrf} />
              <button type="submit">Enable</button>
            </form>
          ) : null}
          <Table caption={`Last delivery attempts to ${e.url}`} columns={['At', 'Event', 'Attempt', 'Result', 'Time']} empty="No delivery attempts yet.">
            {e.deliveries.map((d) => {
              const ok = d.status_code !== null && d.status_code >= 200 && d.status_code < 300;
              return (
                <tr data-delivery={d.message_id}>
                  <td>{when(d.at)}</td>
                  <td>{d.event_type}</td>
                  <td class="num">{d.attempt}</td>
                  <td class={ok ? 'ok' : 'bad err'}>{ok ? `HTTP ${d.status_code}` : (d.error ?? `HTTP ${d.status_code}`)}</td>
                  <td class="num">{d.duration_ms} ms</td>
                </tr>
              );
            })}
          </Table>
        </article>
      );
    })}
  </section>
);

const FailedSection: FC<{ jobs: FailedJob[]; files: FailedFile[]; csrf: string }> = ({ jobs, files, csrf }) => (
  <section aria-labelledby="failed">
    <h2 id="failed">Failed files and jobs</h2>
    <h3 id="failed-files">Files</h3>
    <Table labelledBy="failed-files" columns={['Document', 'User', 'Error', 'At', <span class="sr-only">Action</span>]} empty="None.">
      {files.map((f) => (
        <tr data-file={f.documentId}>
          <td>
            {f.documentId}
            {f.name ? ` — ${f.name}` : ''}
          </td>
          <td>{f.userId}</td>
          <td class="err">{f.error ?? '—'}</td>
          <td>{when(f.at)}</td>
          <td>
            <PostButton action={`/ui/files/${f.documentId}/retry`} csrf={csrf} label="Retry" description={`Retry the file of document ${f.documentId}`} />
          </td>
        </tr>
      ))}
    </Table>
    <h3 id="failed-jobs">Jobs</h3>
    <Table labelledBy="failed-jobs" columns={['Job', 'Task', 'Last error', 'Failed at', <span class="sr-only">Actions</span>]} empty="None.">
      {jobs.map((j) => (
        <tr data-job={j.id}>
          <td>{j.id}</td>
          <td>
            {j.task}
            <br />
            <span class="muted">{j.attempts} attempts</span>
          </td>
          <td class="err">{j.last_error ?? '—'}</td>
          <td>{when(j.failed_at)}</td>
          <td class="actions">
            <PostButton action={`/ui/jobs/${j.id}/retry`} csrf={csrf} label="Retry" description={`Retry job ${j.id}`} />
            <PostButton action={`/ui/jobs/${j.id}/discard`} csrf={csrf} label="Discard" description={`Discard job ${j.id}`} />
          </td>
        </tr>
      ))}
    </Table>
  </section>
);

export const Dashboard: FC<DashboardProps> = (p) => (
  <Layout title="docrelay — operator">
    <header>
      <h1>docrelay operator</h1>
      <form class="inline" method="post" action="/logout">
        <Csrf token={p.csrf} />
        <a href="/">Refresh</a>
        <button type="submit">Sign out</button>
      </form>
    </header>
    <main>
      {p.notice ? (
        <p class={`notice${p.notice.bad ? ' bad' : ''}`} role="status">
          {p.notice.text}
        </p>
      ) : null}
      <FlowSection flow={p.flow} points={p.points} />
      <ConnectionsSection c={p.connections} />
      <FailedSection jobs={p.failedJobs} files={p.failedFiles} csrf={p.csrf} />
      <EndpointsSection endpoints={p.endpoints} csrf={p.csrf} />
    </main>
  </Layout>
);
