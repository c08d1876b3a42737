// shells.mjs — shell_read with until (a prompt regex) and quiet_ms, the
// screen text with control sequences stripped (raw on request),
// shell_resize and shell_list, through the official MCP TypeScript SDK
// client (results checked against the outputSchemas); invalid arguments
// refused. Run by tests/integration/test_mcp.py.
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { connect, check, failed, text } from "./lib.mjs";

const ws = `sh-${process.pid}`;
const { client } = await connect();
const call = (name, args) =>
  client.callTool({ name, arguments: args }, CallToolResultSchema);

try {
  let r = await call("workspace_create", { name: ws });
  check(!r.isError, "workspace_create", r);
  r = await call("shell_open", { workspace: ws, command: ["sh"], rows: 10, cols: 40 });
  const sh = r.structuredContent.shell;
  await call("shell_write", { workspace: ws, shell: sh, input: "PS1='READY> '; echo\n" });
  r = await call("shell_read", { workspace: ws, shell: sh, until: "READY> $" });
  check(!r.isError && /READY> $/.test(r.structuredContent.output), "until waits for the prompt", r);
  let cur = r.structuredContent.next_cursor;
  // The answer comes after a second: until waits for the prompt after it.
  await call("shell_write", { workspace: ws, shell: sh, input: "sleep 1; printf '\\033[31mred\\033[0m\\n'\n" });
  r = await call("shell_read", { workspace: ws, shell: sh, cursor: cur, until: "READY> $", wait: 20 });
  check(!r.isError && /\nred\nREADY> $/.test(r.structuredContent.output) &&
    !r.structuredContent.output.includes("\u001b") && !r.structuredContent.output.includes("\r"),
    "the whole answer, control sequences and CR stripped", r.structuredContent);
  r = await call("shell_read", { workspace: ws, shell: sh, cursor: cur, raw: true });
  check(r.structuredContent.output.includes("\u001b[31mred\u001b[0m\r\n"), "raw keeps them", r.structuredContent);
  cur = r.structuredContent.next_cursor;
  await call("shell_write", { workspace: ws, shell: sh, input: "for i in 1 2 3; do echo n$i; sleep 0.2; done\n" });
  r = await call("shell_read", { workspace: ws, shell: sh, cursor: cur, quiet_ms: 1500 });
  check(/n1\nn2\nn3\n/.test(r.structuredContent.output), "quiet_ms waits for the output to stop", r.structuredContent);
  cur = r.structuredContent.next_cursor;
  r = await call("shell_resize", { workspace: ws, shell: sh, rows: 30, cols: 100 });
  check(!r.isError && r.structuredContent.rows === 30, "shell_resize", r);
  await call("shell_write", { workspace: ws, shell: sh, input: "stty size\n" });
  r = await call("shell_read", { workspace: ws, shell: sh, cursor: cur, until: "30 100" });
  check(/30 100/.test(r.structuredContent.output), "the program sees the new size", r.structuredContent);
  r = await call("shell_list", { workspace: ws });
  check(!r.isError && r.structuredContent.shells.length === 1 && r.structuredContent.shells[0].cols === 100,
    "shell_list", r.structuredContent);
  const bad = [
    ["shell_read", { workspace: ws, shell: sh, until: "(" }, /until/, "a bad regex"],
    ["shell_read", { workspace: ws, shell: sh, quiet_ms: 0 }, /quiet_ms/, "quiet_ms 0"],
    ["shell_read", { workspace: ws, shell: sh, raw: "yes" }, /raw/, "raw not a boolean"],
    ["shell_resize", { workspace: ws, shell: sh, rows: 0, cols: 5 }, /rows/, "rows 0"],
    ["shell_resize", { workspace: ws, shell: sh, rows: 5 }, /cols/, "no cols"],
    ["shell_resize", { workspace: ws, shell: 99, rows: 5, cols: 5 }, /99/, "an unknown shell"],
    ["shell_list", { workspace: ws, shell: 1 }, /shell/, "an unknown argument"],
  ];
  for (const [tool, args, re, what] of bad) {
    r = await call(tool, args);
    check(r.isError && re.test(text(r)), `${tool}: ${what} is refused`, [r, re.toString()]);
  }
} finally {
  await call("workspace_delete", { workspace: ws });
  await client.close();
}
const n = failed();
console.log(n ? `FAILED ${n}` : "ALL OK");
process.exit(n ? 1 : 0);
