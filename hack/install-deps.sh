#!/usr/bin/env bash
# Installs what building, testing and the demo need, idempotently: Debian
# packages (only when missing, so a machine that has them needs no network)
# and Go modules. Run as root on Debian 12/13 or Ubuntu 22.04/24.04.
set -euo pipefail

cd "$(dirname "$0")/.."

# Packages the tests and the demo use: the PostgreSQL server (initdb/pg_ctl
# for the ephemeral test clusters), psql, a C toolchain for cgo/-race, and
# libpam's headers for internal/auth/pam (cgo), and QEMU and the mkfs tools
# for the kernel tests in a VM (internal/testutil/vm; the kernel itself is
# fetched, not installed, by hack/vm-kernel.sh).
PACKAGES=(postgresql postgresql-client gcc libc6-dev make git ca-certificates procps passwd login util-linux iproute2
	nginx php-fpm php-cli curl libpam0g-dev qemu-system-x86 xfsprogs e2fsprogs pebble openssl)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing packages ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# Packages such as nginx, php-fpm and postgresql start their services on
	# install; WCP360 runs its own instances (tests in sandboxes), so keep
	# them from starting, unless the machine already has a policy.
	own_policy=
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		own_policy=1
	fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}" || { [[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d; exit 1; }
	[[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d
fi

# Go: /usr/local/go is where the official toolchain lives on our machines.
if ! command -v go >/dev/null 2>&1; then
	if [[ -x /usr/local/go/bin/go ]]; then
		export PATH=/usr/local/go/bin:$PATH
	else
		echo "install-deps: Go $(sed -n 's/^go //p' go.mod) or newer is needed at /usr/local/go (Debian's golang package is too old)" >&2
		exit 1
	fi
fi
need=$(sed -n 's/^go //p' go.mod)
have=$(go env GOVERSION | sed 's/^go//')
if [[ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]]; then
	echo "install-deps: go.mod needs Go $need, found $have" >&2
	exit 1
fi

# The postgres user must exist: the test harness runs initdb/pg_ctl as it.
if ! id postgres >/dev/null 2>&1; then
	echo "install-deps: the postgresql package did not create the postgres user" >&2
	exit 1
fi

go mod download
echo "install-deps: ok (go $have, $(ls -d /usr/lib/postgresql/*/bin | tail -1))"
