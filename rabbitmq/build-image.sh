#!/usr/bin/env bash
# Builds the stack's RabbitMQ image (goblog/rabbitmq:latest) without a container registry:
# a Debian bookworm rootfs made by debootstrap with Debian's rabbitmq-server, trimmed, with
# rabbitmq/rabbitmq.conf baked in and the management plugin enabled, imported by `docker import`.
# The conf loads its users from the docker secret goblog_broker_definitions (see ./copyall.sh), so
# the image runs in the stack, not on its own.
set -euo pipefail

usage() {
	cat <<USAGE
usage: $(basename "$0") [-f] [-t IMAGE] [-m MIRROR]
  Builds IMAGE (default goblog/rabbitmq:latest) from Debian bookworm's rabbitmq-server.
  Skips the build when IMAGE already exists, unless -f is given.
  -f         rebuild even if IMAGE exists
  -t IMAGE   image name (default goblog/rabbitmq:latest)
  -m MIRROR  Debian mirror (default http://deb.debian.org/debian)
  Needs root, debootstrap and a Docker engine; takes about a minute.
USAGE
}

image=goblog/rabbitmq:latest
mirror=http://deb.debian.org/debian
force=0
while getopts ":hft:m:" opt; do
	case "$opt" in
	h) usage; exit 0 ;;
	f) force=1 ;;
	t) image=$OPTARG ;;
	m) mirror=$OPTARG ;;
	*) usage >&2; exit 2 ;;
	esac
done

log() { printf 'rabbitmq-image: %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $force -eq 0 ]] && docker image inspect "$image" >/dev/null 2>&1; then
	log "$image exists, not rebuilding (use -f to force)"
	exit 0
fi
[[ $(id -u) -eq 0 ]] || fail "debootstrap needs root"
command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
command -v docker >/dev/null || fail "docker is not installed"

root=$(mktemp -d /tmp/goblog-rabbitmq-rootfs.XXXXXX)
cleanup() { rm -rf "$root"; }
trap cleanup EXIT

log "debootstrap bookworm with rabbitmq-server into $root (about a minute)"
if ! debootstrap --variant=minbase --include=rabbitmq-server bookworm "$root" "$mirror" \
	>"$root.log" 2>&1; then
	tail -n 20 "$root.log" >&2
	fail "debootstrap failed (full log: $root.log)"
fi
rm -f "$root.log"

log "trimming docs, man pages, locales and apt caches"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
	"$root"/usr/share/locale/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
	"$root"/var/log/*.log "$root"/var/cache/debconf/*-old "$root"/tmp/*

log "baking the broker config and enabling the management plugin"
install -m 0644 "$here/rabbitmq.conf" "$root/etc/rabbitmq/rabbitmq.conf"
# What `rabbitmq-plugins --offline enable rabbitmq_management` writes, without booting Erlang.
printf '[rabbitmq_management].\n' >"$root/etc/rabbitmq/enabled_plugins"
# The postinst left a cookie baked into the rootfs; every container would share it. Remove it
# so each container's node makes its own on first start.
rm -f "$root/var/lib/rabbitmq/.erlang.cookie"
chroot "$root" chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq /var/log/rabbitmq

log "importing as $image"
tar -C "$root" -c . | docker import \
	--change 'USER rabbitmq' \
	--change 'WORKDIR /var/lib/rabbitmq' \
	--change 'ENV HOME=/var/lib/rabbitmq' \
	--change 'ENV PATH=/usr/lib/rabbitmq/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENV RABBITMQ_LOGS=-' \
	--change 'EXPOSE 5672 15672' \
	--change 'CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]' \
	--message "Debian bookworm rabbitmq-server, built by rabbitmq/build-image.sh" \
	- "$image" >/dev/null
log "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
