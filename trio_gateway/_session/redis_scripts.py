"""Lua scripts of the Redis session store. They implement ``_ratelimit``'s rules exactly.

Times come from the caller (``now`` as a decimal string that round-trips a float), never from the
server clock, so tests drive time and gateways on several hosts agree on the math. TTLs serve only
to clean up: they are set well past the point where an entry stops mattering.

Numbers that must keep their fractions go back as strings: Redis truncates Lua numbers in replies
to integers, and Lua's ``tostring`` keeps only 14 digits, so period starts are stored as the
caller's own string and reset times are formatted with ``%.17g``.
"""

from __future__ import annotations

from trio_gateway._redis.client import Script

__all__ = ["CONSUME", "PUT_META_DATA"]

#: KEYS: rate log (zset), quota counters (hash).
#: ARGV: now, rate limit (0: none), window, member, quota_max (0: none), renewal rate, bucket.
#: Returns {outcome (0 allowed, 1 rate limited, 2 quota exceeded), rate remaining,
#:          rate reset (string), quota remaining, quota renews (string)}.
CONSUME = Script(
    """
local now_s = ARGV[1]
local now = tonumber(now_s)
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local quota_max = tonumber(ARGV[5])
local renewal_s = ARGV[6]
local renewal = tonumber(renewal_s)
local bucket = ARGV[7]
local rate_remaining, rate_reset = 0, '0'
if limit > 0 then
  local log = KEYS[1]
  redis.call('ZREMRANGEBYSCORE', log, '-inf', string.format('%.17g', now - window))
  local count = redis.call('ZCARD', log)
  local allowed = count < limit
  if allowed then
    redis.call('ZADD', log, now_s, ARGV[4])
    count = count + 1
    redis.call('PEXPIRE', log, math.ceil(window * 1000) + 60000)
  end
  rate_remaining = limit - count
  if count > 0 then
    local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
    rate_reset = string.format('%.17g', tonumber(oldest[2]) + window - now)
  end
  if not allowed then
    return {1, rate_remaining, rate_reset, 0, '0'}
  end
end
if quota_max <= 0 then
  return {0, rate_remaining, rate_reset, 0, '0'}
end
local q = KEYS[2]
local f_used, f_start, f_renewal = 'u:' .. bucket, 's:' .. bucket, 'p:' .. bucket
local got = redis.call('HMGET', q, f_used, f_start, f_renewal)
local used = tonumber(got[1]) or 0
local start_s, period_s = got[2], got[3]
if renewal > 0 then
  local expired = true
  if start_s then
    expired = now >= tonumber(start_s) + tonumber(period_s)
  end
  if expired then
    used, start_s, period_s = 0, now_s, renewal_s
  end
end
local allowed = used < quota_max
if allowed then
  used = used + 1
end
local renews = '0'
if start_s and period_s then
  renews = string.format('%.17g', tonumber(start_s) + tonumber(period_s))
  redis.call('HSET', q, f_used, used, f_start, start_s, f_renewal, period_s)
else
  redis.call('HSET', q, f_used, used)
end
if renewal > 0 and redis.call('HEXISTS', q, 'forever') == 0 then
  local want = math.ceil(renewal * 2000) + 60000
  if redis.call('PTTL', q) < want then
    redis.call('PEXPIRE', q, want)
  end
else
  redis.call('HSET', q, 'forever', 1)
  redis.call('PERSIST', q)
end
if not allowed then
  return {2, rate_remaining, rate_reset, quota_max - used, renews}
end
return {0, rate_remaining, rate_reset, quota_max - used, renews}
"""
)

#: KEYS: session. ARGV: the new session JSON. Writes only if the session still exists, so a hook's
#: late meta_data write cannot bring back a deleted key. Returns 1 if written.
PUT_META_DATA = Script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return 1
"""
)
