-- Append 'Attack Completed' entries to each game's attack stream, each entry ONCE however many
-- listeners deliver it (every listener receives every message).
--
-- Identity of an entry: (digest of its text, occurrence index among the identical texts this
-- listener has seen for the game), computed by attack_stream.py. HSETNX on the game's seen-hash
-- admits an identity once; only then is the entry RPUSHed. Listeners process messages in the same
-- (pub/sub) order, so the list stays in stream order: an entry is new only when every entry before
-- it is already stored (see attack_stream.py for why).
--
-- KEYS: 1 stats (hash)
-- ARGV: 1 TTL (s)  2, 3 stream key prefix, suffix  4, 5 seen-hash prefix, suffix
--       then per entry: game token, identity, entry text
-- Returns the number of entries appended. The TTL of both keys is refreshed once per game that
-- got a new entry (a duplicate costs one HSETNX and nothing else).

local ttl = tonumber(ARGV[1])
local sp, ss, hp, hs = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local appended, touched, games = 0, {}, {}
local last, skey, hkey = nil, nil, nil  -- a batch holds runs of one game: build names once a run
for i = 6, #ARGV, 3 do
  local t = ARGV[i]
  if t ~= last then last, skey, hkey = t, sp .. t .. ss, hp .. t .. hs end
  if redis.call('HSETNX', hkey, ARGV[i + 1], '1') == 1 then
    redis.call('RPUSH', skey, ARGV[i + 2])
    appended = appended + 1
    if not touched[t] then touched[t] = true; games[#games + 1] = t end
  end
end
for _, t in ipairs(games) do
  redis.call('EXPIRE', sp .. t .. ss, ttl)
  redis.call('EXPIRE', hp .. t .. hs, ttl)
end
if appended > 0 then redis.call('HINCRBY', KEYS[1], 'streamed', appended) end
return appended
