#!/usr/bin/env bash
# No-op rebuild benchmark (docs/perf.md, "No-op rebuild"): a no-op
# `orchard rebuild` (built binary, emu backend, an already-built build dir)
# against go-task's no-op on a 12-file, 2-task checksum Taskfile, paired in
# each hyperfine run, then the cold run (`rebuild --force` on a fresh build
# dir). Prints the machine, the load average and the medians.
#
#   bash docs/perf-noop.sh                  # from the repository root
#   ROUNDS=3 RUNS=40 COLD_RUNS=3 WORK=/tmp/me/perf bash docs/perf-noop.sh
#   BASELINE=/path/to/older/orchard bash docs/perf-noop.sh   # also time an older binary's no-op
#
# Needs hyperfine, and go-task v3.54.0 as $TASK or on PATH:
#   GOFLAGS= go install github.com/go-task/task/v3/cmd/task@v3.54.0
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}     # paired hyperfine runs (each: orchard, then task)
RUNS=${RUNS:-40}        # timed runs per command and round
WARMUP=${WARMUP:-5}
COLD_RUNS=${COLD_RUNS:-3}
WORK=${WORK:-$(mktemp -d /tmp/orchard-perf-noop.XXXXXX)}
TASK=${TASK:-$(command -v task || echo "$(go env GOPATH)/bin/task")}
mkdir -p "$WORK"
[ -x "$TASK" ] || { echo "go-task not found: set TASK or run: GOFLAGS= go install github.com/go-task/task/v3/cmd/task@v3.54.0" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "hyperfine not found" >&2; exit 2; }

ORCHARD=$WORK/orchard
go build -o "$ORCHARD" ./cmd/orchard

# The go-task side: 12 source files, gen (cat them) -> sum (sha256 of gen),
# both with method: checksum, so a no-op hashes the 12 sources and gen's output.
TF=$WORK/taskfile
mkdir -p "$TF/src"
for i in $(seq -w 1 12); do head -c 4096 /dev/zero | tr '\0' "$i" >"$TF/src/f$i.txt"; done
cat >"$TF/Taskfile.yml" <<'EOF'
version: '3'
method: checksum
tasks:
  gen:
    sources: [src/*.txt]
    generates: [out/gen.txt]
    cmds: [mkdir -p out, cat src/*.txt > out/gen.txt]
  sum:
    deps: [gen]
    sources: [out/gen.txt]
    generates: [out/sum.txt]
    cmds: [sha256sum out/gen.txt > out/sum.txt]
EOF
"$TASK" -d "$TF" sum >/dev/null 2>&1

# The orchard side: build once, then every run is a no-op.
BUILD=$WORK/build
"$ORCHARD" rebuild --backend emu --build-dir "$BUILD" >/dev/null 2>&1
baseline=()
if [ -n "${BASELINE:-}" ]; then
  # Its own build dir: stamps and caches of another version never meet ours.
  "$BASELINE" rebuild --backend emu --build-dir "$WORK/build-baseline" >/dev/null 2>&1
  baseline=(-n baseline "$BASELINE rebuild --backend emu --build-dir $WORK/build-baseline")
fi

median() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.1f" % (x["median"]*1000) for x in r))' "$1"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(uname -sr)"
echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)"
echo "orchard: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty'); task $("$TASK" --version)"
for r in $(seq 1 "$ROUNDS"); do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$WORK/noop-$r.json" \
    -n orchard "$ORCHARD rebuild --backend emu --build-dir $BUILD" \
    -n go-task "$TASK -d $TF sum" "${baseline[@]}" >"$WORK/noop-$r.txt" 2>&1
  read -r o t b <<<"$(median "$WORK/noop-$r.json")"
  echo "round $r: no-op median orchard $o ms, go-task $t ms${b:+, baseline $b ms} (load $load)"
done

load=$(cut -d' ' -f1-3 /proc/loadavg)
hyperfine -N --runs "$COLD_RUNS" --export-json "$WORK/cold.json" \
  --prepare "rm -rf $WORK/cold" \
  -n cold "$ORCHARD rebuild --backend emu --force --build-dir $WORK/cold" >"$WORK/cold.txt" 2>&1
echo "cold:    rebuild --force on a fresh build dir, median $(median "$WORK/cold.json") ms (load $load)"
echo "details: $WORK/noop-*.txt, $WORK/cold.txt"
