--- cfaccess.eval.cidr: IPv4/IPv6 addresses and CIDR ranges for the
-- evaluator's `ip` and `ip_list` rules.
--
-- Hand-written on purpose: Debian 12 packages no Lua 5.4 library that
-- tests CIDR containment (lua-posix has inet_pton but nothing for
-- prefixes, and would be a dependency for twenty lines), and the C core's
-- IP checker only validates. An address is kept as two 64-bit integers
-- (hi, lo) and its width (32 or 128); IPv4 lives in lo. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4
-- address, as Cloudflare sees it.
-- @module cfaccess.eval.cidr
local tonumber, type, find, match, sub, byte = tonumber, type, string.find, string.match, string.sub,
  string.byte

local M = {}

local V4 = -1   -- hi of every IPv4 address (no IPv6 address is tagged so)

-- One dotted part: 0 to 255, at most three digits, no leading zero.
local function octet(part)
  local n = #part
  if n > 3 or (n > 1 and byte(part) == 48) then return nil end
  local v = tonumber(part)
  if v > 255 then return nil end
  return v
end

-- "a.b.c.d" -> 32-bit integer, or nil. (Parsed for every request's
-- address: no table, no loop.)
local function parse_v4(s)
  local a, b, c, d = match(s, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = octet(a), octet(b), octet(c), octet(d)
  if not (a and b and c and d) then return nil end
  return (a << 24) | (b << 16) | (c << 8) | d
end

-- The 16-bit groups of one side of "::" ("" gives none), or nil. `tail`
-- lets the last element be a dotted IPv4 address (two groups).
local function groups(s, tail, out)
  if s == "" then return out end
  local pos = 1
  while true do
    local e = find(s, ":", pos, true)
    local g = sub(s, pos, (e or 0) - 1)   -- e == nil: to the end
    if tail and not e and find(g, ".", 1, true) then
      local v4 = parse_v4(g)
      if not v4 then return nil end
      out[#out + 1] = v4 >> 16
      out[#out + 1] = v4 & 0xffff
    elseif match(g, "^%x%x?%x?%x?$") then
      out[#out + 1] = tonumber(g, 16)
    else
      return nil
    end
    if not e then return out end
    pos = e + 1
  end
end

-- An IPv6 text -> hi, lo (64-bit integers), or nil.
local function parse_v6(s)
  local head, rest = s:match("^(.-)::(.*)$")
  local g
  if head then
    if rest:find("::", 1, true) then return nil end
    local h = groups(head, false, {})
    local t = h and groups(rest, true, {})
    if not t or #h + #t > 7 then return nil end
    g = h
    for _ = 1, 8 - #h - #t do g[#g + 1] = 0 end
    for _, v in ipairs(t) do g[#g + 1] = v end
  else
    g = groups(s, true, {})
    if not g or #g ~= 8 then return nil end
  end
  local hi, lo = 0, 0
  for i = 1, 4 do hi = (hi << 16) | g[i] end
  for i = 5, 8 do lo = (lo << 16) | g[i] end
  return hi, lo
end

--- Parse an address: returns hi, lo, bits (32 or 128), or nil.
function M.parse_addr(s)
  if type(s) ~= "string" then return nil end
  local v4 = parse_v4(s)
  if v4 then return V4, v4, 32 end
  if not s:find(":", 1, true) then return nil end
  local hi, lo = parse_v6(s)
  if not hi then return nil end
  if hi == 0 and (lo >> 32) == 0xffff then return V4, lo & 0xffffffff, 32 end
  return hi, lo, 128
end

--- Parse "addr" or "addr/len" into a range `{ hi =, lo =, mhi =, mlo = }`
-- (network and mask; host bits masked off, as Cloudflare does with
-- `192.168.100.1/24`), or nil and a reason.
function M.parse_range(s)
  if type(s) ~= "string" then return nil, "not a string" end
  local addr, len = s:match("^([^/]+)/(%d+)$")
  if not addr then addr = s end
  local hi, lo, bits = M.parse_addr(addr)
  if not hi then return nil, "not an IP address or CIDR range" end
  -- an IPv4-mapped IPv6 range keeps its length in IPv6 terms
  local plen = bits
  if len then
    plen = tonumber(len)
    local max = addr:find(":", 1, true) and 128 or 32
    if plen > max then return nil, "a range with a prefix length above " .. max end
    if bits == 32 and max == 128 then
      if plen < 96 then return nil, "an IPv4-mapped range, which needs a prefix of at least 96" end
      plen = plen - 96
    end
  end
  local mhi, mlo
  if bits == 32 then
    mhi = -1
    mlo = plen == 0 and 0 or ((0xffffffff << (32 - plen)) & 0xffffffff)
  else
    -- Lua shifts of 64 or more give 0, so both halves come out right
    mhi = plen >= 64 and -1 or (plen == 0 and 0 or (-1 << (64 - plen)))
    mlo = plen <= 64 and 0 or (plen == 128 and -1 or (-1 << (128 - plen)))
  end
  return { bits = bits, hi = hi & mhi, lo = lo & mlo, mhi = mhi, mlo = mlo }
end

--- Is the address (hi, lo, bits) inside range r? (bits: 32 or 128; the
-- families never mix, so ::/0 holds no IPv4 address.)
function M.contains(r, hi, lo, bits)
  return r.bits == bits and (hi & r.mhi) == r.hi and (lo & r.mlo) == r.lo
end

return M
