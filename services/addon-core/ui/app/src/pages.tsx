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
interface Bootstrap {
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
  bootstrap: Bootstrap | null;
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

export function Dashboard({ go }: { go: Go }) {
  const [d, error] = useLoad(() => api<DashboardData>('GET', 'ui/dashboard'), []);
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
      <h2>Workspace data</h2>
      <div class="stats">
        <Stat label={'bootstrap ' + (b ? b.state.toLowerCase() : 'not run')} value={b ? b.endpointsDone + '/' + b.endpointsTotal : '–'} onClick={() => go('bootstrap')} />
        {Object.entries(d.entities).map(([k, n]) => (
          <Stat label={k} value={n} onClick={() => go('bootstrap')} />
        ))}
      </div>
      <p class="muted">
        {d.addon.name} {d.addon.version} · installed {when(d.installation.installedAt)} · {d.installation.status.toLowerCase()}
      </p>
    </div>
  );
}

export function Executions({ filter }: { filter: Record<string, string> }) {
  const [status, setStatus] = useState(filter.status || '');
  const list = usePaged<Execution>((before) => 'ui/executions' + query({ status, flow_id: filter.flowId, before }), [status, filter.flowId]);
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
      </div>
      <Failure error={list.error} />
      <table>
        <caption class="sr-only">Flow executions, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Started</th>
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
                <td>{x.eventType}</td>
                <td>
                  <Status value={x.status} />
                </td>
                <td>{x.durationMs !== undefined ? x.durationMs + ' ms' : ''}</td>
                <td>{x.error || ''}</td>
              </tr>
              {open === x.id ? (
                <tr class="detail">
                  <td colSpan={5}>
                    <pre tabIndex={0}>{JSON.stringify(x, null, 2)}</pre>
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

export function Webhooks({ filter }: { filter: Record<string, string> }) {
  const [event, setEvent] = useState(filter.eventType || '');
  const [source, setSource] = useState(filter.source || '');
  const list = usePaged<Webhook>((before) => 'ui/webhooks' + query({ event_type: event, source, before }), [event, source]);
  const [detail, setDetail] = useState<{ id: string; data: Json } | null>(null);
  const show = async (id: string) => setDetail({ id, data: await api('GET', 'ui/webhooks/' + encodeURIComponent(id)) });
  return (
    <div>
      <div class="filters">
        <label for="wh-event">Event type</label>
        <input id="wh-event" placeholder="e.g. NEW_TIME_ENTRY" value={event} onChange={(e) => setEvent((e.currentTarget as HTMLInputElement).value.trim())} />
        <label for="wh-source">Source</label>
        <input id="wh-source" placeholder="clockify, or a custom source" value={source} onChange={(e) => setSource((e.currentTarget as HTMLInputElement).value.trim())} />
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
      {detail ? (
        <section aria-label="Webhook detail">
          <h2>Webhook {detail.id}</h2>
          <pre tabIndex={0}>{JSON.stringify(detail.data, null, 2)}</pre>
        </section>
      ) : null}
    </div>
  );
}

export function Bootstrap({ s }: { s: Session }) {
  const [data, error, reload] = useLoad(() => api<{ bootstrap: Bootstrap | null }>('GET', 'ui/bootstrap'), []);
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
