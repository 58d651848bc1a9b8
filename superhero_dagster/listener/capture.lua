-- Capture one finished game: gate + snapshot + buffer push in ONE atomic step.
--
-- Atomic because a Lua script runs with no other command interleaved: two listeners handling
-- 'Cleaning' messages for the same game cannot both pass the gate, and a crash can never leave a
-- gate marker without its snapshot and buffer entry (or the reverse).
--
-- KEYS (all built by keys.py, none spelled here):
--   1 games:<t>            2 games:<t>:participants  3 games:<t>:status   4 games:<t>:host
--   5 games:<t>:order      6 games:<t>:superheros    7 games:<t>:logs     8 superheros (hash)
--   9 seen marker         10 snapshot               11 buffer (list)     12 stats (hash)
-- ARGV:
--   1 game token   2 prefix of the per-player hero hashes ("games:<t>:superheros:")
--   3 seen TTL (s) 4 captured_at  5 captured_by  6 trigger  7 message timestamp ("" = null)
--   8.. the finished statuses ("Completed", "Timed Out")
--
-- The per-player hero hashes are named after the players, known only once SMEMBERS has run, so
-- their names are computed here from the prefix in ARGV[2]. That keeps the capture to a single
-- round trip; it is fine on a single Redis server (and on Sentinel/replicas), which is the target.
-- Redis Cluster is NOT a target: there it would need hash tags on the seed's key names.
--
-- Returns {outcome, status}: outcome is "captured", "duplicate", "unknown" (no state at all)
-- or "unfinished" (the status is not a finished one; nothing written, reconcile will retry).

local null = cjson.null

local function orNull(v)
  if v == false or v == nil then return null end
  return v
end

-- Gate first: a game already captured (marker alive, or its snapshot still present after the
-- marker expired) is a duplicate, even after the simulator's keys have expired.
if redis.call('EXISTS', KEYS[9], KEYS[10]) > 0 then
  if ARGV[6] == 'message' then redis.call('HINCRBY', KEYS[12], 'duplicates', 1) end
  return {'duplicate', ''}
end

if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]) == 0 then
  return {'unknown', ''}
end

local status = redis.call('GET', KEYS[3])
local finished = false
for i = 8, #ARGV do
  if status == ARGV[i] then finished = true end
end
if not finished then
  return {'unfinished', status or ''}
end

local players = redis.call('SMEMBERS', KEYS[1])
local superheros = redis.call('SMEMBERS', KEYS[6])
local player_heroes = {}
local hero_ids = {}
local wanted = {}
for _, id in ipairs(superheros) do
  if not wanted[id] then wanted[id] = true; hero_ids[#hero_ids + 1] = id end
end
for _, u in ipairs(players) do
  local flat = redis.call('HGETALL', ARGV[2] .. u)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  player_heroes[u] = h
  -- A hero held by a player but missing from the game's set is still looked up (odd games).
  local id = h['id']
  if id and not wanted[id] then wanted[id] = true; hero_ids[#hero_ids + 1] = id end
end
local heroes = {}
if #hero_ids > 0 then
  local jsons = redis.call('HMGET', KEYS[8], unpack(hero_ids))
  for i, id in ipairs(hero_ids) do heroes[id] = orNull(jsons[i]) end
end

local ts = ARGV[7]
if ts == '' then ts = null end

local snapshot = cjson.encode({
  schema = 1,
  game_token = ARGV[1],
  captured_at = ARGV[4],
  captured_by = ARGV[5],
  trigger = ARGV[6],
  message_timestamp = ts,
  status = orNull(status),
  participants = orNull(redis.call('GET', KEYS[2])),
  host = orNull(redis.call('GET', KEYS[4])),
  players = players,
  order = redis.call('LRANGE', KEYS[5], 0, -1),
  superheros = superheros,
  player_heroes = player_heroes,
  logs = redis.call('LRANGE', KEYS[7], 0, -1),
  heroes = heroes,
})

redis.call('SET', KEYS[9], ARGV[4], 'EX', tonumber(ARGV[3]))
redis.call('SET', KEYS[10], snapshot)
redis.call('RPUSH', KEYS[11], ARGV[1])
redis.call('HINCRBY', KEYS[12], 'captured', 1)
if ARGV[6] == 'reconcile' then redis.call('HINCRBY', KEYS[12], 'reconciled', 1) end
return {'captured', status}
