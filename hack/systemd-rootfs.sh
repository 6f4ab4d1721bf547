#!/usr/bin/env bash
# Builds, once, a Debian 12 (bookworm) root filesystem that boots systemd
# (systemd-nspawn --boot) and has PHP-FPM 8.2, for the systemd runner's test
# in internal/host/phpfpm (systemd_test.go): that test needs systemd as PID 1,
# which neither our machines nor CI have. Prints the rootfs's path on stdout;
# everything else goes to stderr. How it is built and cached:
# hack/lib/rootfs.sh. The test boots an overlay over it
# (systemd-nspawn --volatile=overlay), so it stays clean.
#
#	hack/systemd-rootfs.sh            # build if missing, print the path
#	hack/systemd-rootfs.sh --path     # print the path it would have, build nothing
#
# Installs systemd-container (systemd-nspawn) and debootstrap when missing.
# A cold build takes about a minute and a half (2 cores, depending on the
# mirror) and ~250 MB; a cached run, milliseconds.
set -euo pipefail

NAME=bookworm-systemd
SUITE=bookworm
VARIANT=minbase
# On top of minbase: an init that boots (systemd-sysv gives /sbin/init) and
# the PHP the test supervises.
PACKAGES=(systemd systemd-sysv php8.2-fpm)
REQUIRED=(lib/systemd/systemd sbin/init usr/sbin/php-fpm8.2)
TOOLS=(debootstrap:debootstrap systemd-nspawn:systemd-container)
RECIPE=1

# The booted container needs only systemd and what the test starts: keep the
# distribution's php8.2-fpm.service from starting at boot (the test runs its
# own masters), and boot to the basic target without gettys.
customize() {
	rm -f "$1"/etc/systemd/system/multi-user.target.wants/php8.2-fpm.service
	ln -sfn /lib/systemd/system/multi-user.target "$1"/etc/systemd/system/default.target
	: >"$1"/etc/machine-id
}

# shellcheck source=hack/lib/rootfs.sh
source "$(dirname "$0")/lib/rootfs.sh"
rootfs_main "$@"
