// The API explorer: every operation of Clockify's API, grouped by tag and searchable, each with
// a form built from its OpenAPI schema. Writes need an admin and a confirmation; answers are
// shown with their status and time; the last calls are kept per user in this browser.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, Session, api, isAdmin } from './api';
import { markOnce } from './pages';
import { Field, Json, JsonField, Schema, Schemas } from './schema-form';

interface Param {
  name: string;
  in: 'path' | 'query';
  required: boolean;
  description?: string;
  schema: Schema;
  example?: Json;
}
interface Operation {
  id: string;
  tag: string;
  method: string;
  path: string;
  api: 'api' | 'reports' | 'pto';
  summary: string;
  description?: string;
  deprecated?: boolean;
  write: boolean;
  paginated?: boolean;
  params: Param[];
  body?: { contentType: string; required: boolean; schema: Schema };
}
interface Catalog {
  operations: Operation[];
  schemas: Schemas;
}
interface Answer {
  operationId: string;
  method: string;
  path: string;
  status: number;
  attempts: number;
  durationMs: number;
  body: Json;
}
interface Recent {
  operationId: string;
  params: Record<string, Json>;
  query: Record<string, Json>;
  body?: Json;
  status: number | string;
  at: string;
}

const RECENT_MAX = 20;
let catalogOnce: Promise<Catalog> | null = null;

function recentKey(s: Session): string {
  return 'clockify-console.recent.' + (s.claims.workspaceId || '') + '.' + (s.claims.user || '');
}

function loadRecent(s: Session): Recent[] {
  try {
    return JSON.parse(localStorage.getItem(recentKey(s)) || '[]') as Recent[];
  } catch {
    return [];
  }
}

function matches(o: Operation, words: string[]): boolean {
  const hay = (o.id + ' ' + o.tag + ' ' + o.method + ' ' + o.path + ' ' + o.summary).toLowerCase();
  return words.every((w) => hay.includes(w));
}

export function Explorer({ s }: { s: Session }) {
  const [catalog, setCatalog] = useState<Catalog | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [search, setSearch] = useState('');
  const [selected, setSelected] = useState<string | null>(null);
  const [recent, setRecent] = useState<Recent[]>(() => loadRecent(s));

  useEffect(() => {
    catalogOnce = catalogOnce || api<Catalog>('GET', 'ui/explorer/operations');
    catalogOnce
      .then((c) => {
        setCatalog(c);
        requestAnimationFrame(() => markOnce('explorer-ready'));
      })
      .catch((e) => {
      catalogOnce = null;
      setError(String(e.message || e));
    });
  }, []);

  const groups = useMemo(() => {
    const words = search.toLowerCase().split(/\s+/).filter(Boolean);
    const out = new Map<string, Operation[]>();
    for (const o of catalog ? catalog.operations : []) {
      if (!matches(o, words)) continue;
      const list = out.get(o.tag) || [];
      list.push(o);
      out.set(o.tag, list);
    }
    return out;
  }, [catalog, search]);
  const count = Array.from(groups.values()).reduce((n, l) => n + l.length, 0);
  const op = catalog && selected ? catalog.operations.find((o) => o.id === selected) || null : null;
  const [prefill, setPrefill] = useState<Recent | null>(null);

  const remember = (r: Recent) => {
    const next = [r, ...recent.filter((x) => JSON.stringify({ ...x, at: '', status: '' }) !== JSON.stringify({ ...r, at: '', status: '' }))].slice(0, RECENT_MAX);
    setRecent(next);
    try {
      localStorage.setItem(recentKey(s), JSON.stringify(next));
    } catch {
      /* storage full or blocked: the list stays for this visit */
    }
  };

  if (error) return <p class="error" role="alert">The catalogue could not be loaded: {error}</p>;
  if (!catalog) return <p role="status">Loading Clockify’s API…</p>;
  return (
    <div class="explorer">
      <aside class="catalogue" aria-label="Operations">
        <label for="op-search">Search {catalog.operations.length} operations</label>
        <input id="op-search" type="search" placeholder="e.g. tags, POST time entry, invoice" value={search} onInput={(e) => setSearch((e.currentTarget as HTMLInputElement).value)} />
        <p class="muted" role="status" aria-live="polite">
          {count} of {catalog.operations.length}
        </p>
        {Array.from(groups.entries()).map(([tag, ops]) => (
          <details open={search.trim() !== '' || (op !== null && op.tag === tag)}>
            <summary>
              {tag} <span class="muted">({ops.length})</span>
            </summary>
            <ul>
              {ops.map((o) => (
                <li>
                  <button
                    class={'op' + (o.id === selected ? ' current' : '')}
                    aria-current={o.id === selected ? 'true' : undefined}
                    onClick={() => {
                      setPrefill(null);
                      setSelected(o.id);
                    }}
                  >
                    <span class={'method m-' + o.method.toLowerCase()}>{o.method}</span> {o.summary || o.id}
                    {o.deprecated ? <span class="badge">deprecated</span> : null}
                  </button>
                </li>
              ))}
            </ul>
          </details>
        ))}
        {recent.length ? (
          <section aria-label="Recent calls" class="recent">
            <h2>Recent calls</h2>
            <ul>
              {recent.map((r) => {
                const o = catalog.operations.find((x) => x.id === r.operationId);
                return o ? (
                  <li>
                    <button
                      class="op"
                      onClick={() => {
                        setSelected(o.id);
                        setPrefill(r);
                      }}
                    >
                      <span class={'method m-' + o.method.toLowerCase()}>{o.method}</span> {o.summary || o.id} <span class="muted">→ {r.status}</span>
                    </button>
                  </li>
                ) : null;
              })}
            </ul>
          </section>
        ) : null}
      </aside>
      <section class="operation" aria-label="Operation">
        {op ? <OperationForm key={op.id + (prefill ? prefill.at : '')} op={op} schemas={catalog.schemas} s={s} prefill={prefill} remember={remember} /> : <p class="muted">Choose an operation to call it in your workspace.</p>}
      </section>
    </div>
  );
}

/** A call as it is kept in the recent list: files by name only (their bytes stay out of storage). */
function withoutFiles(body: Json | undefined): Json | undefined {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return body;
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(body)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && 'base64' in v ? { filename: v.filename, contentType: v.contentType } : v;
  }
  return out;
}

function OperationForm(props: { op: Operation; schemas: Schemas; s: Session; prefill: Recent | null; remember: (r: Recent) => void }) {
  const { op, schemas, s } = props;
  const [params, setParams] = useState<Record<string, Json>>(props.prefill ? props.prefill.params : {});
  const [query, setQuery] = useState<Record<string, Json>>(props.prefill ? props.prefill.query : {});
  const [body, setBody] = useState<Json | undefined>(props.prefill ? props.prefill.body : undefined);
  const [asJson, setAsJson] = useState(false);
  const [answer, setAnswer] = useState<Answer | null>(null);
  const [problem, setProblem] = useState<{ message: string; details: string[] } | null>(null);
  const [running, setRunning] = useState(false);
  const dialog = useRef<HTMLDialogElement>(null);
  const answerRef = useRef<HTMLElement>(null);
  const admin = isAdmin(s);
  const pathParams = op.params.filter((p) => p.in === 'path' && p.name !== 'workspaceId');
  const queryParams = op.params.filter((p) => p.in === 'query');
  const upload = !!op.body && op.body.contentType === 'multipart/form-data';
  const json = !!op.body && (op.body.contentType === 'application/json' || upload);
  const blocked = op.write && !admin ? 'Only workspace owners and admins may run operations that change workspace data.' : op.body && !json ? 'This operation takes a ' + op.body.contentType + ' body, which the explorer cannot send.' : null;

  const set = (bag: Record<string, Json>, put: (v: Record<string, Json>) => void, k: string, v: Json | undefined) => {
    const next = { ...bag };
    if (v === undefined) delete next[k];
    else next[k] = v;
    put(next);
  };
  const run = async () => {
    setRunning(true);
    setProblem(null);
    const call = { operationId: op.id, params, query, body: json ? body : undefined };
    try {
      const a = await api<Answer>('POST', 'ui/explorer/execute', call);
      setAnswer(a);
      requestAnimationFrame(() => answerRef.current?.scrollIntoView({ block: 'nearest' }));
      props.remember({ ...call, body: withoutFiles(call.body), status: a.status, at: new Date().toISOString() });
    } catch (e) {
      setAnswer(null);
      const details = e instanceof ApiError ? e.details : [];
      setProblem({ message: e instanceof Error ? e.message : String(e), details });
      props.remember({ ...call, body: withoutFiles(call.body), status: e instanceof ApiError ? e.status : 'error', at: new Date().toISOString() });
    } finally {
      setRunning(false);
    }
  };
  const submit = (e: Event) => {
    e.preventDefault();
    if (op.write) dialog.current?.showModal();
    else run();
  };

  return (
    <form onSubmit={submit} aria-describedby="op-doc">
      <h2>{op.summary || op.id}</h2>
      <p id="op-doc">
        <span class={'method m-' + op.method.toLowerCase()}>{op.method}</span> <code>{op.path}</code>
        {op.api !== 'api' ? <span class="badge">{op.api === 'pto' ? 'time-off API' : 'reports API'}</span> : null}
        {op.write ? <span class="badge warn">changes data</span> : null}
        {op.deprecated ? <span class="badge">deprecated</span> : null}
      </p>
      {op.description ? <p class="muted">{op.description}</p> : null}
      <p class="muted">
        Runs in your workspace <code>{s.claims.workspaceId}</code> with the add-on’s access. <code>{op.id}</code>
      </p>
      {pathParams.length ? (
        <fieldset>
          <legend>Path</legend>
          {pathParams.map((p) => (
            <Field schemas={schemas} schema={{ ...p.schema, description: p.description }} name={p.name} path={['path', p.name]} required value={params[p.name]} depth={1} onChange={(v) => set(params, setParams, p.name, v)} />
          ))}
        </fieldset>
      ) : null}
      {queryParams.length ? (
        <fieldset>
          <legend>Query</legend>
          {queryParams.map((p) => (
            <Field schemas={schemas} schema={{ ...p.schema, description: p.description }} name={p.name} path={['query', p.name]} required={p.required} value={query[p.name]} depth={1} onChange={(v) => set(query, setQuery, p.name, v)} />
          ))}
        </fieldset>
      ) : null}
      {op.body && json ? (
        <fieldset>
          <legend>
            {upload ? 'Form (multipart upload)' : 'Body'}
            {op.body.required ? ' (required)' : ''}{' '}
            <button type="button" class="link" aria-pressed={asJson} onClick={() => setAsJson(!asJson)}>
              {asJson ? 'Edit as a form' : 'Edit as JSON'}
            </button>
          </legend>
          {asJson ? <JsonField key="json" name="body" path={['body-json']} required={op.body.required} value={body} onChange={setBody} rows={12} /> : <Field schemas={schemas} schema={op.body.schema} name="body" path={['body']} required={op.body.required} value={body} depth={0} onChange={setBody} />}
        </fieldset>
      ) : null}
      {blocked ? (
        <p class="notice" role="note">
          {blocked}
        </p>
      ) : null}
      <div class="actions">
        <button class="primary" type="submit" disabled={running || blocked !== null}>
          {running ? 'Calling…' : op.write ? 'Run…' : 'Run'}
        </button>
      </div>
      <dialog ref={dialog} aria-labelledby="confirm-title" onClose={() => dialog.current?.returnValue === 'yes' && run()}>
        <form method="dialog">
          <h3 id="confirm-title">Change workspace data?</h3>
          <p>
            This sends <strong>{op.method}</strong> <code>{op.path}</code> to Clockify in your workspace. It cannot be undone from here.
          </p>
          <div class="actions">
            <button value="no" autofocus>
              Cancel
            </button>
            <button class="primary" value="yes">
              {op.method} it
            </button>
          </div>
        </form>
      </dialog>
      <div aria-live="polite" role="status" class="sr-only">
        {answer ? 'Clockify answered ' + answer.status + ' in ' + answer.durationMs + ' milliseconds' : problem ? 'Refused: ' + problem.message : ''}
      </div>
      {problem ? (
        <div class="error" role="alert">
          <p>{problem.message}</p>
          {problem.details.length ? (
            <ul>
              {problem.details.map((d) => (
                <li>{d}</li>
              ))}
            </ul>
          ) : null}
        </div>
      ) : null}
      {answer ? (
        <section class="answer" aria-label="Answer" ref={answerRef}>
          <p>
            <span class={'status s' + String(answer.status)[0]}>{answer.status}</span> in {answer.durationMs} ms
            {answer.attempts > 1 ? ', after ' + answer.attempts + ' attempts' : ''} · <code>{answer.method + ' ' + answer.path}</code>
          </p>
          <pre tabIndex={0}>{JSON.stringify(answer.body, null, 2)}</pre>
        </section>
      ) : null}
    </form>
  );
}
