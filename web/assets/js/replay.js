// Trip replay: the stored trip of an order (`GET /v1/orders/{id}/track`) drawn
// in full, faintly, and replayed with a time slider, play/pause and speed; the
// estimates and alerts of the order's log (while the log still holds them)
// follow the slider: the estimate as it stood, the alerts open at that time.
// Beside it, the order's durable status history (`GET /v1/orders/{id}/history`,
// packages included), the changes up to the slider's time marked as passed,
// the trip's summary (`GET /v1/orders/{id}/trip`: distance, time moving and
// stopped, speeds, the stops marked on the map) and the track as a GPX or
// CSV download (fetched with the token in a header, never in a link).

import { Glide, STATUS_WORDS, clock, createMap, dot, leafletReady } from './map.js';
import { getJson, orderFromPath, requireToken } from './session.js';

const $ = (id) => document.getElementById(id);
const order = orderFromPath();
const token = requireToken();
$('order').textContent = order;
document.title = 'Replay ' + order + ' · tracker';
const page = { order, points: [], trail: null, rider: null, playing: false, etas: [], alerts: [], changes: [] };
window.trackerPage = page;

/** The order's estimates and alert edges, read from its log page by page. */
async function history() {
  const etas = [];
  const alerts = [];
  let since = 0;
  for (let page = 0; page < 50; page++) {
    const q = `/v1/orders/${encodeURIComponent(order)}/events?since=${since}&wait=0`;
    const r = await getJson(q, token);
    for (const e of r.events || []) {
      if (e.t === 'eta') etas.push(e);
      if (e.t === 'alert') alerts.push(e);
    }
    if (!r.events || r.events.length === 0 || r.next === since) break;
    since = r.next;
  }
  return { etas, alerts };
}

/** Minutes (or seconds under one) of `ms`. */
function span(ms) {
  return ms >= 60000 ? `${Math.round(ms / 60000)} min` : `${Math.round(ms / 1000)} s`;
}

/** The trip report beside the map, and its stops on it. */
async function summary(map) {
  let r;
  try {
    r = await getJson('/v1/orders/' + encodeURIComponent(order) + '/trip', token);
  } catch {
    return; // The trip replays without it.
  }
  page.report = r;
  $('sum-distance').textContent = `${(r.distance_m / 1000).toFixed(2)} km`
    + (r.dropped > 0 ? ` (${r.dropped} fixes left out as GPS noise)` : '');
  $('sum-duration').textContent = span(r.duration_ms);
  $('sum-moving').textContent = `${span(r.moving_ms)} / ${span(r.stopped_ms)}`;
  const kmh = (v) => `${(v * 3.6).toFixed(1)} km/h`;
  $('sum-speed').textContent = `${kmh(r.avg_speed)} / ${kmh(r.max_speed)}`;
  $('sum-stops').textContent = r.stops.length === 0
    ? 'none'
    : r.stops.map((s) => `${clock(s.from)} for ${span(s.to - s.from)}`).join(', ');
  for (const s of r.stops) {
    dot([s.lat, s.lon], 'stop-marker', '#f9a825', 7).addTo(map)
      .bindTooltip(`Stopped ${span(s.to - s.from)} from ${clock(s.from)}`);
  }
}

/** Saves the track as `format` (gpx, csv) through an object URL. */
async function download(format) {
  const r = await fetch(`/v1/orders/${encodeURIComponent(order)}/track?format=${format}`, {
    headers: { authorization: 'Bearer ' + token },
  });
  if (!r.ok) {
    $('notice').textContent = `The ${format.toUpperCase()} file could not be made (${r.status}).`;
    return;
  }
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = `order-${order}.${format}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** The status timeline: one entry per change, oldest first. */
function drawTimeline(changes) {
  $('timeline').replaceChildren(
    ...changes.map((c) => {
      const li = document.createElement('li');
      li.dataset.ts = String(c.ts);
      const what = c.package
        ? `package ${c.package}: ${c.to.replace(/_/g, ' ')}`
        : STATUS_WORDS[c.to] || c.to.replace(/_/g, ' ');
      const who = c.by ? ` · ${c.by}` : '';
      const why = c.reason ? ` (${c.reason})` : '';
      li.textContent = `${clock(c.ts)} ${what}${who}${why}`;
      if (c.package) li.classList.add('package');
      return li;
    }),
  );
}

/** Marks the timeline's entries at or before `t` as passed. */
function markTimeline(t) {
  for (const li of $('timeline').children) li.classList.toggle('past', Number(li.dataset.ts) <= t);
}

/** The alerts open at `t`: raised at or before it and not cleared by then. */
function openAt(alerts, t) {
  const open = new Map();
  for (const a of alerts) {
    if (a.ts > t) break;
    if (a.cleared) open.delete(a.kind);
    else open.set(a.kind, a);
  }
  return [...open.values()];
}

/** The position at time `t`, interpolated between the two fixes around it. */
function at(points, t) {
  if (t <= points[0].ts) return [points[0].lat, points[0].lon, 0];
  for (let i = 1; i < points.length; i++) {
    const b = points[i];
    if (b.ts >= t) {
      const a = points[i - 1];
      const k = b.ts === a.ts ? 1 : (t - a.ts) / (b.ts - a.ts);
      return [a.lat + (b.lat - a.lat) * k, a.lon + (b.lon - a.lon) * k, i];
    }
  }
  const last = points[points.length - 1];
  return [last.lat, last.lon, points.length];
}

async function main() {
  if (!leafletReady($('map'))) return;
  const map = await createMap($('map'));
  page.map = map;
  let trip;
  try {
    trip = await getJson('/v1/orders/' + encodeURIComponent(order) + '/track', token);
  } catch (e) {
    $('notice').textContent = e.status === 403 ? 'This order is not yours to replay.' : e.message;
    return;
  }
  $('status').textContent = STATUS_WORDS[trip.status] || trip.status || '';
  try {
    const h = await getJson('/v1/orders/' + encodeURIComponent(order) + '/history', token);
    page.changes = h.changes || [];
    drawTimeline(page.changes);
  } catch {
    // The trip replays without it.
  }
  const points = trip.points;
  page.points = points;
  if (points.length === 0) {
    $('notice').textContent = 'No stored trip for this order (yet).';
    return;
  }
  for (const format of ['gpx', 'csv']) {
    const b = $('get-' + format);
    b.onclick = () => download(format);
    b.disabled = false;
  }
  const all = points.map((p) => [p.lat, p.lon]);
  // The planned route, when the order had one, dashed in violet under the trip.
  try {
    const row = await getJson('/v1/orders/' + encodeURIComponent(order), token);
    if (row.route) {
      L.polyline(row.route.map((p) => [p.lat, p.lon]), {
        color: '#7e57c2', weight: 3, dashArray: '6 6', className: 'planned-route',
      }).addTo(map);
    }
  } catch {
    // The trip replays without it.
  }
  L.polyline(all, { color: '#90a4ae', weight: 3, dashArray: '4 6', className: 'trip-full' }).addTo(map);
  const done = L.polyline([], { color: '#1e88e5', weight: 5, className: 'trip-done' }).addTo(map);
  page.trail = done;
  map.fitBounds(L.latLngBounds(all).pad(0.2));
  summary(map);
  const rider = dot(all[0], 'rider-marker', '#1e88e5', 9).addTo(map);
  page.rider = rider;
  const glide = new Glide(rider);

  const t0 = points[0].ts;
  const t1 = points[points.length - 1].ts;
  const slider = $('slider');
  slider.min = 0;
  slider.max = Math.max(1, t1 - t0);
  slider.value = 0;
  $('from').textContent = clock(t0);
  $('to').textContent = clock(t1);

  try {
    const h = await history();
    page.etas = h.etas;
    page.alerts = h.alerts;
  } catch {
    // No log left for this order: the trip replays without them.
  }
  for (const a of page.alerts.filter((x) => !x.cleared && x.ts >= t0 && x.ts <= t1)) {
    const [lat, lon] = at(points, a.ts);
    dot([lat, lon], 'alert-marker', '#d32f2f', 6).addTo(map).bindTooltip(`${a.kind} · ${clock(a.ts)}`);
  }

  const show = (t) => {
    const [lat, lon, i] = at(points, t);
    glide.jump([lat, lon]);
    done.setLatLngs([...all.slice(0, i), [lat, lon]]);
    $('now').textContent = clock(t);
    markTimeline(t);
    const eta = page.etas.filter((e) => e.ts <= t).pop();
    $('replay-eta').textContent = eta
      ? `${clock(eta.eta)} (${Math.max(0, Math.round((eta.eta - t) / 60000))} min left)`
      : '—';
    const list = $('replay-alerts');
    list.replaceChildren(
      ...openAt(page.alerts, t).map((a) => {
        const li = document.createElement('li');
        li.textContent = `${a.kind} since ${clock(a.ts)}`;
        return li;
      }),
    );
  };
  slider.oninput = () => show(t0 + Number(slider.value));
  show(t0);

  let last = null;
  const tick = (now) => {
    if (!page.playing) return;
    const speed = Number($('speed').value);
    if (last != null) {
      const v = Math.min(Number(slider.max), Number(slider.value) + (now - last) * speed);
      slider.value = v;
      show(t0 + v);
      if (v >= Number(slider.max)) {
        setPlaying(false);
        return;
      }
    }
    last = now;
    requestAnimationFrame(tick);
  };
  const setPlaying = (on) => {
    page.playing = on;
    $('play').textContent = on ? 'Pause' : 'Play';
    last = null;
    if (on) {
      if (Number(slider.value) >= Number(slider.max)) slider.value = 0;
      requestAnimationFrame(tick);
    }
  };
  $('play').onclick = () => setPlaying(!page.playing);
  $('play').disabled = false;
}

main();
