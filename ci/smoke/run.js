#!/usr/bin/env node
// Run stepci workflows against a tolu server and print one JSON document with every result.
//
//   node ci/smoke/run.js URL WORKFLOW.yml... > results.json
//
// This is stepci's own engine (@stepci/runner, what `npx stepci run` calls), asked for its
// structured results instead of the terminal rendering; harness/smoke.py reads them (the
// counts, the failed checks) and `tolu ci smoke URL` prints them. Each workflow registers its
// own user, named from env.user (a fresh name per run).
"use strict";
const path = require("node:path");
const crypto = require("node:crypto");
const { runFromFile } = require("@stepci/runner");

async function main() {
  const [base, ...files] = process.argv.slice(2);
  if (!base || files.length === 0) {
    console.error("usage: node run.js URL WORKFLOW.yml...");
    process.exit(2);
  }
  const run = crypto.randomBytes(4).toString("hex");
  const out = { base, workflows: [] };
  for (const file of files) {
    const name = path.basename(file, path.extname(file));
    const env = { base: base.replace(/\/$/, ""), user: `smoke-${run}-${name}`, password: `pw-${run}-smoke` };
    const { result } = await runFromFile(file, { env });
    out.workflows.push({
      file,
      name,
      passed: result.passed,
      duration_ms: result.duration,
      tests: result.tests.map((t) => ({
        id: t.id,
        name: t.name || t.id,
        passed: t.passed,
        steps: t.steps.map((s) => ({
          name: s.name || s.id || "",
          passed: s.passed,
          skipped: s.skipped,
          error: s.errorMessage || null,
          method: s.request ? s.request.method : null,
          url: s.request ? s.request.url : null,
          status: s.response ? s.response.status : null,
          body: s.passed || !s.response ? null : String(s.response.body || "").slice(0, 500),
          failed_checks: failedChecks(s.checks),
          duration_ms: s.duration,
        })),
      })),
    });
  }
  process.stdout.write(JSON.stringify(out, null, 1) + "\n");
}

// The checks that did not pass, as {check: {expected, given}}.
function failedChecks(checks) {
  const failed = {};
  for (const [kind, value] of Object.entries(checks || {})) {
    if (value && typeof value.passed === "boolean") {
      if (!value.passed) failed[kind] = { expected: value.expected, given: value.given };
    } else if (value && typeof value === "object") {
      for (const [key, inner] of Object.entries(value)) {
        if (inner && inner.passed === false) failed[`${kind} ${key}`] = { expected: inner.expected, given: inner.given };
      }
    }
  }
  return failed;
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(2);
});
