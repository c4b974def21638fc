// The map every page draws on: Leaflet with the hub's base map, or a plain
// background when tiles are off or unreachable (markers and trails are vectors
// and draw either way), plus a marker that glides instead of jumping.

export const CITY = [23.1291, 113.2644];

/** Words for each status, in the order of the forward path. */
export const STATUS_WORDS = {
  pending_payment: 'Waiting for payment',
  paid: 'Paid',
  preparing: 'Being prepared',
  ready: 'Ready for pick-up',
  assigned: 'Rider on the way to the store',
  picked_up: 'On the way to you',
  delivered: 'Delivered',
  rejected: 'Refused at the door',
  cancelled: 'Cancelled',
  returning: 'Going back to the store',
  returned: 'Back at the store',
};

/** Operators' words for each status: what the order is doing, not what the customer waits for. */
export const OPS_STATUS_WORDS = {
  pending_payment: 'Unpaid',
  paid: 'Paid',
  preparing: 'Preparing',
  ready: 'Ready, no rider',
  assigned: 'Rider to the store',
  picked_up: 'Out for delivery',
  delivered: 'Delivered',
  rejected: 'Refused at the door',
  cancelled: 'Cancelled',
  returning: 'Returning to the store',
  returned: 'Returned',
};

/** Statuses after which an order never changes again (domain/src/status.rs). */
export const FINAL_STATUSES = new Set(['delivered', 'cancelled', 'returned']);

/** Colours of order markers by status (operator view). */
export const STATUS_COLOURS = {
  pending_payment: '#9e9e9e',
  paid: '#8d6e63',
  preparing: '#ff9800',
  ready: '#fbc02d',
  assigned: '#1e88e5',
  picked_up: '#43a047',
  rejected: '#e53935',
  returning: '#8e24aa',
};

/** True when Leaflet loaded; otherwise says why on the page. */
export function leafletReady(el) {
  if (window.L) return true;
  el.classList.add('no-map');
  el.textContent =
    'The map library (Leaflet) is not installed on this server: run `npm ci` in web/ (scripts/run does it).';
  return false;
}

/** A Leaflet map in `el`, centred on `center`, with the hub's tiles if any. */
export async function createMap(el, center = CITY, zoom = 14) {
  let cfg = {};
  try {
    cfg = await (await fetch('/v1/config')).json();
  } catch {
    // No config: draw without tiles.
  }
  const map = L.map(el, { zoomControl: true }).setView(center, zoom);
  if (cfg.tile_url) {
    const layer = L.tileLayer(cfg.tile_url, { maxZoom: 19, attribution: cfg.attribution || '' });
    let failed = 0;
    layer.on('tileerror', () => {
      failed += 1;
      if (failed === 4) {
        el.classList.add('no-tiles');
        notice(map, 'The map tiles could not be loaded: positions are drawn on a plain background.');
      }
    });
    layer.addTo(map);
  } else {
    el.classList.add('no-tiles');
  }
  return map;
}

/** A line of text over the bottom left of `map`, for what the map cannot show. */
function notice(map, text) {
  const box = L.control({ position: 'bottomleft' });
  box.onAdd = () => {
    const div = L.DomUtil.create('div', 'map-notice');
    div.textContent = text;
    return div;
  };
  box.addTo(map);
}

/** A circle marker with a class (for styling and tests). */
export function dot(latlng, className, colour = '#1e88e5', radius = 8) {
  return L.circleMarker(latlng, {
    radius,
    color: '#ffffff',
    weight: 2,
    fillColor: colour,
    fillOpacity: 1,
    className,
  });
}

/** Moves a marker to each new position smoothly (ease-out over up to 1 s). */
export class Glide {
  constructor(marker) {
    this.marker = marker;
    this.frame = null;
  }

  /** Glides to `[lat, lon]`; a new target mid-way starts from where the marker is. */
  to(target, ms = 900) {
    cancelAnimationFrame(this.frame);
    const from = this.marker.getLatLng();
    const [lat1, lon1] = target;
    const t0 = performance.now();
    const step = (now) => {
      const k = Math.min(1, (now - t0) / ms);
      const e = 1 - (1 - k) ** 3;
      this.marker.setLatLng([from.lat + (lat1 - from.lat) * e, from.lng + (lon1 - from.lng) * e]);
      if (k < 1) this.frame = requestAnimationFrame(step);
    };
    this.frame = requestAnimationFrame(step);
  }

  /** Puts the marker at `[lat, lon]` at once. */
  jump(target) {
    cancelAnimationFrame(this.frame);
    this.marker.setLatLng(target);
  }
}

/** A trail: positions kept in time order, so an offline backlog slots in where it belongs. */
export class Trail {
  constructor(map, style = {}) {
    this.points = []; // [ts, lat, lon]
    this.line = L.polyline([], { color: '#1e88e5', weight: 4, opacity: 0.8, ...style }).addTo(map);
  }

  add(ts, lat, lon) {
    const p = [ts, lat, lon];
    const last = this.points[this.points.length - 1];
    if (!last || last[0] <= ts) {
      this.points.push(p);
      this.line.addLatLng([lat, lon]);
      return;
    }
    if (this.points.some((q) => q[0] === ts)) return;
    this.points.push(p);
    this.points.sort((a, b) => a[0] - b[0]);
    this.line.setLatLngs(this.points.map((q) => [q[1], q[2]]));
  }

  clear() {
    this.points = [];
    this.line.setLatLngs([]);
  }
}

/** `ms` as a local clock time. */
export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** Shows the feed's connection state in `el` (class `live`, `connecting`,
 * `reconnecting`, `ended`, `final`); `final` once the order is over. */
export function showConnection(el, s) {
  el.className = 'conn ' + s.state;
  if (s.state === 'final') {
    el.textContent = 'Finished · no more updates';
    el.dataset.transport = '';
    return;
  }
  if (s.state === 'live') el.textContent = 'Live · ' + s.transport;
  else if (s.state === 'reconnecting')
    el.textContent = `Reconnecting (${s.transport}) in ${Math.ceil(s.retryIn / 1000)} s…`;
  else if (s.state === 'connecting') el.textContent = 'Connecting (' + s.transport + ')…';
  else if (s.state === 'ended') el.textContent = 'Session ended · sign in again';
  else el.textContent = 'Closed';
  el.dataset.transport = s.transport || '';
}
