// The operator view: every order under way and its rider on one map, a status
// filter and an alert filter, the alert list, and a click to follow one order
// (its pick-up, drop-off and route drawn). Orders come from `GET /v1/orders`
// (refreshed every 10 s) and are watched live over feeds of at most 60 orders
// each (a connection may hold 64 subscriptions). Riders come from
// `GET /v1/dispatch/riders` around the map's centre: holding an order, free,
// or silent (no fix for 2 min). The overview counts orders by status and
// riders by state, and shows this node's health from its `/metrics`.

import { Feed } from './feed.js';
import {
  OPS_STATUS_WORDS, STATUS_COLOURS, Glide, Trail, clock, createMap, dot, leafletReady, showConnection,
} from './map.js';
import { getJson, requireToken } from './session.js';

const $ = (id) => document.getElementById(id);
const token = requireToken();
const PER_FEED = 60;
const REFRESH_MS = 10000;
/** A rider silent this long is shown as offline (the trip watcher's default). */
const SILENT_MS = 120000;
const RIDER_COLOURS = { holding: '#2e7d32', idle: '#0288d1', offline: '#9e9e9e' };

const orders = new Map(); // id -> { row, status, marker, glide, pos, li, feed }
const feeds = [];
// Open alerts by `order|kind`: the list's items, kept in step with the
// episodes' raises and clears, and with `GET /v1/alerts` on every refresh.
const openAlerts = new Map();
const riders = new Map(); // rider id -> { marker, state }
const page = { orders, riders, following: null, alerts: [], openAlerts };
window.trackerPage = page;

let map;
let followTrail;
let followRoute = null;
let followEnds = [];

function statusShown(status) {
  const f = $('filter').value;
  if (f === 'all') return true;
  if (f === 'waiting') return ['pending_payment', 'paid', 'preparing', 'ready'].includes(status);
  if (f === 'moving') return ['assigned', 'picked_up', 'returning'].includes(status);
  return status === f;
}

/** Whether order `o` passes both filters: its status, and an open alert of the kind chosen. */
function visible(o) {
  if (!statusShown(o.status)) return false;
  const kind = $('alert-filter').value;
  return kind === 'any' || openAlerts.has(o.row.id + '|' + kind);
}

/** The overview's counts: orders by status (operators' words), riders by state. */
function counts() {
  const by = new Map();
  for (const o of orders.values()) by.set(o.status, (by.get(o.status) || 0) + 1);
  $('by-status').tBodies[0].replaceChildren(
    ...[...by.entries()].sort((a, b) => b[1] - a[1]).map(([status, n]) => {
      const tr = document.createElement('tr');
      tr.dataset.status = status;
      const name = document.createElement('td');
      name.textContent = OPS_STATUS_WORDS[status] || status;
      const count = document.createElement('td');
      count.textContent = n;
      tr.append(name, count);
      return tr;
    }),
  );
  for (const state of ['holding', 'idle', 'offline']) {
    $('riders-' + state).textContent = [...riders.values()].filter((r) => r.state === state).length;
  }
}

function render(o) {
  const show = visible(o);
  o.li.hidden = !show;
  o.li.querySelector('.st').textContent = OPS_STATUS_WORDS[o.status] || o.status;
  o.li.dataset.status = o.status;
  o.li.querySelector('.rider').textContent = o.rider || '';
  o.marker.setStyle({ fillColor: STATUS_COLOURS[o.status] || '#607d8b' });
  if (show && !map.hasLayer(o.marker)) o.marker.addTo(map);
  if (!show && map.hasLayer(o.marker)) o.marker.remove();
  $('count').textContent = [...orders.values()].filter(visible).length;
}

function follow(id) {
  const o = orders.get(id);
  if (!o) return;
  page.following = id;
  for (const x of orders.values()) {
    x.li.classList.toggle('followed', x === o);
    x.marker.setRadius(x === o ? 11 : 7);
  }
  followTrail.clear();
  if (followRoute) followRoute.remove();
  for (const m of followEnds) m.remove();
  followEnds = [
    dot([o.row.pickup.lat, o.row.pickup.lon], 'pickup-marker', '#ff9800', 6).addTo(map).bindTooltip(`Pick-up of ${id}`),
    dot([o.row.dropoff.lat, o.row.dropoff.lon], 'dropoff-marker', '#e53935', 6).addTo(map).bindTooltip(`Drop-off of ${id}`),
  ];
  followRoute = o.row.route
    ? L.polyline(o.row.route.map((p) => [p.lat, p.lon]), {
      color: '#7e57c2', weight: 3, dashArray: '6 6', className: 'planned-route',
    }).addTo(map)
    : null;
  $('followed').textContent = id;
  $('followed-link').href = '/track/' + encodeURIComponent(id);
  $('replay-link').href = '/replay/' + encodeURIComponent(id);
  $('follow').hidden = false;
  map.setView(o.marker.getLatLng(), Math.max(map.getZoom(), 15));
  getJson('/v1/orders/' + encodeURIComponent(id) + '/track', token)
    .then((t) => {
      if (page.following === id) for (const p of t.points) followTrail.add(p.ts, p.lat, p.lon);
    })
    .catch(() => {});
}

const ALERT_WORDS = {
  stalled: 'stalled',
  off_route: 'off route',
  rider_offline: 'rider offline',
  late: 'late',
  refund_required: 'refund required',
};

function alertText(a) {
  return `${clock(a.ts)} · ${ALERT_WORDS[a.kind] || a.kind} · order ${a.order}`;
}

/** Marks the orders with an open alert, in the list and on the map. */
function highlight() {
  const alerting = new Set([...openAlerts.values()].map((x) => x.alert.order));
  for (const [id, o] of orders) {
    const on = alerting.has(id);
    o.li.classList.toggle('alerting', on);
    o.marker.setStyle(on ? { color: '#d32f2f', weight: 4 } : { color: '#ffffff', weight: 2 });
  }
  $('no-alerts').hidden = openAlerts.size > 0 || page.alerts.length > 0;
}

function openAlert(a) {
  const key = a.order + '|' + a.kind;
  if (openAlerts.has(key)) return;
  const li = document.createElement('li');
  li.className = 'open';
  li.dataset.order = a.order;
  li.dataset.kind = a.kind;
  li.textContent = alertText(a);
  li.onclick = () => follow(a.order);
  $('alerts').prepend(li);
  openAlerts.set(key, { alert: a, li });
}

function closeAlert(order, kind) {
  const key = order + '|' + kind;
  const x = openAlerts.get(key);
  if (!x) return;
  x.li.remove();
  openAlerts.delete(key);
}

/** One alert event: an episode opens or closes; a one-off alert (refunds) stays listed. */
function addAlert(f) {
  page.alerts.push(f);
  if (f.cleared) closeAlert(f.order, f.kind);
  else openAlert(f);
  highlight();
}

/** The open alerts as the hub lists them now (catches what happened before the page). */
async function refreshAlerts() {
  try {
    const { alerts } = await getJson('/v1/alerts', token);
    const now = new Set(alerts.map((a) => a.order + '|' + a.kind));
    for (const a of alerts) openAlert(a);
    for (const [key, x] of openAlerts) if (!now.has(key)) closeAlert(x.alert.order, x.alert.kind);
    highlight();
  } catch {
    // The live events keep the list; the next refresh tries again.
  }
}

function onFrame(f) {
  const o = orders.get(f.order);
  if (!o) return;
  switch (f.t) {
    case 'snapshot':
      if (f.status) o.status = f.status;
      o.rider = f.rider_name || f.rider_id || o.rider;
      if ('rider_id' in f) o.riderId = f.rider_id;
      if (f.pos) moveTo(o, f.pos.lat, f.pos.lon, f.pos.ts, false);
      break;
    case 'pos':
      if (!f.backfill) moveTo(o, f.lat, f.lon, f.ts, true);
      if (page.following === f.order) followTrail.add(f.ts, f.lat, f.lon);
      break;
    case 'status':
      o.status = f.status;
      break;
    case 'assignment':
      o.rider = f.rider_name || f.rider_id || '';
      o.riderId = f.rider_id || null;
      break;
    case 'alert':
      addAlert(f);
      break;
    default:
      return;
  }
  render(o);
}

function moveTo(o, lat, lon, ts, glide) {
  if (o.pos && ts <= o.pos) return;
  o.pos = ts;
  if (glide) o.glide.to([lat, lon]);
  else o.glide.jump([lat, lon]);
  if (page.following === o.row.id) map.panTo([lat, lon]);
}

function feedWithRoom() {
  let feed = feeds.find((x) => x.orders.size < PER_FEED);
  if (!feed) {
    feed = new Feed({ token, onFrame, onState: (s) => showConnection($('conn'), s) });
    feeds.push(feed);
    feed.start();
  }
  return feed;
}

function addOrder(row) {
  const marker = dot([row.pickup.lat, row.pickup.lon], 'order-marker', '#607d8b', 7);
  // The label on hover: the order, what it is doing, and its rider.
  marker.bindTooltip(() => [row.id, OPS_STATUS_WORDS[o.status] || o.status, o.rider].filter(Boolean).join(' · '));
  marker.on('click', () => follow(row.id));
  const li = document.createElement('li');
  li.dataset.order = row.id;
  li.innerHTML = '<span class="id"></span> <span class="st"></span> <span class="rider"></span>';
  li.querySelector('.id').textContent = row.id;
  li.onclick = () => follow(row.id);
  $('orders').append(li);
  const o = {
    row, status: row.status, rider: row.rider_name || row.rider_id || '', riderId: row.rider_id || null, marker,
    glide: new Glide(marker), pos: null, li,
  };
  orders.set(row.id, o);
  o.feed = feedWithRoom();
  o.feed.watch(row.id);
  render(o);
}

async function refresh() {
  try {
    const { orders: rows } = await getJson('/v1/orders?limit=1000', token);
    const open = new Set(rows.map((r) => r.id));
    for (const row of rows) if (!orders.has(row.id)) addOrder(row);
    // Finished orders leave at the next refresh (their last status stays visible until then).
    for (const [id, o] of orders) {
      if (!open.has(id) && page.following !== id) {
        o.feed.unwatch(id);
        o.marker.remove();
        o.li.remove();
        orders.delete(id);
      }
    }
    $('notice').textContent = '';
    // The first time there are orders, the map shows all of them.
    if (!page.fitted && orders.size > 0) {
      page.fitted = true;
      map.fitBounds(L.latLngBounds([...orders.values()].map((x) => x.marker.getLatLng())).pad(0.2), { maxZoom: 16 });
    }
  } catch (e) {
    $('notice').textContent =
      e.status === 403 ? 'The operator view needs an admin token.' : 'Cannot list orders: ' + e.message;
  }
  $('count').textContent = [...orders.values()].filter(visible).length;
  await refreshAlerts();
  orders.forEach(render);
  counts();
}

async function main() {
  if (!leafletReady($('map'))) return;
  map = await createMap($('map'), undefined, 13);
  page.map = map;
  followTrail = new Trail(map, { color: '#43a047' });
  $('filter').onchange = () => orders.forEach(render);
  $('alert-filter').onchange = () => orders.forEach(render);
  $('unfollow').onclick = () => {
    page.following = null;
    followTrail.clear();
    if (followRoute) followRoute.remove();
    followRoute = null;
    for (const m of followEnds) m.remove();
    followEnds = [];
    $('follow').hidden = true;
    for (const x of orders.values()) {
      x.li.classList.remove('followed');
      x.marker.setRadius(7);
    }
  };
  await refresh();
  await refreshRiders();
  await refreshNode();
  setInterval(refresh, REFRESH_MS);
  setInterval(refreshRiders, REFRESH_MS);
  setInterval(refreshNode, REFRESH_MS);
}

/** Riders around the map's centre, coloured by state, labelled on hover. */
async function refreshRiders() {
  const c = map.getCenter();
  let list;
  try {
    ({ riders: list } = await getJson(
      `/v1/dispatch/riders?lat=${c.lat.toFixed(5)}&lon=${c.lng.toFixed(5)}&radius_m=50000&limit=500`, token));
  } catch {
    return; // The orders still show; the next round tries again.
  }
  // A rider holds an order while it is assigned, picked up, refused or on its way back.
  const HOLDS = new Set(['assigned', 'picked_up', 'rejected', 'returning']);
  const holding = new Set(
    [...orders.values()].filter((o) => o.riderId && HOLDS.has(o.status)).map((o) => o.riderId),
  );
  const seen = new Set();
  for (const r of list) {
    seen.add(r.rider_id);
    const state = Date.now() - r.ts > SILENT_MS ? 'offline' : holding.has(r.rider_id) ? 'holding' : 'idle';
    let x = riders.get(r.rider_id);
    if (!x) {
      const marker = L.circleMarker([r.lat, r.lon], {
        radius: 5, color: '#263238', weight: 1, fillOpacity: 0.9, className: 'rider-dot',
      }).addTo(map);
      x = { marker, state };
      riders.set(r.rider_id, x);
    }
    x.state = state;
    x.marker.setLatLng([r.lat, r.lon]);
    x.marker.setStyle({ fillColor: RIDER_COLOURS[state] });
    x.marker.getElement()?.setAttribute('data-state', state);
    const words = { holding: 'with an order', idle: 'free', offline: 'silent since ' + clock(r.ts) }[state];
    x.marker.bindTooltip(`rider ${r.rider_id} · ${words}`);
  }
  for (const [id, x] of riders) {
    if (!seen.has(id)) {
      x.marker.remove();
      riders.delete(id);
    }
  }
  counts();
}

/** This node's health, from the gauges of its `/metrics`. */
async function refreshNode() {
  let text;
  try {
    text = await (await fetch('/metrics')).text();
  } catch {
    return;
  }
  const sum = (name) => {
    let total = null;
    for (const line of text.split('\n')) {
      if (line.startsWith(name + ' ') || line.startsWith(name + '{')) {
        total = (total || 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
    return total;
  };
  const show = (id, v, unit = '') => ($(id).textContent = v == null ? '—' : `${Math.round(v * 10) / 10}${unit}`);
  const ws = sum('tracker_ws_connections');
  const sse = sum('tracker_sse_connections');
  $('node-connections').textContent = ws == null && sse == null
    ? '—' : `${(ws || 0) + (sse || 0)} watchers connected`;
  show('node-backlog', sum('tracker_tail_backlog'));
  show('node-outbox', sum('tracker_outbox_backlog'));
  show('node-lag', sum('tracker_trips_lag_seconds'), ' s');
}

main();
