#!/usr/bin/env bash
# Builds, once, a Debian 13 (trixie) root filesystem with nginx 1.26 and
# PHP-FPM 8.4 for the HTTP/3 test (test/http3): Debian 12's nginx 1.22 has
# no HTTP/3. Prints the rootfs's path on stdout; everything else goes to
# stderr. How it is built and cached: hack/lib/rootfs.sh.
#
#	hack/trixie-rootfs.sh            # build if missing, print the path
#	hack/trixie-rootfs.sh --path     # print the path it would have, build nothing
#
# A cold build takes 40-60 s (2 cores, depending on the mirror) and 190 MB; a
# cached run, milliseconds.
set -euo pipefail

NAME=trixie
SUITE=trixie
VARIANT=minbase
# On top of minbase: the web server and the PHP the test converges.
PACKAGES=(nginx php8.4-fpm)
REQUIRED=(usr/sbin/nginx usr/sbin/php-fpm8.4 etc/nginx/nginx.conf)
TOOLS=(debootstrap:debootstrap)
RECIPE=1

# shellcheck source=hack/lib/rootfs.sh
source "$(dirname "$0")/lib/rootfs.sh"
rootfs_main "$@"
