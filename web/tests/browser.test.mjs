// Browser tests of the pages, in Debian's headless Chromium driven by
// playwright-core, against a real `tracker run` on free ports: fixes go in over
// MQTT, status changes over the orders API, and the assertions read what the
// page shows. Screenshots land in target/browser/ for people to look at.
//
// Run by scripts/test (the README's test command) when node and chromium are
// installed; `npm test` in web/ runs them alone (TRACKER_BIN and CHROMIUM
// override the binary and browser paths).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import mqtt from 'mqtt';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SHOTS = path.join(ROOT, 'target/browser');
const BIN = process.env.TRACKER_BIN || path.join(ROOT, 'target/debug/tracker');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SECRET = 'browser-test-secret-0123456789';
const PATIENCE = 15000;

let server;
let base;
let mqttPort;
let phone;
let browser;
let dataDir;
let serverLog = '';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256 token the server accepts, as `tracker run` would mint it. */
function mint(sub, role, ttl = 3600) {
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url({ sub, role, exp: Math.floor(Date.now() / 1000) + ttl });
  const sig = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}
const ADMIN = mint('ops', 'admin');

async function api(method, p, body, token = ADMIN) {
  const r = await fetch(base + p, {
    method,
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await r.json().catch(() => null);
  assert.ok(r.ok, `${method} ${p}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

let counter = 0;
const unique = (prefix) => `${prefix}-${process.pid}-${++counter}`;

/** An order of `customer`, assigned to `rider` ("Li Wei") and, unless told otherwise, picked up. */
async function orderFor(customer, rider, { pickUp = true } = {}) {
  const [pickup, dropoff] = [{ lat: 23.1291, lon: 113.2644 }, { lat: 23.1391, lon: 113.2804 }];
  let o = await api('POST', '/v1/orders', {
    biz_order_no: unique('S'), biz_type: 'grocery', customer_id: customer, pickup, dropoff,
    route: [pickup, { lat: 23.1341, lon: 113.2724 }, dropoff],
  });
  for (const to of ['paid', 'preparing', 'ready']) {
    o = await api('POST', `/v1/orders/${o.id}/status`, { to, version: o.version });
  }
  o = await api('POST', `/v1/orders/${o.id}/assign`, { rider_id: rider, rider_name: 'Li Wei', version: o.version });
  if (pickUp) o = await api('POST', `/v1/orders/${o.id}/status`, { to: 'picked_up', version: o.version });
  return o;
}

async function setStatus(o, to) {
  const cur = await api('GET', `/v1/orders/${o.id}`);
  return api('POST', `/v1/orders/${o.id}/status`, { to, version: cur.version });
}

async function fix(rider, lat, lon, ts = Date.now()) {
  await phone.publishAsync(`riders/${rider}/pos`, JSON.stringify({ lat, lon, ts }), { qos: 1 });
}

/** Polls `probe` until it returns something truthy. */
async function eventually(what, probe, ms = PATIENCE) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}\n--- server log ---\n${serverLog.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The rider marker's position on the page, or null while it is not on the map. */
const riderAt = (page) =>
  page.evaluate(() => {
    const p = window.trackerPage;
    if (!p || !p.rider || !p.map || !p.map.hasLayer(p.rider)) return null;
    const ll = p.rider.getLatLng();
    return [ll.lat, ll.lng];
  });

const near = (a, [lat, lon]) => a && Math.abs(a[0] - lat) < 1e-6 && Math.abs(a[1] - lon) < 1e-6;

/** Publishes a fix (again, with a fresh ts, until it shows) and waits for the marker to reach it. */
async function moveRider(page, rider, lat, lon) {
  const deadline = Date.now() + PATIENCE;
  while (Date.now() < deadline) {
    await fix(rider, lat, lon);
    const t = Date.now() + 3000;
    while (Date.now() < t) {
      if (near(await riderAt(page), [lat, lon])) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  assert.fail(`the marker never reached ${lat},${lon}; it is at ${await riderAt(page)}`);
}

async function live(page, transport) {
  await eventually(`the page live over ${transport}`, () =>
    page.evaluate((t) => {
      const el = document.getElementById('conn');
      return el.classList.contains('live') && el.dataset.transport === t;
    }, transport),
  );
}

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name + '.png') });
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'tracker-browser-'));
  const [httpPort, brokerPort] = [await freePort(), await freePort()];
  mqttPort = brokerPort;
  base = `http://127.0.0.1:${httpPort}`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TRACKER_')));
  Object.assign(env, {
    TRACKER_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    TRACKER_MQTT_ADDR: `127.0.0.1:${brokerPort}`,
    TRACKER_DATA_DIR: dataDir,
    TRACKER_JWT_SECRET: SECRET,
    TRACKER_TILE_URL: 'off', // offline here: the plain background
    // One test phone publishes for every rider: a trusted network.
    TRACKER_MQTT_AUTH: 'none',
    TRACKER_WEB_DIR: path.join(ROOT, 'web'),
    RUST_LOG: 'warn',
  });
  server = spawn(BIN, ['run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.on('data', (d) => (serverLog += d));
  server.stderr.on('data', (d) => (serverLog += d));
  await eventually('the server to answer /healthz', async () => {
    try {
      return (await fetch(base + '/healthz')).ok;
    } catch {
      return false;
    }
  }, 60000);
  phone = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`, {
    clientId: unique('browser-test-phone'),
    protocolVersion: 4,
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (phone) await phone.endAsync();
  if (server) server.kill('SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('the customer page shows the rider moving and the status changing, over WebSocket', async () => {
  const rider = unique('r');
  const o = await orderFor('alice', rider);
  const page = await newPage();
  const missing = [];
  page.on('response', (r) => { if (r.status() === 404) missing.push(r.url()); });
  await page.goto(`${base}/track/${o.id}#token=${mint('alice', 'customer')}`);
  await live(page, 'WebSocket');
  assert.equal(await page.locator('.legend li').count(), 5, 'the map says what its dots and lines are');
  assert.equal(await page.textContent('#rider'), 'Li', 'the customer sees the first name only');
  assert.equal(await page.getAttribute('#status', 'data-status'), 'picked_up');

  await moveRider(page, rider, 23.1301, 113.2650);
  await moveRider(page, rider, 23.1335, 113.2712);
  const trail = await page.evaluate(() => window.trackerPage.trail.getLatLngs().length);
  assert.ok(trail >= 2, `the trail has ${trail} points`);

  await setStatus(o, 'delivered');
  await eventually('the status to read delivered', async () =>
    (await page.getAttribute('#status', 'data-status')) === 'delivered');
  assert.match(await page.textContent('#timeline'), /Delivered/);
  // A final status: no longer "Live", and the page stops listening.
  await eventually('the connection to read finished', async () =>
    (await page.getAttribute('#conn', 'class')).includes('final'));
  assert.doesNotMatch(await page.textContent('#conn'), /Live/);
  assert.equal(await page.textContent('#eta'), '—', 'no estimate for a delivered order');
  assert.deepEqual(missing, [], 'nothing the page asked for was missing (the icon included)');
  await shot(page, 'track-websocket');
  await page.context().close();
});

test('a customer page opened with an expired link says so plainly', async () => {
  const o = await orderFor('gina', unique('r'));
  const page = await newPage();
  await page.goto(`${base}/track/${o.id}#token=${mint('gina', 'customer', -120)}`);
  await eventually('the notice', async () => /expired or is not valid/.test(await page.textContent('#notice')));
  assert.doesNotMatch(await page.textContent('#conn'), /Live/);
  await page.context().close();
});

test('with WebSocket blocked the page falls back to SSE, and with SSE blocked to long-poll', async () => {
  for (const [transport, blockSse] of [['SSE', false], ['long-poll', true]]) {
    const rider = unique('r');
    const o = await orderFor('bob', rider);
    const page = await newPage();
    // A proxy that accepts the upgrade and drops it at once.
    await page.routeWebSocket(/\/v1\/ws/, (ws) => ws.close());
    if (blockSse) await page.route(/\/sse(\?|$)/, (route) => route.abort());
    await page.goto(`${base}/track/${o.id}#token=${mint('bob', 'customer')}`);
    await live(page, transport);

    await moveRider(page, rider, 23.1301, 113.2650);
    await moveRider(page, rider, 23.1322, 113.2690);
    await setStatus(o, 'delivered');
    await eventually(`the status over ${transport}`, async () =>
      (await page.getAttribute('#status', 'data-status')) === 'delivered');
    await shot(page, `track-${transport}`);
    await page.context().close();
  }
});

test('the replay page draws a finished trip and plays it', async () => {
  const rider = unique('r');
  const o = await orderFor('carol', rider);
  // Statuses reach the log through the outbox, fixes straight: wait for the
  // pick-up there, or the trip watcher judges the fixes before it (and a
  // rider not yet holding the order gets no estimate).
  await eventually('the pick-up in the log', async () =>
    (await api('GET', `/v1/orders/${o.id}/events?since=0&wait=0`)).events
      .some((e) => e.t === 'status' && e.status === 'picked_up'));
  // A fix every 14 s from now (20–40 m/s between these points: a trip
  // report takes faster steps for GPS jumps), the last one ahead of the
  // clock by less than the 60 s a fix may be.
  const step = 14000;
  const t0 = Date.now();
  const route = [[23.1291, 113.2644], [23.1305, 113.2668], [23.1322, 113.2701], [23.1350, 113.2745], [23.1375, 113.2775]];
  for (const [i, [lat, lon]] of route.entries()) await fix(rider, lat, lon, t0 + i * step);
  await eventually('the trip to be stored', async () => {
    const t = await api('GET', `/v1/orders/${o.id}/track`);
    if (t.points.length < route.length) {
      // The broker may have come up before ingest subscribed: send again (stored once by ts).
      for (const [i, [lat, lon]] of route.entries()) await fix(rider, lat, lon, t0 + i * step);
      return false;
    }
    return true;
  });
  await eventually('an estimate in the log', async () =>
    (await api('GET', `/v1/orders/${o.id}/events?since=0&wait=0`)).events.some((e) => e.t === 'eta'));
  await setStatus(o, 'delivered');

  const page = await newPage();
  await page.goto(`${base}/replay/${o.id}#token=${ADMIN}`);
  await eventually('the trip on the page', () =>
    page.evaluate(() => window.trackerPage.points.length));
  assert.equal(await page.evaluate(() => window.trackerPage.points.length), route.length);
  // The page reads the order (its planned route) before it draws the trip.
  await eventually('the whole trip drawn', async () => (await page.locator('path.trip-full').count()) === 1);
  await eventually('the planned route', async () => (await page.locator('path.planned-route').count()) === 1);
  await page.click('#play');
  await eventually('the replay to run to the end', () =>
    page.evaluate(() => !window.trackerPage.playing && window.trackerPage.trail.getLatLngs().length > 2));
  assert.ok(near(await riderAt(page), route[route.length - 1]), 'the marker ends at the drop-off');
  assert.ok(await page.evaluate(() => window.trackerPage.etas.length > 0), 'the estimates of the log');
  assert.match(await page.textContent('#replay-eta'), /min left/, 'the estimate as it stood then');
  // The durable status history beside the track, passed up to the slider's time.
  const timeline = await page.locator('#timeline li').allTextContents();
  assert.ok(timeline.length >= 7, `every status change: ${timeline}`);
  assert.match(timeline[0], /pending|payment/i, 'oldest first');
  assert.match(timeline[timeline.length - 1], /delivered/i, 'the delivery last');
  const passed = () => page.locator('#timeline li.past').count();
  await page.evaluate(() => {
    const s = document.getElementById('slider');
    s.value = 0;
    s.dispatchEvent(new Event('input'));
  });
  assert.ok((await passed()) >= 5, 'the changes before the first fix are passed at the start');
  // The trip's summary from GET /trip, and the track as a GPX file.
  await eventually('the trip summary', async () => /km/.test(await page.textContent('#sum-distance')));
  const km = parseFloat(await page.textContent('#sum-distance'));
  assert.ok(km > 1.5 && km < 1.8, `the route's length, about 1.6 km: ${km}`);
  assert.match(await page.textContent('#sum-speed'), /km\/h \/ .*km\/h/);
  const [gpx] = await Promise.all([page.waitForEvent('download'), page.click('#get-gpx')]);
  assert.equal(gpx.suggestedFilename(), `order-${o.id}.gpx`);
  const text = readFileSync(await gpx.path(), 'utf8');
  assert.equal((text.match(/<trkpt /g) || []).length, route.length, 'every stored fix in the file');
  await shot(page, 'replay');
  await page.context().close();
});

test('the operator page lists the orders under way, filters them and follows one', async () => {
  const rider = unique('r');
  const o = await orderFor('dave', rider);
  const waiting = await api('POST', '/v1/orders', {
    biz_order_no: unique('S'), biz_type: 'grocery', customer_id: 'erin',
    pickup: { lat: 23.125, lon: 113.26 }, dropoff: { lat: 23.12, lon: 113.25 },
  });
  const page = await newPage();
  await page.goto(`${base}/ops#token=${ADMIN}`);
  const row = page.locator(`li[data-order="${o.id}"]`);
  await row.waitFor();
  await page.locator(`li[data-order="${waiting.id}"]`).waitFor();
  await page.selectOption('#filter', 'waiting');
  assert.equal(await row.isHidden(), true, 'a picked-up order is not waiting');
  assert.equal(await page.locator(`li[data-order="${waiting.id}"]`).isVisible(), true);
  await page.selectOption('#filter', 'all');
  // Operators' words, not the customer's.
  assert.equal(await row.locator('.st').textContent(), 'Out for delivery');
  await row.click();
  assert.equal(await page.evaluate(() => window.trackerPage.following), o.id);
  assert.equal(await page.isVisible('#follow'), true);
  assert.equal(await page.locator('path.planned-route').count(), 1, 'the followed order\'s route');

  // The followed order's marker moves with its rider.
  const at = () =>
    page.evaluate((id) => {
      const ll = window.trackerPage.orders.get(id).marker.getLatLng();
      return [ll.lat, ll.lng];
    }, o.id);
  await eventually('the followed marker to move', async () => {
    await fix(rider, 23.1333, 113.2699);
    await new Promise((r) => setTimeout(r, 1200));
    return near(await at(), [23.1333, 113.2699]);
  });
  assert.equal(await page.textContent('#no-alerts'), 'No alerts.');
  // The followed order's pick-up and drop-off.
  assert.equal(await page.locator('path.pickup-marker').count(), 1);
  assert.equal(await page.locator('path.dropoff-marker').count(), 1);
  // The rider on the map as holding an order, and the overview's counts.
  await eventually('the rider on the map', async () =>
    (await page.evaluate((r) => window.trackerPage.riders.get(r)?.state, rider)) === 'holding', 25000);
  assert.ok(Number(await page.textContent('#riders-holding')) >= 1);
  assert.ok(Number(await page.locator('#by-status tr[data-status="picked_up"] td:last-child').textContent()) >= 1);
  await eventually('this node in the overview', async () =>
    /watchers connected/.test(await page.textContent('#node-connections')));
  // Only orders with an open stall: not this one.
  await page.selectOption('#alert-filter', 'stalled');
  assert.equal(await row.isHidden(), true, 'no stall on this order');
  await page.selectOption('#alert-filter', 'any');
  assert.equal(await row.isVisible(), true);
  await shot(page, 'ops');
  // On a phone: the map and the panel stacked, both on the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const mapBox = await page.locator('#map').boundingBox();
  const panel = await page.locator('aside').boundingBox();
  assert.ok(mapBox.width <= 390 && panel.width <= 390, 'nothing wider than the phone');
  assert.ok(panel.y >= mapBox.y + mapBox.height - 1, 'the panel under the map');
  await shot(page, 'ops-phone');
  await page.context().close();
});

test('a customer page for someone else\'s order says so and shows nothing', async () => {
  const o = await orderFor('frank', unique('r'));
  const page = await newPage();
  await page.goto(`${base}/track/${o.id}#token=${mint('mallory', 'customer')}`);
  await eventually('the refusal', async () => /not yours/.test(await page.textContent('#notice')));
  assert.equal(await riderAt(page), null);
  await page.context().close();
});

test('a page renews its token before it expires, and says so when the session ends', async () => {
  const [renewing, ending] = [await newPage(), await newPage()];
  const o1 = await orderFor('gina', unique('r'));
  const o2 = await orderFor('gina', unique('r'));
  await renewing.goto(`${base}/track/${o1.id}#token=${mint('gina', 'customer', 12)}`);
  await ending.goto(`${base}/track/${o2.id}#token=${mint('gina', 'customer', 2)}`);
  await live(renewing, 'WebSocket');
  // Gina signs in again in another tab: the start page stores the new token.
  const fresh = mint('gina', 'customer', 3600);
  await renewing.evaluate((t) => localStorage.setItem('tracker.token', t), fresh);
  await eventually('the page to hand the new token over', async () =>
    (await renewing.evaluate(() => window.trackerPage.feed.token)) === fresh, 20000);
  await eventually('the page with no new token to end its session', async () =>
    (await ending.textContent('#conn')).includes('Session ended'), 20000);
  assert.match(await ending.textContent('#notice'), /session ended/);
  // Past the first token's expiry (and leeway) the renewed page is still live.
  await new Promise((r) => setTimeout(r, 6000));
  assert.equal(await renewing.evaluate(() => window.trackerPage.state), 'live');
  await setStatus(o1, 'delivered');
  await eventually('the renewed page to still get events', async () =>
    (await renewing.getAttribute('#status', 'data-status')) === 'delivered');
  await shot(ending, 'track-session-ended');
  await renewing.context().close();
  await ending.context().close();
});

test('the customer shares a view-only link, and stopping sharing ends it', async () => {
  const rider = unique('r');
  const o = await orderFor('hana', rider);
  const owner = await newPage();
  await owner.goto(`${base}/track/${o.id}#token=${mint('hana', 'customer')}`);
  await live(owner, 'WebSocket');
  await owner.click('#share');
  await eventually('the link to show', async () =>
    (await owner.inputValue('#share-link')).includes(`/track/${o.id}#token=`));
  const link = await owner.inputValue('#share-link');
  await shot(owner, 'track-share');

  const friend = await newPage();
  await friend.goto(link);
  await live(friend, 'WebSocket');
  assert.equal(await friend.isHidden('#sharing'), true, 'a viewer cannot share on');
  await moveRider(friend, rider, 23.1301, 113.2650);
  assert.equal(await friend.textContent('#rider'), 'Li', 'the customer\'s view');

  await owner.click('#unshare');
  await eventually('the shared page to end', async () =>
    (await friend.textContent('#conn')).includes('Session ended'));
  await friend.context().close();
  await owner.context().close();
});

test('the customer sees the estimate and the rider arriving; operators see a stall open and clear', async () => {
  const rider = unique('r');
  const o = await orderFor('ines', rider);
  const customer = await newPage();
  await customer.goto(`${base}/track/${o.id}#token=${mint('ines', 'customer')}`);
  await live(customer, 'WebSocket');
  const ops = await newPage();
  await ops.goto(`${base}/ops#token=${ADMIN}`);
  await ops.locator(`li[data-order="${o.id}"]`).waitFor();

  // A phone that was offline sends what it kept: a minute of riding, then
  // seven minutes standing a third of the way (fix times end about now).
  const [from, to] = [[23.1291, 113.2644], [23.1391, 113.2804]];
  const lerp = (f) => [from[0] + (to[0] - from[0]) * f, from[1] + (to[1] - from[1]) * f];
  const kept = [];
  const t0 = Date.now() - 96 * 5000;
  for (let i = 0; i < 96; i++) {
    const [lat, lon] = lerp(Math.min(i, 12) / 36);
    kept.push({ lat, lon, ts: t0 + i * 5000 });
  }
  await phone.publishAsync(`riders/${rider}/pos/batch`, JSON.stringify(kept), { qos: 1 });
  const key = `${o.id}|stalled`;
  await eventually('the stall listed and its order marked', () =>
    ops.evaluate((k) => window.trackerPage.openAlerts.has(k), key));
  assert.equal(
    await ops.locator(`#orders li[data-order="${o.id}"]`).getAttribute('class').then((c) => /alerting/.test(c)),
    true,
  );
  await shot(ops, 'ops-alert');
  await eventually('an estimate on the customer page', async () =>
    /in \d+ min|any minute/.test(await customer.textContent('#eta')));

  // On again, to the door.
  for (let i = 1; i <= 8; i++) {
    const [lat, lon] = lerp(1 / 3 + (2 / 3) * (i / 8));
    await fix(rider, lat, lon, Date.now());
    await new Promise((r) => setTimeout(r, 150));
  }
  await eventually('the stall cleared', () =>
    ops.evaluate((k) => !window.trackerPage.openAlerts.has(k), key));
  assert.ok(
    await ops.evaluate((id) => window.trackerPage.alerts.some((a) => a.order === id && a.kind === 'stalled' && a.cleared), o.id),
  );
  await eventually('"arriving" on the customer page', () => customer.isVisible('#arriving'));
  assert.equal(await customer.evaluate(() => window.trackerPage.arriving), true);
  await shot(customer, 'track-arriving');
  await customer.context().close();
  await ops.context().close();
});
