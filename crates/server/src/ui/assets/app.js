// vigil's pages, drawn from /ui/api/… JSON. The CSP forbids inline code, so everything is
// built with DOM calls (never innerHTML: incident text comes from outside).
'use strict';
(function () {
  const main = document.getElementById('main');
  const problem = document.getElementById('problem');
  const announcer = document.getElementById('announce');
  const SVG = 'http://www.w3.org/2000/svg';
  let csrf = null;
  // Server clock minus the browser's, so ages do not depend on the browser's clock.
  let skewMs = 0;

  // ---- DOM helpers ----

  function setAttrs(el, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') el.textContent = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }

  function append(el, kids) {
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
  }

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }

  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }

  function badge(kind, value) {
    return h('span', { class: 'badge ' + kind + '-' + value, text: value.toLowerCase().replace(/_/g, ' ') });
  }

  function facts(pairs) {
    return h('dl', { class: 'facts' }, pairs
      .filter(([, value]) => value !== null && value !== undefined && value !== '')
      .map(([name, value]) => [h('dt', { text: name }), h('dd', {}, value)]));
  }

  function field(label, id, control) {
    control.id = id;
    return h('label', { class: 'field', for: id }, label, control);
  }

  function select(name, options, current) {
    return h('select', { name }, options.map(([value, text]) =>
      h('option', { value, selected: value === current, text })));
  }

  function link(href, text) {
    return h('a', { href, text });
  }

  // Only web links from incident data become links: no javascript: or data: URLs.
  function safeUrl(url) {
    try {
      const parsed = new URL(url, location.href);
      return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  function outsideLink(url, text) {
    const safe = safeUrl(url);
    return safe ? h('a', { href: safe, rel: 'noopener noreferrer', text: text || url }) : (text || url);
  }

  // Rebuilding rows drops keyboard focus; put it back on the same row's link.
  function rebuildKeepingFocus(container, rowSelector, keyAttr, rebuild) {
    const active = document.activeElement;
    const row = active && container.contains(active) ? active.closest(rowSelector) : null;
    const key = row ? row.getAttribute(keyAttr) : null;
    rebuild();
    if (key === null) return;
    const again = [...container.querySelectorAll(rowSelector)].find((r) => r.getAttribute(keyAttr) === key);
    const target = again && again.querySelector('a, button');
    if (target) target.focus();
  }

  function announce(text) {
    announcer.textContent = text;
  }

  // ---- time ----

  function serverNow() {
    return Date.now() + skewMs;
  }

  function syncClock(serverTime) {
    const ms = typeof serverTime === 'number' ? serverTime : Date.parse(serverTime);
    if (!Number.isNaN(ms)) skewMs = ms - Date.now();
  }

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  function fmtTime(value) {
    if (value === null || value === undefined) return '—';
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return String(value);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function duration(ms) {
    if (!(ms >= 0)) return '—';
    const secs = Math.floor(ms / 1000);
    if (secs < 60) return secs + 's';
    const mins = Math.floor(secs / 60);
    if (mins < 60) return mins + 'm ' + (secs % 60) + 's';
    const hours = Math.floor(mins / 60);
    if (hours < 48) return hours + 'h ' + (mins % 60) + 'm';
    return Math.floor(hours / 24) + 'd ' + (hours % 24) + 'h';
  }

  function since(value) {
    const t = typeof value === 'number' ? value : Date.parse(value);
    return Number.isNaN(t) ? '—' : duration(serverNow() - t);
  }

  function timeEl(value) {
    return h('time', { datetime: value, text: fmtTime(value) });
  }

  // ---- server calls ----

  async function api(path, options) {
    const answer = await fetch(path, Object.assign({
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    }, options));
    if (answer.status === 401) {
      location.assign('/ui/login');
      throw new Error('not logged in');
    }
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(body.error || 'HTTP ' + answer.status);
    return body;
  }

  async function post(path) {
    if (!csrf) csrf = (await api('/ui/api/session')).csrf_token;
    return api(path, {
      method: 'POST',
      headers: { Accept: 'application/json', 'X-CSRF-Token': csrf },
    });
  }

  function showProblem(error) {
    problem.textContent = error ? 'Could not load: ' + error.message : '';
    problem.hidden = !error;
  }

  // Runs `load` now and every `ms`; never two at once. `kick` runs it again as soon as
  // the current run ends (filters changed).
  function every(ms, load) {
    let busy = false;
    let again = false;
    const run = async () => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        await load();
        showProblem(null);
      } catch (e) {
        showProblem(e);
      } finally {
        busy = false;
      }
      if (again) {
        again = false;
        run();
      }
    };
    run();
    setInterval(run, ms);
    return run;
  }

  // ---- incidents ----

  const SEVERITIES = ['critical', 'high', 'warning', 'info'];

  function incidentHref(key) {
    return '/ui/incidents/' + encodeURIComponent(key);
  }

  function incidentRow(incident) {
    return h('tr', { 'data-key': incident.key },
      h('td', { 'data-label': 'Key', class: 'short' }, link(incidentHref(incident.key), incident.key)),
      h('td', { 'data-label': 'Title', text: incident.title }),
      h('td', { 'data-label': 'Severity', class: 'short' }, badge('sev', incident.severity)),
      h('td', { 'data-label': 'Host', text: incident.host || '—' }),
      h('td', { 'data-label': 'Appcode', text: incident.appcode || '—' }),
      h('td', { 'data-label': 'Status', class: 'status short' }, badge('status', incident.status)),
      h('td', { 'data-label': 'Age', class: 'age short', 'data-since': incident.opened_at, title: fmtTime(incident.opened_at) }),
      h('td', { 'data-label': 'Repeats', class: 'num', title: incident.count + ' alarm event(s)', text: String(Math.max(0, incident.count - 1)) }));
  }

  function incidentsPage() {
    document.title = 'Incidents · vigil';
    const params = new URLSearchParams(location.search);
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter incidents' },
      field('Status', 'f-status', select('status', [
        ['unresolved', 'Unresolved'], ['open', 'Open'], ['acknowledged', 'Acknowledged'],
        ['resolved', 'Resolved'], ['all', 'All']], params.get('status') || 'unresolved')),
      field('Severity', 'f-severity', select('severity',
        [['', 'Any']].concat(SEVERITIES.map((s) => [s, s])), params.get('severity') || '')),
      field('Appcode', 'f-appcode', h('input', { name: 'appcode', value: params.get('appcode') || '', autocomplete: 'off' })),
      field('Host', 'f-host', h('input', { name: 'host', value: params.get('host') || '', autocomplete: 'off' })),
      field('Text', 'f-q', h('input', { name: 'q', type: 'search', value: params.get('q') || '', autocomplete: 'off' })));
    form.addEventListener('submit', (e) => e.preventDefault());
    const tbody = h('tbody');
    const table = h('table', { class: 'grid', id: 'incidents' },
      h('caption', { class: 'sr-only', text: 'Incidents, newest first' }),
      h('thead', {}, h('tr', {}, ['Key', 'Title', 'Severity', 'Host', 'Appcode', 'Status', 'Age', 'Repeats']
        .map((c) => h('th', { scope: 'col', text: c })))),
      tbody);
    const empty = h('p', { class: 'muted', text: 'No incidents match these filters.', hidden: true });
    const updated = h('p', { class: 'muted small', id: 'updated' });
    main.replaceChildren(h('h1', { text: 'Incidents' }), form, updated, h('div', { class: 'table-wrap' }, table), empty);

    let shown = '';
    const load = async () => {
      const query = new URLSearchParams();
      for (const [name, value] of new FormData(form)) if (value) query.set(name, value);
      const data = await api('/ui/api/incidents?' + query);
      syncClock(data.now);
      const signature = JSON.stringify(data.incidents);
      if (signature !== shown) {
        shown = signature;
        rebuildKeepingFocus(tbody, 'tr', 'data-key', () => tbody.replaceChildren(...data.incidents.map(incidentRow)));
        empty.hidden = data.incidents.length > 0;
      }
      for (const cell of tbody.querySelectorAll('td.age')) cell.textContent = since(cell.dataset.since);
      updated.textContent = data.incidents.length + ' shown · updated ' + fmtTime(Date.now());
    };
    const kick = every(1000, load);
    const refilter = () => {
      const query = new URLSearchParams();
      for (const [name, value] of new FormData(form)) if (value && !(name === 'status' && value === 'unresolved')) query.set(name, value);
      history.replaceState(null, '', location.pathname + (query.toString() ? '?' + query : ''));
      shown = '';
      kick();
    };
    form.addEventListener('input', refilter);
    form.addEventListener('change', refilter);
  }

  function mtt(from, to) {
    if (!from || !to) return null;
    return duration(Date.parse(to) - Date.parse(from));
  }

  function alarmFacts(i) {
    const metric = [i.metric_namespace, i.metric_name].filter(Boolean).join(' / ');
    const map = (m) => (m && Object.keys(m).length
      ? Object.entries(m).map(([k, v]) => k + '=' + v).join(', ') : null);
    return facts([
      ['Alarm', i.alarm_name],
      ['State', i.state ? badge('state', i.state) : null],
      ['Previous state', i.previous_state ? badge('state', i.previous_state) : null],
      ['Reason', i.reason],
      ['Description', i.description],
      ['Metric', metric],
      ['Statistic', i.statistic],
      ['Period', i.period !== null && i.period !== undefined ? i.period + ' s' : null],
      ['Threshold', i.threshold],
      ['Value', i.value],
      ['Dimensions', map(i.dimensions)],
      ['Labels', map(i.labels)],
      ['Annotations', map(i.annotations)],
      ['Instance', i.instance_id],
      ['Source', i.source],
      ['Account', i.account],
      ['Region', i.region],
      ['Resource', i.resource],
      ['State time', i.state_time],
      ['Starts at', i.starts_at],
      ['Source link', i.generator_url ? outsideLink(i.generator_url) : null],
    ]);
  }

  function ticketsSection(tickets) {
    return [h('h2', { text: 'Tickets' }), h('ul', { id: 'tickets' }, tickets.map((t) =>
      h('li', {}, outsideLink(t.url, (t.tracker ? t.tracker + ' ' : '') + (t.id || t.url))))) ];
  }

  // Notification records are still taking shape on the server; show what each one says.
  function notificationsSection(items) {
    const cols = ['Channel', 'Step', 'State', 'Attempts', 'Detail', 'Updated', 'Link'];
    const rows = items.map((n) => h('tr', {},
      h('td', { 'data-label': 'Channel', text: n.channel || '—' }),
      h('td', { 'data-label': 'Step', text: n.name || n.kind || '—' }),
      h('td', { 'data-label': 'State', text: n.status || n.state || n.delivery || '—' }),
      h('td', { 'data-label': 'Attempts', class: 'num', text: n.attempts !== undefined ? String(n.attempts) : '—' }),
      h('td', { 'data-label': 'Detail', text: n.last_error || n.error || n.detail || n.external_id || '—' }),
      h('td', { 'data-label': 'Updated', class: 'short', text: fmtTime(n.updated_at || n.at || n.sent_at) }),
      h('td', { 'data-label': 'Link' }, n.link ? outsideLink(n.link) : '—')));
    return [h('h2', { text: 'Notifications' }), h('div', { class: 'table-wrap' },
      h('table', { class: 'grid', id: 'notifications' },
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', text: c })))),
        h('tbody', {}, rows)))];
  }

  // A storm lists its member incidents: each keeps its own page and timeline.
  function membersSection(members) {
    const found = {};
    members.forEach((m) => {
      const p = m.probes || {};
      const word = p.answered ? 'answered' : p.pending ? 'probing' : p.unreachable ? 'unreachable' : 'not probed';
      found[word] = (found[word] || 0) + 1;
    });
    const summary = Object.keys(found).map((k) => found[k] + ' ' + k).join(', ');
    return [h('h2', { text: 'Members (' + members.length + ')' }),
      h('p', { class: 'muted', text: 'Probes: ' + (summary || 'none') }),
      h('table', { class: 'members' },
        h('thead', {}, h('tr', {}, ...['Incident', 'Host', 'Alarm', 'Status', 'Probes', 'Opened'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, ...members.map((m) => {
          const p = m.probes || {};
          return h('tr', { 'data-key': m.key },
            h('td', {}, link(incidentHref(m.key), m.key)),
            h('td', { text: m.host || '—' }),
            h('td', { text: m.alarm_name }),
            h('td', {}, badge('status', m.status)),
            h('td', { text: p.answered ? 'answered' : p.pending ? 'probing' : p.unreachable ? 'unreachable' : 'not probed' }),
            h('td', {}, timeEl(m.opened_at)));
        })))];
  }

  function timelineSection(timeline) {
    return [h('h2', { text: 'Timeline' }), h('ol', { class: 'timeline', id: 'timeline' }, timeline.map((t) =>
      h('li', { 'data-kind': t.kind },
        timeEl(t.at),
        h('span', { class: 'kind', text: t.kind.replace(/_/g, ' ') }),
        t.kind === 'diagnostics'
          ? h('span', { class: 'message', text: (t.message.split('\n')[0] || '') + ' (output under Diagnostics)' })
          : h('span', { class: 'message', text: t.message }))))];
  }

  function incidentPage(key) {
    document.title = key + ' · vigil';
    const heading = h('h1', { tabindex: '-1', text: key });
    const badges = h('p', { class: 'badges' });
    const ack = h('button', { type: 'button', id: 'ack', text: 'Acknowledge', disabled: true });
    const resolve = h('button', { type: 'button', id: 'resolve', text: 'Resolve', disabled: true });
    const body = h('div', { id: 'incident' });
    main.replaceChildren(h('p', {}, link('/', '← Incidents')), heading, badges, h('div', { class: 'actions' }, ack, resolve), body);

    let shown = '';
    // A poll that started before an Acknowledge must not paint the older state over it.
    let asked = 0;
    let painted = 0;
    const fetchAndRender = async (request) => {
      const mine = ++asked;
      const data = await request();
      if (mine < painted) return;
      painted = mine;
      render(data);
    };
    const render = (data) => {
      syncClock(data.now);
      const i = data.incident;
      document.title = i.key + ' ' + i.title + ' · vigil';
      heading.textContent = i.key + ' — ' + i.title;
      badges.replaceChildren(badge('status', i.status), ' ', badge('sev', i.severity));
      badges.firstChild.id = 'status';
      ack.disabled = i.status !== 'open';
      resolve.disabled = i.status === 'resolved';
      const signature = JSON.stringify(i);
      if (signature === shown) return;
      shown = signature;
      const timeline = i.timeline || [];
      const diagnostics = timeline.filter((t) => t.kind === 'diagnostics');
      const notifications = i.notifications || i.deliveries || [];
      body.replaceChildren(...[
        h('div', { class: 'columns' },
          h('section', { 'aria-labelledby': 'h-summary' }, h('h2', { id: 'h-summary', text: 'Summary' }), facts([
            ['Status', i.status],
            ['Severity', i.severity],
            ['Host', i.host ? link('/?host=' + encodeURIComponent(i.host) + '&status=all', i.host) : null],
            ['Appcode', i.appcode],
            ['Opened', timeEl(i.opened_at)],
            ['Acknowledged', i.acknowledged_at ? timeEl(i.acknowledged_at) : 'not yet'],
            ['Resolved', i.resolved_at ? timeEl(i.resolved_at) : 'not yet'],
            ['MTTA', h('span', { id: 'mtta', text: mtt(i.opened_at, i.acknowledged_at) || 'not yet known' })],
            ['MTTR', h('span', { id: 'mttr', text: mtt(i.opened_at, i.resolved_at) || 'not yet known' })],
            i.kind === 'storm' ? ['Members', String((i.members || []).length)] : ['Alarm events', String(i.count)],
            ['Storm', i.storm ? link(incidentHref(i.storm), i.storm) : null],
            ['Last event', timeEl(i.last_event_at)],
          ])),
          h('section', { 'aria-labelledby': 'h-alarm' }, h('h2', { id: 'h-alarm', text: 'Alarm' }), alarmFacts(i))),
        h('section', { 'aria-labelledby': 'h-diag', id: 'diagnostics' },
          h('h2', { id: 'h-diag', text: 'Diagnostics' }),
          diagnostics.length ? diagnostics.map((d) => h('figure', { class: 'diagnostic' },
            h('figcaption', {}, timeEl(d.at)),
            h('pre', { tabindex: '0', text: d.message })))
            : h('p', { class: 'muted', text: 'No diagnostics yet.' })),
        i.kind === 'storm' ? h('section', { id: 'members' }, membersSection(i.members || [])) : null,
        Array.isArray(i.tickets) && i.tickets.length ? h('section', {}, ticketsSection(i.tickets)) : null,
        Array.isArray(notifications) && notifications.length ? h('section', {}, notificationsSection(notifications)) : null,
        h('section', {}, timelineSection(timeline)),
      ].filter(Boolean));
    };
    const act = async (button, path, done) => {
      button.disabled = true;
      try {
        await fetchAndRender(() => post('/ui/api/incidents/' + encodeURIComponent(key) + path));
        announce(key + ' ' + done);
        showProblem(null);
      } catch (e) {
        showProblem(e);
      }
      if (button.disabled) heading.focus();
    };
    ack.addEventListener('click', () => act(ack, '/ack', 'acknowledged'));
    resolve.addEventListener('click', () => act(resolve, '/resolve', 'resolved'));
    every(2000, () => fetchAndRender(() => api('/ui/api/incidents/' + encodeURIComponent(key))));
  }

  // ---- alarms ----

  function alarmHref(name) {
    return '/ui/alarms/' + encodeURIComponent(name);
  }

  function fmtValue(v) {
    if (v === null || v === undefined) return '—';
    return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v * 100) / 100) : v.toPrecision(4);
  }

  const COMPARISON = {
    GreaterThanThreshold: '>',
    GreaterThanOrEqualToThreshold: '≥',
    LessThanThreshold: '<',
    LessThanOrEqualToThreshold: '≤',
  };

  function comparisonText(op, threshold) {
    return (COMPARISON[op] || op) + ' ' + fmtValue(threshold);
  }

  function alarmsPage() {
    document.title = 'Alarms · vigil';
    const tbody = h('tbody');
    const idle = h('div');
    main.replaceChildren(h('h1', { text: 'Alarms' }),
      h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'alarms' },
        h('caption', { class: 'sr-only', text: 'Alarm instances: one per alarm and series' }),
        h('thead', {}, h('tr', {}, ['Alarm', 'Series', 'State', 'Value', 'Threshold', 'In state for', 'Reason']
          .map((c) => h('th', { scope: 'col', text: c })))), tbody)),
      idle);
    let shown = '';
    every(2000, async () => {
      const data = await api('/ui/api/alarms');
      syncClock(data.now_ms);
      const signature = JSON.stringify(data);
      if (signature === shown) return;
      shown = signature;
      rebuildKeepingFocus(tbody, 'tr', 'data-series', () => tbody.replaceChildren(...data.instances.map((i) => h('tr', { 'data-series': i.alarm + ' ' + i.series },
        h('td', { 'data-label': 'Alarm' }, link(alarmHref(i.alarm), i.alarm)),
        h('td', { 'data-label': 'Series' }, h('code', { text: i.series })),
        h('td', { 'data-label': 'State', class: 'short' }, badge('state', i.state)),
        h('td', { 'data-label': 'Value', class: 'num', text: fmtValue(i.value) }),
        h('td', { 'data-label': 'Threshold', class: 'num', text: comparisonText(i.comparison, i.threshold) }),
        h('td', { 'data-label': 'In state for', class: 'short', title: fmtTime(i.since_ms), text: since(i.since_ms) }),
        h('td', { 'data-label': 'Reason', class: 'reason', title: i.reason || '', text: i.reason || (i.restored ? 'kept from before the restart; no data since' : '—') })))));
      const watched = new Set(data.instances.map((i) => i.alarm));
      const waiting = data.alarms.filter((a) => !watched.has(a.AlarmName));
      idle.replaceChildren(...(waiting.length ? [
        h('h2', { text: 'Alarms without data yet' }),
        h('ul', {}, waiting.map((a) => h('li', {}, link(alarmHref(a.AlarmName), a.AlarmName), ' — ',
          h('code', { text: a.MetricName }), ' ', comparisonText(a.ComparisonOperator, a.Threshold)))),
      ] : []));
    });
  }

  // Each chart is a request every refresh; an alarm over a whole fleet shows a sample.
  const MAX_CHARTS = 20;
  const WINDOWS = [['900000', 'Last 15 minutes'], ['3600000', 'Last hour'], ['21600000', 'Last 6 hours'], ['86400000', 'Last 24 hours']];

  function sameLabels(a, b) {
    const ka = Object.keys(a || {});
    const kb = Object.keys(b || {});
    return ka.length === kb.length && ka.every((k) => b[k] === a[k]);
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo;
    const step0 = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step / 1e6; v += step) ticks.push(Math.round(v / step) * step);
    return ticks;
  }

  // Draws one series: minute rollups as a min–max band with their mean, raw points as a
  // line, the threshold as a dashed line and each state change as a vertical marker.
  function drawChart(figure, instance, series, windowMs, nowMs) {
    const width = Math.max(320, Math.round(figure.clientWidth || 800) - 16);
    const height = width < 600 ? 220 : 280;
    const box = { left: 52, right: 16, top: 16, bottom: 28 };
    const end = nowMs;
    const points = (series ? series.points : []).filter(([t]) => t >= end - windowMs);
    const rollups = (series ? series.rollups : []).filter((r) => r.minute_ms + 60000 >= end - windowMs);
    const changes = (instance.changes || []).filter((c) => c.at_ms >= end - windowMs);
    // Short histories fill the chart instead of hugging its right edge. A rollup's minute
    // starts before its first point, so it only widens the chart past the raw points.
    const rawStart = points.length ? points[0][0] : end;
    const rollupStart = rollups.length && rollups[0].minute_ms + 60000 <= rawStart ? rollups[0].minute_ms : rawStart;
    const firstSeen = Math.min(rawStart, rollupStart, ...changes.map((c) => c.at_ms), end - 30000);
    const start = Math.max(end - windowMs, firstSeen - 5000);
    const values = points.map(([, v]) => v).concat(rollups.flatMap((r) => [r.min, r.max]), [instance.threshold]);
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    if (lo === hi) { lo -= 1; hi += 1; }
    const margin = (hi - lo) * 0.1;
    lo -= margin;
    hi += margin;
    const x = (t) => box.left + ((t - start) / (end - start)) * (width - box.left - box.right);
    const y = (v) => box.top + (1 - (v - lo) / (hi - lo)) * (height - box.top - box.bottom);
    const r1 = (n) => Math.round(n * 10) / 10;

    const svg = s('svg', {
      viewBox: '0 0 ' + width + ' ' + height, width, height, role: 'img', class: 'chart',
      'aria-label': instance.metric + ' over time: ' + points.length + ' raw points, ' + rollups.length +
        ' minute rollups, threshold ' + fmtValue(instance.threshold) + ', now ' + instance.state,
    });
    const yTicks = niceTicks(lo, hi, 4);
    svg.append(s('g', { class: 'axis' }, yTicks.map((v) => [
      s('line', { class: 'grid-line', x1: box.left, x2: width - box.right, y1: r1(y(v)), y2: r1(y(v)) }),
      s('text', { x: box.left - 6, y: r1(y(v)) + 4, 'text-anchor': 'end', text: fmtValue(v) }),
    ])));
    const span = end - start;
    const xStep = [10e3, 30e3, 60e3, 300e3, 600e3, 1800e3, 3600e3, 7200e3, 21600e3].find((st) => span / st <= 6) || 21600e3;
    const xTicks = [];
    for (let t = Math.ceil(start / xStep) * xStep; t <= end; t += xStep) xTicks.push(t);
    svg.append(s('g', { class: 'axis' }, xTicks.map((t) => {
      const d = new Date(t);
      const label = pad(d.getHours()) + ':' + pad(d.getMinutes()) + (xStep < 60e3 ? ':' + pad(d.getSeconds()) : '');
      return s('text', { x: r1(x(t)), y: height - 8, 'text-anchor': 'middle', text: label });
    })));

    if (rollups.length) {
      svg.append(s('g', { class: 'rollups' }, rollups.map((r) => {
        const x0 = Math.max(x(r.minute_ms), box.left);
        const x1 = Math.min(x(r.minute_ms + 60000), width - box.right);
        return s('rect', { class: 'band', x: r1(x0), width: r1(Math.max(1, x1 - x0)), y: r1(y(r.max)), height: r1(Math.max(1, y(r.min) - y(r.max))) });
      })));
      svg.append(s('path', {
        class: 'rollup',
        d: rollups.map((r, n) => (n ? 'L' : 'M') + r1(x(Math.max(start, r.minute_ms + 30000))) + ' ' + r1(y(r.sum / r.count))).join(' '),
      }));
    }
    if (points.length) {
      svg.append(s('path', { class: 'raw', d: points.map(([t, v], n) => (n ? 'L' : 'M') + r1(x(t)) + ' ' + r1(y(v))).join(' ') }));
      if (points.length <= 240) {
        svg.append(s('g', { class: 'points' }, points.map(([t, v]) => s('circle', { class: 'point', cx: r1(x(t)), cy: r1(y(v)), r: 2.5 }))));
      }
    }
    const ty = r1(y(instance.threshold));
    svg.append(s('line', { class: 'threshold', 'data-threshold': instance.threshold, x1: box.left, x2: width - box.right, y1: ty, y2: ty }));
    svg.append(s('text', { class: 'threshold-label', x: box.left + 6, y: ty - 5, text: 'threshold ' + comparisonText(instance.comparison, instance.threshold) }));
    svg.append(s('g', { class: 'changes' }, changes.map((c) => {
      const cx = r1(x(c.at_ms));
      return s('g', { class: 'change-mark', 'data-state': c.state, 'data-at': c.at_ms },
        s('title', { text: c.state + ' at ' + fmtTime(c.at_ms) }),
        s('line', { class: 'change state-' + c.state, x1: cx, x2: cx, y1: box.top, y2: height - box.bottom }),
        // Labels near the right edge go on the line's left, so they are not cut off.
        cx > width - box.right - 90
          ? s('text', { class: 'state-' + c.state, x: cx - 3, y: box.top + 10, 'text-anchor': 'end', text: c.state.replace(/_/g, ' ') })
          : s('text', { class: 'state-' + c.state, x: cx + 3, y: box.top + 10, text: c.state.replace(/_/g, ' ') }));
    })));
    return svg;
  }

  function alarmPage(name) {
    document.title = name + ' · vigil';
    const windowSelect = select('window', WINDOWS, '3600000');
    const definition = h('div');
    const instancesBox = h('div', { id: 'instances' });
    main.replaceChildren(h('p', {}, link('/ui/alarms', '← Alarms')), h('h1', { text: name }), definition,
      h('form', { class: 'filters window-control' }, field('Chart window', 'f-window', windowSelect)),
      instancesBox);
    let last = null;
    const draw = async () => {
      const data = await api('/ui/api/alarms/' + encodeURIComponent(name));
      syncClock(data.now_ms);
      const a = data.alarm;
      definition.replaceChildren(facts([
        ['Metric', [a.Namespace, a.MetricName].filter(Boolean).join(' / ')],
        ['Dimensions', (a.Dimensions || []).map((d) => d.Name + '=' + d.Value).join(', ') || 'none'],
        ['Statistic', a.Statistic || a.ExtendedStatistic],
        ['Period', a.Period + ' s'],
        ['Evaluation', (a.DatapointsToAlarm || a.EvaluationPeriods) + ' of ' + a.EvaluationPeriods + ' periods'],
        ['Threshold', comparisonText(a.ComparisonOperator, a.Threshold)],
        ['Missing data', a.TreatMissingData || 'missing'],
        ['Severity', a.Severity],
        ['Appcode', a.Appcode],
        ['Description', a.AlarmDescription],
      ]));
      const sections = [];
      for (const instance of data.instances.slice(0, MAX_CHARTS)) {
        const query = new URLSearchParams({ name: instance.metric });
        for (const [k, v] of Object.entries(instance.dimensions)) query.set(k, v);
        const found = await api('/ui/api/series?' + query);
        const series = found.series.find((s2) => sameLabels(s2.labels, instance.dimensions)) || null;
        const figure = h('figure', { class: 'chart', 'data-series': instance.series });
        const history = found.history_source === 'query_api' ? 'from the query API'
          : found.history_error ? 'vigil\'s own: the query API failed (' + found.history_error + ')' : '';
        sections.push({ instance, series, figure, history, el: h('section', { class: 'instance' },
          h('h2', {}, h('code', { text: instance.series })),
          facts([
            ['State', badge('state', instance.state)],
            ['In state for', since(instance.since_ms) + ' (since ' + fmtTime(instance.since_ms) + ')'],
            ['Current value', h('span', { class: 'value', text: fmtValue(instance.value) })],
            ['Threshold', comparisonText(instance.comparison, instance.threshold)],
          ]),
          figure) });
      }
      const notes = [];
      if (!sections.length) notes.push(h('p', { class: 'muted', text: 'No series has reported for this alarm yet.' }));
      if (data.instances.length > MAX_CHARTS) {
        notes.push(h('p', { class: 'muted', text: 'Charts for the first ' + MAX_CHARTS + ' of ' + data.instances.length + ' series; the Alarms page lists them all.' }));
      }
      instancesBox.replaceChildren(...sections.map((x) => x.el), ...notes);
      last = { sections, nowMs: data.now_ms };
      paint();
    };
    const paint = () => {
      if (!last) return;
      for (const { instance, series, figure, history } of last.sections) {
        const legend = h('ul', { class: 'legend' },
          h('li', {}, h('span', { class: 'swatch raw' }), 'raw points'),
          h('li', {}, h('span', { class: 'swatch band' }), 'minute min–max and mean' + (history ? ', ' + history : '')),
          h('li', {}, h('span', { class: 'swatch threshold' }), 'threshold'),
          h('li', {}, h('span', { class: 'swatch change' }), 'state change'));
        figure.replaceChildren(drawChart(figure, instance, series, Number(windowSelect.value), last.nowMs),
          h('figcaption', {}, legend));
      }
    };
    windowSelect.addEventListener('change', paint);
    window.addEventListener('resize', paint);
    every(2000, draw);
  }

  // ---- hosts and applications ----

  function collectorText(collector) {
    if (!collector) return '—';
    const state = collector.running === true ? 'running' : collector.running === false ? 'stopped' : 'unknown';
    const error = collector.last_error ? ' — ' + collector.last_error : '';
    return state + error;
  }

  const HOST_STATES = {
    declared: 'bound to an application, but no agent has enrolled',
    enrolled: 'given a token, but its agent has never reported',
    reporting: 'its agent reports',
    silent: 'its agent has stopped reporting',
    revoked: "its agent's token was revoked",
  };

  function hostsPage() {
    document.title = 'Hosts · vigil';
    const tbody = h('tbody');
    const empty = h('p', { class: 'muted', hidden: true, text: 'No hosts yet. Enroll one with: vigil host add NAME' });
    main.replaceChildren(h('h1', { text: 'Hosts' }),
      h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'hosts' },
        h('caption', { class: 'sr-only', text: 'Hosts: declared, enrolled, reporting, silent or revoked' }),
        h('thead', {}, h('tr', {}, ['Host', 'State', 'Appcode', 'Last seen', 'Agent', 'Collector', 'Open incidents']
          .map((c) => h('th', { scope: 'col', text: c })))), tbody)), empty);
    every(2000, async () => {
      const data = await api('/ui/api/hosts');
      syncClock(data.now);
      empty.hidden = data.hosts.length > 0;
      rebuildKeepingFocus(tbody, 'tr', 'data-host', () => tbody.replaceChildren(...data.hosts.map((host) => h('tr', { 'data-host': host.name },
        h('td', { 'data-label': 'Host', text: host.name }),
        h('td', { 'data-label': 'State', title: HOST_STATES[host.state] || '' }, badge('host', host.state)),
        h('td', { 'data-label': 'Appcode', text: host.appcode || '—' }),
        h('td', { 'data-label': 'Last seen', class: 'short', title: fmtTime(host.last_seen_at), text: host.last_seen_at ? since(host.last_seen_at) + ' ago' : 'never' }),
        h('td', { 'data-label': 'Agent', text: host.agent_version || '—' }),
        h('td', { 'data-label': 'Collector', class: 'collector', text: collectorText(host.collector) }),
        h('td', { 'data-label': 'Open incidents', class: 'num' }, host.open_incidents
          ? link('/?host=' + encodeURIComponent(host.name), String(host.open_incidents)) : '0')))));
    });
  }

  function appCard(app) {
    return h('section', { class: 'card', 'data-appcode': app.appcode || '' },
      h('h2', { text: app.appcode ? app.appcode + (app.name ? ' · ' + app.name : '') : 'No Appcode' }),
      h('div', { class: 'card-body' },
        facts([
          ['Kind', app.kind || '—'],
          ['Parent', app.parent || '—'],
          ['Owners', app.owners && app.owners.length ? app.owners.join(', ') + (app.owners_from && app.owners_from !== app.appcode ? ' (from ' + app.owners_from + ')' : '') : 'none'],
          ['Approvers', app.approvers && app.approvers.length ? app.approvers.join(', ') : 'none'],
          ['On call', app.oncall && app.oncall.length ? app.oncall.join(', ') : 'none'],
          ['Open incidents', app.appcode && app.open_incidents
            ? link('/?appcode=' + encodeURIComponent(app.appcode), String(app.open_incidents)) : String(app.open_incidents)],
        ]),
        h('div', {},
          h('h3', { text: 'Hosts' }),
          app.hosts.length
            ? h('ul', {}, app.hosts.map((host) => h('li', {}, host.name, ' ', badge('host', host.state),
              h('span', { class: 'muted', text: host.last_seen_at ? ' · seen ' + since(host.last_seen_at) + ' ago' : ' · never seen' }))))
            : h('p', { class: 'muted', text: 'none bound here' }))));
  }

  // The nodes come parents first; each is drawn inside its parent's list item, so the
  // nesting (and the indent) shows the tree. A node whose parent is out of the session's
  // scope is a root here, as are the hosts bound to no Appcode.
  function appTree(apps) {
    const drawn = new Set(apps.map((app) => app.appcode).filter(Boolean));
    const children = new Map();
    const roots = [];
    for (const app of apps) {
      if (app.appcode && app.parent && drawn.has(app.parent)) {
        if (!children.has(app.parent)) children.set(app.parent, []);
        children.get(app.parent).push(app);
      } else {
        roots.push(app);
      }
    }
    const branch = (nodes) => nodes.map((app) => h('li', {}, appCard(app),
      children.has(app.appcode) ? h('ul', { class: 'tree' }, branch(children.get(app.appcode))) : null));
    return branch(roots);
  }

  function appsPage() {
    document.title = 'Applications · vigil';
    const tree = h('ul', { class: 'tree', id: 'apps', 'aria-label': 'Application tree' });
    const empty = h('p', { class: 'muted', hidden: true, text: 'No applications yet: vigil app add, or vigil app import.' });
    main.replaceChildren(h('h1', { text: 'Applications' }),
      h('p', { class: 'muted', text: 'The application tree: each node with the owners, approvers and on-call it inherits, its hosts and open incidents.' }),
      tree, empty);
    every(2000, async () => {
      const data = await api('/ui/api/apps');
      syncClock(data.now);
      empty.hidden = data.apps.length > 0;
      rebuildKeepingFocus(tree, 'section', 'data-appcode', () => tree.replaceChildren(...appTree(data.apps)));
    });
  }

  // ---- start ----

  function route() {
    const path = location.pathname;
    const tail = (prefix) => decodeURIComponent(path.slice(prefix.length));
    if (path === '/' || path === '/ui' || path === '/ui/') return ['incidents', incidentsPage];
    if (path.startsWith('/ui/incidents/')) return ['incidents', () => incidentPage(tail('/ui/incidents/'))];
    if (path === '/ui/alarms') return ['alarms', alarmsPage];
    if (path.startsWith('/ui/alarms/')) return ['alarms', () => alarmPage(tail('/ui/alarms/'))];
    if (path === '/ui/hosts') return ['hosts', hostsPage];
    if (path === '/ui/apps') return ['apps', appsPage];
    return ['', () => main.replaceChildren(h('h1', { text: 'Not found' }))];
  }

  document.getElementById('logout').addEventListener('click', async () => {
    try {
      await post('/ui/api/logout');
    } finally {
      location.assign('/ui/login');
    }
  });

  // While processing is behind, every page says so: what it shows may be late.
  const lag = document.getElementById('lag');
  async function checkLag() {
    try {
      const processing = (await api('/ui/api/status')).processing;
      lag.hidden = !processing.behind;
      lag.textContent = processing.behind
        ? 'Processing is behind: ' + processing.backlog + ' events waiting, the oldest for ' +
          duration(processing.lag_seconds * 1000) + '. New alarms may show late.'
        : '';
    } catch (e) {
      // The page's own loads report an unreachable server.
    }
  }
  checkLag();
  setInterval(checkLag, 5000);

  const [section, page] = route();
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
  }
  page();
})();
