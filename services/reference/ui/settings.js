// The reference add-on's settings page. Clockify frames it with ?auth_token=<user token>;
// every call sends that token as a Bearer header.
(function () {
  'use strict';
  const token = new URLSearchParams(location.search).get('auth_token') || '';
  const $ = (id) => document.getElementById(id);
  let workspaceId = null;

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: Object.assign({ Authorization: 'Bearer ' + token }, body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const err = data && data.error ? data.error : { message: res.statusText };
      throw new Error(err.message + (err.details ? ': ' + err.details.join('; ') : ''));
    }
    return data;
  }

  function status(text, ok) { const s = $('status'); s.textContent = text || ''; s.className = ok ? 'ok' : 'err'; }

  function renderInstallation(d) {
    const dl = $('installation'); dl.textContent = '';
    [['Workspace', d.workspaceId], ['Status', d.installation.status], ['API', d.installation.apiUrl],
     ['Installed', d.installation.installedAt], ['Add-on', d.addon.name + ' ' + d.addon.version]].forEach(([k, v]) => {
      const dt = document.createElement('dt'); dt.textContent = k;
      const dd = document.createElement('dd'); dd.textContent = v == null ? '' : String(v);
      dd.dataset.field = k.toLowerCase();
      dl.append(dt, dd);
    });
  }

  function renderBootstrap(run) {
    $('bs-state').textContent = run ? run.state : 'never run';
    $('bs-state').dataset.state = run ? run.state : 'NONE';
    $('bs-progress').max = run && run.endpointsTotal ? run.endpointsTotal : 1;
    $('bs-progress').value = run ? run.endpointsDone : 0;
    $('bs-detail').textContent = run ? run.entitiesStored + ' entities, ' + run.pagesFetched + ' pages' + (run.errors.length ? ', ' + run.errors.length + ' error(s)' : '') : '';
  }

  function renderSettings(list, canEdit) {
    const form = $('settings'); form.textContent = '';
    list.forEach((s) => {
      const div = document.createElement('div'); div.className = 'setting';
      const label = document.createElement('label'); label.htmlFor = 'set-' + s.id; label.textContent = s.name;
      const input = document.createElement('input'); input.id = 'set-' + s.id; input.name = s.id; input.disabled = !canEdit;
      if (s.type === 'CHECKBOX') {
        input.type = 'checkbox'; input.checked = s.value === true || s.value === 'true';
      } else {
        input.type = 'number'; input.min = s.bounds.min; input.max = s.bounds.max; input.step = 1; input.value = s.value;
      }
      const help = document.createElement('small'); help.textContent = s.description;
      div.append(label, input, help); form.appendChild(div);
    });
    $('save').disabled = !canEdit;
    if (!canEdit) status('Only workspace admins can change these settings.', true);
  }

  function render(d) {
    workspaceId = d.workspaceId;
    renderInstallation(d); renderBootstrap(d.bootstrap); renderSettings(d.settings, d.canEdit);
    document.body.dataset.loaded = 'true';
  }

  async function load() {
    try { render(await api('GET', '/settings/state')); } catch (err) { status(err.message); }
  }

  $('save').onclick = async () => {
    const settings = {};
    $('settings').querySelectorAll('input').forEach((i) => { settings[i.name] = i.type === 'checkbox' ? i.checked : Number(i.value); });
    try { render(await api('PUT', '/settings/state', { settings })); status('Saved.', true); } catch (err) { status(err.message); }
  };
  $('bs-run').onclick = async () => {
    try { const r = await api('POST', '/bootstrap/' + encodeURIComponent(workspaceId)); renderBootstrap(r.bootstrap); status('Bootstrap requested.', true); } catch (err) { status(err.message); }
  };
  setInterval(async () => {
    if (!workspaceId) return;
    try { renderBootstrap((await api('GET', '/bootstrap/' + encodeURIComponent(workspaceId) + '/status')).bootstrap); } catch (err) { /* keep the last state */ }
  }, 5000);
  load();
})();
