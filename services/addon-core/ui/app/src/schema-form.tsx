// A form generated from a JSON Schema (Clockify's OpenAPI): objects become fieldsets, enums
// selects, numbers number inputs, lists of text comma-separated inputs; anything deeper or
// stranger is edited as JSON in place. Every input has a label; required ones say so.
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export interface Schema {
  $ref?: string;
  type?: string;
  enum?: Json[];
  format?: string;
  description?: string;
  example?: Json;
  default?: Json;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  minimum?: number;
  maximum?: number;
}

export type Schemas = Record<string, Schema>;

export function resolve(schemas: Schemas, s: Schema | undefined): Schema {
  let cur = s || {};
  for (let i = 0; i < 8 && cur.$ref; i++) cur = schemas[cur.$ref.replace('#/schemas/', '')] || {};
  return cur;
}

function isScalar(s: Schema): boolean {
  return s.type === 'string' || s.type === 'integer' || s.type === 'number' || s.type === 'boolean';
}

/** The field's id: stable, unique within the form, valid in CSS. */
function fieldId(path: string[]): string {
  return 'f-' + path.map((p) => p.replace(/[^A-Za-z0-9_-]/g, '_')).join('-');
}

interface FieldProps {
  schemas: Schemas;
  schema: Schema;
  name: string;
  path: string[];
  required: boolean;
  value: Json | undefined;
  onChange: (v: Json | undefined) => void;
  depth: number;
  /** A datalist of `{{...}}` placeholders to offer: values may be templates (flow actions). */
  templates?: string;
}

export function Field(p: FieldProps) {
  const s = resolve(p.schemas, p.schema);
  const id = fieldId(p.path);
  const hint = s.description ? <small id={id + '-hint'}>{s.description}</small> : null;
  const label = (
    <label for={id}>
      {p.name}
      {p.required ? <span class="req" aria-hidden="true"> *</span> : null}
    </label>
  );
  const common = {
    id,
    required: p.required,
    'aria-describedby': s.description ? id + '-hint' : undefined,
  };
  if (s.type === 'object' || s.properties) {
    if (p.depth >= 3 || !s.properties) return <JsonField {...p} />;
    const obj = (p.value && typeof p.value === 'object' && !Array.isArray(p.value) ? p.value : {}) as Record<string, Json>;
    const req = new Set(s.required || []);
    // The top level (a body) sits in its caller's fieldset already.
    const Wrap = p.depth === 0 ? 'div' : 'fieldset';
    return (
      <Wrap class="fields">
        {p.depth === 0 ? null : <legend>{p.name}</legend>}
        {hint}
        {Object.entries(s.properties).map(([k, child]) => (
          <Field
            key={k}
            schemas={p.schemas}
            schema={child}
            name={k}
            path={[...p.path, k]}
            required={req.has(k)}
            value={obj[k]}
            depth={p.depth + 1}
            templates={p.templates}
            onChange={(v) => {
              const next = { ...obj };
              if (v === undefined) delete next[k];
              else next[k] = v;
              p.onChange(Object.keys(next).length ? next : undefined);
            }}
          />
        ))}
      </Wrap>
    );
  }
  if (s.type === 'array') {
    const item = resolve(p.schemas, s.items);
    if (!isScalar(item)) return <JsonField {...p} />;
    const list = Array.isArray(p.value) ? p.value : [];
    return (
      <div class="field">
        {label}
        <input
          {...common}
          type="text"
          placeholder={'comma-separated' + (item.enum ? ': ' + item.enum.join(', ') : '')}
          value={list.join(', ')}
          onChange={(e) => {
            const parts = (e.currentTarget as HTMLInputElement).value.split(',').map((x) => x.trim()).filter(Boolean);
            const typed = parts.map((x) => (item.type === 'integer' || item.type === 'number' ? Number(x) : item.type === 'boolean' ? x === 'true' : x));
            p.onChange(typed.length ? typed : undefined);
          }}
        />
        {hint}
      </div>
    );
  }
  if (s.enum || s.type === 'boolean') {
    const options = s.enum || [true, false];
    return (
      <div class="field">
        {label}
        <select
          {...common}
          value={p.value === undefined ? '' : String(p.value)}
          onChange={(e) => {
            const v = (e.currentTarget as HTMLSelectElement).value;
            p.onChange(v === '' ? undefined : s.type === 'boolean' ? v === 'true' : s.type === 'integer' || s.type === 'number' ? Number(v) : v);
          }}
        >
          <option value="">{p.required ? 'choose…' : '(not set)'}</option>
          {options.map((o) => (
            <option value={String(o)}>{String(o)}</option>
          ))}
        </select>
        {hint}
      </div>
    );
  }
  if (s.type === 'string' && s.format === 'binary') return <FileField {...p} id={id} hint={hint} label={label} />;
  const numeric = s.type === 'integer' || s.type === 'number';
  if (p.templates) {
    // A placeholder or a literal: numbers typed as numbers, anything else as text.
    return (
      <div class="field">
        {label}
        <input
          {...common}
          type="text"
          list={p.templates}
          spellcheck={false}
          placeholder={s.example !== undefined && typeof s.example !== 'object' ? String(s.example) : '{{$.field}} or a value'}
          value={p.value === undefined || p.value === null ? '' : String(p.value)}
          onInput={(e) => {
            const v = (e.currentTarget as HTMLInputElement).value;
            p.onChange(v === '' ? undefined : numeric && v.trim() !== '' && !isNaN(Number(v)) ? Number(v) : v);
          }}
        />
        {hint}
      </div>
    );
  }
  return (
    <div class="field">
      {label}
      <input
        {...common}
        type={numeric ? 'number' : 'text'}
        step={s.type === 'integer' ? 1 : undefined}
        min={s.minimum}
        max={s.maximum}
        placeholder={s.example !== undefined && typeof s.example !== 'object' ? String(s.example) : s.format || ''}
        value={p.value === undefined || p.value === null ? '' : String(p.value)}
        onInput={(e) => {
          const v = (e.currentTarget as HTMLInputElement).value;
          p.onChange(v === '' ? undefined : numeric ? Number(v) : v);
        }}
      />
      {hint}
    </div>
  );
}

/** The largest file the explorer uploads (the server's `MAX_UPLOAD_BYTES`). */
export const MAX_UPLOAD_BYTES = 700 * 1024;

/** A file chosen for an upload, carried in the JSON request. */
export interface Upload {
  filename: string;
  contentType: string;
  base64?: string;
}

/** A file input for a `format: binary` field (uploads): read in the browser, sent as base64. */
function FileField(p: FieldProps & { id: string; hint: JSX.Element | null; label: JSX.Element }) {
  const [problem, setProblem] = useState<string | null>(null);
  const chosen = p.value && typeof p.value === 'object' && !Array.isArray(p.value) ? (p.value as unknown as Upload) : null;
  return (
    <div class="field">
      {p.label}
      <input
        id={p.id}
        type="file"
        required={p.required && !(chosen && chosen.base64)}
        aria-describedby={[p.hint ? p.id + '-hint' : '', p.id + '-file'].filter(Boolean).join(' ')}
        onChange={(e) => {
          const file = (e.currentTarget as HTMLInputElement).files?.[0];
          setProblem(null);
          if (!file) return p.onChange(undefined);
          if (file.size > MAX_UPLOAD_BYTES) {
            setProblem(file.name + ' is ' + Math.ceil(file.size / 1024) + ' KiB; the explorer uploads files of at most ' + MAX_UPLOAD_BYTES / 1024 + ' KiB.');
            return p.onChange(undefined);
          }
          const reader = new FileReader();
          reader.onload = () => {
            const url = String(reader.result);
            p.onChange({ filename: file.name, contentType: file.type || 'application/octet-stream', base64: url.slice(url.indexOf(',') + 1) });
          };
          reader.onerror = () => setProblem('Cannot read ' + file.name + '.');
          reader.readAsDataURL(file);
        }}
      />
      <small id={p.id + '-file'} role="status">
        {problem ? <span class="error-text">{problem}</span> : chosen ? (chosen.base64 ? 'Chosen: ' : 'Choose the file again: ') + chosen.filename : 'Up to ' + MAX_UPLOAD_BYTES / 1024 + ' KiB.'}
      </small>
      {p.hint}
    </div>
  );
}

/** A value edited as JSON, parsed as it is typed; a mistake is said next to it. */
export function JsonField(p: Pick<FieldProps, 'name' | 'path' | 'value' | 'onChange' | 'required'> & { rows?: number }) {
  const id = fieldId(p.path);
  const [text, setText] = useState(p.value === undefined ? '' : JSON.stringify(p.value, null, 2));
  const [error, setError] = useState<string | null>(null);
  return (
    <div class="field">
      <label for={id}>
        {p.name} <span class="muted">(JSON)</span>
        {p.required ? <span class="req" aria-hidden="true"> *</span> : null}
      </label>
      <textarea
        id={id}
        rows={p.rows || 6}
        spellcheck={false}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? id + '-error' : undefined}
        value={text}
        onInput={(e) => {
          const t = (e.currentTarget as HTMLTextAreaElement).value;
          setText(t);
          if (!t.trim()) {
            setError(null);
            p.onChange(undefined);
            return;
          }
          try {
            p.onChange(JSON.parse(t));
            setError(null);
          } catch (err) {
            setError('Not valid JSON yet: ' + (err instanceof Error ? err.message : String(err)));
          }
        }}
      />
      {error ? (
        <small id={id + '-error'} class="error">
          {error}
        </small>
      ) : null}
    </div>
  );
}
