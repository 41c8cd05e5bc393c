#!/usr/bin/env bash
# The Xvfb walkthrough of issue 10 (`make gui-check`): the real desktop build on
# a fresh store, driven by keyboard against `mem1lab oracle`.
#   1. launch; New experiment's endpoint comes from the remembered preference
#      (written first, as a previous session would have); Ctrl+R runs it
#   2. Runs → Rollouts → Trace → Compare → Charts (Ctrl+4..8), a screenshot each
#   3. a second run from the CLI while the window is open: Runs lists it
#   4. quit (Ctrl+Q) during a run, confirm, restart: the run is recorded as
#      cancelled, not "running"
# After every step the window must be no wider or taller than the screen.
# Screenshots land in $OUT (docs/screenshots/gui-check by default).
# Needs: Xvfb, xdotool, ImageMagick's import (scripts/deps.sh screenshot).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/mem1lab}
BUNDLE=${BUNDLE:-$(cd .. && pwd)/shared/data/qa-bundle}
OUT=${OUT:-docs/screenshots/gui-check}
SCREEN_W=${SCREEN_W:-1280} SCREEN_H=${SCREEN_H:-800}
mkdir -p "$OUT"
rm -f "$OUT"/[0-9][0-9]-*.png # this run's screenshots only
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "gui-check: $*" >&2; exit 1; }
mkdir -p "$work/xdg" "$work/xdg-config" "$work/xdg-cache"
db="$work/lab.db"
export XDG_DATA_HOME="$work/xdg" XDG_CONFIG_HOME="$work/xdg-config" XDG_CACHE_HOME="$work/xdg-cache"

"$BIN" import --db "$db" --bundle "$BUNDLE" >/dev/null
"$BIN" oracle --db "$db" --addr 127.0.0.1:0 2>"$work/oracle.log" &
pids+=($!)
for _ in $(seq 1 300); do grep -q 'listening on http' "$work/oracle.log" && break; sleep 0.1; done
ourl=$(grep -o 'http://[0-9.:]*' "$work/oracle.log" | head -1)
[ -n "$ourl" ] || fail "the oracle did not start: $(cat "$work/oracle.log")"

# A slow oracle (2 s a reply) for quitting during a run.
"$BIN" oracle --db "$db" --addr 127.0.0.1:0 --latency 2s 2>"$work/slow.log" &
pids+=($!)
for _ in $(seq 1 300); do grep -q 'listening on http' "$work/slow.log" && break; sleep 0.1; done
slow=$(grep -o 'http://[0-9.:]*' "$work/slow.log" | head -1)
[ -n "$slow" ] || fail "the slow oracle did not start: $(cat "$work/slow.log")"

# status_of ID: experiment ID's status as `mem1lab ls` prints it.
status_of() {
  local v
  v=$("$BIN" ls --db "$db" 2>/dev/null | sed -nE "s/^$1 .* [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} +([a-z]+) .*/\1/p")
  echo "${v:-missing}"
}
# run_key ID: Ctrl+R, then waits until experiment ID exists; pressed once more
# (with a warning) when nothing started within 10 s (see "logged" below on
# key events that are not taken).
run_key() {
  key ctrl+r
  for _ in $(seq 1 20); do [ "$(status_of "$1")" != missing ] && return 0; sleep 0.5; done
  echo "gui-check: warning: Ctrl+R started no experiment $1; pressing it again" >&2
  key ctrl+r
}
# wait_status ID STATUS: waits (up to 60 s) for experiment ID to reach STATUS.
wait_status() {
  for _ in $(seq 1 120); do [ "$(status_of "$1")" = "$2" ] && return 0; sleep 0.5; done
  fail "experiment $1 is $(status_of "$1"), want $2: $("$BIN" ls --db "$db")"
}

# The endpoint New experiment remembers (views/prefs.go keys run.endpoint, run.model).
prefs="$XDG_CONFIG_HOME/fyne/io.github.mem1lab.mem1lab"
mkdir -p "$prefs"
printf '{"run.endpoint":"%s/v1","run.model":"mem1lab-oracle"}\n' "$ourl" >"$prefs/preferences.json"

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

app=""
wid=""
launch() {
  kill -0 "$xvfb" 2>/dev/null || fail "Xvfb exited: $(cat "$work/xvfb.log")"
  # The window of an app that has just quit can still be listed for a moment
  # (window ids are reused, so it cannot be told apart by id): wait until it
  # is gone, so the window found below is the new app's.
  for _ in $(seq 1 100); do xdotool search --name '^mem1lab' >/dev/null 2>&1 || break; sleep 0.1; done
  "$BIN" --db "$db" --width 1280 --height 800 "$@" >>"$work/app.log" 2>&1 &
  app=$!
  findwin || fail "no window: $(cat "$work/app.log")"
  sleep "${SETTLE:-3}"
  # Still the window? (A key sent to a window that is gone fails the check
  # with BadWindow.) On a busy machine the one found can be a window that is
  # replaced while the app starts: wait for the app's window again, as long
  # as the first time, and let it settle.
  if ! xdotool getwindowname "$wid" >/dev/null 2>&1; then
    echo "gui-check: warning: window $wid went away during start-up; waiting for the app's window again" >&2
    kill -0 "$app" 2>/dev/null || fail "the app exited during start-up: $(cat "$work/app.log")"
    findwin || fail "no window after start-up: $(cat "$work/app.log")"
    sleep "${SETTLE:-3}"
    xdotool getwindowname "$wid" >/dev/null 2>&1 || fail "window $wid went away again during start-up: $(cat "$work/app.log")"
  fi
}
# findwin: wid is the app's window, waited for up to 20 s (false if none).
findwin() {
  wid=""
  for _ in $(seq 1 200); do wid=$(xdotool search --name '^mem1lab' 2>/dev/null | head -1 || true); [ -n "$wid" ] && return 0; sleep 0.1; done
  return 1
}
# fits STEP: the window is inside the screen.
fits() {
  local w h
  eval "$(xdotool getwindowgeometry --shell "$wid" | grep -E '^(WIDTH|HEIGHT)=')"
  w=$WIDTH h=$HEIGHT
  [ "$w" -le "$SCREEN_W" ] && [ "$h" -le "$SCREEN_H" ] || fail "$1: window ${w}x${h} exceeds the ${SCREEN_W}x${SCREEN_H} screen"
  echo "ok   $1 (${w}x${h})"
}
key() { xdotool key --window "$wid" "$@"; sleep "${KEYWAIT:-1}"; }
# lastkey KEY: a key that may close the window before its key-up is sent.
lastkey() { xdotool key --window "$wid" "$1" 2>/dev/null || true; sleep "${KEYWAIT:-1}"; }
shot() { import -window "$wid" "$OUT/$1.png"; fits "$1"; }
# diagnose: what a hung app was doing, briefly (the end of its log, then one
# line per goroutine that is in mem1lab's code: its state and innermost frame).
diagnose() {
  echo "--- app log (last lines) ---" >&2
  grep -v 'XDG_RUNTIME_DIR\|dbus-launch\|theme settings\|app_xdg.go' "$work/app.log" | tail -8 >&2 || true
  if kill -0 "$app" 2>/dev/null; then
    kill -QUIT "$app" 2>/dev/null || true
    sleep 2
    echo "--- goroutines in mem1lab code ---" >&2
    awk '/^goroutine /{match($0, /\[[^]]*\]/); g=substr($0, RSTART, RLENGTH); seen=0; next}
         /mem1lab\/mem1lab\// && !seen {f=$1; sub(/\((0x|\{|\)|[0-9]).*$/, "", f); sub(/.*mem1lab\/mem1lab\//, "", f); print g, f; seen=1}' \
      "$work/app.log" | sort | uniq -c | sort -rn | head -12 >&2
  fi
  echo "--- store ---" >&2
  "$BIN" ls --db "$db" 2>&1 | head -5 >&2 || true
}

# 1. New experiment with the remembered oracle endpoint; Ctrl+R runs it.
launch --screen "New experiment"
shot 01-new-experiment
run_key 1
wait_status 1 done
shot 02-new-experiment-ran
key ctrl+4; shot 03-runs
# 2. A second run from the CLI while the window is open (the full policy on the
#    same tasks, so Compare and Charts have two settings): Runs lists it.
"$BIN" run --db "$db" --endpoint "$ourl/v1" --model mem1lab-oracle --objectives 2 --tasks 4 \
  --policy full --name "from the CLI" --quiet >/dev/null
listed=$("$BIN" ls --db "$db" 2>&1) || fail "mem1lab ls failed: $listed"
grep -q "from the CLI" <<<"$listed" || fail "the CLI run is not in the store: $listed"
sleep 3 # Runs polls the store
shot 04-runs-cli-run
# 3. Rollouts → Trace → Compare → Charts by keyboard: Ctrl+F, Return (to the
#    results), Return opens the first rollout, → steps a turn, Ctrl+7 compares it.
key ctrl+5; shot 05-rollouts
key ctrl+f; key Return; key Return
sleep 2
key Right
shot 06-trace
key ctrl+7
sleep 2
shot 07-compare
key ctrl+8
sleep 2
shot 08-charts
# 4. Quit during a run: Ctrl+Q with no run quits at once; New experiment then
#    remembers a slow oracle, so the run started next is still going when
#    Ctrl+Q asks; Return picks "Stop and quit". Restarted, Runs shows the run
#    stopped cleanly (cancelled, resumable), not "running".
lastkey ctrl+q
for _ in $(seq 1 100); do kill -0 "$app" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$app" 2>/dev/null; then
  echo "gui-check: warning: Ctrl+Q with no run in flight did not quit within 10 s; pressing it again" >&2
  lastkey ctrl+q
  for _ in $(seq 1 100); do kill -0 "$app" 2>/dev/null || break; sleep 0.1; done
fi
kill -0 "$app" 2>/dev/null && fail "Ctrl+Q with no run in flight did not quit"
grep -q "$ourl" "$prefs/preferences.json" || fail "the endpoint was not remembered: $(cat "$prefs/preferences.json")"
sed -i "s#$ourl#$slow#g" "$prefs/preferences.json"
launch --screen "New experiment"
run_key 3
wait_status 3 running
# logged N TEXT: the app's log has N or more lines containing TEXT (within 5 s).
logged() {
  for _ in $(seq 1 50); do [ "$(grep -c "$2" "$work/app.log" || true)" -ge "$1" ] && return 0; sleep 0.1; done
  return 1
}
# An X key event sent to the window is now and then not taken (seen about one
# run in twenty here, never reproduced by hand): the app logs the quit dialog
# and the confirmation, so a key that had no effect is seen, said and sent once more.
asked=$(( $(grep -c "asking first" "$work/app.log" || true) + 1 ))
key ctrl+q
if ! logged "$asked" "asking first"; then
  echo "gui-check: warning: Ctrl+Q did not open the quit dialog within 5 s; pressing it again" >&2
  key ctrl+q
  logged "$asked" "asking first" || { diagnose; fail "Ctrl+Q during a run opened no quit dialog"; }
  # Two dialogs logged: the first key was taken late (a busy window), not lost.
  sleep 1
  if [ "$(grep -c "asking first" "$work/app.log" || true)" -gt "$asked" ]; then
    echo "gui-check: note: both Ctrl+Q were taken: the first one late" >&2
  else
    echo "gui-check: note: only the second Ctrl+Q was taken: the first one was lost" >&2
  fi
fi
shot 09-quit-confirm
stopping=$(( $(grep -c "before quitting" "$work/app.log" || true) + 1 ))
lastkey Return
if ! logged "$stopping" "before quitting" && kill -0 "$app" 2>/dev/null; then
  echo "gui-check: warning: Return did not confirm the quit dialog; pressing it again" >&2
  lastkey Return
fi
t0=$(date +%s%N)
gone() { for _ in $(seq 1 "$1"); do kill -0 "$app" 2>/dev/null || return 0; sleep 0.1; done; ! kill -0 "$app" 2>/dev/null; }
if ! gone 100; then
  # Still up 10 s after Return: keep a picture, say so, and answer once more
  # (an X key event can be lost); the output says which Return was taken.
  import -window "$wid" "$OUT/09b-after-return.png" 2>/dev/null || true
  echo "gui-check: warning: the app was still running 10 s after Return; pressing Return again" >&2
  lastkey Return
  gone 600 || { diagnose; fail "the app did not quit after the confirmation"; }
fi
echo "quit took $(( ($(date +%s%N) - t0) / 1000000 )) ms after Return"
st=$(status_of 3)
[ "$st" = cancelled ] || fail "after quitting during a run experiment 3 is $st, want cancelled: $("$BIN" ls --db "$db")"
launch --screen Runs
shot 10-runs-after-restart
lastkey ctrl+q
for _ in $(seq 1 100); do kill -0 "$app" 2>/dev/null || break; sleep 0.1; done
echo "gui-check: all steps passed; screenshots in $OUT"
