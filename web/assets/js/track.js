// The customer's live map of one order: rider marker gliding along, the trail
// so far, a status timeline, the ETA and the connection state. What it may show
// is decided by the hub (a customer gets the rider only from pick-up on, and
// by first name); the page draws whatever its token is given.

import { Feed } from './feed.js';
import {
  CITY, FINAL_STATUSES, Glide, STATUS_WORDS, Trail, clock, createMap, dot, leafletReady, showConnection,
} from './map.js';
import { claims, getJson, orderFromPath, renewer, requireToken } from './session.js';

const $ = (id) => document.getElementById(id);
const order = orderFromPath();
const token = requireToken();
$('order').textContent = order;
document.title = 'Order ' + order + ' · tracker';

const ERRORS = {
  forbidden: 'This order is not yours to watch.',
  not_found: 'There is no such order.',
  unauthorized: 'This link has expired or is not valid: ask whoever sent it for a new one.',
  token_expired: 'This link has expired: ask whoever sent it for a new one.',
};
const page = {
  order, status: null, rider: null, trail: null, transport: null, eta: null, arriving: false, route: null,
};
window.trackerPage = page; // for the browser tests and curious people

function setStatus(status, ts) {
  if (!status) return;
  page.status = status;
  if (FINAL_STATUSES.has(status)) finish();
  const el = $('status');
  el.textContent = STATUS_WORDS[status] || status;
  el.dataset.status = status;
  const items = [...$('timeline').children];
  if (!items.some((li) => li.dataset.status === status)) addTimeline(status, ts);
}

/** The order is over: no more updates, so the page stops listening and says so. */
function finish() {
  if (page.final) return;
  page.final = true;
  page.eta = null; // An estimate means nothing once the order is over.
  $('eta').textContent = '—';
  if (page.feed) page.feed.stop();
  showConnection($('conn'), { state: 'final' });
}

function addTimeline(status, ts) {
  const li = document.createElement('li');
  li.dataset.status = status;
  const when = document.createElement('time');
  when.textContent = ts ? clock(ts) : '';
  li.append(when, ' ', STATUS_WORDS[status] || status);
  $('timeline').append(li);
}

function showEta() {
  const eta = page.final ? null : page.eta;
  if (!eta) return;
  const mins = Math.max(0, Math.round((eta - Date.now()) / 60000));
  $('eta').textContent = mins < 1 ? `any minute (${clock(eta)})` : `in ${mins} min (${clock(eta)})`;
}

function setEta(eta) {
  if (!eta || page.final) return;
  page.eta = eta;
  showEta();
}

function setArriving(at) {
  if (at !== 'dropoff') return;
  page.arriving = true;
  $('arriving').hidden = false;
}

function setRider(name) {
  $('rider').textContent = name || '—';
}

async function main() {
  if (!leafletReady($('map'))) return;
  const map = await createMap($('map'));
  page.map = map;
  let row = null;
  try {
    row = await getJson('/v1/orders/' + encodeURIComponent(order), token);
  } catch (e) {
    $('notice').textContent =
      { 401: ERRORS.unauthorized, 403: ERRORS.forbidden, 404: ERRORS.not_found }[e.status] || e.message;
    if (e.status === 401) {
      page.state = 'ended';
      showConnection($('conn'), { state: 'ended' });
      return; // Nothing this link can show.
    }
  }
  // The planned route, when the order has one, dashed under the trail.
  const drawRoute = (r) => {
    if (page.route) page.route.remove();
    page.route = null;
    if (r && r.route) {
      page.route = L.polyline(r.route.map((p) => [p.lat, p.lon]), {
        color: '#7e57c2', weight: 3, dashArray: '6 6', className: 'planned-route',
      }).addTo(map);
    }
  };
  const reloadRoute = async () => {
    try {
      drawRoute(await getJson('/v1/orders/' + encodeURIComponent(order), token));
    } catch {
      // The old drawing stays.
    }
  };
  if (row) {
    drawRoute(row);
    dot([row.pickup.lat, row.pickup.lon], 'pickup-marker', '#ff9800', 6).addTo(map).bindTooltip('Store');
    dot([row.dropoff.lat, row.dropoff.lon], 'dropoff-marker', '#e53935', 6).addTo(map).bindTooltip('You');
    map.fitBounds(
      L.latLngBounds([row.pickup.lat, row.pickup.lon], [row.dropoff.lat, row.dropoff.lon]).pad(0.4),
    );
    setRider(row.rider_name);
  }
  const trail = new Trail(map);
  page.trail = trail.line;
  const riderDot = dot(CITY, 'rider-marker', '#1e88e5', 9);
  const glide = new Glide(riderDot);
  page.rider = riderDot;
  let livePosTs = null;
  let follow = true;
  map.on('dragstart', () => (follow = false));

  const place = (lat, lon, ts) => {
    if (!map.hasLayer(riderDot)) {
      riderDot.setLatLng([lat, lon]).addTo(map);
      glide.jump([lat, lon]);
    } else {
      glide.to([lat, lon]);
    }
    livePosTs = ts;
    if (follow) map.panTo([lat, lon], { animate: true });
  };

  const fillTrailFromStore = async () => {
    try {
      const t = await getJson('/v1/orders/' + encodeURIComponent(order) + '/track', token);
      for (const p of t.points) trail.add(p.ts, p.lat, p.lon);
    } catch {
      // The live trail still grows; the stored part is a bonus.
    }
  };

  const onFrame = (f) => {
    switch (f.t) {
      case 'snapshot':
        if (f.recovered !== true) {
          // No replay reached back: start the trail from the stored trip.
          trail.clear();
          fillTrailFromStore();
        }
        setStatus(f.status);
        setEta(f.eta);
        setArriving(f.arrival);
        if ('rider_name' in f || 'rider_id' in f) setRider(f.rider_name || f.rider_id);
        if (f.pos && (livePosTs == null || f.pos.ts > livePosTs)) {
          trail.add(f.pos.ts, f.pos.lat, f.pos.lon);
          place(f.pos.lat, f.pos.lon, f.pos.ts);
        }
        break;
      case 'pos':
        trail.add(f.ts, f.lat, f.lon);
        if (!f.backfill) place(f.lat, f.lon, f.ts);
        break;
      case 'status':
        setStatus(f.status, f.ts);
        break;
      case 'eta':
        setEta(f.eta);
        break;
      case 'arrival':
        setArriving(f.at);
        break;
      case 'route':
        reloadRoute();
        break;
      case 'assignment':
        setRider(f.rider_name || f.rider_id);
        break;
      case 'error':
        $('notice').textContent = ERRORS[f.code] || f.msg || f.code;
        break;
      default:
        break; // skip, alert and anything newer: nothing to draw
    }
  };

  const feed = new Feed({
    token,
    onFrame,
    renewToken: renewer(token),
    onState: (s) => {
      page.transport = s.transport;
      if (page.final) return; // Stopped on purpose: the order is over.
      page.state = s.state;
      showConnection($('conn'), s);
      if (s.state === 'ended') {
        $('notice').textContent =
          'Your session ended: open the link again, or sign in again, to keep watching.';
      }
    },
  });
  page.feed = feed;
  if (page.final) return; // Over before the page opened: the snapshot is all there is.
  feed.watch(order, { history: true });
  feed.start();
  // The minutes count down between estimates.
  setInterval(showEta, 30000);
}

/** Sends `method` to the order's share link endpoint; the answer's JSON, or throws. */
async function shareCall(method) {
  const r = await fetch('/v1/orders/' + encodeURIComponent(order) + '/share', {
    method,
    headers: { Authorization: 'Bearer ' + token },
  });
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw new Error((body && body.message) || r.statusText);
  return body;
}

/** The order's customer (and operators) may hand out a view-only link, and take all of them back. */
function setUpSharing() {
  const c = claims(token);
  if (!c || (c.role !== 'customer' && c.role !== 'admin')) return;
  $('sharing').hidden = false;
  $('share').addEventListener('click', async () => {
    try {
      const s = await shareCall('POST');
      const link = location.origin + s.url;
      $('share-link').value = link;
      $('share-link').hidden = false;
      $('share-note').textContent = 'Anyone with this link can watch this order until ' + new Date(s.expires_at).toLocaleString() + '.';
      if (navigator.clipboard) navigator.clipboard.writeText(link).catch(() => {});
    } catch (e) {
      $('share-note').textContent = e.message;
    }
  });
  $('unshare').addEventListener('click', async () => {
    try {
      await shareCall('DELETE');
      $('share-link').hidden = true;
      $('share-note').textContent = 'Every link to this order has stopped working.';
    } catch (e) {
      $('share-note').textContent = e.message;
    }
  });
}

setUpSharing();
main();
