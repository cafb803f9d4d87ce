// bench/peers.mjs: the official TypeScript SDK (npm `cloudflare`) creating
// the same application policy against the same nginx as the cfaccess rows
// of `make bench-peers` (bench/run.sh copies this file next to the
// throwaway node_modules it installs). node peers.mjs BASE N CONC
// prints "ts_seq|ts_conc <req/s> req/s <cpu-us-per-op>" like bench/client.lua.
import Cloudflare from "cloudflare";

const [base, nArg, concArg] = process.argv.slice(2);
const n = Number(nArg), conc = Number(concArg);
const ACCT = "023e105f4ecef8ad9ca31a8372d0c353";
const APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415";
const client = new Cloudflare({ apiToken: "bench-token-not-a-secret", baseURL: base, maxRetries: 0 });
const params = {
  account_id: ACCT, name: "bench", decision: "allow", precedence: 1, session_duration: "24h",
  include: [{ email: { email: "alice@example.com" } }, { ip: { ip: "192.0.2.0/24" } }],
  require: [{ geo: { country_code: "US" } }],
};

async function worker(count) {
  for (let i = 0; i < count; i++) {
    const p = await client.zeroTrust.access.applications.policies.create(APP, params);
    if (!p || p.id !== APP) throw new Error("unexpected response");
  }
}

async function run(total, k) {
  const per = Math.floor(total / k), jobs = [];
  for (let j = 0; j < k; j++) jobs.push(worker(per + (j < total % k ? 1 : 0)));
  await Promise.all(jobs);
}

await run(Math.min(200, n), conc);   // warm up: JIT, connections
const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
await run(n, conc);
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cu = process.cpuUsage(c0);
console.log(`${conc > 1 ? "ts_conc" : "ts_seq"} ${(n / secs).toFixed(1)} req/s ${((cu.user + cu.system) / n).toFixed(1)}`);
