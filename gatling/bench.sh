#!/usr/bin/env bash
# gatling/bench.sh: the goblog benchmark, run against the deployed stack.
# Collects raw figures into gatling/results/bench-<timestamp>/ and writes the
# table (gatling/cmd/benchreport) to one results file and stdout.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: gatling/bench.sh [-o FILE] [-users N] [-ramp D] [-hold D] [-pause D]
                        [-conns N] [-closed D] [-replicas N] [-h]

Runs the goblog benchmark against the stack deployed by ./copyall.sh and writes
one results file (Markdown, default gatling/results/bench-<timestamp>.md, raw
data beside it in gatling/results/bench-<timestamp>/), and the table on stdout.

  P1   accountservice vs a bare net/http hello-world service (goblog/hello,
       deployed for the run the same way), closed loop to each task's IP from
       a gatling-runner container on goblog_net: throughput ratio
  P2   the tutorial's workload through the edge, 1 accountservice replica
  P3   the same with -replicas replicas (then scaled back)
  P4   per replica: share, CPU and memory (engine stats API, docker stats)
  P5   the tutorial's workload from a container on goblog_net, straight to a
       task IP vs through the edge by name: p99 ratio
  P9   gatling vs wrk at the same connection count through the edge: p50
  P10  image sizes; container start -> healthy (engine events)
  P11  CPU microseconds and context switches per request per hop (edge,
       accountservice, quotes-service; CPU also for the generator) over P3's
       hold, from the containers' cgroup CPU counters and their threads'
       /proc switch counts, beside the hello service's (P1)
  P12  RSS of each accountservice process over each hold of the tutorial's
       workload (P2, P3): the largest of samples every 2 s of
       /proc/<pid>/smaps_rollup, anonymous and file pages apart

With -cpu-only it runs just P1's hello and the tutorial's workload at the
current replica count, and prints the P11 and P12 tables (about a minute).

It changes swarm state (creates and removes the service goblog-bench-hello,
scales goblog_accountservice and restores it), so on a shared engine run it
under the team's lock:  flock /tmp/goblog-engine.lock gatling/bench.sh
It cleans up after itself, also on Ctrl-C. Takes about 5 minutes.

Flags:
  -o FILE       results file (default gatling/results/bench-<timestamp>.md)
  -users N      users for P2/P3/P5 (default 1000)
  -ramp D       ramp for P2/P3/P5 (default 10s)
  -hold D       how long each user loops in P2/P3/P5 (default 30s)
  -pause D      pause for P2/P3/P5 (default 1s)
  -conns N      connections/users for the closed-loop runs P1, P9 (default 50)
  -closed D     duration of each closed-loop run (default 10s)
  -replicas N   replicas for P3 (default 4)
  -base URL     the edge as seen from this host (default http://127.0.0.1:6767)
  -cpu-only     only P11 (see above)
  -h            this help
EOF
}

log() { echo "bench: $*" >&2; }
die() {
	echo "bench: FAILED: $*" >&2
	exit 1
}

out="" users=1000 ramp=10s hold=30s pause=1s conns=50 closed=10s replicas=4 base=http://127.0.0.1:6767 cpu_only=0
while (($# > 0)); do
	case "$1" in
	-h | -help | --help)
		usage
		exit 0
		;;
	-cpu-only)
		cpu_only=1
		shift
		continue
		;;
	-o | -users | -ramp | -hold | -pause | -conns | -closed | -replicas | -base)
		(($# >= 2)) || {
			echo "bench: $1 needs a value" >&2
			usage >&2
			exit 2
		}
		case "$1" in
		-o) out=$2 ;;
		-users) users=$2 ;;
		-ramp) ramp=$2 ;;
		-hold) hold=$2 ;;
		-pause) pause=$2 ;;
		-conns) conns=$2 ;;
		-closed) closed=$2 ;;
		-replicas) replicas=$2 ;;
		-base) base=$2 ;;
		esac
		shift 2
		;;
	*)
		echo "bench: unknown argument: $1" >&2
		usage >&2
		exit 2
		;;
	esac
done
for n in "$users" "$conns" "$replicas"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || {
		echo "bench: not a positive number: $n" >&2
		exit 2
	}
done
# durations are checked by gatling itself; seconds are needed here for the sampler
secs() { # 10s -> 10, 2m -> 120 (whole seconds and minutes only)
	case "$1" in
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) die "duration $1: use whole seconds (10s) or minutes (2m)" ;;
	esac
}
ramp_s=$(secs "$ramp") hold_s=$(secs "$hold") closed_s=$(secs "$closed")
[[ $ramp_s =~ ^[0-9]+$ && $hold_s =~ ^[0-9]+$ && $closed_s =~ ^[0-9]+$ ]] || die "durations must be whole seconds or minutes"

cd "$(dirname "$0")/.."
root=$PWD
for tool in docker go curl; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done
# wrk (Debian's): installed when missing as root with apt, else the one command to run.
scripts/prereqs.sh bench || die "prerequisites missing (above)"

stack_svc=goblog_accountservice
hello_svc=goblog-bench-hello
net=goblog_net
ts=$(date -u +%Y%m%d-%H%M%S)
run=$root/gatling/results/bench-$ts
results=${out:-$root/gatling/results/bench-$ts.md}
mkdir -p "$run/bin"
log "raw data in $run"

# ---- preflight --------------------------------------------------------------
docker info >/dev/null 2>&1 || die "the Docker engine does not answer"
docker service inspect "$stack_svc" goblog_edge >/dev/null 2>&1 ||
	die "stack goblog is not deployed (no $stack_svc / goblog_edge): run ./copyall.sh first"
for img in goblog/hello goblog/gatling-runner; do
	docker image inspect "$img" >/dev/null 2>&1 || die "image $img is missing: run ./copyall.sh (it builds gatling/cmd/*/Dockerfile)"
done
mode=$(docker service inspect -f '{{.Spec.EndpointSpec.Mode}}' "$stack_svc")
publish=$(docker service inspect -f '{{range .Endpoint.Ports}}{{.PublishMode}} {{end}}' goblog_edge)
replicas0=$(docker service inspect -f '{{.Spec.Mode.Replicated.Replicas}}' "$stack_svc")
curl -fsS -m 5 -H 'Accept: application/json' "$base/accounts/10000" >/dev/null ||
	die "the edge at $base does not answer /accounts/10000"
log "stack in $mode mode (edge published in ${publish% } mode), accountservice at $replicas0 replica(s)"

go build -o "$run/bin/gatling" ./gatling
go build -o "$run/bin/benchreport" ./gatling/cmd/benchreport

sampler="" rss_sampler="" events=""
cleanup() {
	local rc=$?
	set +e
	[[ -n $sampler ]] && kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null
	[[ -n $rss_sampler ]] && kill "$rss_sampler" 2>/dev/null && wait "$rss_sampler" 2>/dev/null
	[[ -n $events ]] && kill "$events" 2>/dev/null && wait "$events" 2>/dev/null
	docker rm -f goblog-bench-p1-hello goblog-bench-p1-account goblog-bench-p5-direct goblog-bench-p5-edge >/dev/null 2>&1
	if docker service inspect "$hello_svc" >/dev/null 2>&1; then
		log "removing $hello_svc"
		docker service rm "$hello_svc" >/dev/null
	fi
	local now
	now=$(docker service inspect -f '{{.Spec.Mode.Replicated.Replicas}}' "$stack_svc" 2>/dev/null)
	if [[ -n $now && $now != "$replicas0" ]]; then
		log "restoring $stack_svc to $replicas0 replica(s)"
		docker service scale --detach=false "$stack_svc=$replicas0" >/dev/null 2>&1 || log "could not scale $stack_svc back to $replicas0: do it by hand"
	fi
	rm -rf "${run:?}/bin"
	((rc == 0)) || log "FAILED (exit $rc); partial raw data in $run"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# containers NAME: ids of the running containers of a service on this node
containers() { docker ps -q --filter "label=com.docker.swarm.service.name=$1"; }

# wait_healthy SERVICE N: until exactly N containers run and all are healthy
wait_healthy() {
	local svc=$1 n=$2 deadline=$((SECONDS + 120)) all healthy
	while ((SECONDS < deadline)); do
		all=$(containers "$svc" | wc -l)
		healthy=$(docker ps -q --filter "label=com.docker.swarm.service.name=$svc" --filter health=healthy | wc -l)
		((all == n && healthy == n)) && return 0
		sleep 0.5
	done
	die "$svc: $healthy of $n containers healthy after 120 s"
}

# task_ip SERVICE: the stack-network IP of the service's first container
task_ip() {
	local id
	id=$(containers "$1" | head -n1)
	[[ -n $id ]] || die "$1 has no running container"
	docker inspect -f "{{with index .NetworkSettings.Networks \"$net\"}}{{.IPAddress}}{{end}}" "$id"
}

# runner NAME ARGS...: gatling in a container on the stack network
runner() {
	local name=$1
	shift
	log "$name: gatling-runner $*"
	docker run --rm --name "goblog-bench-$name" --network "$net" --user "$(id -u):$(id -g)" \
		-v "$root/gatling/accounts.csv:/accounts.csv:ro" -v "$run:/out" \
		goblog/gatling-runner -feeder /accounts.csv -quiet -out "/out/$name" "$@" >"$run/$name.txt" ||
		die "$name: gatling-runner failed, see $run/$name.txt"
}

# hop_counters SERVICE: "nanoseconds switches" so far of the service's
# containers on this node: CPU from the cgroup (v1 cpuacct.usage, or v2
# cpu.stat usage_usec), and the context switches (voluntary and not) of the
# threads of each container's main process. A thread that ends between two
# snapshots takes its switches with it (Go rarely ends one).
hop_counters() {
	local id pid path ns=0 sw=0 v
	for id in $(containers "$1"); do
		pid=$(docker inspect -f '{{.State.Pid}}' "$id")
		if path=$(awk -F: '$2 ~ /(^|,)cpuacct(,|$)/ {print $3}' "/proc/$pid/cgroup") && [[ -n $path && -r /sys/fs/cgroup/cpuacct$path/cpuacct.usage ]]; then
			v=$(cat "/sys/fs/cgroup/cpuacct$path/cpuacct.usage")
		elif path=$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/cgroup") && [[ -r /sys/fs/cgroup$path/cpu.stat ]]; then
			v=$(($(awk '$1 == "usage_usec" {print $2}' "/sys/fs/cgroup$path/cpu.stat") * 1000))
		else
			die "no CPU counter for container $id of $1"
		fi
		ns=$((ns + v))
		v=$(awk '/^(non)?voluntary_ctxt_switches:/ {n += $2} END {print n + 0}' "/proc/$pid"/task/*/status) ||
			die "no thread status for container $id of $1 (pid $pid)"
		sw=$((sw + v))
	done
	echo "$ns $sw"
}

# cpu_snapshot FILE SERVICE...: "service nanoseconds switches" lines
cpu_snapshot() {
	local file=$1 svc
	shift
	: >"$file"
	for svc in "$@"; do
		echo "$svc $(hop_counters "$svc")" >>"$file"
	done
}

# requests_of DIR: requests.total of a gatling report folder
requests_of() { tr -d ' \n' <"$1/stats.json" | sed -n 's/.*"requests":{"total":\([0-9]*\).*/\1/p'; }

# generator_cpu_ns DIR: the generator's own CPU seconds, in nanoseconds
generator_cpu_ns() { tr -d ' \n' <"$1/stats.json" | sed -n 's/.*"cpuSeconds":\([0-9.eE+-]*\).*/\1/p' | awk '{printf "%d", $1 * 1e9}'; }

# cpu_table NAME DIR BEFORE AFTER: CPU us per request per hop into $run/p11-cpu.txt
cpu_table() {
	local name=$1 dir=$2 before=$3 after=$4 n
	n=$(requests_of "$dir")
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "$name: no request count in $dir/stats.json"
	{
		echo "# $name: $n requests, load average $(cut -d' ' -f1-3 /proc/loadavg)"
		# join: service, ns before, switches before, ns after, switches after
		join "$before" "$after" | awk -v n="$n" '{printf "%-22s %8.1f us/request %6.1f switches/request\n", $1, ($4 - $2) / n / 1000, ($5 - $3) / n}'
		echo "generator              $(awk -v c="$(generator_cpu_ns "$dir")" -v n="$n" 'BEGIN{printf "%8.1f", c / n / 1000}') us/request"
	} | tee -a "$run/p11-cpu.txt" >&2
}

# sample_stats FILE DELAY DURATION: docker stats of the stack's containers
# (accountservice and what it shares the machine with), in the background
sample_stats() {
	local file=$1 delay=$2 dur=$3
	(
		sleep "$delay"
		end=$((SECONDS + dur))
		while ((SECONDS < end)); do
			mapfile -t ids < <(docker ps -q --filter label=com.docker.stack.namespace=goblog)
			((${#ids[@]} > 0)) && { docker stats --no-stream --format '{{json .}}' "${ids[@]}" >>"$file" 2>/dev/null || true; }
		done
	) &
	sampler=$!
}

# sample_rss FILE DELAY DURATION: every 2 s, "container rss_kB anonymous_kB"
# of each accountservice process (/proc/<pid>/smaps_rollup), in the
# background. The processes are looked up once, after DELAY: asking the
# engine every 2 s would load the machine being measured. One that ends
# during the hold is skipped; rss_table stops the run when no sample came.
sample_rss() {
	local file=$1 delay=$2 dur=$3
	: >"$file"
	(
		sleep "$delay"
		procs=()
		for id in $(containers "$stack_svc"); do
			procs+=("$id $(docker inspect -f '{{.State.Pid}}' "$id" 2>/dev/null)") || true
		done
		end=$((SECONDS + dur))
		while ((SECONDS < end)); do
			for p in "${procs[@]}"; do
				read -r id pid <<<"$p"
				awk -v id="$id" '/^Rss:/ {r = $2} /^Anonymous:/ {a = $2} END {if (r != "") print id, r, a}' \
					"/proc/$pid/smaps_rollup" 2>/dev/null >>"$file" || true
			done
			sleep 2
		done
	) &
	rss_sampler=$!
}

# rss_table NAME FILE: each process's largest RSS sample (anonymous and file
# pages apart) into $run/p12-rss.txt
rss_table() {
	local name=$1 file=$2
	[[ -s $file ]] || die "$name: no RSS sample of $stack_svc in $file"
	{
		echo "# P12 $name: RSS per accountservice process over the hold (largest of the 2 s samples)"
		sort -k1,1 -k2,2nr "$file" | awk '$1 != last {last = $1; printf "%-14s %6.2f MiB  (anonymous %5.2f, file %5.2f)\n", $1, $2 / 1024, $3 / 1024, ($2 - $3) / 1024}'
	} | tee -a "$run/p12-rss.txt" >&2
}

# tutorial NAME: the tutorial's workload through the edge from this host,
# with docker stats and accountservice's RSS sampled during the hold
tutorial() {
	local name=$1
	log "$name: $users users, ramp $ramp, hold $hold, pause $pause through $base ($(containers "$stack_svc" | wc -l) replica(s))"
	echo "loadavg_before_$name=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$run/meta.txt"
	sample_stats "$run/$name-dockerstats.jsonl" $((ramp_s + 2)) $((hold_s > 6 ? hold_s - 6 : 1))
	sample_rss "$run/$name-rss.txt" $((ramp_s + 2)) $((hold_s > 6 ? hold_s - 6 : 1))
	"$run/bin/gatling" -baseUrl "$base" -users "$users" -ramp "$ramp" -duration "$hold" -pause "$pause" -quiet -out "$run/$name" >"$run/$name.txt"
	wait "$sampler" || true
	sampler=""
	wait "$rss_sampler" || true
	rss_sampler=""
	rss_table "$name" "$run/$name-rss.txt"
	mapfile -t ids < <(containers "$stack_svc")
	docker inspect "${ids[@]}" >"$run/$name-containers.json"
	grep -E '^ +[0-9]+ ' "$run/$name.txt" >&2 || true
}

{
	echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "endpoint_mode=$mode"
	echo "edge_publish_mode=${publish% }"
	echo "edge=$base"
	echo "host_cores=$(nproc)"
	echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "docker=$(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')"
	echo "workload=$users users, ramp $ramp, hold $hold, pause $pause"
	echo "closed_loop=$conns connections for $closed"
} >"$run/meta.txt"

# ---- P10: image sizes; container start -> healthy ----------------------------
# The engine keeps only its last 256 events (healthcheck execs fill that in a
# minute), so the starts and health changes are streamed while the bench runs.
docker events --filter type=container --filter event=start --filter event=health_status \
	--format '{{json .}}' >"$run/p10-events.jsonl" &
events=$!
mapfile -t images < <(docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -E '^goblog/.*:latest$' | sort -u)
docker image inspect "${images[@]}" >"$run/p10-images.json"

# ---- P1: accountservice vs hello-world, same way, same generator ------------
log "P1: deploying $hello_svc ($mode, on $net)"
limits=$(docker service inspect -f '{{with .Spec.TaskTemplate.Resources}}{{with .Limits}}{{.NanoCPUs}} {{.MemoryBytes}}{{end}}{{end}}' "$stack_svc")
limit_args=()
read -r ncpu mem <<<"${limits:-0 0}"
((${ncpu:-0} > 0)) && limit_args+=(--limit-cpu "$(awk -v n="$ncpu" 'BEGIN{print n/1e9}')")
((${mem:-0} > 0)) && limit_args+=(--limit-memory "$mem")
docker service create --detach --quiet --name "$hello_svc" --network "$net" --endpoint-mode "$mode" \
	"${limit_args[@]}" goblog/hello >/dev/null
wait_healthy "$hello_svc" 1
hello_ip=$(task_ip "$hello_svc")
acct_ip=$(task_ip "$stack_svc")
cpu_snapshot "$run/p11-hello-before.txt" "$hello_svc"
runner p1-hello -baseUrl "http://$hello_ip:6868" -users "$conns" -ramp 0s -duration "$closed" -pause 0s
cpu_snapshot "$run/p11-hello-after.txt" "$hello_svc"
cpu_table "P11 hello baseline (closed loop, $conns users, straight to the task)" "$run/p1-hello" "$run/p11-hello-before.txt" "$run/p11-hello-after.txt"
if ((cpu_only == 1)); then
	docker service rm "$hello_svc" >/dev/null
	hops=(goblog_edge "$stack_svc" goblog_quotes-service)
	cpu_snapshot "$run/p11-before.txt" "${hops[@]}"
	tutorial p11
	cpu_snapshot "$run/p11-after.txt" "${hops[@]}"
	cpu_table "P11 the tutorial's workload through the edge ($(containers "$stack_svc" | wc -l) accountservice replicas)" "$run/p11" "$run/p11-before.txt" "$run/p11-after.txt"
	log "CPU per request per hop: $run/p11-cpu.txt; RSS per accountservice: $run/p12-rss.txt"
	exit 0
fi
runner p1-account -baseUrl "http://$acct_ip:6767" -users "$conns" -ramp 0s -duration "$closed" -pause 0s
docker service rm "$hello_svc" >/dev/null

# ---- P9: gatling vs wrk, same connection count, through the edge ------------
log "P9: wrk -c $conns vs gatling -users $conns through $base"
threads=$((conns < 2 ? conns : 2))
wrk -t"$threads" -c"$conns" -d"$closed" --latency -H 'Accept: application/json' "$base/accounts/10000" >"$run/p9-wrk.txt"
printf 'accountId\n10000\n' >"$run/p9-feeder.csv" # wrk asks one id: so does gatling here
"$run/bin/gatling" -baseUrl "$base" -feeder "$run/p9-feeder.csv" -users "$conns" -ramp 0s -duration "$closed" -pause 0s -quiet -out "$run/p9-gatling" >"$run/p9-gatling.txt"

# ---- P2: the tutorial's workload, 1 replica ---------------------------------
if [[ $replicas0 != 1 ]]; then
	docker service scale --detach=false "$stack_svc=1" >/dev/null
fi
wait_healthy "$stack_svc" 1
tutorial p2

# ---- P3/P4: the same with more replicas --------------------------------------
log "P3: scaling $stack_svc to $replicas"
s0=$SECONDS
scale_t0=$(date +%s.%N)
docker service scale --detach=false "$stack_svc=$replicas" >/dev/null
wait_healthy "$stack_svc" "$replicas"
echo "scale_up_s=$(awk -v a="$scale_t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')" >>"$run/meta.txt"
log "P3: $replicas replicas healthy after $((SECONDS - s0)) s"
hops=(goblog_edge "$stack_svc" goblog_quotes-service)
cpu_snapshot "$run/p11-before.txt" "${hops[@]}"
tutorial p3
cpu_snapshot "$run/p11-after.txt" "${hops[@]}"
cpu_table "P11 the tutorial's workload through the edge ($replicas accountservice replicas)" "$run/p3" "$run/p11-before.txt" "$run/p11-after.txt"
log "P3: scaling $stack_svc back to 1"
docker service scale --detach=false "$stack_svc=1" >/dev/null
wait_healthy "$stack_svc" 1

# ---- P5: straight to a task vs through the edge, from inside the network ----
acct_ip=$(task_ip "$stack_svc")
runner p5-direct -baseUrl "http://$acct_ip:6767" -users "$users" -ramp "$ramp" -duration "$hold" -pause "$pause"
runner p5-edge -baseUrl "http://edge:6767" -users "$users" -ramp "$ramp" -duration "$hold" -pause "$pause"

# ---- P10: container start -> healthy, from the engine's events ---------------
kill "$events" 2>/dev/null || true
wait "$events" 2>/dev/null || true
events=""
echo "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$run/meta.txt"

mkdir -p "$(dirname "$results")"
"$run/bin/benchreport" -dir "$run" -o "$results"
{
	echo
	echo "## P11: CPU per request per hop"
	echo
	echo '```'
	cat "$run/p11-cpu.txt"
	echo '```'
	echo
	echo "## P12: RSS per accountservice process"
	echo
	echo '```'
	cat "$run/p12-rss.txt"
	echo '```'
} >>"$results"
cat "$run/p11-cpu.txt" "$run/p12-rss.txt"
log "results: $results"
