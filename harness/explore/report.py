"""The exploration report (Markdown): coverage, the matrix step x tier x point, the shrunk findings.

Rows are the points in the order the trace passed them (so they follow the workload's steps);
columns: the tier whose process passed the point, the schedule's result (pass / **FAIL** /
unknown), the failed invariants, and links to the schedule's scenario and run directory.
"""

from __future__ import annotations


def markdown(doc: dict) -> str:
    scheds = doc["schedules"]
    counts = {s: sum(1 for r in scheds if r["status"] == s) for s in ("pass", "fail", "unknown")}
    lines = [f"# Crash-point exploration: {doc['workload']}", "",
             f"- workload: `{doc['file']}`, engine {doc['engine']}, depth {doc['depth']}, seed {doc['seed']}"
             + (f", shard {doc['shard']}" if doc.get("shard") else ""),
             f"- coverage: {len(doc['reached'])} points reached of {len(doc['known'])} known "
             f"(runtime/api/failpoints.py)",
             f"- schedules: {len(scheds)} run — {counts['pass']} pass, {counts['fail']} fail, "
             f"{counts['unknown']} unknown; {doc['duration']:g} s, {doc.get('throughput_per_minute')} schedules/minute",
             *([f"- {doc['stopped']}"] if doc.get("stopped") else []), "",
             "| # | kill at (point @ hit) | tier | result | failed invariants | evidence |",
             "|---|---|---|---|---|---|"]
    for i, r in enumerate(scheds, 1):
        res = {"fail": "**FAIL**"}.get(r["status"], r["status"])
        why = "<br>".join(f.replace("|", "\\|")[:160] for f in r["failed"][:4]) or r.get("reason", "")[:160]
        lines.append(f"| {i} | `{r['key']}` | {r['tier']} | {res} | {why} | "
                     f"[scenario]({r['scenario']}) [run]({r['dir']}) |")
    if doc.get("shrunk"):
        lines += ["", "## Shrunk findings", ""]
        for s in doc["shrunk"]:
            lines.append(f"- `{s['from']}` -> `{s['key']}`, {s['steps']} workload step(s), "
                         f"still failing: {s['fails']}: [{s['scenario']}]({s['scenario']})")
    unreached = sorted(set(doc["known"]) - set(doc["reached"]))
    lines += ["", f"## Points not reached by this workload ({len(unreached)})", "",
              ", ".join(f"`{p}`" for p in unreached), ""]
    return "\n".join(lines)
