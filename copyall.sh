#!/usr/bin/env bash
# copyall.sh: build every goblog binary and image, and deploy docker-stack.yml to a swarm.
#
# Honours DOCKER_HOST (and the usual DOCKER_* variables) like the docker CLI does.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: ./copyall.sh [--endpoint-mode vip|dnsrr] [--build-only] [--timeout SECONDS]
       ./copyall.sh --down [--purge] [--keep-swarm]
       ./copyall.sh -h

Checks its prerequisites (scripts/prereqs.sh build: installs missing Debian packages when run as
root with apt, else says the one command to run), builds every binary (CGO_ENABLED=0) and image
(goblog/<name>:latest, FROM scratch), initialises a single-node swarm when the engine is in
none, creates the broker's credentials once per swarm, deploys docker-stack.yml as stack
"goblog" with --resolve-image never, and waits until every service has all its replicas running
and healthy. Re-running it is a rolling update of the services whose image changed.

  --endpoint-mode MODE  vip (virtual IP + routing mesh; needs IPVS in the engine's kernel) or
                        dnsrr (DNS round robin + ports bound on the node). Default: vip when the
                        engine's kernel has IPVS, else dnsrr; the choice and its reason are printed.
  --build-only          build binaries and images, do not deploy
  --timeout SECONDS     how long to wait for the stack to converge (default 180; 900 in the lab)
  --down                undo a deploy: remove the stack, and leave the swarm when copyall.sh
                        created it (unless --keep-swarm). The broker's credentials (docker
                        secrets and broker.env) are kept for the next deploy unless --purge.
  --purge               with --down: also remove the broker's secrets and broker.env
  --keep-swarm          with --down: never leave the swarm
  -h, --help            this help

Environment:
  GOBLOG_TESTABILITY=true     turn on PUT /testability/healthy/{true|false} on accountservice
                              and the edge (default: off, the edge answers 404 for /testability/*)
  GOBLOG_BROKER_PUBLISH=true  publish the broker's AMQP (5672) and management (15672) ports
                              (default: reachable only on the stack's network)
  GOBLOG_RABBITMQ_IMAGE       a broker image to use instead of building goblog/rabbitmq:latest

The broker has no guest account. Its users (a publisher that may only write to the discovery
exchange, turbine's consumer, an administrator for people) are in
${XDG_CONFIG_HOME:-$HOME/.config}/goblog/broker.env (mode 0600); no command prints a password.
EOF
}

STACK=goblog
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=""
build_only=0
down=0
purge=0
keep_swarm=0
timeout=180
timeout_given=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --endpoint-mode) mode=${2:-}; shift 2 ;;
    --endpoint-mode=*) mode=${1#*=}; shift ;;
    --build-only) build_only=1; shift ;;
    --timeout) timeout=${2:-}; timeout_given=1; shift 2 ;;
    --timeout=*) timeout=${1#*=}; timeout_given=1; shift ;;
    --down) down=1; shift ;;
    --purge) purge=1; shift ;;
    --keep-swarm) keep_swarm=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "copyall.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$mode" in ""|vip|dnsrr) ;; *) echo "copyall.sh: --endpoint-mode must be vip or dnsrr, not '$mode'" >&2; exit 2 ;; esac
[[ "$timeout" =~ ^[0-9]+$ ]] || { echo "copyall.sh: --timeout must be a number of seconds" >&2; exit 2; }
if [[ $down -eq 0 && ($purge -eq 1 || $keep_swarm -eq 1) ]]; then
  echo "copyall.sh: --purge and --keep-swarm go with --down" >&2; exit 2
fi
# A yes/no setting is true, false or unset; anything else is a mistake worth stopping for.
for var in GOBLOG_TESTABILITY GOBLOG_BROKER_PUBLISH; do
  case "${!var:-}" in ""|true|false) ;; *) echo "copyall.sh: $var must be true or false, not '${!var}'" >&2; exit 2 ;; esac
done

say() { printf '%s copyall: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

cd "$ROOT"
command -v go >/dev/null || die "go is not installed (https://go.dev/doc/install)"
command -v docker >/dev/null || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine at ${DOCKER_HOST:-the local socket}: $(docker info 2>&1 | tail -n 1)"

# Broker credentials: kept by the swarm as docker secrets, and by the deploying user here.
BROKER_ENV=${XDG_CONFIG_HOME:-$HOME/.config}/goblog/broker.env
BROKER_SECRETS=(goblog_broker_definitions goblog_amqp_publisher_url goblog_amqp_consumer_url)
# The swarm remembers that copyall.sh created it (a label on this node), so --down knows
# whether leaving it undoes what copyall.sh did.
CREATED_LABEL=goblog.swarm-created-by

# --- down -------------------------------------------------------------------------------------
if [[ $down -eq 1 ]]; then
  if [[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]]; then
    say "the engine is in no swarm: nothing deployed"
    if [[ $purge -eq 1 && -e "$BROKER_ENV" ]]; then rm -f "$BROKER_ENV"; say "removed $BROKER_ENV"; fi
    exit 0
  fi
  stacks=$(docker stack ls --format '{{.Name}}') || die "docker stack ls failed"
  if grep -qx "$STACK" <<<"$stacks"; then
    say "removing stack $STACK"
    docker stack rm "$STACK" >/dev/null || die "docker stack rm $STACK failed"
    for _ in $(seq 90); do
      [[ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ]] &&
        ! docker network inspect "${STACK}_net" >/dev/null 2>&1 && break
      sleep 1
    done
  else
    say "no stack $STACK deployed"
  fi
  if [[ $purge -eq 1 ]]; then
    for s in "${BROKER_SECRETS[@]}"; do
      docker secret inspect "$s" >/dev/null 2>&1 || continue
      # A secret in use by a task that is still stopping cannot be removed yet.
      for _ in $(seq 30); do docker secret rm "$s" >/dev/null 2>&1 && break; sleep 1; done
      docker secret inspect "$s" >/dev/null 2>&1 && die "docker secret rm $s failed (still in use?)"
    done
    rm -f "$BROKER_ENV"
    say "removed the broker's secrets and $BROKER_ENV; the next deploy makes new credentials"
  else
    kept=()
    for s in "${BROKER_SECRETS[@]}"; do docker secret inspect "$s" >/dev/null 2>&1 && kept+=("$s"); done
    [[ -e "$BROKER_ENV" ]] && kept+=("$BROKER_ENV")
    if [[ ${#kept[@]} -gt 0 ]]; then
      say "kept the broker's credentials (${kept[*]}) for the next deploy; --purge removes them"
    fi
  fi
  self_id=$(docker info --format '{{.Swarm.NodeID}}')
  created=$(docker node inspect --format "{{index .Spec.Labels \"$CREATED_LABEL\"}}" "$self_id" 2>/dev/null || true)
  if [[ "$created" != copyall.sh ]]; then
    say "done; the swarm was not created by copyall.sh: left as it is"
  elif [[ $keep_swarm -eq 1 ]]; then
    say "done; the swarm copyall.sh created is kept (--keep-swarm; docker swarm leave --force leaves it)"
  else
    say "leaving the swarm copyall.sh created (docker swarm leave --force)"
    docker swarm leave --force >/dev/null || die "docker swarm leave --force failed"
    say "done"
  fi
  exit 0
fi

# --- what this deploy needs -------------------------------------------------------------------
# The lab's engines (lab/README.md: qemu guests whose kernel has IPVS) carry the engine label
# goblog.lab=true.
# The labels are read into a variable first: with pipefail, `docker info | grep -q` fails
# whenever grep matches and exits before docker info has written everything (SIGPIPE), so a
# lab engine was sometimes taken for another one.
lab=0
engine_labels=$(docker info --format '{{range .Labels}}{{println .}}{{end}}') ||
  die "cannot read the engine's labels (docker info failed): is DOCKER_HOST reachable?"
if grep -qx 'goblog.lab=true' <<<"$engine_labels"; then
  lab=1
  [[ $timeout_given -eq 1 ]] || timeout=900
  # Tasks start slowly there (software emulation), so health checks get more time.
  export GOBLOG_HEALTH_INTERVAL=${GOBLOG_HEALTH_INTERVAL:-30s} GOBLOG_HEALTH_TIMEOUT=${GOBLOG_HEALTH_TIMEOUT:-30s}
  export GOBLOG_HEALTH_START_PERIOD=${GOBLOG_HEALTH_START_PERIOD:-300s}
  # The swarmwatcher there: with one probe per task every 1 s it was 15 % of a 2-vCPU guest (its
  # own CPU, the engine's and the probed tasks'; its own fell from 152 to about 100 ms/s at 5 s),
  # and with the host busy a task list took longer than 5 s, which marks the whole view stale
  # (health "unknown").
  export GOBLOG_WATCHER_PROBE_INTERVAL=${GOBLOG_WATCHER_PROBE_INTERVAL:-5s} GOBLOG_WATCHER_API_TIMEOUT=${GOBLOG_WATCHER_API_TIMEOUT:-30s}
  # RabbitMQ and turbine are left out there (replicas 0) unless asked for: an Erlang VM and a
  # restarting consumer drown a 2-vCPU software-emulated guest. GOBLOG_BROKER_REPLICAS=1 keeps them.
  export GOBLOG_BROKER_REPLICAS=${GOBLOG_BROKER_REPLICAS:-0}
fi
rabbit_image=${GOBLOG_RABBITMQ_IMAGE:-goblog/rabbitmq:latest}
# The stack's RabbitMQ is not a Go binary: it is built from Debian's packages (debootstrap, as
# root) when no engine at hand has it. Checked before anything is built.
build_rabbit=0
if [[ -z "${GOBLOG_RABBITMQ_IMAGE:-}" && ${GOBLOG_BROKER_REPLICAS:-1} != 0 ]] &&
  ! docker image inspect "$rabbit_image" >/dev/null 2>&1 &&
  ! { [[ $lab -eq 1 ]] && docker -H unix:///var/run/docker.sock image inspect "$rabbit_image" >/dev/null 2>&1; }; then
  build_rabbit=1
  [[ $lab -eq 0 ]] || die "the lab cannot build $rabbit_image: build it on this machine first (rabbitmq/build-image.sh), or GOBLOG_BROKER_REPLICAS=0"
  "$ROOT/scripts/prereqs.sh" build || die "prerequisites missing (above); nothing was built"
  [[ $(id -u) -eq 0 ]] || die "building $rabbit_image needs root (debootstrap): run ./copyall.sh as root once, or sudo rabbitmq/build-image.sh; nothing was built"
fi

# --- binaries ---------------------------------------------------------------------------------
# Every ./<component>/cmd/<name> is a binary; all are built in one go build.
# -buildvcs=auto: -version names the commit in a checkout even where GOFLAGS says -buildvcs=false (as on these machines).
mapfile -t mains < <(find . -path ./build -prune -o -path './lab/cache' -prune -o -path '*/cmd/*/main.go' -print | sed 's|/main.go$||' | sort)
say "building ${#mains[@]} binaries (CGO_ENABLED=0)"
# Each run builds in a folder of its own, so two runs (say, one for this engine and one for the
# lab) never remove each other's binaries.
mkdir -p build
work=$(mktemp -d "$ROOT/build/run.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
bin="$work/bin"
mkdir -p "$bin"
CGO_ENABLED=0 go build -buildvcs=auto -trimpath -ldflags='-s -w' -o "$bin/" "${mains[@]}" || die "go build failed"

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
  say "the engine is in no swarm: docker swarm init --advertise-addr 127.0.0.1 (./copyall.sh --down undoes it)"
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null || die "docker swarm init failed"
  docker node update --label-add "$CREATED_LABEL=copyall.sh" "$(docker info --format '{{.Swarm.NodeID}}')" >/dev/null ||
    die "could not label this node as one whose swarm copyall.sh created"
fi
[[ "$(docker info --format '{{.Swarm.ControlAvailable}}')" == true ]] || die "this engine is a swarm worker; point DOCKER_HOST at a manager"

# --- lab: images into every node --------------------------------------------------------------
if [[ $lab -eq 1 ]]; then
  tags=()
  for name in "${!image_ids[@]}"; do tags+=("goblog/$name:latest" "goblog/$name:${image_ids[$name]}"); done
  from_host=()
  [[ $GOBLOG_BROKER_REPLICAS == 0 ]] || from_host=(-from-host "$rabbit_image")
  "$ROOT/lab/load-images" "${from_host[@]}" "${tags[@]}" || die "lab: loading the images into the lab's nodes failed"
fi

if [[ $build_rabbit -eq 1 ]]; then
  "$ROOT/rabbitmq/build-image.sh" -t "$rabbit_image" || die "building $rabbit_image failed (rabbitmq/build-image.sh)"
fi

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

# --- broker credentials -----------------------------------------------------------------------
# Made once per swarm and kept: docker secrets cannot change, and every service holds them.
# BROKER_ENV is the deploying user's copy; a swarm that lacks the secrets gets them from it, so
# credentials survive a new swarm. Passwords are 128 random bits in hex (safe in a URL and in
# JSON); they go to docker on stdin only and are never printed.
declare -A cred=()
read_broker_env() { # fills cred[] from BROKER_ENV; true when complete
  local k v
  [[ -r "$BROKER_ENV" ]] || return 1
  while IFS='=' read -r k v; do
    case "$k" in GOBLOG_AMQP_*_USER|GOBLOG_AMQP_*_PASSWORD) [[ "$v" =~ ^[A-Za-z0-9_-]+$ ]] && cred[$k]=$v ;; esac
  done <"$BROKER_ENV"
  local r
  for r in PUBLISHER CONSUMER ADMIN; do
    [[ -n "${cred[GOBLOG_AMQP_${r}_USER]:-}" && -n "${cred[GOBLOG_AMQP_${r}_PASSWORD]:-}" ]] || return 1
  done
}
write_broker_env() {
  local dir tmp
  dir=$(dirname "$BROKER_ENV")
  (umask 077 && mkdir -p "$dir")
  tmp=$(umask 077 && mktemp "$dir/.broker.env.XXXXXX")
  {
    echo "# goblog's broker users, written by ./copyall.sh; the swarm holds them as docker secrets."
    echo "# The publisher may only write to the discovery exchange; the administrator is for people"
    echo "# (management UI/API on 15672 when deployed with GOBLOG_BROKER_PUBLISH=true)."
    local k
    for k in GOBLOG_AMQP_PUBLISHER_USER GOBLOG_AMQP_PUBLISHER_PASSWORD GOBLOG_AMQP_CONSUMER_USER \
      GOBLOG_AMQP_CONSUMER_PASSWORD GOBLOG_AMQP_ADMIN_USER GOBLOG_AMQP_ADMIN_PASSWORD; do
      printf '%s=%s\n' "$k" "${cred[$k]}"
    done
  } >"$tmp"
  chmod 0600 "$tmp"
  mv -f "$tmp" "$BROKER_ENV"
}
new_password() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
# The broker's definitions: its users and their permissions (RabbitMQ access control:
# configure, write, read regexes per vhost), and the discovery exchange, which clients only check.
broker_definitions() {
  cat <<JSON
{
  "users": [
    {"name": "${cred[GOBLOG_AMQP_PUBLISHER_USER]}", "password": "${cred[GOBLOG_AMQP_PUBLISHER_PASSWORD]}", "tags": []},
    {"name": "${cred[GOBLOG_AMQP_CONSUMER_USER]}", "password": "${cred[GOBLOG_AMQP_CONSUMER_PASSWORD]}", "tags": []},
    {"name": "${cred[GOBLOG_AMQP_ADMIN_USER]}", "password": "${cred[GOBLOG_AMQP_ADMIN_PASSWORD]}", "tags": ["administrator"]}
  ],
  "vhosts": [{"name": "/"}],
  "permissions": [
    {"user": "${cred[GOBLOG_AMQP_PUBLISHER_USER]}", "vhost": "/", "configure": "^\$", "write": "^discovery\$", "read": "^\$"},
    {"user": "${cred[GOBLOG_AMQP_CONSUMER_USER]}", "vhost": "/", "configure": "^amq\\\\.gen-.*", "write": "^amq\\\\.gen-.*", "read": "^(discovery|amq\\\\.gen-.*)\$"},
    {"user": "${cred[GOBLOG_AMQP_ADMIN_USER]}", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
  ],
  "exchanges": [
    {"name": "discovery", "vhost": "/", "type": "fanout", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}
  ]
}
JSON
}
secret_value() { # secret_value NAME: what the secret NAME holds, from cred[]
  case "$1" in
    goblog_broker_definitions) broker_definitions ;;
    goblog_amqp_publisher_url) printf 'amqp://%s:%s@rabbitmq:5672/' "${cred[GOBLOG_AMQP_PUBLISHER_USER]}" "${cred[GOBLOG_AMQP_PUBLISHER_PASSWORD]}" ;;
    goblog_amqp_consumer_url) printf 'amqp://%s:%s@rabbitmq:5672/' "${cred[GOBLOG_AMQP_CONSUMER_USER]}" "${cred[GOBLOG_AMQP_CONSUMER_PASSWORD]}" ;;
  esac
}
# recover_broker_env: the secrets exist but BROKER_ENV does not: read them back from the broker's
# running container on this engine (the definitions hold every user), without printing them.
recover_broker_env() {
  local c defs line name pass role
  c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_rabbitmq" | head -n 1)
  [[ -n "$c" ]] || return 1
  defs=$(docker exec "$c" cat /run/secrets/goblog_broker_definitions 2>/dev/null) || return 1
  while read -r line; do
    [[ "$line" =~ \"name\":\ \"([A-Za-z0-9_-]+)\",\ \"password\":\ \"([A-Za-z0-9_-]+)\" ]] || continue
    name=${BASH_REMATCH[1]} pass=${BASH_REMATCH[2]}
    case "$name" in
      *-publisher) role=PUBLISHER ;; *-turbine) role=CONSUMER ;; *-admin) role=ADMIN ;; *) continue ;;
    esac
    cred[GOBLOG_AMQP_${role}_USER]=$name cred[GOBLOG_AMQP_${role}_PASSWORD]=$pass
  done <<<"$defs"
  [[ -n "${cred[GOBLOG_AMQP_ADMIN_PASSWORD]:-}" && -n "${cred[GOBLOG_AMQP_PUBLISHER_PASSWORD]:-}" && -n "${cred[GOBLOG_AMQP_CONSUMER_PASSWORD]:-}" ]]
}
missing_secrets=()
for s in "${BROKER_SECRETS[@]}"; do docker secret inspect "$s" >/dev/null 2>&1 || missing_secrets+=("$s"); done
if [[ ${#missing_secrets[@]} -eq 0 ]]; then
  if read_broker_env; then
    say "broker credentials: kept (docker secrets of this swarm; yours in $BROKER_ENV)"
  elif recover_broker_env; then
    write_broker_env
    say "broker credentials: kept; $BROKER_ENV was missing and is written again from the running broker"
  else
    say "warning: this swarm has the broker's credentials but $BROKER_ENV is missing or incomplete, and no running broker here to read them from; ./copyall.sh --down --purge then ./copyall.sh makes new ones"
  fi
else
  if read_broker_env; then
    say "broker credentials: creating ${missing_secrets[*]} in this swarm from $BROKER_ENV"
  elif [[ ${#missing_secrets[@]} -eq ${#BROKER_SECRETS[@]} ]]; then
    cred=([GOBLOG_AMQP_PUBLISHER_USER]=goblog-publisher [GOBLOG_AMQP_PUBLISHER_PASSWORD]=$(new_password)
      [GOBLOG_AMQP_CONSUMER_USER]=goblog-turbine [GOBLOG_AMQP_CONSUMER_PASSWORD]=$(new_password)
      [GOBLOG_AMQP_ADMIN_USER]=goblog-admin [GOBLOG_AMQP_ADMIN_PASSWORD]=$(new_password))
    write_broker_env
    say "broker credentials: new (publisher, consumer, administrator), kept as docker secrets and in $BROKER_ENV (mode 0600)"
  else
    die "the swarm has only some of the broker's secrets (missing: ${missing_secrets[*]}) and $BROKER_ENV is missing: ./copyall.sh --down --purge, then ./copyall.sh"
  fi
  for s in "${missing_secrets[@]}"; do
    secret_value "$s" | docker secret create --label "com.goblog.made-by=copyall.sh" "$s" - >/dev/null ||
      die "docker secret create $s failed"
  done
fi

# --- deploy -----------------------------------------------------------------------------------
for name in "${!image_ids[@]}"; do
  var="GOBLOG_TAG_$(echo "$name" | tr 'a-z-' 'A-Z_')"
  export "$var=${image_ids[$name]}"
done
# Testability (PUT /testability/... on accountservice, and the edge passing it) only when asked.
export GOBLOG_TESTABILITY=${GOBLOG_TESTABILITY:-false}
[[ $GOBLOG_TESTABILITY == false ]] || say "testability on (GOBLOG_TESTABILITY=true): /testability/* is reachable through the edge"
# The broker's config is a docker config, which cannot change: its name carries its hash.
GOBLOG_RABBITMQ_CONF_HASH=$(sha256sum rabbitmq/rabbitmq.conf | cut -c1-12)
export GOBLOG_RABBITMQ_CONF_HASH
# The socket proxy runs with the group that owns the engine's socket (not root). For a remote
# engine the proxy's own image looks at the socket there.
# The stack mounts /var/run/docker.sock of the node; for a local engine that is this machine's.
if [[ -z "${DOCKER_HOST:-}" || "${DOCKER_HOST}" == unix://* ]]; then
  GOBLOG_DOCKER_GID=$(stat -c %g /var/run/docker.sock) || die "cannot stat /var/run/docker.sock"
else
  GOBLOG_DOCKER_GID=$(docker run --rm --user 65534:65534 -v /var/run/docker.sock:/var/run/docker.sock:ro \
    --entrypoint /socketproxy "goblog/socketproxy:${image_ids[socketproxy]}" -print-socket-gid) ||
    die "could not find the group owning /var/run/docker.sock on the engine"
fi
export GOBLOG_DOCKER_GID
say "socketproxy runs as 65534:$GOBLOG_DOCKER_GID (the group owning the engine's socket)"
files=(-c docker-stack.yml)
if [[ ${GOBLOG_BROKER_PUBLISH:-false} == true ]]; then
  files+=(-c rabbitmq/publish.yml)
  say "publishing the broker: AMQP 5672, management 15672 (GOBLOG_BROKER_PUBLISH=true; users in $BROKER_ENV)"
fi
say "deploying stack $STACK ($mode mode)"
docker stack deploy --resolve-image never --prune "${files[@]}" "$STACK" >&2 || die "docker stack deploy failed"

# --- wait until converged ---------------------------------------------------------------------
"$bin/stackwait" -stack "$STACK" -timeout "${timeout}s" || die "the stack did not converge within ${timeout}s (above: the services that did not)"

# Best-effort clean-up of older image tags no container uses (docker refuses those in use).
for name in "${!image_ids[@]}"; do
  docker image ls --format '{{.Tag}}' "goblog/$name" | { grep -vxE "latest|${image_ids[$name]}" || true; } | while read -r tag; do
    docker rmi "goblog/$name:$tag" >/dev/null 2>&1 || true
  done
done

if [[ $mode == vip ]]; then
  say "ready: curl localhost:6767/accounts/10000 (routing mesh); ./copyall.sh --down undoes the deploy"
else
  say "ready: curl localhost:6767/accounts/10000 (edge bound on this node); ./copyall.sh --down undoes the deploy"
fi
