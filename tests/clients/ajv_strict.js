// Compiles every MCP tool input schema with Ajv 2020 in strict mode (every
// strict option on: unknown keywords and formats, missing types, union types,
// required names with no property), as a JS MCP client does.
// Usage: node ajv_strict.js TOOLS.json  (a JSON array of tools, or {tools: [...]})
// Prints one JSON line per failure and a summary; exits 1 on any failure.
"use strict";
const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020").default;

const given = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const tools = Array.isArray(given) ? given : given.tools;
let failed = 0;
for (const tool of tools) {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  try {
    ajv.compile(tool.inputSchema);
  } catch (err) {
    failed += 1;
    console.log(JSON.stringify({ tool: tool.name, error: String(err.message || err) }));
  }
}
console.log(JSON.stringify({ compiled: tools.length - failed, failed }));
process.exit(failed ? 1 : 0);
