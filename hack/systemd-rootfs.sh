#!/usr/bin/env bash
# Builds, once, a Debian 12 (bookworm) root filesystem that boots systemd
# (systemd-nspawn --boot) and has PHP-FPM 8.2, for the systemd runner's test
# in internal/host/phpfpm (systemd_test.go): that test needs systemd as PID 1,
# which neither our machines nor CI have. Prints the rootfs's path on stdout;
# everything else goes to stderr.
#
#	hack/systemd-rootfs.sh            # build if missing, print the path
#	hack/systemd-rootfs.sh --path     # print the path it would have, build nothing
#
# The same approach as hack/trixie-rootfs.sh: the rootfs lives in
# $WCP_ROOTFS_CACHE (default /var/cache/wcp360/rootfs) as
# bookworm-systemd-<hash>, the hash covering the suite, variant, packages
# and recipe version; it is built in a temporary directory and renamed into
# place only when complete, under a lock. Nothing boots it directly: the test
# boots an overlay over it (systemd-nspawn --volatile=overlay), so it stays
# clean.
#
# Installs systemd-container (systemd-nspawn) and debootstrap with apt-get
# when they are missing. Needs root, and the Debian mirror
# ($WCP_DEBIAN_MIRROR, default http://deb.debian.org/debian) for the first
# build. A cold build takes about a minute and a half (2 cores, depending on
# the mirror) and ~250 MB; a cached run, milliseconds.
set -euo pipefail

SUITE=bookworm
VARIANT=minbase
# On top of minbase: an init that boots (systemd-sysv gives /sbin/init) and
# the PHP the test supervises.
PACKAGES=(systemd systemd-sysv php8.2-fpm)
# Bump when the recipe below changes what ends up in the rootfs.
RECIPE=1
MIRROR=${WCP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${WCP_ROOTFS_CACHE:-/var/cache/wcp360/rootfs}

hash=$(printf '%s\n' "$SUITE" "$VARIANT" "$RECIPE" "${PACKAGES[@]}" | sha256sum | cut -c1-12)
dest=$CACHE/$SUITE-systemd-$hash
marker=.wcp360-rootfs

log() { echo "systemd-rootfs: $*" >&2; }

complete() { [[ -f $1/$marker && -x $1/lib/systemd/systemd && -x $1/usr/sbin/php-fpm8.2 ]]; }

need_tools() {
	local missing=()
	command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
	command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
	((${#missing[@]} == 0)) && return 0
	if [[ $(id -u) -ne 0 ]]; then
		log "missing ${missing[*]}; run as root to install them"
		exit 1
	fi
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

if [[ ${1:-} == --path ]]; then
	echo "$dest"
	exit 0
fi
need_tools
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
for old in "$CACHE"/.build-*; do
	[[ -e $old ]] || continue
	log "removing the leftover $old"
	rm -rf --one-file-system "$old"
done

start=$SECONDS
tmp=$(mktemp -d "$CACHE/.build-$SUITE-systemd-$hash.XXXXXX")
chmod 755 "$tmp"
include=$(
	IFS=,
	echo "${PACKAGES[*]}"
)
log "debootstrap $SUITE ($VARIANT + ${PACKAGES[*]}) from $MIRROR into $tmp"
# Stage 1: download and unpack, in its own mount namespace.
unshare --mount --propagation private \
	debootstrap --foreign --variant="$VARIANT" --include="$include" --components=main \
	"$SUITE" "$tmp" "$MIRROR" >&2

# Stage 2: configure, without the network, in new mount, PID and network
# namespaces so that nothing a package's script starts outlives the build.
unshare --mount --net --pid --fork --propagation private \
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive \
	chroot "$tmp" /debootstrap/debootstrap --second-stage >&2

# The booted container needs only systemd and what the test starts: keep the
# distribution's php-fpm8.2.service from starting at boot (the test runs its
# own masters), and boot to the basic target without gettys.
rm -f "$tmp"/etc/systemd/system/multi-user.target.wants/php8.2-fpm.service
ln -sfn /lib/systemd/system/multi-user.target "$tmp"/etc/systemd/system/default.target
: >"$tmp"/etc/machine-id

for f in lib/systemd/systemd sbin/init usr/sbin/php-fpm8.2; do
	if [[ ! -e $tmp/$f ]]; then
		log "the new rootfs has no /$f"
		exit 1
	fi
done
rm -f "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_Packages
{
	echo "suite=$SUITE variant=$VARIANT recipe=$RECIPE packages=${PACKAGES[*]}"
	echo "mirror=$MIRROR built=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$((SECONDS - start))"
} >"$tmp/$marker"
sync -f "$tmp/$marker"
mv -T "$tmp" "$dest"
log "built $dest in $((SECONDS - start)) s ($(du -sh --one-file-system "$dest" | cut -f1))"
echo "$dest"
