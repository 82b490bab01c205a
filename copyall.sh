#!/usr/bin/env bash
# copyall.sh: build every goblog binary and image, and deploy docker-stack.yml to a swarm.
#
# Honours DOCKER_HOST (and the usual DOCKER_* variables) like the docker CLI does.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: ./copyall.sh [--endpoint-mode vip|dnsrr] [--build-only] [--timeout SECONDS] [-h]

Builds every binary (CGO_ENABLED=0) and image (goblog/<name>:latest, FROM scratch), initialises a
single-node swarm when the engine is in none, deploys docker-stack.yml as stack "goblog" with
--resolve-image never, and waits until every service has all its replicas running and healthy.
Re-running it is a rolling update of the services whose image changed, not a teardown.

  --endpoint-mode MODE  vip (virtual IP + routing mesh; needs IPVS in the engine's kernel) or
                        dnsrr (DNS round robin + ports bound on the node). Default: vip when the
                        engine's kernel has IPVS, else dnsrr; the choice and its reason are printed.
  --build-only          build binaries and images, do not deploy
  --timeout SECONDS     how long to wait for the stack to converge (default 180; 900 in the lab)
  -h, --help            this help
EOF
}

STACK=goblog
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=""
build_only=0
timeout=180
timeout_given=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --endpoint-mode) mode=${2:-}; shift 2 ;;
    --endpoint-mode=*) mode=${1#*=}; shift ;;
    --build-only) build_only=1; shift ;;
    --timeout) timeout=${2:-}; timeout_given=1; shift 2 ;;
    --timeout=*) timeout=${1#*=}; timeout_given=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "copyall.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$mode" in ""|vip|dnsrr) ;; *) echo "copyall.sh: --endpoint-mode must be vip or dnsrr, not '$mode'" >&2; exit 2 ;; esac
[[ "$timeout" =~ ^[0-9]+$ ]] || { echo "copyall.sh: --timeout must be a number of seconds" >&2; exit 2; }

say() { printf '%s copyall: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

cd "$ROOT"
command -v go >/dev/null || die "go is not installed"
command -v docker >/dev/null || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine at ${DOCKER_HOST:-the local socket}: $(docker info 2>&1 | tail -n 1)"

# --- binaries ---------------------------------------------------------------------------------
# Every ./<component>/cmd/<name> is a binary; all are built in one go build.
mapfile -t mains < <(find . -path ./build -prune -o -path './lab/cache' -prune -o -path '*/cmd/*/main.go' -print | sed 's|/main.go$||' | sort)
say "building ${#mains[@]} binaries (CGO_ENABLED=0)"
# Each run builds in a folder of its own, so two runs (say, one for this engine and one for the
# lab) never remove each other's binaries.
mkdir -p build
work=$(mktemp -d "$ROOT/build/run.XXXXXX")
cleanup() { rm -rf "$work" "${images_tar:-}"; }
trap cleanup EXIT
bin="$work/bin"
mkdir -p "$bin"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin/" "${mains[@]}" || die "go build failed"

# --- images -----------------------------------------------------------------------------------
# <component>/Dockerfile makes goblog/<component> from binary <component>;
# <component>/cmd/<name>/Dockerfile makes goblog/<name> from binary <name>.
# Each build context holds exactly the binary, healthchecker and an empty data/.
declare -A image_ids=()
build_image() {
  local name=$1 dockerfile=$2 ctx="$work/ctx/$1"
  [[ -x "$bin/$name" ]] || die "$dockerfile: no binary $name was built (expected ./<component>/cmd/$name)"
  rm -rf "$ctx" && mkdir -p "$ctx/data"
  ln -f "$bin/$name" "$bin/healthchecker" "$ctx/" 2>/dev/null || cp "$bin/$name" "$bin/healthchecker" "$ctx/"
  local log
  log=$(docker build -q -t "goblog/$name:latest" -f "$dockerfile" "$ctx" 2>&1) || die "docker build of goblog/$name failed: $log"
  local id
  id=$(docker image inspect --format '{{.Id}}' "goblog/$name:latest")
  id=${id#sha256:}
  id=${id:0:12}
  docker tag "goblog/$name:latest" "goblog/$name:$id"
  image_ids[$name]=$id
}
mapfile -t dockerfiles < <(find . -path ./build -prune -o -path './lab/cache' -prune -o \( -path './*/Dockerfile' -o -path './*/cmd/*/Dockerfile' \) -print | sed 's|^\./||' | sort)
for df in "${dockerfiles[@]}"; do
  dir=$(dirname "$df")
  case "$dir" in
    */cmd/*) name=$(basename "$dir") ;;
    *) name=$dir ;;
  esac
  build_image "$name" "$df"
  say "image goblog/$name:latest (${image_ids[$name]}, $(docker image inspect --format '{{.Size}}' "goblog/$name:latest" | awk '{printf "%.1f MB", $1/1e6}'))"
done

if [[ $build_only -eq 1 ]]; then
  say "built ${#dockerfiles[@]} images; not deploying (--build-only)"
  exit 0
fi

# --- swarm ------------------------------------------------------------------------------------
state=$(docker info --format '{{.Swarm.LocalNodeState}}')
if [[ "$state" != active ]]; then
  say "the engine is in no swarm: docker swarm init --advertise-addr 127.0.0.1"
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null || die "docker swarm init failed"
fi
[[ "$(docker info --format '{{.Swarm.ControlAvailable}}')" == true ]] || die "this engine is a swarm worker; point DOCKER_HOST at a manager"

# --- lab --------------------------------------------------------------------------------------
# The lab's engines (lab/README.md: qemu guests whose kernel has IPVS) carry the engine label
# goblog.lab=true. Its nodes share no image store and there is no registry, so every image built
# above (on this engine) is loaded into every other node's engine: node<i> at 127.0.0.1:(23750+i).
# Tasks start slowly there (software emulation), so health checks get more time.
lab=0
engine_labels=$(docker info --format '{{range .Labels}}{{println .}}{{end}}')
if grep -qx 'goblog.lab=true' <<<"$engine_labels"; then
  lab=1
  [[ $timeout_given -eq 1 ]] || timeout=900
  export GOBLOG_HEALTH_INTERVAL=${GOBLOG_HEALTH_INTERVAL:-30s} GOBLOG_HEALTH_TIMEOUT=${GOBLOG_HEALTH_TIMEOUT:-30s}
  export GOBLOG_HEALTH_START_PERIOD=${GOBLOG_HEALTH_START_PERIOD:-300s}
  # RabbitMQ and turbine are left out there (replicas 0) unless asked for: an Erlang VM and a
  # restarting consumer drown a 2-vCPU software-emulated guest. GOBLOG_BROKER_REPLICAS=1 keeps them.
  export GOBLOG_BROKER_REPLICAS=${GOBLOG_BROKER_REPLICAS:-0}
  self=$(docker info --format '{{.Name}}')
  mapfile -t lab_others < <(docker node ls --format '{{.Hostname}}' | grep -vx "$self" | sed -n 's/^node\([0-9][0-9]*\)$/\1/p' | sort -n)
  if [[ ${#lab_others[@]} -gt 0 ]]; then
    tags=()
    for name in "${!image_ids[@]}"; do tags+=("goblog/$name:latest" "goblog/$name:${image_ids[$name]}"); done
    images_tar=$(mktemp "${TMPDIR:-/tmp}/goblog-images.XXXXXX")
    docker save -o "$images_tar" "${tags[@]}" || die "lab: docker save of the images failed"
    for i in "${lab_others[@]}"; do
      say "lab: loading ${#image_ids[@]} images into node$i (tcp://127.0.0.1:$((23750 + i)))"
      docker -H "tcp://127.0.0.1:$((23750 + i))" load -q -i "$images_tar" >/dev/null ||
        die "lab: docker load into node$i (tcp://127.0.0.1:$((23750 + i))) failed; is it up? (lab/status)"
    done
    rm -f "$images_tar"
  fi
  # The broker's image is not built above (rabbitmq/build-image.sh makes it from Debian's
  # packages, slow in a guest): copy it from this machine's own engine when it has it.
  rabbit_image=${GOBLOG_RABBITMQ_IMAGE:-goblog/rabbitmq:latest}
  if [[ $GOBLOG_BROKER_REPLICAS != 0 ]] && ! docker image inspect "$rabbit_image" >/dev/null 2>&1 &&
    docker -H unix:///var/run/docker.sock image inspect "$rabbit_image" >/dev/null 2>&1; then
    say "lab: copying $rabbit_image from this machine's engine into $self"
    docker -H unix:///var/run/docker.sock save "$rabbit_image" | docker load -q >/dev/null ||
      die "lab: copying $rabbit_image into $self failed"
  fi
fi

# The stack's RabbitMQ is not a Go binary: built from Debian's packages when missing (about a minute).
[[ -n "${GOBLOG_RABBITMQ_IMAGE:-}" || ${GOBLOG_BROKER_REPLICAS:-1} == 0 ]] || "$ROOT/rabbitmq/build-image.sh" || die "building goblog/rabbitmq:latest failed (rabbitmq/build-image.sh)"

# --- endpoint mode ----------------------------------------------------------------------------
# vip needs IPVS in the kernel of the engine's host. For a local engine we read this kernel's
# configuration; for a remote engine we cannot look, so vip (swarm's default) unless told.
ipvs_reason() {
  if [[ $lab -eq 1 ]]; then echo "the lab's guests (lab/) have IPVS"; return 0; fi
  if [[ -n "${DOCKER_HOST:-}" && "${DOCKER_HOST}" != unix://* ]]; then
    echo "remote engine ${DOCKER_HOST}: assuming its kernel has IPVS (swarm's default)"; return 0
  fi
  if [[ -e /proc/net/ip_vs ]]; then echo "/proc/net/ip_vs exists: the kernel has IPVS"; return 0; fi
  if [[ -r /proc/config.gz ]] && zgrep -qE '^CONFIG_IP_VS=(y|m)' /proc/config.gz; then
    if [[ $(zgrep -E '^CONFIG_IP_VS=' /proc/config.gz) == *=y ]] || modprobe -n ip_vs 2>/dev/null; then
      echo "the kernel is built with IPVS"; return 0
    fi
    echo "the kernel has IPVS as a module, but it cannot be loaded here"; return 1
  fi
  if [[ -r /proc/config.gz ]]; then
    echo "the kernel has no IPVS (CONFIG_IP_VS is not set), so a service VIP would answer 'no route to host'"; return 1
  fi
  if modprobe -n ip_vs 2>/dev/null; then echo "the ip_vs module can be loaded"; return 0; fi
  echo "no sign of IPVS in this kernel (/proc/net/ip_vs absent, no ip_vs module)"; return 1
}
if [[ -z "$mode" ]]; then
  if reason=$(ipvs_reason); then mode=vip; else mode=dnsrr; fi
  say "endpoint mode $mode: $reason"
else
  say "endpoint mode $mode (--endpoint-mode)"
fi
if [[ $mode == vip ]]; then publish=ingress; else publish=host; fi
export GOBLOG_ENDPOINT_MODE=$mode GOBLOG_PUBLISH_MODE=$publish

# A running stack cannot switch endpoint mode in place (swarm rejects ingress ports with dnsrr and
# vice versa without a remove), so a mode change is a redeploy from scratch; say so.
current=$(docker service inspect --format '{{.Spec.EndpointSpec.Mode}}' "${STACK}_accountservice" 2>/dev/null || true)
if [[ -n "$current" && "$current" != "$mode" ]]; then
  say "the running stack uses $current, not $mode: removing it first"
  docker stack rm "$STACK" >/dev/null
  for _ in $(seq 60); do
    docker network inspect "${STACK}_net" >/dev/null 2>&1 || break
    sleep 1
  done
fi

# --- deploy -----------------------------------------------------------------------------------
for name in "${!image_ids[@]}"; do
  var="GOBLOG_TAG_$(echo "$name" | tr 'a-z-' 'A-Z_')"
  export "$var=${image_ids[$name]}"
done
say "deploying stack $STACK ($mode mode)"
docker stack deploy --resolve-image never --prune -c docker-stack.yml "$STACK" >&2 || die "docker stack deploy failed"

# --- wait until converged ---------------------------------------------------------------------
# A service has converged when as many tasks run as desired (with a HEALTHCHECK, swarm counts a
# task as running only once it is healthy), every one of them runs the image the spec names (so a
# rolling update that swarm has not started yet is not mistaken for done), and no update is in
# progress.
service_status() { # prints "<running>/<desired> <ok|wait> [(update state)]"
  local svc=$1 image desired update running=0 stale=0 img state verdict=ok
  image=$(docker service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "$svc" 2>/dev/null) || { echo "?/? wait"; return; }
  desired=$(docker service inspect --format '{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{else}}-1{{end}}' "$svc")
  update=$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$svc")
  while read -r img state _; do
    [[ -n "$img" && "$state" == Running ]] || continue
    running=$((running + 1))
    [[ "$img" == "${image%%@*}" ]] || stale=$((stale + 1))
  done < <(docker service ps --filter desired-state=running --format '{{.Image}} {{.CurrentState}}' "$svc" 2>/dev/null)
  [[ "$desired" != -1 ]] || desired=$running
  if [[ $running -ne $desired || $stale -gt 0 || "$update" == updating || "$update" == rollback_started ]]; then verdict="wait"; fi
  echo "$running/$desired $verdict${update:+ ($update)}"
}
deadline=$((SECONDS + timeout))
last_line=""
while :; do
  pending=()
  line=""
  while read -r svc; do
    read -r replicas verdict update < <(service_status "$svc")
    line+=" ${svc#"${STACK}"_}=$replicas${update:+$update}"
    [[ "$verdict" == ok ]] || pending+=("$svc")
  done < <(docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Name}}')
  if [[ ${#pending[@]} -eq 0 && -n "$line" ]]; then
    say "converged:$line"
    break
  fi
  if [[ "$line" != "$last_line" ]]; then say "waiting:$line"; last_line=$line; fi
  if (( SECONDS >= deadline )); then
    for svc in "${pending[@]}"; do
      say "service $svc did not converge; its latest tasks:"
      docker service ps --no-trunc --format '  {{.Name}} {{.Image}} {{.CurrentState}} {{.Error}}' "$svc" 2>&1 | head -n 5 >&2
    done
    die "the stack did not converge within ${timeout}s (services: ${pending[*]})"
  fi
  sleep 2
done

# Best-effort clean-up of older image tags no container uses (docker refuses those in use).
for name in "${!image_ids[@]}"; do
  docker image ls --format '{{.Tag}}' "goblog/$name" | { grep -vxE "latest|${image_ids[$name]}" || true; } | while read -r tag; do
    docker rmi "goblog/$name:$tag" >/dev/null 2>&1 || true
  done
done

if [[ $mode == vip ]]; then
  say "ready: curl localhost:6767/accounts/10000 (routing mesh)"
else
  say "ready: curl localhost:6767/accounts/10000 (edge bound on this node)"
fi
