-- Appends events to one order's log atomically: allocates seq, folds the live
-- state, adds each entry to the order's stream under id "<seq>-0", and
-- publishes them for hub tails: on the order's own channel, one message, the
-- entries joined by newlines; and the status and assignment entries among
-- them also on the changes channel that every process follows. The fold
-- mirrors tracker_domain::LiveState::apply.
--
-- KEYS[1] state hash, KEYS[2] stream (same hash tag: one Redis Cluster slot)
-- ARGV[1] origin (0 = none)  ARGV[2] epoch for a new log  ARGV[3] max entries kept
-- ARGV[4] seconds to keep an ended order  ARGV[5] order id  ARGV[6] changes channel
-- ARGV[7] max entry age in ms (0 = none)
-- ARGV[8] the order's channel (same hash tag)  ARGV[9] its publish command:
--   PUBLISH on one server, SPUBLISH (the node of the slot) on a cluster
-- ARGV[10] number of events, then 6 per event: kind, ts, body fragment, a, b, c
--   pos:        a = live-position JSON
--   status:     a = status, b = version, c = flags: "e" terminal, "p" picked up or later
--   eta:        a = eta
--   arrival:    a = the point arrived at
--   assignment: a = rider id ("" = none), b = rider name ("" = none)
-- Returns the appended entries' JSON texts (empty when origin was already applied).
local state, stream = KEYS[1], KEYS[2]
local origin = tonumber(ARGV[1])
redis.call('HSETNX', state, 'epoch', ARGV[2])
if origin > 0 then
  local last = tonumber(redis.call('HGET', state, 'origin') or '0')
  if origin <= last then
    return {}
  end
  redis.call('HSET', state, 'origin', ARGV[1])
end
local seq = tonumber(redis.call('HGET', state, 'seq') or '0')
local order_json = cjson.encode(ARGV[5])
local ended = false
local out = {}
local max_age = tonumber(ARGV[7])
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local n = tonumber(ARGV[10])
local changes = {}
for i = 0, n - 1 do
  local base = 11 + i * 6
  local kind, ts, frag = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local a, b, c = ARGV[base + 3], ARGV[base + 4], ARGV[base + 5]
  seq = seq + 1
  local json = '{"order":' .. order_json .. ',"seq":' .. string.format('%d', seq) .. ',' .. frag
  if kind == 'pos' then
    local cur = redis.call('HGET', state, 'pos_ts')
    if cur and tonumber(ts) <= tonumber(cur) then
      json = json .. ',"backfill":true'
    else
      redis.call('HSET', state, 'pos', a, 'pos_ts', ts)
    end
    local picked = redis.call('HGET', state, 'picked_up_at')
    if not picked or tonumber(ts) < tonumber(picked) then
      json = json .. ',"before_pickup":true'
    end
  elseif kind == 'status' then
    redis.call('HSET', state, 'status', a, 'version', b)
    ended = string.find(c, 'e', 1, true) ~= nil
    if string.find(c, 'p', 1, true) then
      redis.call('HSETNX', state, 'picked_up_at', ts)
    end
  elseif kind == 'eta' then
    redis.call('HSET', state, 'eta', a)
  elseif kind == 'arrival' then
    redis.call('HSET', state, 'arrival', a)
  elseif kind == 'assignment' then
    if a == '' then
      redis.call('HDEL', state, 'rider_id')
    else
      redis.call('HSET', state, 'rider_id', a)
    end
    if b == '' then
      redis.call('HDEL', state, 'rider_name')
    else
      redis.call('HSET', state, 'rider_name', b)
    end
  end
  json = json .. '}'
  redis.call('XADD', stream, 'MAXLEN', ARGV[3], string.format('%d', seq) .. '-0', 'j', json, 'at', now_ms)
  out[#out + 1] = json
  if kind == 'status' or kind == 'assignment' then
    changes[#changes + 1] = json
  end
end
if #out > 0 then
  redis.call(ARGV[9], ARGV[8], table.concat(out, '\n'))
end
if #changes > 0 then
  redis.call('PUBLISH', ARGV[6], table.concat(changes, '\n'))
end
redis.call('HSET', state, 'seq', string.format('%d', seq))
-- Age cap: drop head entries added more than max_age ago (a bounded amount per call).
if max_age > 0 then
  for _ = 1, 16 do
    local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
    if not first then
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
      break
    end
  end
end
if ended then
  redis.call('EXPIRE', state, ARGV[4])
  redis.call('EXPIRE', stream, ARGV[4])
elseif n > 0 then
  redis.call('PERSIST', state)
  redis.call('PERSIST', stream)
end
return out
