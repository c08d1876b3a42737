// fork.mjs — workspace_snapshot then workspace_fork through the official
// MCP TypeScript SDK client (which also checks each result against the
// tool's outputSchema): the fork sees the snapshot's files, the original
// and the fork change independently, and hostile arguments are refused.
// Run by tests/integration/test_mcp.py with SANDPIT_BIN and SANDPIT_STATE.
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { connect, check, failed, text } from "./lib.mjs";

const ws = `fk-${process.pid}`;
const fk = `${ws}-f`;
const { client } = await connect();
const call = (name, args) =>
  client.callTool({ name, arguments: args }, CallToolResultSchema);

try {
  const { tools } = await client.listTools();
  const t = tools.find((x) => x.name === "workspace_fork");
  check(t && t.inputSchema.type === "object" &&
    ["workspace", "snapshot", "name"].every((k) => t.inputSchema.required.includes(k)) &&
    t.inputSchema.properties.policy.type === "object" && t.outputSchema,
    "workspace_fork is listed with its schemas", t);

  let r = await call("workspace_create", { name: ws });
  check(!r.isError, "workspace_create", r);
  r = await call("file_write", { workspace: ws, path: "a.txt", content: "snap\n" });
  check(!r.isError, "file_write", r);
  r = await call("workspace_snapshot", { workspace: ws, snapshot: "s1" });
  check(!r.isError && r.structuredContent.snapshot === "s1", "workspace_snapshot", r);
  r = await call("file_write", { workspace: ws, path: "a.txt", content: "later\n" });
  check(!r.isError, "file_write after the snapshot", r);

  r = await call("workspace_fork", {
    workspace: ws, snapshot: "s1", name: fk, policy: { memory: "96M" },
  });
  check(!r.isError && r.structuredContent.workspace === fk &&
    r.structuredContent.state === "running" &&
    r.structuredContent.forked_from.snapshot === "s1" &&
    r.structuredContent.limits.memory === 96 * 1024 * 1024, "workspace_fork", r);
  r = await call("file_read", { workspace: fk, path: "a.txt" });
  check(!r.isError && r.structuredContent.content === "snap\n", "the fork has the snapshot's file", r);
  r = await call("exec", { workspace: fk, command: "echo fork > a.txt && cat a.txt" });
  check(!r.isError && r.structuredContent.stdout === "fork\n", "exec in the fork", r);
  r = await call("file_read", { workspace: ws, path: "a.txt" });
  check(!r.isError && r.structuredContent.content === "later\n", "the original is unchanged", r);
  r = await call("workspace_list", {});
  check(r.structuredContent.workspaces.some((w) => w.name === fk && w.state === "running"),
    "workspace_list shows the fork", r.structuredContent);

  const bad = [
    [{ workspace: ws, snapshot: "s1", name: "../x" }, /name/, "a path as the name"],
    [{ workspace: ws, snapshot: "s1", name: "" }, /name/, "an empty name"],
    [{ workspace: ws, snapshot: "s1" }, /name/, "no name"],
    [{ workspace: ws, snapshot: "../s1", name: "z1" }, /snapshot/, "a path as the snapshot"],
    [{ workspace: ws, snapshot: "nope", name: "z1" }, /no snapshot nope/, "an unknown snapshot"],
    [{ workspace: ws, snapshot: "s1", name: fk }, /exists/, "a name in use"],
    [{ workspace: ws, snapshot: "s1", name: ws }, /exists/, "the original's name"],
    [{ workspace: ws, snapshot: "s1", name: "z1", policy: { network: "host" } },
      /not allowed/, "a network create may not have"],
    [{ workspace: ws, snapshot: "s1", name: "z1", policy: { memory: "64G" } },
      /over the operator's limit/, "memory over the ceiling"],
    [{ workspace: ws, snapshot: "s1", name: "z1", policy: { rootfs: "/" } },
      /rootfs/, "a policy key create does not take"],
    [{ workspace: ws, snapshot: "s1", name: "z1", policy: "none" }, /policy/, "a policy that is not an object"],
    [{ workspace: ws, snapshot: "s1", name: "z1", extra: 1 }, /extra/, "an unknown argument"],
  ];
  for (const [args, re, what] of bad) {
    r = await call("workspace_fork", args);
    check(r.isError === true && re.test(text(r)), `refused: ${what}`, r);
  }
  r = await call("workspace_list", {});
  const names = r.structuredContent.workspaces.map((w) => w.name).sort();
  check(JSON.stringify(names) === JSON.stringify([ws, fk].sort()), "nothing else was created", names);
  r = await call("exec", { workspace: fk, command: "cat a.txt" });
  check(r.structuredContent.stdout === "fork\n", "the fork refused on its name is unchanged", r);
} finally {
  for (const w of [fk, ws]) await call("workspace_delete", { workspace: w });
  await client.close();
}
const n = failed();
console.log(n ? `FAILED ${n}` : "ALL OK");
process.exit(n ? 1 : 0);
