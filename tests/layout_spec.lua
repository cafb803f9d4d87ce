-- The code's layout stays as README.md's "How the code is organised" says:
-- every source file is named there (so the table cannot go stale when a
-- file is added), and no file outgrows the architecture's one-concern size
-- (about 600 lines; 650 is where this spec calls it a second concern),
-- and no function is over 80 lines unless the comment right above it says
-- why it is long (TEAM.md's rule, issue 9): C functions as universal-ctags
-- sees them (their first and last line), Lua functions as luac lists them.
local mockctl = require("mockctl")

local ROOT = os.getenv("CFACCESS_TEST_ROOT") or "."
local MAX_LINES = 650
local MAX_FUNCTION = 80

-- The tracked and untracked-but-not-ignored source files under dir
-- matching the Lua pattern pat, relative to the repository root.
local function sources(pat)
  local p = assert(io.popen("cd " .. mockctl.shell_quote(ROOT) ..
    " && git ls-files --cached --others --exclude-standard src lua bin 2>/dev/null"))
  local out = {}
  for line in p:lines() do
    if line:match(pat) then out[#out + 1] = line end
  end
  p:close()
  return out
end

local function section(md, title)
  local s = md:find("\n## " .. title .. "\n", 1, true)
  assert(s, "README.md has no section " .. title)
  local e = md:find("\n## ", s + 1, true) or #md
  return md:sub(s, e)
end

describe("the code's layout", function()
  local readme = assert(mockctl.read_file(ROOT .. "/README.md"))
  local files = sources("%.[ch]$")
  for _, f in ipairs(sources("%.lua$")) do files[#files + 1] = f end
  for _, f in ipairs(sources("^bin/")) do files[#files + 1] = f end

  it("finds the source files (the check below is not vacuous)", function()
    assert.is_true(#files > 40, "only " .. #files .. " source files found")
  end)

  it("names every source file in README's How the code is organised", function()
    local text = section(readme, "How the code is organised")
    local missing = {}
    for _, f in ipairs(files) do
      -- by its path, by its last two components ("plan/diff.lua"), or a
      -- top-level src file by its name in backticks ("`client.h`")
      local base = f:match("([^/]+)$")
      local two = f:match("([^/]+/[^/]+)$")
      local top = f:match("^src/[^/]+$")
      if not (text:find(f, 1, true) or text:find(two, 1, true)
              or (top and text:find("`" .. base .. "`", 1, true))) then
        missing[#missing + 1] = f
      end
    end
    assert.are.same({}, missing)
  end)

  it("keeps every source file under " .. MAX_LINES .. " lines", function()
    local long = {}
    for _, f in ipairs(files) do
      local n = 0
      for _ in io.lines(ROOT .. "/" .. f) do n = n + 1 end
      if n > MAX_LINES then long[#long + 1] = f .. ": " .. n end
    end
    assert.are.same({}, long)
  end)

  -- The lines of file f, and whether the comment block ending right above
  -- line n (a C /* */ or // block, or Lua -- lines) says why it is long.
  local function says_why(lines, n)
    local i = n - 1
    while i >= 1 and lines[i]:match("^%s*$") do i = i - 1 end
    while i >= 1 and (lines[i]:match("^%s*%-%-") or lines[i]:match("^%s*/?%*") or lines[i]:match("^%s*//")) do
      if lines[i]:lower():find("long", 1, true) then return true end
      i = i - 1
    end
    return false
  end

  -- { first, last } line pairs of the functions of f
  local function functions(f)
    local spans = {}
    if f:match("%.[ch]$") then
      local p = assert(io.popen("ctags --fields=+ne --kinds-C=f -f - " .. mockctl.shell_quote(ROOT .. "/" .. f)))
      for line in p:lines() do
        local a, b = line:match("\tline:(%d+).*\tend:(%d+)")
        if a then spans[#spans + 1] = { tonumber(a), tonumber(b), line:match("^[^\t]+") } end
      end
      p:close()
    else
      local p = assert(io.popen("luac5.4 -p -l -l " .. mockctl.shell_quote(ROOT .. "/" .. f) .. " 2>&1"))
      for line in p:lines() do
        local a, b = line:match("^function <.-:(%d+),(%d+)>")
        if a then spans[#spans + 1] = { tonumber(a), tonumber(b), "function" } end
      end
      p:close()
    end
    return spans
  end

  it("finds the functions of C and Lua files (the check below is not vacuous)", function()
    local c, l = functions("src/engine.c"), functions("lua/cfaccess/cli.lua")
    assert.is_true(#c > 10 and #l > 10, #c .. " C and " .. #l .. " Lua functions found")
    for _, s in ipairs(c) do assert.is_true(s[2] > s[1], s[3]) end
  end)

  it("keeps every function within " .. MAX_FUNCTION .. " lines, or says above it why it is long", function()
    local long = {}
    for _, f in ipairs(files) do
      if f:match("%.[ch]$") or f:match("%.lua$") or f:match("^bin/") then
        local lines = {}
        for line in io.lines(ROOT .. "/" .. f) do lines[#lines + 1] = line end
        for _, s in ipairs(functions(f)) do
          local n = s[2] - s[1] + 1
          if n > MAX_FUNCTION and not says_why(lines, s[1]) then
            long[#long + 1] = ("%s:%d %s: %d lines"):format(f, s[1], s[3], n)
          end
        end
      end
    end
    assert.are.same({}, long)
  end)
end)
