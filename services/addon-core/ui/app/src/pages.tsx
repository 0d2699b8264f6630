// The console's other sections: dashboard, flows, executions, webhook log, workspace data and
// custom webhooks. Lists page with the API's cursor ("Load more"); details open in place.
import { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Session, api, isAdmin, query } from './api';
import type { Go } from './main';

type Json = unknown;
interface Page<T> {
  items: T[];
  next?: string | null;
}
/** A bootstrap run (the workspace data fetch), as `ui/bootstrap` and the settings page show it. */
export interface Run {
  state: string;
  endpointsDone: number;
  endpointsTotal: number;
  pagesFetched: number;
  entitiesStored: number;
  errors: string[];
  finishedAt?: string | null;
}
interface DashboardData {
  workspaceId: string;
  addon: { name: string; version: string };
  installation: { status: string; installedAt: string };
  webhooksLast24h: number;
  executionsLast24h: Record<string, number>;
  flows: number;
  bootstrap: Run | null;
  entities: Record<string, number>;
}
interface Execution {
  id: string;
  flowId: string;
  webhookId: string;
  eventType: string;
  status: string;
  steps: Json;
  error?: string | null;
  startedAt: string;
  finishedAt?: string | null;
  durationMs?: number;
  attempts?: number;
}
interface Webhook {
  id: string;
  source: string;
  eventType: string;
  entityId?: string | null;
  status: string;
  receivedAt: string;
  body?: Json;
}

function useLoad<T>(load: () => Promise<T>, deps: unknown[]): [T | null, string | null, () => void] {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setError(null);
    load()
      .then((d) => live && setData(d))
      .catch((e) => live && setError(String(e.message || e)));
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return [data, error, () => setTick(tick + 1)];
}

function Failure({ error }: { error: string | null }) {
  return error ? (
    <p class="error" role="alert">
      {error}
    </p>
  ) : null;
}

function when(t?: string | null): string {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d.getTime()) ? t : d.toLocaleString();
}

function Status({ value }: { value: string }) {
  return <span class={'pill p-' + value.toLowerCase()}>{value}</span>;
}

/** Pages through a list with the API's cursor. */
function usePaged<T>(path: (before?: string) => string, deps: unknown[]) {
  const [items, setItems] = useState<T[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const load = async (before?: string) => {
    setLoading(true);
    try {
      const page = await api<Page<T>>('GET', path(before));
      setItems((old) => (before ? [...old, ...page.items] : page.items));
      setNext(page.next || null);
      setError(null);
    } catch (e) {
      setError(String((e as Error).message || e));
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    load();
  }, deps);
  return { items, next, error, loading, more: () => next && load(next), reload: () => load() };
}

function More({ next, loading, more }: { next: string | null; loading: boolean; more: () => void }) {
  return next ? (
    <button class="more" onClick={more} disabled={loading}>
      {loading ? 'Loading…' : 'Load more'}
    </button>
  ) : null;
}

function Stat({ label, value, onClick }: { label: string; value: ComponentChildren; onClick?: () => void }) {
  const inner = (
    <>
      <span class="value">{value}</span>
      <span class="label">{label}</span>
    </>
  );
  return onClick ? (
    <button class="stat" onClick={onClick}>
      {inner}
    </button>
  ) : (
    <div class="stat">{inner}</div>
  );
}

interface Activity {
  rateLimitWaits: { waits: number; throttled: number; waitMs: number };
  hours: { hour: string; deliveries: number; runs: Record<string, number>; rateLimitWaits?: number }[];
  flows: { flowId: string; name: string; runs: number; failed: number; averageMs?: number | null; slowestMs?: number | null }[];
}

/** Bars per hour, stacked by series; the numbers are in a table under it too. */
function Chart(props: { title: string; hours: Activity['hours']; series: { key: string; label: string; cls: string; of: (h: Activity['hours'][0]) => number }[] }) {
  const { hours, series } = props;
  const totals = hours.map((h) => series.reduce((n, s) => n + s.of(h), 0));
  const max = Math.max(1, ...totals);
  const w = 640;
  const hgt = 120;
  const bw = w / Math.max(1, hours.length);
  const sum = totals.reduce((a, b) => a + b, 0);
  const label = (h: string) => new Date(h).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const id = 'chart-' + props.title.replace(/\W+/g, '-').toLowerCase();
  return (
    <figure class="chart" aria-labelledby={id}>
      <figcaption id={id}>
        {props.title}: {sum} in the last {hours.length} hours
        {series.length > 1 ? (
          <span class="legend">
            {series.map((s) => (
              <span>
                <i class={s.cls} aria-hidden="true" /> {s.label}
              </span>
            ))}
          </span>
        ) : null}
      </figcaption>
      <svg viewBox={'0 0 ' + w + ' ' + (hgt + 18)} role="img" aria-label={props.title + ' per hour, ' + sum + ' in all; the table below has the numbers'} preserveAspectRatio="none">
        {hours.map((h, i) => {
          let y = hgt;
          return (
            <g>
              {series.map((s) => {
                const v = s.of(h);
                const bh = (v / max) * (hgt - 4);
                y -= bh;
                return v ? <rect class={s.cls} x={i * bw + 1} y={y} width={Math.max(1, bw - 2)} height={bh}><title>{label(h.hour) + ': ' + v + ' ' + s.label}</title></rect> : null;
              })}
              {i % 6 === 0 ? (
                <text x={i * bw + 1} y={hgt + 14} class="axis">
                  {label(h.hour)}
                </text>
              ) : null}
            </g>
          );
        })}
        <line x1="0" y1={hgt} x2={w} y2={hgt} class="baseline" />
      </svg>
      <details>
        <summary>The numbers</summary>
        <table>
          <thead>
            <tr>
              <th scope="col">Hour</th>
              {series.map((s) => (
                <th scope="col">{s.label}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {hours
              .filter((_, i) => totals[i] > 0)
              .map((h) => (
                <tr>
                  <td>{new Date(h.hour).toLocaleString()}</td>
                  {series.map((s) => (
                    <td>{s.of(h)}</td>
                  ))}
                </tr>
              ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}

function ActivityView({ go }: { go: Go }) {
  const [a, error] = useLoad(() => api<Activity>('GET', 'ui/dashboard/activity?hours=24'), []);
  if (error) return <Failure error={error} />;
  if (!a) return null;
  const other = (h: Activity['hours'][0]) => Object.entries(h.runs).reduce((n, [k, v]) => (k === 'SUCCEEDED' || k === 'FAILED' ? n : n + v), 0);
  const failing = a.flows.filter((f) => f.failed > 0).sort((x, y) => y.failed - x.failed).slice(0, 5);
  const slowest = a.flows.filter((f) => f.averageMs !== null && f.averageMs !== undefined).sort((x, y) => (y.averageMs || 0) - (x.averageMs || 0)).slice(0, 5);
  const w = a.rateLimitWaits;
  return (
    <div class="activity">
      <div class="stats waits">
        <Stat label={'calls waited for rate limits (' + w.throttled + ' throttled by Clockify)'} value={w.waits} onClick={() => go('executions')} />
        <Stat label="spent waiting" value={w.waitMs >= 1000 ? (w.waitMs / 1000).toFixed(1) + ' s' : w.waitMs + ' ms'} />
      </div>
      <div class="charts">
        <Chart title="Webhooks received" hours={a.hours} series={[{ key: 'd', label: 'received', cls: 'bar-info', of: (h) => h.deliveries }]} />
        <Chart
          title="Flow runs"
          hours={a.hours}
          series={[
            { key: 's', label: 'succeeded', cls: 'bar-ok', of: (h) => h.runs.SUCCEEDED || 0 },
            { key: 'f', label: 'failed', cls: 'bar-fail', of: (h) => h.runs.FAILED || 0 },
            { key: 'o', label: 'other', cls: 'bar-other', of: other },
          ]}
        />
      </div>
      <div class="grid2 tables">
        <section aria-labelledby="failing-title">
          <h2 id="failing-title">Failing flows</h2>
          {failing.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">Flow</th>
                  <th scope="col">Failed</th>
                  <th scope="col">of runs</th>
                </tr>
              </thead>
              <tbody>
                {failing.map((f) => (
                  <tr>
                    <td>{f.name}</td>
                    <td>
                      <button class="link" onClick={() => go('executions', { flowId: f.flowId, status: 'FAILED' })}>
                        {f.failed}
                      </button>
                    </td>
                    <td>{f.runs}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p class="muted">No flow failed in the last 24 hours.</p>
          )}
        </section>
        <section aria-labelledby="slowest-title">
          <h2 id="slowest-title">Slowest flows</h2>
          {slowest.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">Flow</th>
                  <th scope="col">Average</th>
                  <th scope="col">Slowest</th>
                </tr>
              </thead>
              <tbody>
                {slowest.map((f) => (
                  <tr>
                    <td>
                      <button class="link" onClick={() => go('executions', { flowId: f.flowId })}>
                        {f.name}
                      </button>
                    </td>
                    <td>{f.averageMs} ms</td>
                    <td>{f.slowestMs} ms</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p class="muted">No timed runs yet.</p>
          )}
        </section>
      </div>
    </div>
  );
}

/** A performance mark, once per page load (the console's load-time benchmark reads them). */
export function markOnce(name: string) {
  if (typeof performance !== 'undefined' && !performance.getEntriesByName(name).length) performance.mark(name);
}

export function Dashboard({ go }: { go: Go }) {
  const [d, error] = useLoad(() => api<DashboardData>('GET', 'ui/dashboard'), []);
  useEffect(() => {
    if (d) markOnce('console-ready');
  }, [d]);
  if (error) return <Failure error={error} />;
  if (!d) return <p role="status">Loading…</p>;
  const ex = d.executionsLast24h;
  const total = Object.values(ex).reduce((a, b) => a + b, 0);
  const failed = ex.FAILED || 0;
  const b = d.bootstrap;
  return (
    <div>
      <h2>Last 24 hours</h2>
      <div class="stats">
        <Stat label="webhooks received" value={d.webhooksLast24h} onClick={() => go('webhooks')} />
        <Stat label="flow runs" value={total} onClick={() => go('executions')} />
        <Stat label="succeeded" value={ex.SUCCEEDED || 0} onClick={() => go('executions', { status: 'SUCCEEDED' })} />
        <Stat label="failed" value={failed} onClick={() => go('executions', { status: 'FAILED' })} />
        <Stat label="success rate" value={total ? Math.round((100 * (ex.SUCCEEDED || 0)) / total) + '%' : '–'} />
        <Stat label="flows" value={d.flows} onClick={() => go('flows')} />
      </div>
      <ActivityView go={go} />
      <h2>Workspace data</h2>
      <div class="stats">
        <Stat label={'bootstrap ' + (b ? b.state.toLowerCase() : 'not run')} value={b ? b.endpointsDone + '/' + b.endpointsTotal : '–'} onClick={() => go('bootstrap')} />
        {Object.entries(d.entities).map(([k, n]) => (
          <Stat label={k} value={n} onClick={() => go('bootstrap', { type: k })} />
        ))}
      </div>
      <p class="muted">
        {d.addon.name} {d.addon.version} · installed {when(d.installation.installedAt)} · {d.installation.status.toLowerCase()}
      </p>
    </div>
  );
}

interface Step {
  action: number;
  name: string;
  type: string;
  method?: string;
  path?: string;
  url?: string;
  status?: number;
  attempts?: number;
  durationMs?: number;
  response?: string;
  requestHeaders?: Record<string, string> | [string, string][];
  error?: string;
}

/** An execution step by step: each request, its answer, and where it stopped. */
function Timeline({ x, admin, onRerun }: { x: Execution; admin: boolean; onRerun: () => void }) {
  const steps = (Array.isArray(x.steps) ? x.steps : []) as Step[];
  const [problem, setProblem] = useState<string | null>(null);
  const [queued, setQueued] = useState(false);
  const rerun = async () => {
    try {
      await api('POST', 'ui/executions/' + encodeURIComponent(x.id) + '/rerun');
      setQueued(true);
      setTimeout(onRerun, 1000);
    } catch (e) {
      setProblem(String((e as Error).message || e));
    }
  };
  return (
    <div class="timeline">
      <p class="muted">
        Run {x.id} · webhook <code>{x.webhookId}</code> · {x.attempts || 1} attempt{(x.attempts || 1) > 1 ? 's' : ''}
        {x.durationMs !== undefined ? ' · ' + x.durationMs + ' ms' : ''}
      </p>
      <ol>
        {steps.map((st) => {
          const ok = st.status !== undefined && st.status < 400 && !st.error;
          const headers = st.requestHeaders ? (Array.isArray(st.requestHeaders) ? st.requestHeaders : Object.entries(st.requestHeaders)) : [];
          return (
            <li class={ok ? 'step ok-step' : 'step fail-step'}>
              <p>
                <strong>{st.name}</strong> <span class={'method m-' + (st.method || 'get').toLowerCase()}>{st.method || '?'}</span> <code>{st.path || st.url || ''}</code>{' '}
                {st.status !== undefined ? <span class={'status s' + String(st.status)[0]}>{st.status}</span> : null}
                {st.durationMs !== undefined ? ' in ' + st.durationMs + ' ms' : ''}
                {st.attempts && st.attempts > 1 ? ', ' + st.attempts + ' attempts' : ''}
              </p>
              {headers.length ? <pre aria-label="Request headers">{headers.map(([k, v]) => k + ': ' + v).join('\n')}</pre> : null}
              {st.error ? <p class="error-text">{st.error}</p> : null}
              {st.response ? <pre aria-label="Response excerpt">{st.response}</pre> : null}
            </li>
          );
        })}
        {x.status === 'FAILED' && x.error && !steps.some((st) => st.error) ? <li class="step fail-step">{x.error}</li> : null}
      </ol>
      {x.status === 'FAILED' ? (
        <div class="actions">
          <button class="primary" disabled={!admin || queued} onClick={rerun}>
            {queued ? 'Queued again' : 'Run again from the failed step'}
          </button>
          {!admin ? <span class="muted">Only workspace owners and admins run flows again.</span> : null}
        </div>
      ) : null}
      {problem ? (
        <p class="error" role="alert">
          {problem}
        </p>
      ) : null}
    </div>
  );
}

const WINDOWS: [string, string][] = [
  ['', 'any time'],
  ['1', 'the last hour'],
  ['24', 'the last 24 hours'],
  ['168', 'the last 7 days'],
];
const sinceOf = (hours: string) => (hours ? new Date(Date.now() - Number(hours) * 3_600_000).toISOString() : undefined);

function TimeFilter({ id, value, onChange }: { id: string; value: string; onChange: (v: string) => void }) {
  return (
    <>
      <label for={id}>Time</label>
      <select id={id} value={value} onChange={(e) => onChange((e.currentTarget as HTMLSelectElement).value)}>
        {WINDOWS.map(([v, l]) => (
          <option value={v}>{l}</option>
        ))}
      </select>
    </>
  );
}

export function Executions({ s, filter }: { s: Session; filter: Record<string, string> }) {
  const admin = isAdmin(s);
  const [status, setStatus] = useState(filter.status || '');
  const [hours, setHours] = useState('');
  const list = usePaged<Execution>((before) => 'ui/executions' + query({ status, flow_id: filter.flowId, since: sinceOf(hours), before }), [status, filter.flowId, hours]);
  const [flows] = useLoad(() => api<{ items: { id: string; name: string }[] }>('GET', 'ui/flows'), []);
  const flowName = (id: string) => (flows ? flows.items.find((f) => f.id === id)?.name : undefined) || '(deleted flow)';
  const [open, setOpen] = useState<string | null>(null);
  return (
    <div>
      <div class="filters">
        <label for="ex-status">Status</label>
        <select id="ex-status" value={status} onChange={(e) => setStatus((e.currentTarget as HTMLSelectElement).value)}>
          <option value="">all</option>
          {['SUCCEEDED', 'FAILED', 'RUNNING', 'PENDING', 'RETRY', 'SKIPPED'].map((s) => (
            <option>{s}</option>
          ))}
        </select>
        <TimeFilter id="ex-time" value={hours} onChange={setHours} />
        {filter.flowId ? <span class="badge">one flow</span> : null}
      </div>
      <Failure error={list.error} />
      <table>
        <caption class="sr-only">Flow executions, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">Flow</th>
            <th scope="col">Event</th>
            <th scope="col">Status</th>
            <th scope="col">Time</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {list.items.map((x) => (
            <>
              <tr>
                <td>
                  <button class="link" aria-expanded={open === x.id} onClick={() => setOpen(open === x.id ? null : x.id)}>
                    {when(x.startedAt)}
                  </button>
                </td>
                <td>{flowName(x.flowId)}</td>
                <td>{x.eventType}</td>
                <td>
                  <Status value={x.status} />
                </td>
                <td>{x.durationMs !== undefined ? x.durationMs + ' ms' : ''}</td>
                <td>{x.error || ''}</td>
              </tr>
              {open === x.id ? (
                <tr class="detail">
                  <td colSpan={6}>
                    <Timeline x={x} admin={admin} onRerun={list.reload} />
                  </td>
                </tr>
              ) : null}
            </>
          ))}
        </tbody>
      </table>
      {!list.items.length && !list.loading ? <p class="muted">No executions{status ? ' with status ' + status : ''}.</p> : null}
      <More next={list.next} loading={list.loading} more={list.more} />
    </div>
  );
}

function WebhookDetail({ id, data }: { id: string; data: { webhook: Webhook; executions: Execution[] } }) {
  const w = data.webhook;
  const [copied, setCopied] = useState(false);
  const text = JSON.stringify(w.body, null, 2);
  return (
    <section aria-labelledby="wh-detail-title" class="payload">
      <h2 id="wh-detail-title">
        {w.eventType} from {w.source}
      </h2>
      <p class="muted">
        Received {when(w.receivedAt)} · <code>{id}</code> · <Status value={w.status} />
      </p>
      <div class="actions">
        <button
          onClick={() =>
            navigator.clipboard
              ?.writeText(text)
              .then(() => setCopied(true))
              .catch(() => setCopied(false))
          }
        >
          {copied ? 'Copied' : 'Copy payload'}
        </button>
      </div>
      <pre tabIndex={0} aria-label="Payload">
        {text}
      </pre>
      <h3>Flow runs for this delivery</h3>
      {data.executions.length ? (
        <ul>
          {data.executions.map((x) => (
            <li>
              <Status value={x.status} /> {x.eventType} · {when(x.startedAt)} {x.error ? '· ' + x.error : ''}
            </li>
          ))}
        </ul>
      ) : (
        <p class="muted">No flow ran for it.</p>
      )}
    </section>
  );
}

export function Webhooks({ filter }: { filter: Record<string, string> }) {
  const [event, setEvent] = useState(filter.eventType || '');
  const [source, setSource] = useState(filter.source || '');
  const [hours, setHours] = useState('');
  const list = usePaged<Webhook>((before) => 'ui/webhooks' + query({ event_type: event, source, since: sinceOf(hours), before }), [event, source, hours]);
  const [detail, setDetail] = useState<{ id: string; data: Json } | null>(null);
  const show = async (id: string) => setDetail({ id, data: await api('GET', 'ui/webhooks/' + encodeURIComponent(id)) });
  return (
    <div>
      <div class="filters">
        <label for="wh-event">Event type</label>
        <input id="wh-event" placeholder="e.g. NEW_TIME_ENTRY" value={event} onChange={(e) => setEvent((e.currentTarget as HTMLInputElement).value.trim())} />
        <label for="wh-source">Source</label>
        <input id="wh-source" placeholder="clockify, or a custom source" value={source} onChange={(e) => setSource((e.currentTarget as HTMLInputElement).value.trim())} />
        <TimeFilter id="wh-time" value={hours} onChange={setHours} />
      </div>
      <Failure error={list.error} />
      <table>
        <caption class="sr-only">Webhooks received, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Received</th>
            <th scope="col">Source</th>
            <th scope="col">Event</th>
            <th scope="col">Entity</th>
            <th scope="col">Status</th>
          </tr>
        </thead>
        <tbody>
          {list.items.map((w) => (
            <tr>
              <td>
                <button class="link" onClick={() => show(w.id)}>
                  {when(w.receivedAt)}
                </button>
              </td>
              <td>{w.source}</td>
              <td>{w.eventType}</td>
              <td>{w.entityId || ''}</td>
              <td>
                <Status value={w.status} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!list.items.length && !list.loading ? <p class="muted">No webhooks received{event ? ' for ' + event : ''}.</p> : null}
      <More next={list.next} loading={list.loading} more={list.more} />
      {detail ? <WebhookDetail id={detail.id} data={detail.data as { webhook: Webhook; executions: Execution[] }} /> : null}
    </div>
  );
}

interface Entity {
  entityType: string;
  id: string;
  body: Record<string, unknown>;
  fetchedAt: string;
}

/** The entities bootstrap keeps, by type: what the dashboard's counts stand for. */
function Entities({ initial }: { initial?: string }) {
  const [types] = useLoad(() => api<{ types: Record<string, number> }>('GET', 'ui/entities'), []);
  const [type, setType] = useState(initial || '');
  const [items, setItems] = useState<Entity[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const load = async (after?: string) => {
    if (!type) return;
    const page = await api<Page<Entity>>('GET', 'ui/entities' + query({ type, after }));
    setItems((old) => (after ? [...old, ...page.items] : page.items));
    setNext(page.next || null);
  };
  useEffect(() => {
    setItems([]);
    load().catch(() => setItems([]));
  }, [type]);
  const label = (e: Entity) => String(e.body.name || e.body.email || e.body.description || e.id);
  return (
    <section aria-labelledby="entities-title">
      <h2 id="entities-title">Entities kept</h2>
      <div class="filters">
        <label for="entity-type">Type</label>
        <select id="entity-type" value={type} onChange={(e) => setType((e.currentTarget as HTMLSelectElement).value)}>
          <option value="">choose…</option>
          {Object.entries(types ? types.types : {}).map(([t, n]) => (
            <option value={t}>
              {t} ({n})
            </option>
          ))}
        </select>
      </div>
      {type ? (
        <ul class="entities">
          {items.map((e) => (
            <li>
              <button class="link" aria-expanded={open === e.id} onClick={() => setOpen(open === e.id ? null : e.id)}>
                {label(e)}
              </button>{' '}
              <code class="muted">{e.id}</code>
              {open === e.id ? <pre tabIndex={0}>{JSON.stringify(e.body, null, 2)}</pre> : null}
            </li>
          ))}
        </ul>
      ) : null}
      {type && !items.length ? <p class="muted">None kept.</p> : null}
      <More next={next} loading={false} more={() => next && load(next)} />
    </section>
  );
}

export function Bootstrap({ s, filter }: { s: Session; filter: Record<string, string> }) {
  const [data, error, reload] = useLoad(() => api<{ bootstrap: Run | null }>('GET', 'ui/bootstrap'), []);
  const [problem, setProblem] = useState<string | null>(null);
  const b = data && data.bootstrap;
  useEffect(() => {
    if (!b || b.state === 'COMPLETE' || b.state === 'FAILED') return;
    const t = setTimeout(reload, 1500);
    return () => clearTimeout(t);
  }, [b]);
  const start = async () => {
    try {
      await api('POST', 'ui/bootstrap');
      reload();
    } catch (e) {
      setProblem(String((e as Error).message || e));
    }
  };
  return (
    <div>
      <Failure error={error || problem} />
      {b ? (
        <>
          <p role="status" aria-live="polite">
            {b.state.toLowerCase()}: {b.endpointsDone} of {b.endpointsTotal} endpoints, {b.pagesFetched} pages, {b.entitiesStored} entities
            {b.finishedAt ? ' · finished ' + when(b.finishedAt) : ''}
          </p>
          <progress max={b.endpointsTotal || 1} value={b.endpointsDone} aria-label="Bootstrap progress" />
          {b.errors.length ? (
            <ul class="error">
              {b.errors.map((e) => (
                <li>{e}</li>
              ))}
            </ul>
          ) : null}
        </>
      ) : (
        <p class="muted">The workspace’s data has not been fetched yet.</p>
      )}
      <div class="actions">
        <button class="primary" onClick={start} disabled={!isAdmin(s)}>
          Fetch workspace data now
        </button>
      </div>
      <Entities initial={filter.type} />
    </div>
  );
}

export function Sources({ s }: { s: Session }) {
  const [source, setSource] = useState('');
  const [info, setInfo] = useState<Record<string, Json> | null>(null);
  const [rules, setRules] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const fail = (e: unknown) => setProblem(String((e as Error).message || e));
  const show = () =>
    api<Record<string, Json>>('GET', 'ui/custom-webhooks' + query({ source }))
      .then(setInfo)
      .catch(fail);
  useEffect(() => {
    api<{ rules: string[] }>('GET', 'ui/http-allowlist')
      .then((r) => setRules(r.rules.join('\n')))
      .catch(fail);
  }, []);
  const admin = isAdmin(s);
  return (
    <div>
      <Failure error={problem} />
      <p>
        Send events from any system, signed as <a href="https://www.standardwebhooks.com/" target="_blank" rel="noopener">Standard Webhooks</a> with the source’s signing secret.
      </p>
      <div class="filters">
        <label for="cw-source">Source</label>
        <input id="cw-source" placeholder="e.g. ci" maxLength={64} value={source} onInput={(e) => setSource((e.currentTarget as HTMLInputElement).value.trim())} />
        <button onClick={show} disabled={!admin}>
          Show signing secret
        </button>
        <button
          onClick={() => {
            if (confirm('Senders must switch to the new secret; the old one keeps working for a grace period. Rotate?'))
              api<Record<string, Json>>('POST', 'ui/custom-webhooks/rotate').then(setInfo).catch(fail);
          }}
          disabled={!admin}
        >
          Rotate secret…
        </button>
      </div>
      {info ? <pre tabIndex={0}>{JSON.stringify(info, null, 2)}</pre> : null}
      <h2>Hosts flows may call (GENERIC_HTTP)</h2>
      <label for="al-rules">One host rule per line</label>
      <textarea id="al-rules" rows={6} value={rules} onInput={(e) => setRules((e.currentTarget as HTMLTextAreaElement).value)} />
      <div class="actions">
        <button
          class="primary"
          disabled={!admin}
          onClick={() =>
            api<{ rules: string[] }>('PUT', 'ui/http-allowlist', { rules: rules.split('\n').map((r) => r.trim()).filter(Boolean) })
              .then((r) => setRules(r.rules.join('\n')))
              .catch(fail)
          }
        >
          Save hosts
        </button>
      </div>
    </div>
  );
}
