"""`make bench`: run every benchmark (each in its own process), print the table and write it
to bench/RESULTS.md with the machine it ran on. Not part of the test suite's pass/fail: the
exit code is 0 unless a benchmark crashed."""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402

BENCHES = ("bench_import", "bench_claim", "bench_fastagi", "bench_dial", "bench_http",
           "bench_pacing", "bench_memory", "bench_durability", "bench_api_export",
           "bench_dashboard", "bench_nodes")
TIMEOUT_S = 600


def run_one(name, workdir):
    began = time.monotonic()
    proc = subprocess.run([sys.executable, os.path.join(HERE, name + ".py"),
                           os.path.join(workdir, name)], capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)
    took = time.monotonic() - began
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-ROWS "):
            return json.loads(line[len("BENCH-ROWS "):]), took, None
    return [], took, (proc.stderr or proc.stdout).strip()[-1500:]


def fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.3g" % value if abs(value) < 100 else "%.0f" % value
    return str(value)


def table(rows):
    out = ["| benchmark | metric | ours | baseline | unit | ratio | goal | met | notes |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["bench"], r["metric"], fmt(r["ours"]), fmt(r["baseline"]), r["unit"],
            fmt(r["ratio"]), r["goal"], met, r["note"].replace("|", "/")))
    return "\n".join(out)


def main():
    only = sys.argv[1:] or BENCHES
    workdir = tempfile.mkdtemp(prefix="acamp-bench-")
    info = common.machine_info()
    rows, timings, errors = [], [], []
    began = time.monotonic()
    for name in only:
        print("running %s ..." % name, flush=True)
        got, took, err = run_one(name, workdir)
        rows += got
        timings.append("%s %.0f s" % (name, took))
        if err:
            errors.append("%s failed:\n```\n%s\n```" % (name, err))
        for r in got:
            print("  %s: ours %s %s, baseline %s, ratio %s, goal %s, met %s" % (
                r["metric"], fmt(r["ours"]), r["unit"], fmt(r["baseline"]), fmt(r["ratio"]),
                r["goal"], r["met"]), flush=True)
    total = time.monotonic() - began
    machine = "\n".join("- %s: %s" % kv for kv in info.items())
    text = ("# Benchmark results\n\nOne full run of `make bench` (bench/run.py); every figure "
            "is ours against a baseline measured in the same run, on the same machine.\n\n"
            "## Machine\n\n%s\n\n## Results\n\n%s\n\nRun time: %.0f s (%s).\n"
            % (machine, table(rows), total, ", ".join(timings)))
    if errors:
        text += "\n## Errors\n\n" + "\n\n".join(errors) + "\n"
    gaps = os.path.join(HERE, "GAPS.md")  # the hand-written analysis of the goals missed
    if os.path.exists(gaps):
        with open(gaps, encoding="utf-8") as fh:
            text += "\n" + fh.read()
    if only == BENCHES:
        with open(os.path.join(HERE, "RESULTS.md"), "w", encoding="utf-8") as fh:
            fh.write(text)
    print("\n" + table(rows))
    print("\nrun time %.0f s; workdir %s" % (total, workdir))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
