"""The store's Lua scripts: the changes that must read and write several keys atomically."""

from __future__ import annotations

from typing import Final

# The insert of a new lease with its quota, budget and name checks, every index and the
# ``created`` event. Answers 'ok', 'exists', 'name:<holder id>', 'user', 'total' or 'budget'.
# KEYS: lease, active, active_owner, deadlines, leases, owner_index, ids, budget, events, names
# ARGV: id, data, status, owner, expires_ts, created_ts, expire_at, max_user, max_total,
#       budget_limit (-1 = none), hours, budget_expire_at, maxlen, at, detail, name
INSERT: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
local holder = redis.call('HGET', KEYS[10], ARGV[16])
if holder and redis.call('SISMEMBER', KEYS[2], holder) == 1 then return 'name:' .. holder end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[8]) then return 'user' end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[9]) then return 'total' end
local limit = tonumber(ARGV[10])
if limit >= 0 then
  local used = tonumber(redis.call('GET', KEYS[8]) or '0')
  if used + tonumber(ARGV[11]) > limit + 1e-4 then return 'budget' end
  redis.call('INCRBYFLOAT', KEYS[8], ARGV[11])
  redis.call('EXPIREAT', KEYS[8], ARGV[12])
end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'status', ARGV[3], 'owner', ARGV[4])
redis.call('EXPIREAT', KEYS[1], ARGV[7])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[1])
redis.call('ZADD', KEYS[7], 0, ARGV[1])
redis.call('HSET', KEYS[10], ARGV[16], ARGV[1])
redis.call('XADD', KEYS[9], 'MAXLEN', '~', ARGV[13], '*', 'type', 'created', 'lease', ARGV[1],
  'owner', ARGV[4], 'at', ARGV[14], 'detail', ARGV[15])
return 'ok'
"""

# Compare-and-delete: only the holder of the token releases the claim.
# KEYS: claim; ARGV: token
RELEASE_CLAIM: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Compare-and-extend: only the holder of the token keeps the claim alive.
# KEYS: claim; ARGV: token, ttl_ms
EXTEND_CLAIM: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# A closed lease gives its name back, unless another active lease holds it by now.
# KEYS: names; ARGV: name, lease id
FREE_NAME: Final = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""
