#!/usr/bin/env bash
# A throwaway RabbitMQ node on loopback for the `-tags integration` tests: Debian's
# rabbitmq-server with its own node name, ports, epmd, Erlang cookie and data directory, so
# it never clashes with a system broker (or another run) on this machine.
set -euo pipefail

usage() {
	cat <<USAGE
usage: $(basename "$0") start|stop|status|ctl ARGS...|env
  start   start the node (waits until it accepts AMQP) and print its AMQP URL
  stop    stop the node and its epmd, remove its data directory
  status  exit 0 iff the node is running
  ctl     run rabbitmqctl against the node, e.g. \`ctl close_all_connections test\`
  env     print the environment the integration tests read (GOBLOG_AMQP_URL, GOBLOG_RABBITMQCTL)
Environment: GOBLOG_IT_RABBITMQ_DIR (default /tmp/goblog-it-rabbitmq),
  GOBLOG_IT_AMQP_PORT (default 25772, below the ephemeral range; Erlang distribution +1, epmd +2, rabbitmqctl +3…+13).
Needs Debian's rabbitmq-server (apt-get install rabbitmq-server).
USAGE
}

dir=${GOBLOG_IT_RABBITMQ_DIR:-/tmp/goblog-it-rabbitmq}
port=${GOBLOG_IT_AMQP_PORT:-25772}
bin=/usr/lib/rabbitmq/bin
self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

log() { printf 'rabbitmq-loopback: %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

# Everything that makes this node its own: name, ports, files. HOME holds its Erlang cookie.
node_env() {
	export HOME="$dir"
	export RABBITMQ_NODENAME="goblog-it@localhost"
	export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
	export RABBITMQ_NODE_PORT="$port"
	export RABBITMQ_DIST_PORT=$((port + 1))
	export ERL_EPMD_PORT=$((port + 2))
	export ERL_EPMD_ADDRESS=127.0.0.1
	# rabbitmqctl's own distribution ports; the default (25672 + 10000 …) could hit ours.
	export RABBITMQ_CTL_DIST_PORT_MIN=$((port + 3))
	export RABBITMQ_CTL_DIST_PORT_MAX=$((port + 13))
	export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
	export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
	export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
	export RABBITMQ_MNESIA_BASE="$dir/mnesia"
	export RABBITMQ_LOG_BASE="$dir/log"
	export RABBITMQ_LOGS="$dir/log/broker.log"
	export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
}

ctl() { node_env; "$bin/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"; }

url() { printf 'amqp://guest:guest@127.0.0.1:%s/\n' "$port"; }

running() { [[ -f "$dir/server.pid" ]] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; }

start() {
	[[ -x "$bin/rabbitmq-server" ]] || fail "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
	if running; then
		log "already running"
		url
		return
	fi
	rm -rf "$dir"
	mkdir -p "$dir/log" "$dir/mnesia"
	: >"$dir/rabbitmq-env.conf"
	printf '[].\n' >"$dir/enabled_plugins"
	# The listener (127.0.0.1:$port) comes from RABBITMQ_NODE_IP_ADDRESS/PORT in node_env, so
	# guest (kept to loopback connections, RabbitMQ's default) is all the tests need. The
	# discovery exchange is declared here, as the stack's broker does: clients only check it.
	cat >"$dir/rabbitmq.conf" <<CONF
load_definitions = $dir/definitions.json
CONF
	cat >"$dir/definitions.json" <<'JSON'
{
  "users": [{"name": "guest", "password": "guest", "tags": ["administrator"]}],
  "vhosts": [{"name": "/"}],
  "permissions": [{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
  "exchanges": [{"name": "discovery", "vhost": "/", "type": "fanout", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}]
}
JSON
	# A cookie of our own: the system node's (if any) stays untouched.
	head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/.erlang.cookie"
	chmod 400 "$dir/.erlang.cookie"
	node_env
	log "starting node $RABBITMQ_NODENAME on 127.0.0.1:$port (data in $dir)"
	"$bin/rabbitmq-server" >"$dir/log/stdout.log" 2>&1 &
	echo $! >"$dir/server.pid"
	# Wait for the AMQP listener (opened last in the boot), watching that the node lives.
	local deadline=$((SECONDS + 90))
	until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		if ! running || ((SECONDS > deadline)); then
			tail -n 30 "$dir"/log/*.log >&2 || true
			rm -rf "$dir.failed-log"
			cp -r "$dir/log" "$dir.failed-log" 2>/dev/null || true
			stop || true
			fail "node did not start within 90 s (logs kept in $dir.failed-log)"
		fi
		sleep 0.3
	done
	log "ready"
	url
}

stop() {
	node_env
	if running; then
		log "stopping node $RABBITMQ_NODENAME"
		timeout 30 "$bin/rabbitmqctl" -n "$RABBITMQ_NODENAME" stop >/dev/null 2>&1 || true
		local pid
		pid=$(cat "$dir/server.pid")
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill "$pid" 2>/dev/null || true
	fi
	# The epmd on our own port; the system's (port 4369) is left alone.
	epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
	rm -rf "$dir"
}

case "${1:-}" in
-h | --help | help) usage ;;
start) start ;;
stop) stop; log "stopped" ;;
status) running ;;
ctl) shift; ctl "$@" ;;
env) printf 'GOBLOG_AMQP_URL=%s\nGOBLOG_RABBITMQCTL=%s\n' "$(url)" "$self ctl" ;;
*) usage >&2; exit 2 ;;
esac
