// Parse an AsyncAPI document with the official parser and print every diagnostic.
// Exit 0 when there is no error and no warning, 1 otherwise, 2 on a usage error.
// Usage: node check.mjs PATH/TO/asyncapi.yaml
import { readFileSync } from "node:fs";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const path = process.argv[2];
if (!path) {
  console.error("usage: node check.mjs PATH/TO/asyncapi.yaml");
  process.exit(2);
}
const names = {
  [DiagnosticSeverity.Error]: "error",
  [DiagnosticSeverity.Warning]: "warning",
  [DiagnosticSeverity.Information]: "info",
  [DiagnosticSeverity.Hint]: "hint",
};
const { document, diagnostics } = await new Parser().parse(readFileSync(path, "utf8"), {
  source: path,
});
const counts = { error: 0, warning: 0, info: 0, hint: 0 };
for (const d of diagnostics) {
  const severity = names[d.severity] ?? String(d.severity);
  counts[severity] = (counts[severity] ?? 0) + 1;
  console.log(`${severity} ${d.code} at ${d.path.join(".") || "(root)"}: ${d.message}`);
}
const ok = document !== undefined && counts.error === 0 && counts.warning === 0;
console.log(
  `${path}: ${ok ? "ok" : "FAILED"}: ${counts.error} errors, ${counts.warning} warnings, ` +
    `${counts.info} infos, ${counts.hint} hints` +
    (document === undefined ? " (the parser produced no document)" : ""),
);
process.exit(ok ? 0 : 1);
