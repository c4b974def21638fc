-- Reads one order's live state and, when ARGV[1] >= 0, the entries after that
-- seq (at most ARGV[2]), in one atomic step so both describe the same moment.
-- KEYS[1] state hash, KEYS[2] stream.
local st = redis.call('HGETALL', KEYS[1])
local since = tonumber(ARGV[1])
if since < 0 then
  return {st, {}}
end
local entries = redis.call('XRANGE', KEYS[2], string.format('%d', since + 1) .. '-0', '+', 'COUNT', ARGV[2])
return {st, entries}
