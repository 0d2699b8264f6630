// Flows: the list, and the builder. A flow is built from its trigger (a Clockify event, or a
// custom source and event), conditions on the event's real fields, and ordered actions: a
// Clockify operation from the API's catalogue, or an HTTP call checked against the workspace's
// hosts as it is typed. A test run shows what the flow would send for a stored delivery or a
// sample, without sending it. Raw JSON stays available, and flows of the earlier Python
// system can be imported.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, Session, api, isAdmin, query } from './api';
import type { Go } from './main';
import { Field, Json as FormJson, Schema, Schemas } from './schema-form';

type Json = unknown;
interface Condition {
  path: string;
  op: '==' | '!=' | 'contains' | 'exists';
  value?: Json;
}
interface Action {
  type?: 'CLOCKIFY_API' | 'GENERIC_HTTP';
  name?: string;
  method: string;
  path?: string;
  url?: string;
  headers?: Record<string, string | { set: boolean }>;
  query?: Record<string, string>;
  body?: Json;
  timeoutSeconds?: number;
}
export interface Flow {
  id?: string;
  name: string;
  enabled: boolean;
  triggerSource?: 'CLOCKIFY' | 'CUSTOM';
  triggerSources?: string[];
  triggerEvents: string[];
  conditionMode?: 'ALL' | 'ANY';
  conditions: Condition[];
  actions: Action[];
  createdAt?: string;
  updatedAt?: string;
}
interface EventFields {
  event: string;
  fields: { path: string; type: string }[];
}
interface Operation {
  id: string;
  tag: string;
  method: string;
  path: string;
  summary: string;
  deprecated?: boolean;
  params: { name: string; in: string }[];
  body?: { contentType: string; schema: Schema };
}
interface Report {
  eventType: string;
  source: string;
  triggered: boolean;
  conditionMode: string;
  wouldRun: boolean;
  conditions: { path: string; op: string; value?: Json; holds: boolean; found: Json[]; error?: string }[];
  actions: { index: number; name: string; type: string; method: string; url?: string; headers?: [string, string][]; body?: Json; error?: string }[];
}
interface Features {
  customSources: boolean;
  genericHttp: boolean;
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
const OPS: Condition['op'][] = ['==', '!=', 'contains', 'exists'];
const EMPTY: Flow = { name: '', enabled: true, triggerEvents: [], conditionMode: 'ALL', conditions: [], actions: [] };

let eventsOnce: Promise<EventFields[]> | null = null;
let opsOnce: Promise<{ operations: Operation[]; schemas: Schemas }> | null = null;
const events = () => (eventsOnce = eventsOnce || api<{ events: EventFields[] }>('GET', 'ui/flows/events').then((r) => r.events));
const operations = () => (opsOnce = opsOnce || api<{ operations: Operation[]; schemas: Schemas }>('GET', 'ui/explorer/operations'));

type Problem = { message: string; details: string[] } | null;
const problemOf = (e: unknown): Problem => ({ message: e instanceof Error ? e.message : String(e), details: e instanceof ApiError ? e.details : [] });

function Problems({ p }: { p: Problem }) {
  return p ? (
    <div class="error" role="alert">
      <p>{p.message}</p>
      {p.details.length ? (
        <ul>
          {p.details.map((d) => (
            <li>{d}</li>
          ))}
        </ul>
      ) : null}
    </div>
  ) : null;
}

/** A value typed in a form: true, false, null and numbers as such, anything else as text. */
function typed(text: string): Json {
  const t = text.trim();
  if (t === 'true') return true;
  if (t === 'false') return false;
  if (t === 'null') return null;
  if (t !== '' && !isNaN(Number(t))) return Number(t);
  return text;
}
const shown = (v: Json) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

export function Flows({ s, go, features }: { s: Session; go: Go; features: Features }) {
  const [list, setList] = useState<Flow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState<Flow | null>(null);
  const [notice, setNotice] = useState('');
  const [doomed, setDoomed] = useState<Flow | null>(null);
  const dialog = useRef<HTMLDialogElement>(null);
  const admin = isAdmin(s);
  const load = () =>
    api<{ items: Flow[] }>('GET', 'ui/flows')
      .then((r) => setList(r.items))
      .catch((e) => setError(String(e.message || e)));
  useEffect(() => {
    load();
  }, []);
  const save = async (f: Flow) => {
    const { id, createdAt: _c, updatedAt: _u, ...body } = f;
    const saved = await api<Flow>(id ? 'PUT' : 'POST', id ? 'ui/flows/' + encodeURIComponent(id) : 'ui/flows', body);
    setNotice('Saved ' + saved.name + '.');
    await load();
    return saved;
  };
  const toggle = async (f: Flow) => {
    try {
      await save({ ...f, enabled: !f.enabled });
    } catch (e) {
      setError(problemOf(e)!.message);
    }
  };
  const remove = async () => {
    if (!doomed || !doomed.id) return;
    try {
      await api('DELETE', 'ui/flows/' + encodeURIComponent(doomed.id));
      setNotice('Deleted ' + doomed.name + '.');
      load();
    } catch (e) {
      setError(problemOf(e)!.message);
    }
  };
  if (editing)
    return (
      <Builder
        initial={editing}
        s={s}
        features={features}
        onSave={async (f) => {
          const saved = await save(f);
          setEditing(null);
          return saved;
        }}
        onClose={() => setEditing(null)}
      />
    );
  return (
    <div>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <p class="sr-only" role="status" aria-live="polite">
        {notice}
      </p>
      <div class="actions">
        <button class="primary" disabled={!admin} onClick={() => setEditing({ ...EMPTY, actions: [] })}>
          New flow
        </button>
        {!admin ? <span class="muted">Only workspace owners and admins change flows.</span> : null}
      </div>
      <table>
        <caption class="sr-only">Flows</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Trigger</th>
            <th scope="col">Actions</th>
            <th scope="col">Enabled</th>
            <th scope="col">
              <span class="sr-only">Manage</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {(list || []).map((f) => (
            <tr>
              <td>{f.name}</td>
              <td>
                {f.triggerSource === 'CUSTOM' ? 'custom ' + ((f.triggerSources || []).join(', ') || 'any source') + ': ' : ''}
                {f.triggerEvents.join(', ')}
              </td>
              <td>{f.actions.length}</td>
              <td>
                <input type="checkbox" id={'enabled-' + f.id} checked={f.enabled} disabled={!admin} onChange={() => toggle(f)} aria-label={(f.enabled ? 'Disable ' : 'Enable ') + f.name} />
              </td>
              <td class="row-actions">
                <button onClick={() => setEditing(f)}>{admin ? 'Edit' : 'View'}</button>
                <button disabled={!admin} onClick={() => setEditing({ ...f, id: undefined, name: f.name + ' (copy)', enabled: false })}>
                  Duplicate
                </button>
                <button onClick={() => go('executions', { flowId: f.id || '' })}>Runs</button>
                {admin ? (
                  <button
                    class="danger"
                    onClick={() => {
                      setDoomed(f);
                      dialog.current?.showModal();
                    }}
                  >
                    Delete
                  </button>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list && !list.length ? <p class="muted">No flows yet. A flow runs Clockify operations (or HTTP calls) when an event arrives.</p> : null}
      <dialog ref={dialog} aria-labelledby="delete-title" onClose={() => dialog.current?.returnValue === 'yes' && remove()}>
        <form method="dialog">
          <h3 id="delete-title">Delete {doomed ? doomed.name : 'this flow'}?</h3>
          <p>It stops running at once. Its past runs stay in Executions.</p>
          <div class="actions">
            <button value="no" autofocus>
              Cancel
            </button>
            <button class="danger" value="yes">
              Delete
            </button>
          </div>
        </form>
      </dialog>
    </div>
  );
}

function Builder(props: { initial: Flow; s: Session; features: Features; onSave: (f: Flow) => Promise<Flow>; onClose: () => void }) {
  const { features } = props;
  const [flow, setFlow] = useState<Flow>(props.initial);
  const [view, setView] = useState<'builder' | 'json' | 'import'>('builder');
  const [problem, setProblem] = useState<Problem>(null);
  const [evs, setEvs] = useState<EventFields[]>([]);
  const [ops, setOps] = useState<Operation[]>([]);
  const [schemas, setSchemas] = useState<Schemas>({});
  const [saving, setSaving] = useState(false);
  const admin = isAdmin(props.s);
  useEffect(() => {
    events().then(setEvs).catch((e) => setProblem(problemOf(e)));
    operations()
      .then((c) => {
        setOps(c.operations);
        setSchemas(c.schemas);
      })
      .catch((e) => setProblem(problemOf(e)));
  }, []);
  const custom = flow.triggerSource === 'CUSTOM';
  // The fields the chosen events carry, for conditions and templates.
  const fields = useMemo(() => {
    const chosen = evs.filter((e) => flow.triggerEvents.includes(e.event));
    const seen = new Map<string, string>();
    for (const e of chosen) for (const f of e.fields) if (!seen.has(f.path)) seen.set(f.path, f.type);
    return Array.from(seen.entries()).map(([path, type]) => ({ path, type }));
  }, [evs, flow.triggerEvents]);
  const update = (patch: Partial<Flow>) => setFlow({ ...flow, ...patch });
  const save = async () => {
    setSaving(true);
    setProblem(null);
    try {
      const saved = await props.onSave(flow);
      setFlow(saved);
    } catch (e) {
      setProblem(problemOf(e));
    } finally {
      setSaving(false);
    }
  };
  return (
    <div class="builder">
      <div class="builder-head">
        <h2>{flow.id ? 'Edit ' + (props.initial.name || 'flow') : 'New flow'}</h2>
        <div role="group" aria-label="Editor view" class="segmented">
          {(['builder', 'json', 'import'] as const).map((v) => (
            <button aria-pressed={view === v} onClick={() => setView(v)}>
              {v === 'builder' ? 'Builder' : v === 'json' ? 'JSON (advanced)' : 'Import'}
            </button>
          ))}
        </div>
      </div>
      <datalist id="field-paths">
        {fields.map((f) => (
          <option value={f.path}>{f.type}</option>
        ))}
      </datalist>
      <datalist id="field-templates">
        <option value="{{workspaceId}}" />
        <option value="{{eventType}}" />
        {fields
          .filter((f) => f.type !== 'object' && f.type !== 'array' && !f.path.includes('[*]'))
          .map((f) => (
            <option value={'{{' + f.path + '}}'}>{f.type}</option>
          ))}
      </datalist>
      {view === 'json' ? (
        <JsonView flow={flow} onChange={setFlow} />
      ) : view === 'import' ? (
        <ImportView
          onImported={(f) => {
            setFlow({ ...f, id: flow.id });
            setView('builder');
          }}
        />
      ) : (
        <>
          <div class="grid2">
            <div class="field">
              <label for="flow-name">Name</label>
              <input id="flow-name" value={flow.name} maxLength={200} onInput={(e) => update({ name: (e.currentTarget as HTMLInputElement).value })} />
            </div>
            <div class="field check">
              <input id="flow-enabled" type="checkbox" checked={flow.enabled} onChange={(e) => update({ enabled: (e.currentTarget as HTMLInputElement).checked })} />
              <label for="flow-enabled">Enabled: runs on every matching event</label>
            </div>
          </div>
          <fieldset>
            <legend>When</legend>
            {features.customSources ? (
              <div class="field">
                <label for="flow-source">Events from</label>
                <select id="flow-source" value={flow.triggerSource || 'CLOCKIFY'} onChange={(e) => update({ triggerSource: (e.currentTarget as HTMLSelectElement).value as Flow['triggerSource'], triggerEvents: [], triggerSources: [] })}>
                  <option value="CLOCKIFY">Clockify</option>
                  <option value="CUSTOM">a custom webhook source</option>
                </select>
              </div>
            ) : null}
            {custom ? (
              <div class="grid2">
                <div class="field">
                  <label for="flow-sources">Sources</label>
                  <input id="flow-sources" placeholder="e.g. github, ci (empty: every source)" value={(flow.triggerSources || []).join(', ')} onChange={(e) => update({ triggerSources: split((e.currentTarget as HTMLInputElement).value) })} />
                </div>
                <div class="field">
                  <label for="flow-custom-events">Event types</label>
                  <input id="flow-custom-events" placeholder="e.g. push, or * for any" value={flow.triggerEvents.join(', ')} onChange={(e) => update({ triggerEvents: split((e.currentTarget as HTMLInputElement).value) })} />
                </div>
              </div>
            ) : (
              <EventPicker events={evs.map((e) => e.event)} chosen={flow.triggerEvents} onChange={(triggerEvents) => update({ triggerEvents })} />
            )}
          </fieldset>
          <Conditions flow={flow} update={update} />
          <Actions flow={flow} update={update} ops={ops} schemas={schemas} features={features} />
        </>
      )}
      <Problems p={problem} />
      <div class="actions save-bar">
        <button class="primary" onClick={save} disabled={saving || !admin}>
          {saving ? 'Saving…' : 'Save flow'}
        </button>
        <button onClick={props.onClose}>Close</button>
      </div>
      <TestRun flow={flow} />
    </div>
  );
}

const split = (t: string) =>
  t
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

function EventPicker(props: { events: string[]; chosen: string[]; onChange: (e: string[]) => void }) {
  const [filter, setFilter] = useState('');
  const shownEvents = props.events.filter((e) => e.toLowerCase().includes(filter.toLowerCase().replace(/\s+/g, '_')));
  return (
    <div class="field">
      <label for="event-filter">Clockify events ({props.chosen.length} chosen)</label>
      <input id="event-filter" type="search" placeholder="filter, e.g. time entry" value={filter} onInput={(e) => setFilter((e.currentTarget as HTMLInputElement).value)} />
      <div class="events" role="group" aria-label="Clockify events">
        {shownEvents.map((ev) => (
          <label class="chip">
            <input
              type="checkbox"
              checked={props.chosen.includes(ev)}
              onChange={(e) => props.onChange((e.currentTarget as HTMLInputElement).checked ? [...props.chosen, ev] : props.chosen.filter((x) => x !== ev))}
            />
            {ev}
          </label>
        ))}
      </div>
    </div>
  );
}

function Conditions({ flow, update }: { flow: Flow; update: (p: Partial<Flow>) => void }) {
  const set = (i: number, c: Partial<Condition>) => update({ conditions: flow.conditions.map((x, j) => (j === i ? { ...x, ...c } : x)) });
  return (
    <fieldset>
      <legend>Only if</legend>
      <div class="field inline">
        <label for="flow-mode">Run when</label>
        <select id="flow-mode" value={flow.conditionMode || 'ALL'} onChange={(e) => update({ conditionMode: (e.currentTarget as HTMLSelectElement).value as 'ALL' | 'ANY' })}>
          <option value="ALL">all conditions hold</option>
          <option value="ANY">any condition holds</option>
        </select>
      </div>
      {flow.conditions.map((c, i) => (
        <div class="condition" role="group" aria-label={'Condition ' + (i + 1)}>
          <div class="field">
            <label for={'cond-path-' + i}>Field (JSONPath)</label>
            <input id={'cond-path-' + i} list="field-paths" placeholder="$.billable" value={c.path} onInput={(e) => set(i, { path: (e.currentTarget as HTMLInputElement).value })} />
          </div>
          <div class="field">
            <label for={'cond-op-' + i}>is</label>
            <select id={'cond-op-' + i} value={c.op} onChange={(e) => set(i, { op: (e.currentTarget as HTMLSelectElement).value as Condition['op'] })}>
              {OPS.map((o) => (
                <option value={o}>{o === '==' ? 'equal to' : o === '!=' ? 'not equal to' : o === 'contains' ? 'containing' : 'present'}</option>
              ))}
            </select>
          </div>
          {c.op !== 'exists' ? (
            <div class="field">
              <label for={'cond-value-' + i}>Value</label>
              <input id={'cond-value-' + i} placeholder="true, 42 or text" value={shown(c.value)} onInput={(e) => set(i, { value: typed((e.currentTarget as HTMLInputElement).value) })} />
            </div>
          ) : null}
          <button class="danger" aria-label={'Remove condition ' + (i + 1)} onClick={() => update({ conditions: flow.conditions.filter((_, j) => j !== i) })}>
            Remove
          </button>
        </div>
      ))}
      <button onClick={() => update({ conditions: [...flow.conditions, { path: '', op: '==', value: '' }] })}>Add a condition</button>
    </fieldset>
  );
}

function Actions(props: { flow: Flow; update: (p: Partial<Flow>) => void; ops: Operation[]; schemas: Schemas; features: Features }) {
  const { flow, update } = props;
  const set = (i: number, a: Action) => update({ actions: flow.actions.map((x, j) => (j === i ? a : x)) });
  const move = (i: number, d: number) => {
    const next = [...flow.actions];
    const [a] = next.splice(i, 1);
    next.splice(i + d, 0, a);
    update({ actions: next });
  };
  return (
    <fieldset>
      <legend>Then, in order</legend>
      <ol class="action-list">
        {flow.actions.map((a, i) => (
          <li>
            <ActionEditor a={a} i={i} ops={props.ops} schemas={props.schemas} features={props.features} onChange={(x) => set(i, x)} />
            <div class="actions">
              <button disabled={i === 0} onClick={() => move(i, -1)} aria-label={'Move action ' + (i + 1) + ' up'}>
                Up
              </button>
              <button disabled={i === flow.actions.length - 1} onClick={() => move(i, 1)} aria-label={'Move action ' + (i + 1) + ' down'}>
                Down
              </button>
              <button class="danger" onClick={() => update({ actions: flow.actions.filter((_, j) => j !== i) })} aria-label={'Remove action ' + (i + 1)}>
                Remove
              </button>
            </div>
          </li>
        ))}
      </ol>
      <button onClick={() => update({ actions: [...flow.actions, { method: 'GET', path: '' }] })}>Add a Clockify action</button>{' '}
      {props.features.genericHttp ? <button onClick={() => update({ actions: [...flow.actions, { type: 'GENERIC_HTTP', method: 'POST', url: 'https://' }] })}>Add an HTTP call</button> : null}
    </fieldset>
  );
}

function opFor(ops: Operation[], a: Action): Operation | undefined {
  if (!a.path) return undefined;
  const shape = a.path.replace(/\{\{[^}]*\}\}/g, '{}');
  return ops.find((o) => o.method === a.method && o.path.replace(/\{[^}]*\}/g, '{}') === shape);
}

function ActionEditor(props: { a: Action; i: number; ops: Operation[]; schemas: Schemas; features: Features; onChange: (a: Action) => void }) {
  const { a, i } = props;
  const id = (k: string) => 'act-' + i + '-' + k;
  const http = a.type === 'GENERIC_HTTP';
  const op = http ? undefined : opFor(props.ops, a);
  const groups = useMemo(() => {
    const m = new Map<string, Operation[]>();
    for (const o of props.ops) if (!o.deprecated) m.set(o.tag, [...(m.get(o.tag) || []), o]);
    return m;
  }, [props.ops]);
  const choose = (opId: string) => {
    const o = props.ops.find((x) => x.id === opId);
    if (!o) return;
    // Path parameters become placeholders to fill: the event's id for the entity's own id.
    const path = o.path.replace(/\{(\w+)\}/g, (_m, n) => (n === 'workspaceId' ? '{{workspaceId}}' : n === 'id' ? '{{$.id}}' : '{{$.' + n + '}}'));
    props.onChange({ ...a, name: a.name || o.summary, method: o.method, path, body: o.body ? a.body || {} : undefined });
  };
  return (
    <div class="action" role="group" aria-label={'Action ' + (i + 1)}>
      <div class="grid2">
        <div class="field">
          <label for={id('name')}>Action {i + 1}</label>
          <input id={id('name')} placeholder="what it does" value={a.name || ''} onInput={(e) => props.onChange({ ...a, name: (e.currentTarget as HTMLInputElement).value || undefined })} />
        </div>
        {!http ? (
          <div class="field">
            <label for={id('op')}>Clockify operation</label>
            <select id={id('op')} value={op ? op.id : ''} onChange={(e) => choose((e.currentTarget as HTMLSelectElement).value)}>
              <option value="">{a.path ? '(a path of your own)' : 'choose…'}</option>
              {Array.from(groups.entries()).map(([tag, list]) => (
                <optgroup label={tag}>
                  {list.map((o) => (
                    <option value={o.id}>
                      {o.method} · {o.summary}
                    </option>
                  ))}
                </optgroup>
              ))}
            </select>
          </div>
        ) : null}
      </div>
      <div class="grid-url">
        <div class="field">
          <label for={id('method')}>Method</label>
          <select id={id('method')} value={a.method} onChange={(e) => props.onChange({ ...a, method: (e.currentTarget as HTMLSelectElement).value })}>
            {METHODS.map((m) => (
              <option>{m}</option>
            ))}
          </select>
        </div>
        {http ? <UrlField id={id('url')} value={a.url || ''} onChange={(url) => props.onChange({ ...a, url })} /> : (
          <div class="field">
            <label for={id('path')}>Path</label>
            <input id={id('path')} list="field-templates" spellcheck={false} placeholder="/v1/workspaces/{{workspaceId}}/…" value={a.path || ''} onInput={(e) => props.onChange({ ...a, path: (e.currentTarget as HTMLInputElement).value })} />
            <small>
              Placeholders: <code>{'{{workspaceId}}'}</code>, <code>{'{{eventType}}'}</code> or a field of the event, such as <code>{'{{$.id}}'}</code>.
            </small>
          </div>
        )}
      </div>
      <Pairs label="Query" idp={id('q')} pairs={a.query || {}} onChange={(query) => props.onChange({ ...a, query: Object.keys(query).length ? (query as Record<string, string>) : undefined })} />
      {http ? <Pairs label="Headers" idp={id('h')} pairs={(a.headers || {}) as Record<string, string | { set: boolean }>} onChange={(headers) => props.onChange({ ...a, headers: Object.keys(headers).length ? headers : undefined })} /> : null}
      {a.method !== 'GET' && a.method !== 'DELETE' ? (
        op && op.body && op.body.contentType === 'application/json' ? (
          <SchemaBody id={id('body')} op={op} schemas={props.schemas} value={a.body} onChange={(body) => props.onChange({ ...a, body })} />
        ) : (
          <BodyField id={id('body')} value={a.body} onChange={(body) => props.onChange({ ...a, body })} />
        )
      ) : null}
    </div>
  );
}

function UrlField(props: { id: string; value: string; onChange: (v: string) => void }) {
  const [check, setCheck] = useState<{ allowed: boolean; reason?: string; host?: string } | null>(null);
  useEffect(() => {
    if (!props.value || props.value === 'https://') {
      setCheck(null);
      return;
    }
    const t = setTimeout(() => {
      api<{ allowed: boolean; reason?: string; host?: string }>('POST', 'ui/http-allowlist/check', { url: props.value })
        .then(setCheck)
        .catch(() => setCheck(null));
    }, 300);
    return () => clearTimeout(t);
  }, [props.value]);
  return (
    <div class="field">
      <label for={props.id}>URL</label>
      <input id={props.id} list="field-templates" spellcheck={false} aria-describedby={props.id + '-check'} aria-invalid={check && !check.allowed ? true : undefined} value={props.value} onInput={(e) => props.onChange((e.currentTarget as HTMLInputElement).value)} />
      <small id={props.id + '-check'} role="status" aria-live="polite" class={check ? (check.allowed ? 'ok' : 'error-text') : ''}>
        {check ? (check.allowed ? '✓ ' + check.host + ' may be called' : '✗ ' + check.reason) : 'https:// only; placeholders after the host'}
      </small>
    </div>
  );
}

function Pairs(props: { label: string; idp: string; pairs: Record<string, string | { set: boolean }>; onChange: (p: Record<string, string | { set: boolean }>) => void }) {
  const rows = Object.entries(props.pairs);
  const rename = (old: string, k: string) => props.onChange(Object.fromEntries(rows.map(([x, v]) => (x === old ? [k, v] : [x, v]))));
  return (
    <div class="pairs">
      <span class="pairs-label">{props.label}</span>
      {rows.map(([k, v], j) => (
        <div class="pair">
          <input aria-label={props.label + ' ' + (j + 1) + ' name'} value={k} onChange={(e) => rename(k, (e.currentTarget as HTMLInputElement).value)} />
          {typeof v === 'string' ? (
            <input aria-label={props.label + ' ' + (j + 1) + ' value'} list="field-templates" value={v} onInput={(e) => props.onChange({ ...props.pairs, [k]: (e.currentTarget as HTMLInputElement).value })} />
          ) : (
            <span class="muted">stored, hidden (type a new value to replace it)</span>
          )}
          <button
            class="danger"
            aria-label={'Remove ' + props.label.toLowerCase() + ' ' + (k || j + 1)}
            onClick={() => {
              const next = { ...props.pairs };
              delete next[k];
              props.onChange(next);
            }}
          >
            ×
          </button>
        </div>
      ))}
      <button onClick={() => props.onChange({ ...props.pairs, ['name' + (rows.length + 1)]: '' })}>Add {props.label.toLowerCase()}</button>
    </div>
  );
}

function BodyField(props: { id: string; value: Json; onChange: (v: Json) => void }) {
  const [text, setText] = useState(props.value === undefined ? '' : JSON.stringify(props.value, null, 2));
  const [error, setError] = useState<string | null>(null);
  return (
    <div class="field">
      <label for={props.id}>Body (JSON; placeholders in strings)</label>
      <textarea
        id={props.id}
        rows={5}
        spellcheck={false}
        aria-invalid={error ? true : undefined}
        value={text}
        onInput={(e) => {
          const t = (e.currentTarget as HTMLTextAreaElement).value;
          setText(t);
          try {
            props.onChange(t.trim() ? JSON.parse(t) : undefined);
            setError(null);
          } catch (err) {
            setError('Not valid JSON yet: ' + (err as Error).message);
          }
        }}
      />
      {error ? <small class="error-text">{error}</small> : null}
    </div>
  );
}

/** The body of a Clockify operation as a form from its schema, placeholders offered for every
 * field; or as JSON. */
function SchemaBody(props: { id: string; op: Operation; schemas: Schemas; value: Json; onChange: (v: Json) => void }) {
  const [asJson, setAsJson] = useState(false);
  return (
    <fieldset>
      <legend>
        Body{' '}
        <button type="button" class="link" aria-pressed={asJson} onClick={() => setAsJson(!asJson)}>
          {asJson ? 'Edit as a form' : 'Edit as JSON'}
        </button>
      </legend>
      {asJson ? (
        <BodyField id={props.id} value={props.value} onChange={props.onChange} />
      ) : (
        <Field schemas={props.schemas} schema={props.op.body!.schema} name="body" path={[props.id]} required={false} value={props.value as FormJson} depth={0} templates="field-templates" onChange={(v) => props.onChange(v)} />
      )}
    </fieldset>
  );
}

function JsonView({ flow, onChange }: { flow: Flow; onChange: (f: Flow) => void }) {
  const [text, setText] = useState(JSON.stringify(flow, null, 2));
  const [error, setError] = useState<string | null>(null);
  return (
    <div class="field">
      <label for="flow-json">The flow as JSON</label>
      <textarea
        id="flow-json"
        rows={20}
        spellcheck={false}
        value={text}
        onInput={(e) => {
          const t = (e.currentTarget as HTMLTextAreaElement).value;
          setText(t);
          try {
            onChange(JSON.parse(t));
            setError(null);
          } catch (err) {
            setError('Not valid JSON yet: ' + (err as Error).message);
          }
        }}
      />
      {error ? <small class="error-text">{error}</small> : null}
    </div>
  );
}

function ImportView({ onImported }: { onImported: (f: Flow) => void }) {
  const [text, setText] = useState('');
  const [problem, setProblem] = useState<Problem>(null);
  const [notes, setNotes] = useState<string[]>([]);
  const run = async () => {
    setProblem(null);
    try {
      const r = await api<{ flow: Flow; notes: string[] }>('POST', 'ui/flows/import', JSON.parse(text));
      setNotes(r.notes);
      onImported(r.flow);
    } catch (e) {
      setProblem(e instanceof SyntaxError ? { message: 'Not valid JSON: ' + e.message, details: [] } : problemOf(e));
    }
  };
  return (
    <div>
      <label for="import-json">A flow of the earlier add-on (operation_id and params)</label>
      <textarea id="import-json" rows={12} spellcheck={false} value={text} onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)} />
      <Problems p={problem} />
      {notes.length ? (
        <ul class="notice">
          {notes.map((n) => (
            <li>{n}</li>
          ))}
        </ul>
      ) : null}
      <div class="actions">
        <button class="primary" onClick={run}>
          Import into the builder
        </button>
      </div>
    </div>
  );
}

interface Delivery {
  id: string;
  eventType: string;
  source: string;
  receivedAt: string;
}

function TestRun({ flow }: { flow: Flow }) {
  const [deliveries, setDeliveries] = useState<Delivery[]>([]);
  const [use, setUse] = useState<string>('sample');
  const [sample, setSample] = useState('{\n  "id": "sample-id"\n}');
  const [report, setReport] = useState<Report | null>(null);
  const [problem, setProblem] = useState<Problem>(null);
  const event = flow.triggerEvents[0] || '';
  useEffect(() => {
    const ev = flow.triggerEvents.length === 1 && event !== '*' ? event : '';
    api<{ items: Delivery[] }>('GET', 'ui/webhooks' + query({ event_type: ev, limit: 20 }))
      .then((r) => {
        setDeliveries(r.items);
        if (r.items.length && use === 'sample') setUse(r.items[0].id);
      })
      .catch(() => setDeliveries([]));
  }, [flow.triggerEvents.join(',')]);
  const run = async () => {
    setProblem(null);
    setReport(null);
    try {
      const body = use === 'sample' ? { flow, sample: { eventType: event || 'NEW_TIME_ENTRY', source: flow.triggerSource === 'CUSTOM' ? (flow.triggerSources || [])[0] : undefined, body: JSON.parse(sample) } } : { flow, webhookId: use };
      setReport(await api<Report>('POST', 'ui/flows/test', body));
    } catch (e) {
      setProblem(e instanceof SyntaxError ? { message: 'The sample is not valid JSON: ' + e.message, details: [] } : problemOf(e));
    }
  };
  return (
    <section class="testrun" aria-labelledby="testrun-title">
      <h2 id="testrun-title">Test run</h2>
      <p class="muted">Runs the flow above against one event without sending anything: which conditions hold, and each request it would send.</p>
      <div class="field">
        <label for="testrun-with">Run it with</label>
        <select id="testrun-with" value={use} onChange={(e) => setUse((e.currentTarget as HTMLSelectElement).value)}>
          {deliveries.map((d) => (
            <option value={d.id}>
              {d.eventType} received {new Date(d.receivedAt).toLocaleString()}
              {d.source !== 'clockify' ? ' from ' + d.source : ''}
            </option>
          ))}
          <option value="sample">a sample I paste ({event || 'no event chosen'})</option>
        </select>
      </div>
      {use === 'sample' ? (
        <div class="field">
          <label for="testrun-sample">Sample event body (JSON)</label>
          <textarea id="testrun-sample" rows={6} spellcheck={false} value={sample} onInput={(e) => setSample((e.currentTarget as HTMLTextAreaElement).value)} />
        </div>
      ) : null}
      <div class="actions">
        <button class="primary" onClick={run}>
          Test run
        </button>
      </div>
      <Problems p={problem} />
      <div role="status" aria-live="polite" class="sr-only">
        {report ? (report.wouldRun ? 'It would run ' + report.actions.length + ' actions' : 'It would not run') : ''}
      </div>
      {report ? <ReportView r={report} /> : null}
    </section>
  );
}

function ReportView({ r }: { r: Report }) {
  return (
    <div class="report">
      <p class={r.wouldRun ? 'ok' : 'error-text'}>
        <strong>{r.wouldRun ? 'It would run.' : 'It would not run:'}</strong>{' '}
        {!r.triggered ? 'it does not listen to ' + r.eventType + (r.source !== 'clockify' ? ' from ' + r.source : '') + '.' : !r.wouldRun ? 'its conditions do not hold (' + r.conditionMode.toLowerCase() + ' must).' : ''}
      </p>
      {r.conditions.length ? (
        <table>
          <caption>Conditions</caption>
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">Test</th>
              <th scope="col">Found</th>
              <th scope="col">Holds</th>
            </tr>
          </thead>
          <tbody>
            {r.conditions.map((c) => (
              <tr>
                <td>
                  <code>{c.path}</code>
                </td>
                <td>
                  {c.op} {c.value !== undefined ? <code>{JSON.stringify(c.value)}</code> : null}
                </td>
                <td>{c.error ? <span class="error-text">{c.error}</span> : c.found.length ? <code>{c.found.map((v) => JSON.stringify(v)).join(', ')}</code> : <span class="muted">nothing</span>}</td>
                <td class={c.holds ? 'ok' : 'error-text'}>{c.holds ? '✓ yes' : '✗ no'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <h3>Requests it would send</h3>
      <ol class="requests">
        {r.actions.map((a) => (
          <li>
            <p>
              <strong>{a.name}</strong>: <span class={'method m-' + a.method.toLowerCase()}>{a.method}</span> <code>{a.url || '?'}</code>
            </p>
            {a.error ? <p class="error-text">✗ {a.error}</p> : null}
            {a.headers && a.headers.length ? <pre>{a.headers.map(([k, v]) => k + ': ' + v).join('\n')}</pre> : null}
            {a.body !== undefined && a.body !== null ? <pre>{JSON.stringify(a.body, null, 2)}</pre> : null}
          </li>
        ))}
      </ol>
    </div>
  );
}
