-- cfaccess client over TLS: a self-signed certificate for 127.0.0.1 is made
-- at test time; the mock serves https with it. Without cafile the peer is
-- refused (verification is always on); with cafile it is trusted, and the
-- TLS connection is reused between calls.
local core = require("cfaccess.core")
local mockctl = require("mockctl")

local tu = require("testutil")

local TOKEN = tu.token("tls")
local ACCT, APP = tu.ACCOUNT, tu.APP

local q = mockctl.shell_quote

describe("cfaccess client over TLS", function()
  local m, dir, cert, key

  setup(function()
    local p = io.popen("mktemp -d")
    dir = p:read("l")
    p:close()
    assert(dir and dir ~= "", "mktemp failed")
    cert, key = dir .. "/cert.pem", dir .. "/key.pem"
    local ok = os.execute("openssl req -x509 " ..
      "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1"
      .. " -addext subjectAltName=IP:127.0.0.1 -keyout " .. q(key) .. " -out " .. q(cert)
      .. " >/dev/null 2>&1")
    assert(ok, "openssl could not make a certificate")
    m = mockctl.start{ token = TOKEN, tls_cert = cert, tls_key = key,
                       apps = { "accounts:" .. ACCT .. ":" .. APP } }
  end)

  teardown(function()
    if m then m:stop() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("serves https", function()
    assert.truthy(m.base_url:find("^https://127%.0%.0%.1:%d+/client/v4$"), m.base_url)
  end)

  it("refuses an untrusted certificate", function()
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                  max_retries = 2, rate_limit = false })
    local r, err = c:list_app_policies(APP)
    assert.is_nil(r)
    assert.equal("network", err.kind)
    assert.equal(1, err.attempts)          -- a bad certificate is not retried
    assert.falsy(tostring(err):find(TOKEN, 1, true))
    c:close()
  end)

  it("trusts the certificate given as cafile and reuses the connection", function()
    m:reset()
    m:app("accounts", ACCT, APP)
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                  cafile = cert, rate_limit = false })
    local p = assert(c:create_app_policy(APP, { name = "tls", decision = "allow",
                                                include = { { everyone = {} } } }))
    assert.equal("tls", p.name)
    assert.equal(1, #assert(c:list_app_policies(APP)))
    local log = m:log()
    assert.equal(2, #log)
    assert.equal(log[1].connection, log[2].connection)
    c:close()
  end)

  it("reports a missing cafile as network, not a crash", function()
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                  cafile = dir .. "/missing.pem", rate_limit = false })
    local r, err = c:list_app_policies(APP)
    assert.is_nil(r)
    assert.equal("network", err.kind)
    c:close()
  end)
end)
