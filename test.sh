#!/usr/bin/env bash
# test.sh: every goblog test, in stages. What the README tells users and what .ci/run calls.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: ./test.sh [STAGE ...]   (default: all stages, in this order)

  unit         go vet + go test -race on every package; no Docker, seconds
  integration  tests against a real RabbitMQ started on loopback for the run
  e2e          deploys the stack with ./copyall.sh on this engine (swarm mode) and drives it;
               removes the stack afterwards (and leaves the swarm only if it created it)
  lab          a swarm with IPVS in qemu guests (lab/): the vip mode through the routing mesh

Each stage first checks the Debian packages it needs (scripts/prereqs.sh, the list in
scripts/packages.txt): run as root with apt, it installs what is missing and says so; otherwise
it stops with the one command to run. Every stage runs even when an earlier one failed; the exit
status is non-zero if any failed.
USAGE
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

say() { printf '%s test.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shell_scripts: every shell script of the repository (by its shebang or a shellcheck directive).
shell_scripts() {
  git ls-files | while read -r f; do
    [[ -f $f ]] || continue
    if head -n 1 "$f" | grep -qE '^#!/usr/bin/env (ba)?sh|^#!/bin/(ba)?sh' || head -n 1 "$f" | grep -q '^# shellcheck shell='; then
      echo "$f"
    fi
  done
}

stage_unit() {
  mapfile -t scripts < <(shell_scripts)
  shellcheck -x "${scripts[@]}"
  go vet ./...
  go test -race -count=1 ./...
  # Figures, once each (issue 15: the watcher at 10,000 tasks: ms per re-list and probe round,
  # heap, bytes per change, KiB per idle event-stream client).
  go test -count=1 -run '^$' -bench . -benchtime 1x ./swarmwatcher/internal/watch/ ./swarmwatcher/internal/server/
}

stage_integration() {
  # Debian's rabbitmq-server as a node of its own on loopback (own name, ports, cookie and
  # data dir: rabbitmq/loopback.sh), stopped however the stage ends.
  trap '"$ROOT"/rabbitmq/loopback.sh stop' EXIT
  GOBLOG_AMQP_URL=$("$ROOT"/rabbitmq/loopback.sh start)
  export GOBLOG_AMQP_URL GOBLOG_RABBITMQCTL="$ROOT/rabbitmq/loopback.sh ctl"
  mapfile -t pkgs < <(grep -rlE --include='*_test.go' '^//go:build .*integration' . | xargs -r -n1 dirname | sort -u)
  go vet -tags integration "${pkgs[@]}"
  go test -race -tags integration -count=1 "${pkgs[@]}"
  # Figures (discoverytoken: first token visible, DOWN to removal, consumer tokens/s).
  go test -tags integration -count=1 -run '^$' -bench . -benchtime 200x "${pkgs[@]}"
}

stage_e2e() {
  go vet -tags e2e ./e2e/...
  go test -race -tags e2e -count=1 -timeout 30m -v ./e2e/...
}

stage_lab() {
  # A 1-node swarm in a qemu guest whose kernel has IPVS (lab/README.md): the test boots it,
  # deploys the stack there with ./copyall.sh (vip mode) and walks through the routing mesh.
  # The guest image is built on first use (lab/cache/). The lab is always taken down.
  trap '"$ROOT"/lab/down' EXIT
  shellcheck -x lab/up lab/down lab/status lab/node lab/build-image lab/load-images lab/lib.sh lab/guest/lab-init
  go vet -tags lab ./lab/...
  # The timeout covers lab/up and the deploy (TestMain, up to 15 min on a slow host) and TestVIP's
  # own 35 min bound.
  go test -race -tags lab -count=1 -timeout 55m -v -run 'TestVIP' ./lab/labtest
  # The 3-node test is a documented command (see lab/README.md), too slow for CI here:
  #   LAB_NODES=3 go test -tags lab -count=1 -timeout 60m -v -run TestMultiNode ./lab/labtest
}

all=(unit integration e2e lab)
stages=()
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    unit|integration|e2e|lab) stages+=("$arg") ;;
    *) usage >&2; echo "test.sh: unknown stage: $arg" >&2; exit 2 ;;
  esac
done
[[ ${#stages[@]} -gt 0 ]] || stages=("${all[@]}")

failed=()
summary=()
for s in "${stages[@]}"; do
  say "stage $s: start"
  t0=$SECONDS
  # Not in an if: bash ignores set -e inside a tested subshell, and a stage must stop at its
  # first failing command.
  set +e
  ( set -euo pipefail; "$ROOT/scripts/prereqs.sh" "$s"; "stage_$s" )
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    summary+=("$s: passed in $((SECONDS - t0))s")
  else
    summary+=("$s: FAILED after $((SECONDS - t0))s")
    failed+=("$s")
  fi
  say "stage $s: ${summary[-1]#*: }"
done

say "summary:"
for line in "${summary[@]}"; do say "  $line"; done
if [[ ${#failed[@]} -gt 0 ]]; then
  say "FAILED stages: ${failed[*]}"
  exit 1
fi
say "all stages passed"
