-- Capture finished games: per game, gate + snapshot + buffer push in ONE atomic step.
--
-- Atomic because a Lua script runs with no other command interleaved: two listeners handling
-- 'Cleaning' messages for the same game cannot both pass the gate, and a crash can never leave a
-- gate marker without its snapshot and buffer entry (or the reverse).
--
-- One call captures a whole batch of games (the listener drains its socket and sends every new
-- token at once): key names are therefore computed here, from name templates that capture.py
-- builds with keys.py (no key name is spelled in this file). Accessing keys not listed in KEYS is
-- fine on a single Redis server (and Sentinel/replicas), which is the target; Redis Cluster is NOT
-- a target (it would need hash tags on the seed's key names anyway).
--
-- KEYS: 1 superheros (hash)  2 buffer (list)  3 stats (hash)
-- ARGV: 1 seen TTL (s)  2 captured_at  3 captured_by  4 trigger ("message" | "reconcile")
--       5 number of finished statuses F, then F statuses ("Completed", "Timed Out")
--       then 11 templates, each as prefix, suffix around the game token (22 values):
--         players, participants, status, host, order, superheros, logs, seen, snapshot,
--         the listener's attack stream (attack_stream.lua writes it),
--         and the per-player hero hash (prefix before the token, suffix before the user token)
--       then per game: token, message timestamp ("" = null)
-- Returns, per game: outcome, status. outcome is "captured", "duplicate", "unknown" (no state
-- at all), "unfinished" (status not finished: nothing written, reconcile retries later) or
-- "error" (a Redis error reading that game, e.g. a hostile WRONGTYPE key; status holds the error;
-- all reads come before any write, so nothing is written for it and the batch goes on).

local null = cjson.null
local function orNull(v)
  if v == false or v == nil then return null end
  return v
end

local ttl, captured_at, captured_by, trigger = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local finished = {}
local nf = tonumber(ARGV[5])
for i = 1, nf do finished[ARGV[5 + i]] = true end
local tp = 5 + nf  -- templates start after this index
local names = {'players', 'participants', 'status', 'host', 'order', 'superheros', 'logs',
               'seen', 'snapshot', 'stream', 'hero'}
local tpl = {}
for i, name in ipairs(names) do tpl[name] = {ARGV[tp + 2 * i - 1], ARGV[tp + 2 * i]} end
local function key(name, t) local p = tpl[name]; return p[1] .. t .. p[2] end

local function capture(t, ts)
  local seen, snapkey = key('seen', t), key('snapshot', t)
  -- Gate first: a game already captured (marker alive, or its snapshot still present after the
  -- marker expired) is a duplicate, even after the simulator's keys have expired.
  if redis.call('EXISTS', seen, snapkey) > 0 then
    return 'duplicate', ''
  end
  local k_players, k_heroes, k_logs = key('players', t), key('superheros', t), key('logs', t)
  local k_status, k_part, k_host, k_order = key('status', t), key('participants', t), key('host', t), key('order', t)
  local fields = redis.call('MGET', k_status, k_part, k_host)
  local status = fields[1]
  if not (status and finished[status]) then
    -- Rare path: tell a token with no state at all (hostile or long expired) from a game in play.
    if redis.call('EXISTS', k_players, k_part, k_status, k_host, k_order, k_heroes, k_logs) == 0 then
      return 'unknown', ''
    end
    return 'unfinished', status or ''
  end

  local players = redis.call('SMEMBERS', k_players)
  local superheros = redis.call('SMEMBERS', k_heroes)
  local player_heroes, hero_ids, wanted = {}, {}, {}
  for _, id in ipairs(superheros) do
    if not wanted[id] then wanted[id] = true; hero_ids[#hero_ids + 1] = id end
  end
  local hp = tpl['hero'][1] .. t .. tpl['hero'][2]
  for _, u in ipairs(players) do
    local flat = redis.call('HGETALL', hp .. u)
    local h = {}
    for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
    player_heroes[u] = h
    -- A hero held by a player but missing from the game's set is still looked up (odd games).
    local id = h['id']
    if id and not wanted[id] then wanted[id] = true; hero_ids[#hero_ids + 1] = id end
  end
  local heroes = {}
  if #hero_ids > 0 then
    local jsons = redis.call('HMGET', KEYS[1], unpack(hero_ids))
    for i, id in ipairs(hero_ids) do heroes[id] = orNull(jsons[i]) end
  end
  if ts == '' then ts = null end
  -- Both copies of the log, as they are now: snapshot.py decides which one is complete. The
  -- caller appended every attack it received before this game's 'Cleaning' in the same
  -- pipeline, before this call (pub/sub order), so the stream is as whole as this listener saw it.
  -- The usual case, list and stream equal, is written once (flag) to halve the encoding work.
  local logs = redis.call('LRANGE', k_logs, 0, -1)
  local stream = redis.call('LRANGE', key('stream', t), 0, -1)
  local same = #logs > 0 and #stream == #logs
  if same then
    for i = 1, #logs do
      if logs[i] ~= stream[i] then same = false; break end
    end
  end
  if same then stream = {} end
  local snapshot = cjson.encode({
    schema = 2, game_token = t, captured_at = captured_at, captured_by = captured_by,
    trigger = trigger, message_timestamp = ts, status = status,
    participants = orNull(fields[2]),
    host = orNull(fields[3]),
    players = players,
    order = redis.call('LRANGE', k_order, 0, -1),
    superheros = superheros,
    player_heroes = player_heroes,
    logs = logs,
    stream = stream,
    stream_same_as_logs = same,
    heroes = heroes,
  })
  -- Every read above, every write below: an error while reading (e.g. WRONGTYPE) leaves nothing.
  redis.call('SET', seen, captured_at, 'EX', ttl)
  redis.call('SET', snapkey, snapshot)
  return 'captured', status
end

local out, counts, pushed = {}, {}, {}
for i = tp + 2 * #names + 1, #ARGV, 2 do
  -- pcall: one hostile game (e.g. a WRONGTYPE key) must not abort the rest of the batch.
  local ok, outcome, status = pcall(capture, ARGV[i], ARGV[i + 1])
  if ok then
    out[#out + 1] = outcome; out[#out + 1] = status
    counts[outcome] = (counts[outcome] or 0) + 1
    if outcome == 'captured' then pushed[#pushed + 1] = ARGV[i] end
  else
    local msg = outcome
    if type(msg) == 'table' then msg = msg.err or 'error' end
    out[#out + 1] = 'error'; out[#out + 1] = tostring(msg)
  end
end
-- One RPUSH and the counters once per call, not per game (fewer server calls on the hot path).
-- Still atomic with each game's gate and snapshot: nothing runs between them and this push, and
-- the tokens are appended at the tail in capture order (the sensor reads from the head).
if #pushed > 0 then redis.call('RPUSH', KEYS[2], unpack(pushed)) end
if counts['captured'] then
  redis.call('HINCRBY', KEYS[3], 'captured', counts['captured'])
  if trigger == 'reconcile' then redis.call('HINCRBY', KEYS[3], 'reconciled', counts['captured']) end
end
if counts['duplicate'] and trigger == 'message' then
  redis.call('HINCRBY', KEYS[3], 'duplicates', counts['duplicate'])
end
return out
