#!/usr/bin/env bash
# Captures the app's screens under Xvfb into docs/screenshots/.
# A fresh demo store gets the QA bundle and rollouts made by `mem1lab run`:
#   - against `mem1lab oracle`, the retrieval-oracle agent (well-formed MEM1 turns
#     on real HotpotQA tasks), under the mem1 and full policies;
#   - against the tiny llama.cpp server in ../shared/llm (it writes stories, not
#     MEM1 tags, so these rollouts show the robustness path: malformed output
#     scored 0). Its CLI output is saved for the README.
# Needs: Xvfb, xdotool, ImageMagick's import (scripts/deps.sh screenshot).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/mem1lab}
BUNDLE=${BUNDLE:-$(cd .. && pwd)/shared/data/qa-bundle}
SERVE=${SERVE:-$(cd .. && pwd)/shared/llm/serve}
OUT=${OUT:-docs/screenshots}
SCREEN_W=${SCREEN_W:-1280} SCREEN_H=${SCREEN_H:-800}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$OUT" "$work/xdg" "$work/xdg-config" "$work/xdg-cache"
db="$work/demo.db"
export XDG_DATA_HOME="$work/xdg" XDG_CONFIG_HOME="$work/xdg-config" XDG_CACHE_HOME="$work/xdg-cache"

"$BIN" import --db "$db" --bundle "$BUNDLE" >/dev/null

# Oracle runs first, so rollout 1 is a well-formed MEM1 trajectory.
"$BIN" oracle --db "$db" --addr 127.0.0.1:0 2>"$work/oracle.log" &
pids+=($!)
for _ in $(seq 1 300); do grep -q 'listening on http' "$work/oracle.log" && break; sleep 0.1; done
ourl=$(grep -o 'http://[0-9.:]*' "$work/oracle.log" | head -1)
[ -n "$ourl" ] || { echo "screenshot: the oracle did not start" >&2; cat "$work/oracle.log" >&2; exit 1; }
for policy in mem1 full; do
  "$BIN" run --db "$db" --endpoint "$ourl/v1" --model mem1lab-oracle --objectives 4 --tasks 8 \
    --policy $policy --name "oracle, $policy, 4 objectives" --quiet >/dev/null
done
# A grid for the charts: 1, 2 and 8 objectives under both policies (experiment 3).
"$BIN" run --db "$db" --endpoint "$ourl/v1" --model mem1lab-oracle --objectives 1,2,8 --policy mem1,full \
  --tasks 8 --concurrency 4 --name "oracle grid" --quiet >/dev/null

# A real CLI run against the tiny model server (README shows its output).
"$SERVE" --port 0 --ctx 4096 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 1 600); do grep -q 'listening on http' "$work/serve.log" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1)
[ -n "$url" ] || { echo "screenshot: the tiny model server did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
for _ in $(seq 1 100); do curl -fs "$url/health" >/dev/null && break; sleep 0.1; done
args=(--endpoint "$url/v1" --model stories260K --objectives 2 --tasks 6 --max-tokens 48 --concurrency 2)
echo "\$ mem1lab run ${args[*]}" | sed "s#$url#http://127.0.0.1:PORT#" >"$OUT/cli-run.txt"
"$BIN" run --db "$db" "${args[@]}" --name "tiny model, mem1" 2>&1 | tee -a "$OUT/cli-run.txt"
"$BIN" run --db "$db" --endpoint "$url/v1" --model stories260K --mode chat --policy full --objectives 2 \
  --tasks 6 --max-tokens 48 --concurrency 2 --name "tiny model, full, chat" --quiet >/dev/null

# WebShop: the scripted shopper on the in-process fake WebShop (after the runs
# above), under mem1 and two baselines, so Charts has settings side by side.
"$BIN" run --db "$db" --family webshop --env demo --endpoint scripted --goals 0-9 --name "webshop scripted shopper" \
  --policy mem1,full,memagent --quiet >/dev/null
shopExp=$("$BIN" ls --db "$db" | awk '/webshop scripted shopper/ {print $1; exit}')
shopRollout=$("$BIN" export --db "$db" --experiment "$shopExp" --what rollouts --out - 2>/dev/null | awk -F, 'NR == 2 {print $3}')
[ -n "$shopExp" ] && [ -n "$shopRollout" ] || { echo "screenshot: the WebShop run is not in the store" >&2; exit 1; }

# Xvfb picks a free display itself (-displayfd), so runs beside other X
# servers never share one; -noreset keeps it from resetting whenever its last
# client leaves (an app started during a reset finds no display).
Xvfb -displayfd 3 -noreset -screen 0 "${SCREEN_W}x${SCREEN_H}x24" -nolisten tcp 3>"$work/display" >"$work/xvfb.log" 2>&1 &
xvfb=$!
pids+=($xvfb)
for _ in $(seq 1 100); do [ -s "$work/display" ] && break; sleep 0.1; done
[ -s "$work/display" ] || { echo "$0: Xvfb did not start: $(cat "$work/xvfb.log")" >&2; exit 1; }
export DISPLAY=:$(head -1 "$work/display")
for _ in $(seq 1 50); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.1; done

# shot NAME ARGS...: opens the app with ARGS, waits for its window, presses the
# keys in $KEYS (xdotool names), saves OUT/NAME.png
shot() {
  local name=$1; shift
  "$BIN" --db "$db" --width "$SCREEN_W" --height "$SCREEN_H" "$@" >"$work/$name.log" 2>&1 &
  local app=$!
  local wid=""
  for _ in $(seq 1 200); do wid=$(xdotool search --name '^mem1lab' 2>/dev/null | head -1 || true); [ -n "$wid" ] && break; sleep 0.1; done
  [ -n "$wid" ] || { echo "screenshot: no window for $name" >&2; cat "$work/$name.log" >&2; kill $app; return 1; }
  sleep "${SETTLE:-3}"
  if [ -n "${KEYS:-}" ]; then
    for k in $KEYS; do xdotool key --window "$wid" "$k"; sleep 0.3; done
    sleep 1
  fi
  import -window "$wid" "$OUT/$name.png"
  kill $app; wait $app 2>/dev/null || true
  echo "wrote $OUT/$name.png"
}
shot data --screen Data
shot endpoints --screen Endpoints
shot new-experiment --screen "New experiment"
shot runs --screen Runs
shot rollouts --screen Rollouts
KEYS="Right Right" shot trace --rollout 1   # oracle, mem1 policy, turn 3: state diff and gold marks
KEYS="Right Right" shot trace-full --rollout 9   # the same task under the full policy
shot compare --screen Compare --rollout 1
shot charts --chart pair --overlay --experiments 1,2,3
# mem1 against full over 1/2/4/8 objectives (experiments 1-3): two series, so
# the chart has 95% CI bars and marks the objective counts where the paired
# difference is not significant ("n.s.", Holm-adjusted p >= 0.05).
shot charts-ci --chart accuracy --experiments 1,2,3
shot charts-peak-ci --chart peak --experiments 1,2,3
# The memory diagnostics: which gold facts the internal state keeps turn by
# turn, and what each turn's context is made of.
shot charts-retention --chart retention --experiments 1,2,3
shot charts-composition --chart composition --experiments 1,2,3
# WebShop in Trace (memory, observation, available actions) and in Charts
# (reward against turns used).
KEYS="Right Right" shot webshop-trace --rollout "$shopRollout"
shot webshop-charts --chart accuracy --overlay --experiments "$shopExp"
