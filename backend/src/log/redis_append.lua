-- Appends events to one order's log atomically: allocates seq, folds the live
-- state, adds each entry to the order's stream under id "<seq>-0", and
-- publishes them for hub tails: on the order's own channel, one message, the
-- entries joined by newlines; and the status and assignment entries among
-- them also on the changes channel that every process follows. The fold
-- mirrors tracker_domain::LiveState::apply.
--
-- KEYS[1] state hash, KEYS[2] stream (same hash tag: one Redis Cluster slot),
-- KEYS[3] (webhooks on) the order's webhook queue, same hash tag
-- ARGV[1] origin (0 = none)  ARGV[2] epoch for a new log  ARGV[3] max entries kept
-- ARGV[4] seconds to keep an ended order  ARGV[5] order id  ARGV[6] changes channel
-- ARGV[7] max entry age in ms (0 = none)
-- ARGV[8] the order's channel (same hash tag)  ARGV[9] its publish command:
--   PUBLISH on one server, SPUBLISH (the node of the slot) on a cluster
-- ARGV[10] number of events  ARGV[11] seconds an order's webhook queue is kept
--   (with KEYS[3], the queue: every event but a fix also goes there as
--   "<at ms> <entry>", backend/src/webhooks/redis.rs)
-- then 6 per event: kind, ts, body fragment, a, b, c
--   pos:        a = live-position JSON
--   status:     a = status, b = version, c = flags: "e" terminal, "p" picked up or later
--   eta:        a = eta
--   arrival:    a = the point arrived at
--   assignment: a = rider id ("" = none), b = rider name ("" = none)
-- Returns the appended entries' JSON texts (empty when origin was already applied).
--
-- Redis calls are what a run costs, so the state is read with one HMGET and
-- written with one HSET at the end; for one fix a run makes five calls (HMGET,
-- TIME, XADD, the publish, HSET). The hash's `ended` field marks an order whose
-- keys expire: they get their TTL again with each later event and lose it only
-- when a status that is not terminal follows. The `head_at` field is never
-- later than the `at` of the stream's first entry (entries leave only from the
-- head), so the age cap reads the stream only when that entry may be too old.
-- The stream is trimmed to about ARGV[3] entries (`MAXLEN ~`, whole nodes at
-- a time: exact trimming cost more than the rest of the run), so it may hold
-- up to a node more; reads reach back ARGV[3] entries and no further.
local state, stream = KEYS[1], KEYS[2]
local origin = tonumber(ARGV[1])
local h = redis.call('HMGET', state, 'epoch', 'seq', 'origin', 'pos_ts', 'picked_up_at', 'ended', 'head_at')
-- Field writes, applied together at the end: a value, or false to delete.
local upd = {}
if not h[1] then
  upd.epoch = ARGV[2]
end
if origin > 0 then
  if origin <= tonumber(h[3] or '0') then
    return {}
  end
  upd.origin = ARGV[1]
end
local first_seq = tonumber(h[2] or '0')
local seq = first_seq
local pos_ts = tonumber(h[4] or '')
local picked = tonumber(h[5] or '')
local was_ended = h[6] == '1'
local head_at = tonumber(h[7] or '')
local order_json = cjson.encode(ARGV[5])
-- nil: no status in this run; else whether the last one is terminal
local ended = nil
local out = {}
local max_age = tonumber(ARGV[7])
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local n = tonumber(ARGV[10])
local changes = {}
local hooks = KEYS[3]
local hooked = 0
for i = 0, n - 1 do
  local base = 12 + i * 6
  local kind, ts, frag = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local a, b, c = ARGV[base + 3], ARGV[base + 4], ARGV[base + 5]
  seq = seq + 1
  local json = '{"order":' .. order_json .. ',"seq":' .. string.format('%d', seq) .. ',' .. frag
  if kind == 'pos' then
    local t = tonumber(ts)
    if pos_ts and t <= pos_ts then
      json = json .. ',"backfill":true'
    else
      pos_ts = t
      upd.pos = a
      upd.pos_ts = ts
    end
    if not picked or t < picked then
      json = json .. ',"before_pickup":true'
    end
  elseif kind == 'status' then
    upd.status = a
    upd.version = b
    ended = string.find(c, 'e', 1, true) ~= nil
    if not picked and string.find(c, 'p', 1, true) then
      picked = tonumber(ts)
      upd.picked_up_at = ts
    end
  elseif kind == 'eta' then
    upd.eta = a
  elseif kind == 'arrival' then
    upd.arrival = a
  elseif kind == 'assignment' then
    upd.rider_id = a ~= '' and a
    upd.rider_name = b ~= '' and b
  end
  json = json .. '}'
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[3], string.format('%d', seq) .. '-0', 'j', json, 'at', now_ms)
  out[#out + 1] = json
  if hooks and kind ~= 'pos' then
    redis.call('RPUSH', hooks, string.format('%d', now_ms) .. ' ' .. json)
    hooked = hooked + 1
  end
  if kind == 'status' or kind == 'assignment' then
    changes[#changes + 1] = json
  end
end
if hooked > 0 then
  redis.call('EXPIRE', hooks, ARGV[11])
end
if #out > 0 then
  redis.call(ARGV[9], ARGV[8], table.concat(out, '\n'))
end
if #changes > 0 then
  redis.call('PUBLISH', ARGV[6], table.concat(changes, '\n'))
end
-- Age cap: drop head entries added more than max_age ago (a bounded amount per run).
if max_age > 0 and (not head_at or head_at < now_ms - max_age) then
  -- 0 when 16 went and older ones may be left: the next run looks again
  local oldest = 0
  for _ = 1, 16 do
    local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
    if not first then
      oldest = now_ms
      break
    end
    local fields, at = first[2], nil
    for f = 1, #fields, 2 do
      if fields[f] == 'at' then
        at = tonumber(fields[f + 1])
      end
    end
    if at and at < now_ms - max_age then
      redis.call('XDEL', stream, first[1])
    else
      oldest = at or now_ms
      break
    end
  end
  upd.head_at = string.format('%d', oldest)
end
if ended == true then
  upd.ended = '1'
elseif ended == false and was_ended then
  upd.ended = false
end
upd.seq = string.format('%d', seq)
local sets, dels = {}, {}
for f, v in pairs(upd) do
  if v then
    sets[#sets + 1] = f
    sets[#sets + 1] = v
  else
    dels[#dels + 1] = f
  end
end
redis.call('HSET', state, unpack(sets))
if #dels > 0 then
  redis.call('HDEL', state, unpack(dels))
end
if ended == true or (ended == nil and was_ended and n > 0) then
  redis.call('EXPIRE', state, ARGV[4])
  redis.call('EXPIRE', stream, ARGV[4])
elseif ended == false and was_ended then
  redis.call('PERSIST', state)
  redis.call('PERSIST', stream)
end
return out
