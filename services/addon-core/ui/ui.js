// The add-on console. Clockify opens it in an iframe with ?auth_token=<user token>; every call
// to the JSON API sends that token as a Bearer header.
(function () {
  'use strict';
  const token = new URLSearchParams(location.search).get('auth_token') || '';
  const $ = (id) => document.getElementById(id);
  const text = (v) => (v === null || v === undefined ? '' : String(v));

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: Object.assign({ Authorization: 'Bearer ' + token }, body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) {
      const err = data && data.error ? data.error : { message: res.statusText };
      throw new Error(err.message + (err.details ? ': ' + err.details.join('; ') : ''));
    }
    return data;
  }

  function show(err) { $('status').textContent = err ? err.message || String(err) : ''; }
  function row(cells, onclick) {
    const tr = document.createElement('tr');
    cells.forEach((c) => { const td = document.createElement('td'); if (c instanceof Node) td.appendChild(c); else td.textContent = text(c); tr.appendChild(td); });
    if (onclick) { tr.className = 'click'; tr.onclick = onclick; }
    return tr;
  }

  const loaders = {
    async dashboard() {
      const d = await api('GET', '/ui/dashboard');
      $('title').textContent = d.addon.name + ' · ' + d.workspaceId;
      document.querySelector('nav button[data-tab="sources"]').hidden = !(d.features && d.features.customSources);
      $('dashboard-out').textContent = JSON.stringify(d, null, 2);
    },
    async explorer() {
      if ($('op').options.length) return;
      const { operations } = await api('GET', '/ui/explorer/operations');
      operations.forEach((o) => {
        const opt = document.createElement('option');
        opt.value = o.id; opt.textContent = o.tag + ' · ' + o.method + ' ' + o.path + ' — ' + o.summary;
        $('op').appendChild(opt);
      });
    },
    async webhooks() {
      const params = new URLSearchParams();
      const q = $('wh-filter').value.trim(); if (q) params.set('event_type', q);
      const src = $('wh-source').value.trim(); if (src) params.set('source', src);
      const { items } = await api('GET', '/ui/webhooks' + (params.toString() ? '?' + params : ''));
      const body = $('wh-rows'); body.textContent = '';
      items.forEach((w) => body.appendChild(row([w.receivedAt, w.source, w.eventType, w.entityId, w.status], async () => {
        $('wh-detail').textContent = JSON.stringify(await api('GET', '/ui/webhooks/' + w.id), null, 2);
      })));
    },
    async flows() {
      const src = $('flow-source').value;
      const { items } = await api('GET', '/ui/flows' + (src ? '?source=' + src : ''));
      const body = $('flow-rows'); body.textContent = '';
      items.forEach((f) => {
        const del = document.createElement('button'); del.textContent = 'Delete';
        del.onclick = async (e) => { e.stopPropagation(); try { await api('DELETE', '/ui/flows/' + f.id); loaders.flows(); } catch (err) { show(err); } };
        body.appendChild(row([f.name, f.triggerSource || 'CLOCKIFY', f.triggerEvents.join(', '), f.enabled ? 'yes' : 'no', del], () => {
          $('flow-json').value = JSON.stringify(f, null, 2);
        }));
      });
      if (!$('flow-json').value) {
        $('flow-json').value = JSON.stringify({
          name: 'Tag billable time entries', triggerEvents: ['NEW_TIME_ENTRY'], conditionMode: 'ALL',
          conditions: [{ path: '$.billable', op: '==', value: true }],
          actions: [{ method: 'PUT', path: '/v1/workspaces/{{workspaceId}}/time-entries/{{$.id}}', body: { tagIds: ['<tag id>'] } }],
        }, null, 2);
      }
    },
    async executions() {
      const { items } = await api('GET', '/ui/executions');
      const body = $('ex-rows'); body.textContent = '';
      items.forEach((x) => body.appendChild(row([x.startedAt, x.flowId, x.eventType, x.status, x.error], () => {
        $('ex-detail').textContent = JSON.stringify(x, null, 2);
      })));
    },
    async bootstrap() {
      $('bs-out').textContent = JSON.stringify(await api('GET', '/ui/bootstrap'), null, 2);
    },
    async sources() {
      const source = $('cw-source').value.trim();
      const info = await api('GET', '/ui/custom-webhooks' + (source ? '?source=' + encodeURIComponent(source) : ''));
      showSources(info);
      $('al-rules').value = (await api('GET', '/ui/http-allowlist')).rules.join('\n');
    },
  };

  function showLegacy(info) {
    $('cw-legacy').textContent = info.legacySignaturesUntil ? 'accepted until ' + info.legacySignaturesUntil : 'refused';
  }

  function showSources(info) {
    $('cw-url').textContent = info.url;
    showLegacy(info);
    $('cw-out').textContent = JSON.stringify(info, null, 2);
  }

  function open(tab) {
    document.querySelectorAll('nav button').forEach((b) => b.classList.toggle('active', b.dataset.tab === tab));
    document.querySelectorAll('section').forEach((s) => s.classList.toggle('active', s.id === tab));
    show(null);
    loaders[tab]().catch(show);
  }

  document.querySelectorAll('nav button').forEach((b) => { b.onclick = () => open(b.dataset.tab); });
  $('wh-filter').onchange = () => loaders.webhooks().catch(show);
  $('wh-source').onchange = () => loaders.webhooks().catch(show);
  $('flow-source').onchange = () => loaders.flows().catch(show);
  $('cw-rotate').onclick = async () => {
    if (!confirm('Senders must switch to the new secret; the old one keeps working for a grace period. Rotate?')) return;
    try { $('cw-out').textContent = JSON.stringify(await api('POST', '/ui/custom-webhooks/rotate'), null, 2); } catch (err) { show(err); }
  };
  $('cw-show').onclick = () => loaders.sources().catch(show);
  const legacy = (days) => async () => {
    // Only the window's state changes: the secrets shown stay as they are.
    try { showLegacy(await api('PUT', '/ui/custom-webhooks/legacy', { days })); } catch (err) { show(err); }
  };
  $('cw-legacy-open').onclick = legacy(7);
  $('cw-legacy-close').onclick = legacy(0);
  $('al-save').onclick = async () => {
    try {
      const rules = $('al-rules').value.split('\n').map((r) => r.trim()).filter(Boolean);
      $('al-rules').value = (await api('PUT', '/ui/http-allowlist', { rules })).rules.join('\n');
    } catch (err) { show(err); }
  };
  $('op-run').onclick = async () => {
    try {
      const body = $('op-body').value.trim();
      const result = await api('POST', '/ui/explorer/execute', {
        operationId: $('op').value, params: JSON.parse($('op-params').value || '{}'),
        query: JSON.parse($('op-query').value || '{}'), body: body ? JSON.parse(body) : undefined,
      });
      $('op-out').textContent = JSON.stringify(result, null, 2);
    } catch (err) { show(err); }
  };
  $('flow-save').onclick = async () => {
    try {
      const flow = JSON.parse($('flow-json').value);
      const id = flow.id; ['id', 'createdAt', 'updatedAt'].forEach((k) => delete flow[k]);
      await api(id ? 'PUT' : 'POST', id ? '/ui/flows/' + id : '/ui/flows', flow);
      $('flow-json').value = ''; loaders.flows();
    } catch (err) { show(err); }
  };
  $('bs-run').onclick = async () => {
    try { $('bs-out').textContent = JSON.stringify(await api('POST', '/ui/bootstrap'), null, 2); } catch (err) { show(err); }
  };
  open('dashboard');
})();
