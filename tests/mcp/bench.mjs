// bench.mjs — bench/mcp: tools/call of exec /bin/true from the official
// MCP SDK client, N calls (default 500) through one `sandpit mcp`, one at a
// time; prints p50/p90/p99. Needs SANDPIT_BIN; uses SANDPIT_STATE.
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
} finally {
  await call("workspace_delete", { workspace: ws });
  await client.close();
}
