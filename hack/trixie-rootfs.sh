#!/usr/bin/env bash
# Builds, once, a Debian 13 (trixie) root filesystem with nginx 1.26 and
# PHP-FPM 8.4 for the HTTP/3 test (test/http3): Debian 12's nginx 1.22 has
# no HTTP/3. Prints the rootfs's path on stdout; everything else goes to
# stderr.
#
#	hack/trixie-rootfs.sh            # build if missing, print the path
#	hack/trixie-rootfs.sh --path     # print the path it would have, build nothing
#
# The rootfs lives in $WCP_ROOTFS_CACHE (default /var/cache/wcp360/rootfs) as
# trixie-<hash>, the hash covering the suite, variant, packages and recipe
# version: change any of them and a new one is built next to the old. It is
# built in a temporary directory and renamed into place only when complete,
# under a lock, so an interrupted run never leaves something that passes for
# a rootfs (its leftovers are removed by the next run). Nothing uses it
# directly: the test mounts it as the lower layer of an overlay.
#
# debootstrap runs in two stages: the first downloads and unpacks (with the
# network, in a private mount namespace); the second configures the
# packages in a chroot inside new mount, PID and network namespaces.
# debootstrap forbids starting services while it configures (policy-rc.d);
# the namespaces make sure that whatever a package's script starts anyway
# can neither reach the host's network nor outlive the build.
#
# Needs root, and the Debian mirror ($WCP_DEBIAN_MIRROR, default
# http://deb.debian.org/debian) for the first build; installs debootstrap
# with apt-get when it is missing. A cold build takes 40-60 s (2 cores,
# depending on the mirror) and 190 MB; a cached run, milliseconds.
set -euo pipefail

SUITE=trixie
VARIANT=minbase
# On top of minbase: the web server and the PHP the test converges.
PACKAGES=(nginx php8.4-fpm)
# Bump when the recipe below changes what ends up in the rootfs.
RECIPE=1
MIRROR=${WCP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${WCP_ROOTFS_CACHE:-/var/cache/wcp360/rootfs}

hash=$(printf '%s\n' "$SUITE" "$VARIANT" "$RECIPE" "${PACKAGES[@]}" | sha256sum | cut -c1-12)
dest=$CACHE/$SUITE-$hash
marker=.wcp360-rootfs

log() { echo "trixie-rootfs: $*" >&2; }

complete() { [[ -f $1/$marker && -x $1/usr/sbin/nginx && -x $1/usr/sbin/php-fpm8.4 ]]; }

if [[ ${1:-} == --path ]]; then
	echo "$dest"
	exit 0
fi
if complete "$dest"; then
	echo "$dest"
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	log "building $dest needs root"
	exit 1
fi

mkdir -p "$CACHE"
chmod 755 "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
# Another run may have finished it while this one waited.
if complete "$dest"; then
	echo "$dest"
	exit 0
fi
if [[ -e $dest ]]; then
	log "$dest exists but is incomplete; rebuilding it"
	rm -rf --one-file-system "$dest"
fi
# Leftovers of interrupted runs (the lock says none is running).
for old in "$CACHE"/.build-"$SUITE"-*; do
	[[ -e $old ]] || continue
	log "removing the leftover $old"
	rm -rf --one-file-system "$old"
done

if ! command -v debootstrap >/dev/null 2>&1; then
	log "installing debootstrap"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends debootstrap >&2
fi

start=$SECONDS
tmp=$(mktemp -d "$CACHE/.build-$SUITE-$hash.XXXXXX")
trap 'rm -rf --one-file-system "$tmp"' EXIT
chmod 755 "$tmp"
include=$(
	IFS=,
	echo "${PACKAGES[*]}"
)
log "debootstrap $SUITE ($VARIANT + ${PACKAGES[*]}) from $MIRROR into $tmp"
# Stage 1: download and unpack. Its own mount namespace, so that nothing
# it might mount outlives it.
unshare --mount --propagation private \
	debootstrap --foreign --variant="$VARIANT" --include="$include" --components=main \
	"$SUITE" "$tmp" "$MIRROR" >&2

# Stage 2: configure, without the network; if this script is killed, so is
# everything in the namespace.
unshare --mount --net --pid --fork --kill-child --propagation private \
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive \
	chroot "$tmp" /debootstrap/debootstrap --second-stage >&2

# What the test needs, checked here rather than found missing later.
for f in usr/sbin/nginx usr/sbin/php-fpm8.4 etc/nginx/nginx.conf; do
	if [[ ! -e $tmp/$f ]]; then
		log "the new rootfs has no /$f"
		exit 1
	fi
done
# The downloaded packages are not needed any more.
rm -f "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_Packages
{
	echo "suite=$SUITE variant=$VARIANT recipe=$RECIPE packages=${PACKAGES[*]}"
	echo "mirror=$MIRROR built=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$((SECONDS - start))"
} >"$tmp/$marker"
sync -f "$tmp/$marker"
mv -T "$tmp" "$dest"
trap - EXIT
log "built $dest in $((SECONDS - start)) s ($(du -sh --one-file-system "$dest" | cut -f1))"
echo "$dest"
