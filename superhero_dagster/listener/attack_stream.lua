-- Append 'Attack Completed' entries to each game's attack stream, each entry ONCE however many
-- listeners deliver it (every listener receives every message).
--
-- Identity of an entry: (digest of its text, occurrence index among the identical texts this
-- listener has seen for the game), computed by attack_stream.py. The seen-hash admits an identity
-- once; only then is the entry RPUSHed. Listeners process messages in the same (pub/sub) order,
-- so the list stays in stream order: an entry is new only when every entry before it is already
-- stored (see attack_stream.py for why).
--
-- KEYS: 1 stats (hash)
-- ARGV: 1 TTL (s)  2, 3 stream key prefix, suffix  4, 5 seen-hash prefix, suffix
--       then per game: token, n, then n pairs (identity, entry text), in stream order
-- Returns the number of entries appended. Per game, five calls whatever n (HMGET, HSET, RPUSH,
-- 2 EXPIRE; a game with nothing new costs the HMGET alone): Redis time is the shared resource of
-- every listener, and each of them sends every entry.

local ttl = tonumber(ARGV[1])
local sp, ss, hp, hs = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local appended = 0
local i = 6
while i <= #ARGV do
  local t, n = ARGV[i], tonumber(ARGV[i + 1])
  local skey, hkey = sp .. t .. ss, hp .. t .. hs
  local ids = {}
  for j = 1, n do ids[j] = ARGV[i + 2 * j] end
  local have = redis.call('HMGET', hkey, unpack(ids))
  local fields, entries = {}, {}
  for j = 1, n do
    if not have[j] then
      fields[#fields + 1] = ids[j]; fields[#fields + 1] = '1'
      entries[#entries + 1] = ARGV[i + 2 * j + 1]
    end
  end
  if #entries > 0 then
    redis.call('HSET', hkey, unpack(fields))
    redis.call('RPUSH', skey, unpack(entries))
    redis.call('EXPIRE', skey, ttl)
    redis.call('EXPIRE', hkey, ttl)
    appended = appended + #entries
  end
  i = i + 2 + 2 * n
end
if appended > 0 then redis.call('HINCRBY', KEYS[1], 'streamed', appended) end
return appended
