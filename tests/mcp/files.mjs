// files.mjs — file_stat, file_mkdir, file_move, file_glob, file_search and
// file_edit through the official MCP TypeScript SDK client (results
// checked against each tool's outputSchema), with valid and invalid
// arguments; a refused edit changes nothing. Run by
// tests/integration/test_mcp.py with SANDPIT_BIN and SANDPIT_STATE.
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { connect, check, failed, text } from "./lib.mjs";

const ws = `fl-${process.pid}`;
const { client } = await connect();
const call = (name, args) =>
  client.callTool({ name, arguments: args }, CallToolResultSchema);
const read = async (path) =>
  (await call("file_read", { workspace: ws, path })).structuredContent.content;

try {
  const { tools } = await client.listTools();
  for (const n of ["file_stat", "file_mkdir", "file_move", "file_glob", "file_search", "file_edit"]) {
    const t = tools.find((x) => x.name === n);
    check(t && t.inputSchema.additionalProperties === false && t.outputSchema, `${n} is listed with its schemas`, t);
  }
  let r = await call("workspace_create", { name: ws });
  check(!r.isError, "workspace_create", r);
  const py = "def foo():\n    return 1\n\ndef bar():\n    return 1\n";
  await call("file_write", { workspace: ws, path: "src/a.py", content: py });
  await call("file_write", { workspace: ws, path: "src/sub/b.py", content: "x = foo()\n" });
  await call("file_write", { workspace: ws, path: "notes.txt", content: "Foo bar\n" });
  await call("file_write", { workspace: ws, path: ".git/objects/x.py", content: "foo\n" });
  await call("file_write", { workspace: ws, path: "bin.dat", content_base64: Buffer.from("foo\0\x01").toString("base64") });

  r = await call("file_stat", { workspace: ws, path: "src/a.py" });
  check(!r.isError && r.structuredContent.type === "file" && r.structuredContent.size === py.length, "file_stat", r);
  r = await call("file_mkdir", { workspace: ws, path: "d1/d2" });
  check(!r.isError && r.structuredContent.created, "file_mkdir with parents", r);
  r = await call("file_stat", { workspace: ws, path: "d1/d2" });
  check(r.structuredContent.type === "dir", "the directory is there", r);
  r = await call("file_move", { workspace: ws, from: "notes.txt", to: "d1/notes.txt" });
  check(!r.isError && r.structuredContent.moved, "file_move", r);
  r = await call("file_move", { workspace: ws, from: "src/sub/b.py", to: "d1/notes.txt" });
  check(r.isError && /exists: nothing moved/.test(text(r)), "file_move onto an existing file is refused", r);
  check((await read("d1/notes.txt")) === "Foo bar\n", "the refused move changed nothing");

  r = await call("file_glob", { workspace: ws, pattern: "*.py" });
  check(!r.isError && JSON.stringify(r.structuredContent.paths.map((p) => p.path)) ===
    JSON.stringify(["src/a.py", "src/sub/b.py"]), "file_glob *.py (sorted, .git skipped)", r);
  r = await call("file_glob", { workspace: ws, pattern: "*.py", max_results: 1 });
  check(r.structuredContent.paths.length === 1 && r.structuredContent.truncated, "file_glob is bounded", r);

  r = await call("file_search", { workspace: ws, pattern: "foo" });
  check(!r.isError && JSON.stringify(r.structuredContent.matches.map((m) => [m.path, m.line])) ===
    JSON.stringify([["src/a.py", 1], ["src/sub/b.py", 1]]) && r.structuredContent.files_skipped === 1,
    "file_search: paths and line numbers, binary skipped", r);
  r = await call("file_search", { workspace: ws, pattern: "foo", ignore_case: true, glob: "*.txt" });
  check(r.structuredContent.matches.length === 1 && r.structuredContent.matches[0].text === "Foo bar",
    "file_search with glob and ignore_case", r);
  r = await call("file_search", { workspace: ws, pattern: "def [a-z]+\\(", path: "src" });
  check(r.structuredContent.matches.length === 2 && r.structuredContent.matches[1].line === 4,
    "file_search with a regular expression below a path", r);
  r = await call("file_search", { workspace: ws, pattern: "return", max_results: 1 });
  check(r.structuredContent.matches.length === 1 && r.structuredContent.truncated, "file_search is bounded", r);

  r = await call("file_edit", { workspace: ws, path: "src/a.py", old_string: "return 1", new_string: "return 2" });
  check(r.isError && /occurs 2 times .*lines 2, 5/.test(text(r)), "a non-unique old_string is refused with its lines", r);
  check((await read("src/a.py")) === py, "the refused edit changed nothing");
  r = await call("file_edit", { workspace: ws, path: "src/a.py", old_string: "def bar():\n    return 1", new_string: "def bar():\n    return 3" });
  check(!r.isError && r.structuredContent.replacements === 1 && r.structuredContent.first_line === 4, "file_edit", r);
  r = await call("file_edit", { workspace: ws, path: "src/a.py", old_string: "return", new_string: "yield", replace_all: true });
  check(!r.isError && r.structuredContent.replacements === 2, "file_edit replace_all", r);
  check((await read("src/a.py")) === "def foo():\n    yield 1\n\ndef bar():\n    yield 3\n", "the edits are in the file");

  const bad = [
    ["file_edit", { workspace: ws, path: "src/a.py", old_string: "nothere", new_string: "x" }, /not found/, "text not in the file"],
    ["file_edit", { workspace: ws, path: "src/a.py", old_string: "", new_string: "x" }, /empty/, "an empty old_string"],
    ["file_edit", { workspace: ws, path: "src/a.py", old_string: "yield", new_string: "yield" }, /the same/, "no change"],
    ["file_edit", { workspace: ws, path: "nope.py", old_string: "a", new_string: "b" }, /nope\.py/, "a missing file"],
    ["file_edit", { workspace: ws, path: "../x", old_string: "a", new_string: "b" }, /x/, "a path outside"],
    ["file_edit", { workspace: ws, path: "src/a.py", old_string: "a" }, /new_string/, "no new_string"],
    ["file_search", { workspace: ws, pattern: "(" }, /literal: true/, "a bad regular expression"],
    ["file_search", { workspace: ws, pattern: "" }, /empty/, "an empty pattern"],
    ["file_search", { workspace: ws, pattern: "x", max_results: 0 }, /max_results/, "max_results 0"],
    ["file_search", { workspace: ws, pattern: "x", path: "src/a.py" }, /not a directory/, "a file as the path"],
    ["file_glob", { workspace: ws }, /pattern/, "no pattern"],
    ["file_glob", { workspace: ws, pattern: "*", path: "/etc" }, /workspace/, "an absolute path outside"],
    ["file_move", { workspace: ws, from: "src/a.py" }, /to/, "no destination"],
    ["file_move", { workspace: ws, from: "src/a.py", to: "../../etc/x" }, /\.\./, "a destination outside"],
    ["file_mkdir", { workspace: ws, path: "d1/x/y", parents: false }, /d1\/x/, "a missing parent without parents"],
    ["file_stat", { workspace: ws, path: "nope" }, /nope/, "a missing path"],
    ["file_stat", { workspace: ws, path: "a", extra: 1 }, /extra/, "an unknown argument"],
  ];
  for (const [tool, args, re, what] of bad) {
    r = await call(tool, args);
    check(r.isError && re.test(text(r)), `${tool}: ${what} is refused`, [r, re.toString()]);
  }
  check((await read("src/a.py")) === "def foo():\n    yield 1\n\ndef bar():\n    yield 3\n", "the refusals changed nothing");
} finally {
  await call("workspace_delete", { workspace: ws });
  await client.close();
}
const n = failed();
console.log(n ? `FAILED ${n}` : "ALL OK");
process.exit(n ? 1 : 0);
