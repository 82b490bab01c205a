# shellcheck shell=bash
# lib.sh: settings and helpers shared by the lab commands (sourced, never run).
#
# Layout: lab/cache/ holds the guest image (built once, reused), lab/run/ the
# state of the running lab (per-node disks, pids, serial logs, the switch).

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_CACHE=${LAB_CACHE:-$LAB_DIR/cache}
LAB_RUN=${LAB_RUN:-$LAB_DIR/run}
# Ports the stack publishes on the routing mesh; each is forwarded from every node.
LAB_PORTS=${LAB_PORTS:-"6767 6969 8282 5672 15672"}
# shellcheck disable=SC2034 # used by the commands that source this file
LAB_MAX_NODES=5

# Any command failing unexpectedly says where, so no command ends silently.
set -E
trap 'lab_log "FAILED: ${BASH_SOURCE[0]##*/} line $LINENO: $BASH_COMMAND (exit $?)"' ERR

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() { printf 'lab: FAILED: %s\n' "$*" >&2; exit 1; }

# lab_engine_port I: the host port of node I's Docker engine.
lab_engine_port() { echo $((23750 + $1)); }
# lab_mesh_port I P: the host port reaching published port P through node I.
lab_mesh_port() { echo $((20000 + $2 + 100 * ($1 - 1))); }
# Every guest's address on qemu's user net (eth0), set by guest/lab-init, where its engine
# listens (guest/docker-lab.conf): keep the three in step.
LAB_GUEST_USER_ADDR=192.168.77.15
# lab_addr I: node I's address on the lab's own network (the vde switch).
lab_addr() { echo "192.168.76.$((10 + $1))"; }
# lab_engine I: DOCKER_HOST value for node I.
lab_engine() { echo "tcp://127.0.0.1:$(lab_engine_port "$1")"; }

lab_pid() { # lab_pid I: pid of node I's qemu if it runs, else nothing (status 1).
	local f="$LAB_RUN/node$1.pid" pid
	[[ -s $f ]] || return 1
	pid=$(<"$f")
	[[ -d /proc/$pid ]] && grep -q qemu "/proc/$pid/comm" 2>/dev/null || return 1
	echo "$pid"
}

lab_nodes() { # the node count of the lab in lab/run (0 if none).
	if [[ -s $LAB_RUN/nodes ]]; then cat "$LAB_RUN/nodes"; else echo 0; fi
}

# lab_serial_tail I [N]: the last N lines of node I's serial console.
lab_serial_tail() {
	local f="$LAB_RUN/node$1.serial"
	if [[ -f $f ]]; then
		printf -- '--- last lines of node%s serial log (%s) ---\n' "$1" "$f" >&2
		tr -d '\r' <"$f" | sed 's/\x1b\[[0-9;]*[A-Za-z]//g; s/\x1b.//g' | tail -n "${2:-25}" >&2
		printf -- '---\n' >&2
	else
		printf 'lab: node%s has no serial log at %s\n' "$1" "$f" >&2
	fi
}

# lab_ping I: true when node I's engine answers.
lab_ping() {
	curl -fsS --max-time 3 "http://127.0.0.1:$(lab_engine_port "$1")/_ping" >/dev/null 2>&1
}

# lab_port_busy PORT: true when a socket of this machine holds local port PORT (a
# listener, or an outgoing connection: 35672 and up are in the ephemeral range).
lab_port_busy() {
	[[ -n $(ss -Htan "( sport = :$1 )" 2>/dev/null) ]] || (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# lab_daemon CMD...: run CMD (which daemonizes itself) with no file descriptor open but 0, 1
# and 2. A daemon would otherwise keep what its caller had open: a lock taken with
# `flock /tmp/goblog-lab.lock go test …` would stay held by the guests until lab/down, and a
# later `flock … go test` on the running lab (LAB_REUSE=1) would wait forever.
lab_daemon() {
	(
		local fd
		for fd in /proc/"$BASHPID"/fd/*; do
			fd=${fd##*/}
			if ((fd > 2)); then eval "exec $fd>&-"; fi
		done
		exec "$@"
	)
}

# lab_accel: qemu's accelerator and CPU arguments, from LAB_ACCEL (auto, kvm or tcg; default
# auto). auto takes kvm when /dev/kvm opens read-write and is hardware-assisted KVM (the kvm_intel
# or kvm_amd module: the CPU's vmx or svm), else tcg (software emulation, 5–20 times slower but
# boots anywhere). A /dev/kvm served by kvm_pvm only (as on this project's machines: no vmx/svm)
# boots only kernels built as PVM guests, not Debian's, so auto takes tcg there (LAB_ACCEL=kvm
# forces it, to try).
lab_accel() {
	local want=${LAB_ACCEL:-auto}
	if [[ $want == auto ]]; then
		want=tcg
		if [[ -r /dev/kvm && -w /dev/kvm ]] && { [[ -d /sys/module/kvm_intel ]] || [[ -d /sys/module/kvm_amd ]]; }; then
			want=kvm
		fi
	fi
	case $want in
	kvm) echo "-accel kvm -cpu host" ;;
	tcg) echo "-accel tcg,thread=multi,tb-size=128 -cpu max" ;;
	*) lab_die "LAB_ACCEL=$want: want auto, kvm or tcg" ;;
	esac
}

# lab_boot I CPUS MEM_MIB: start node I's qemu (daemonized) on its existing disk.
# Its engine and every port in LAB_PORTS are forwarded to 127.0.0.1 only; the
# user net is restricted (the guest reaches nothing); eth1 is on the lab switch.
lab_boot() {
	local i=$1 cpus=$2 mem=$3 fwd p fwded=''
	# The guest's engine listens on its user-net address only (guest/docker-lab.conf), the one
	# lab-init gives eth0: forward there explicitly.
	fwd="hostfwd=tcp:127.0.0.1:$(lab_engine_port "$i")-$LAB_GUEST_USER_ADDR:2375"
	for p in $LAB_PORTS; do
		if lab_port_busy "$(lab_mesh_port "$i" "$p")"; then
			lab_log "warning: 127.0.0.1:$(lab_mesh_port "$i" "$p") is taken by another program: port $p via node$i is not forwarded"
			continue
		fi
		fwd+=",hostfwd=tcp:127.0.0.1:$(lab_mesh_port "$i" "$p")-:$p"
		fwded+="$p "
	done
	echo "$fwded" >"$LAB_RUN/node$i.ports"
	: >"$LAB_RUN/node$i.serial"
	local accel
	accel=$(lab_accel)
	echo "$accel" >"$LAB_RUN/node$i.accel"
	# shellcheck disable=SC2086 # accel is several words
	if ! lab_daemon qemu-system-x86_64 -name "goblog-lab-node$i" \
		$accel -smp "$cpus" -m "$mem" \
		-kernel "$LAB_CACHE/vmlinuz" -initrd "$LAB_CACHE/initrd.img" \
		-append "root=/dev/vda rw console=ttyS0 net.ifnames=0 apparmor=0 loglevel=4 lab.node=$i lab.addr=$(lab_addr "$i")/24" \
		-drive "file=$LAB_RUN/node$i.qcow2,if=virtio,format=qcow2,cache=unsafe" \
		-netdev "user,id=u,net=192.168.77.0/24,restrict=on,$fwd" -device virtio-net-pci,netdev=u \
		-netdev "vde,id=l,sock=$LAB_RUN/lab.vde" -device "virtio-net-pci,netdev=l,mac=52:54:00:76:00:$(printf %02x "$i")" \
		-rtc base=utc -no-reboot -display none -monitor none \
		-serial "file:$LAB_RUN/node$i.serial" \
		-daemonize -pidfile "$LAB_RUN/node$i.pid" 2>"$LAB_RUN/node$i.qemu.log"; then
		cat "$LAB_RUN/node$i.qemu.log" >&2
		lab_die "node$i: qemu did not start (its message above)"
	fi
}

# lab_wait_engines TIMEOUT_S I...: wait until every listed node's engine answers,
# printing progress; on failure say which node and show its serial log.
lab_wait_engines() {
	local timeout=$1 start=$SECONDS last=-1 i pending line
	shift
	while :; do
		pending=()
		for i in "$@"; do
			if ! lab_pid "$i" >/dev/null; then
				lab_serial_tail "$i"
				[[ -s $LAB_RUN/node$i.qemu.log ]] && cat "$LAB_RUN/node$i.qemu.log" >&2
				lab_die "node$i: qemu exited while booting (serial log above)"
			fi
			lab_ping "$i" || pending+=("$i")
		done
		((${#pending[@]} == 0)) && return 0
		if ((SECONDS - start > timeout)); then
			for i in "${pending[@]}"; do lab_serial_tail "$i"; done
			lab_die "node${pending[0]}: engine not answering on $(lab_engine "${pending[0]}") after ${timeout} s (serial log above)"
		fi
		if (((SECONDS - start) / 10 != last)); then
			last=$(((SECONDS - start) / 10))
			line=$(tr -d '\r' <"$LAB_RUN/node${pending[0]}.serial" | sed 's/\x1b\[[0-9;]*[A-Za-z]//g; s/\x1b.//g' |
				grep -v '^\s*$' | tail -n 1 | cut -c1-100 || true)
			lab_log "$((SECONDS - start)) s: waiting for engine(s) on node ${pending[*]} (node${pending[0]}: ${line:-no output yet})"
		fi
		sleep 1
	done
}
