// Trip replay: the stored trip of an order (`GET /v1/orders/{id}/track`) drawn
// in full, faintly, and replayed with a time slider, play/pause and speed.

import { Glide, STATUS_WORDS, clock, createMap, dot, leafletReady } from './map.js';
import { getJson, orderFromPath, requireToken } from './session.js';

const $ = (id) => document.getElementById(id);
const order = orderFromPath();
const token = requireToken();
$('order').textContent = order;
document.title = 'Replay ' + order + ' · tracker';
const page = { order, points: [], trail: null, rider: null, playing: false };
window.trackerPage = page;

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
  const points = trip.points;
  page.points = points;
  if (points.length === 0) {
    $('notice').textContent = 'No stored trip for this order (yet).';
    return;
  }
  const all = points.map((p) => [p.lat, p.lon]);
  L.polyline(all, { color: '#90a4ae', weight: 3, dashArray: '4 6', className: 'trip-full' }).addTo(map);
  const done = L.polyline([], { color: '#1e88e5', weight: 5, className: 'trip-done' }).addTo(map);
  page.trail = done;
  map.fitBounds(L.latLngBounds(all).pad(0.2));
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

  const show = (t) => {
    const [lat, lon, i] = at(points, t);
    glide.jump([lat, lon]);
    done.setLatLngs([...all.slice(0, i), [lat, lon]]);
    $('now').textContent = clock(t);
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
