// bench.mjs — bench/mcp: tools/call of exec /bin/true from the official
// MCP SDK client, N calls (default 500) through one `sandpit mcp`, one at a
// time; prints p50/p90/p99. Then N pings (at least 200) while 8 other
// requests wait in the workspace (readiness probes, shell reads with
// wait): p50/p99. Needs SANDPIT_BIN; uses SANDPIT_STATE.
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { connect } from "./lib.mjs";

const n = Number(process.argv[2] || 500);
const ws = `bench-mcp-${process.pid}`;
const { client } = await connect([], "sandpit-bench");
const call = (name, args) => client.callTool({ name, arguments: args }, CallToolResultSchema);
let r = await call("workspace_create", { name: ws });
if (r.isError) throw new Error(JSON.stringify(r));
try {
  for (let i = 0; i < 20; i++) await call("exec", { workspace: ws, command: ["/bin/true"] });
  const t = [];
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    r = await call("exec", { workspace: ws, command: ["/bin/true"] });
    t.push(Number(process.hrtime.bigint() - a) / 1e6);
    if (r.isError || r.structuredContent.exit_code !== 0) throw new Error(JSON.stringify(r));
  }
  t.sort((x, y) => x - y);
  const q = (p) => t[Math.min(t.length - 1, Math.floor(t.length * p))].toFixed(3);
  console.log(`${n} tools/call exec /bin/true via the MCP SDK client: p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, p99 ${q(0.99)} ms, min ${t[0].toFixed(3)} ms`);

  // ping while 8 other requests wait in the workspace: 4 service_start on
  // a readiness probe that never passes, 4 shell_read with wait. Nothing
  // they wait for may hold the loop (issue 18).
  r = await call("shell_open", { workspace: ws });
  const shell = r.structuredContent.shell;
  const waiting = [];
  for (let i = 0; i < 4; i++) {
    waiting.push(call("service_start", { workspace: ws, name: `w${i}`, command: "sleep 600",
      ready: "file:/tmp/never", ready_timeout: 600 }, { timeout: 700000 }).catch(() => {}));
    waiting.push(call("shell_read", { workspace: ws, shell, cursor: 1e12, wait: 30 },
      { timeout: 700000 }).catch(() => {}));
  }
  await new Promise((res) => setTimeout(res, 300));
  const pt = [];
  const np = Math.max(200, n);
  for (let i = 0; i < np; i++) {
    const a = process.hrtime.bigint();
    await client.ping();
    pt.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  pt.sort((x, y) => x - y);
  const pq = (p) => pt[Math.min(pt.length - 1, Math.floor(pt.length * p))].toFixed(3);
  console.log(`${np} ping while 8 requests wait (4 readiness, 4 shell reads): p50 ${pq(0.5)} ms, p99 ${pq(0.99)} ms, max ${pt[pt.length - 1].toFixed(3)} ms`);
} finally {
  await call("workspace_delete", { workspace: ws });
  await client.close();
  process.exit(0);
}
