#!/usr/bin/env bash
# prereqs.sh: check (and, as root with apt, install) the Debian packages a goblog stage needs.
# The packages are listed once, in scripts/packages.txt; ./copyall.sh, ./test.sh and .ci/run
# all come through here.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/prereqs.sh [-n] STAGE...   (STAGE: build unit integration e2e lab bench)

Checks that every package scripts/packages.txt lists for the STAGEs is installed (its command is
there). What is missing is installed with apt-get when this runs as root and apt-get exists
(saying so; apt-get update runs once first); otherwise it stops at once with the one command to
run. -n only checks (never installs). Exit 0: all there; 1: something missing or the install
failed; 2: usage.
USAGE
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list=${GOBLOG_PACKAGES_FILE:-$here/packages.txt}
say() { printf 'prereqs: %s\n' "$*" >&2; }

install=1
stages=()
for arg in "$@"; do
	case $arg in
	-h | --help) usage; exit 0 ;;
	-n) install=0 ;;
	build | unit | integration | e2e | lab | bench) stages+=("$arg") ;;
	*) usage >&2; say "unknown stage: $arg"; exit 2 ;;
	esac
done
((${#stages[@]} > 0)) || { usage >&2; exit 2; }
[[ -r $list ]] || { say "FAILED: cannot read the package list $list"; exit 1; }

has() { # has COMMAND: an absolute path that is executable, or a name on PATH
	if [[ $1 == /* ]]; then [[ -x $1 ]]; else command -v "$1" >/dev/null 2>&1; fi
}

# missing_packages: the packages of the wanted stages whose command is absent, once each, in
# the list's order; "pkg<TAB>why" lines.
missing_packages() {
	local stage pkg cmd why s seen=' '
	while read -r stage pkg cmd why; do
		[[ -z $stage || $stage == \#* ]] && continue
		for s in "${stages[@]}"; do
			[[ $s == "$stage" ]] || continue
			if [[ $seen != *" $pkg "* ]] && ! has "$cmd"; then
				printf '%s\t%s\n' "$pkg" "$why"
				seen+="$pkg "
			fi
		done
	done <"$list"
}

mapfile -t lines < <(missing_packages)
((${#lines[@]} == 0)) && exit 0

pkgs=()
for l in "${lines[@]}"; do
	pkgs+=("${l%%$'\t'*}")
	say "missing: ${l%%$'\t'*} (${l#*$'\t'})"
done
cmdline="apt-get update && apt-get install -y --no-install-recommends ${pkgs[*]}"

if ((install == 0)) || [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	if ! command -v apt-get >/dev/null 2>&1; then
		say "FAILED: no apt-get here; install these Debian packages (or your system's equivalents): ${pkgs[*]}"
	elif [[ $(id -u) != 0 ]]; then
		say "FAILED: missing packages; run this once, then again what you ran:"
		printf '  sudo sh -c '\''%s'\''\n' "$cmdline" >&2
	else
		say "FAILED: missing packages; run this once, then again what you ran:"
		printf '  %s\n' "$cmdline" >&2
	fi
	exit 1
fi

say "installing ${pkgs[*]} with apt-get (running as root)"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >&2; then
	say "FAILED: apt-get update failed; run: $cmdline"
	exit 1
fi
if ! apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2; then
	say "FAILED: apt-get install ${pkgs[*]} failed (its message above)"
	exit 1
fi
mapfile -t lines < <(missing_packages)
if ((${#lines[@]} > 0)); then
	say "FAILED: still missing after apt-get install: ${lines[*]%%$'\t'*}"
	exit 1
fi
say "installed ${pkgs[*]}"
