# shellcheck shell=bash
# Builds, once, a cached Debian root filesystem for a test, and prints its
# path. Sourced by hack/trixie-rootfs.sh and hack/systemd-rootfs.sh, which
# set, before calling rootfs_main "$@":
#
#	NAME       the cache entry's prefix and the log's name (trixie, bookworm-systemd)
#	SUITE      the Debian suite (trixie, bookworm)
#	VARIANT    debootstrap's variant (minbase)
#	PACKAGES   array: what goes on top of the variant
#	REQUIRED   array: files (relative to the root) the test needs; a rootfs
#	           without one of them is not complete
#	TOOLS      array: "command:package" pairs installed with apt-get when missing
#	RECIPE     bumped when what ends up in the rootfs changes
#	customize  optional function, called with the new root before it is sealed
#
# The rootfs lives in $WCP_ROOTFS_CACHE (default /var/cache/wcp360/rootfs) as
# NAME-<hash>, the hash covering the suite, variant, recipe and packages:
# change any of them and a new one is built next to the old. It is a cache
# entry of hack/lib/cache.sh: built aside and renamed into place when
# complete, under a lock shared by every rootfs of the cache.
# Tests never use it directly: they mount it as the lower layer of an overlay.
#
# debootstrap runs in two stages: the first downloads and unpacks (with the
# network, in a private mount namespace); the second configures the packages
# in a chroot inside new mount, PID and network namespaces. debootstrap
# forbids starting services while it configures (policy-rc.d); the
# namespaces make sure that whatever a package's script starts anyway can
# neither reach the host's network nor outlive the build.
#
# Needs root, and the Debian mirror ($WCP_DEBIAN_MIRROR, default
# http://deb.debian.org/debian) for the first build.

# shellcheck source=hack/lib/cache.sh
source "$(dirname "${BASH_SOURCE[0]}")/cache.sh"

rootfs_complete() {
	local f
	[[ -f $1/.wcp360-rootfs ]] || return 1
	for f in "${REQUIRED[@]}"; do
		[[ -e $1/$f ]] || return 1
	done
}

rootfs_tools() {
	local missing=() t
	for t in "${TOOLS[@]}"; do
		command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
	done
	((${#missing[@]} == 0)) && return 0
	cache_log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

rootfs_main() {
	local mirror=${WCP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
	local cache=${WCP_ROOTFS_CACHE:-/var/cache/wcp360/rootfs}
	local hash dest
	hash=$(printf '%s\n' "$SUITE" "$VARIANT" "$RECIPE" "${PACKAGES[@]}" | sha256sum | cut -c1-12)
	dest=$cache/$NAME-$hash
	CACHE_NAME=$NAME-rootfs
	cache_get "$dest" rootfs_complete "$@" && return 0
	rootfs_tools
	cache_lock "$cache" "$dest" rootfs_complete "$NAME" && return 0

	local start=$SECONDS tmp include
	cache_tmp "$cache" "$NAME"
	tmp=$CACHE_TMP
	include=$(
		IFS=,
		echo "${PACKAGES[*]}"
	)
	cache_log "debootstrap $SUITE ($VARIANT + ${PACKAGES[*]}) from $mirror into $tmp"
	unshare --mount --propagation private \
		debootstrap --foreign --variant="$VARIANT" --include="$include" --components=main \
		"$SUITE" "$tmp" "$mirror" >&2
	# If this script is killed, so is everything in the namespace.
	unshare --mount --net --pid --fork --kill-child --propagation private \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive \
		chroot "$tmp" /debootstrap/debootstrap --second-stage >&2

	if declare -F customize >/dev/null; then
		customize "$tmp"
	fi
	local f
	for f in "${REQUIRED[@]}"; do
		if [[ ! -e $tmp/$f ]]; then
			cache_log "the new rootfs has no /$f"
			return 1
		fi
	done
	# The downloaded packages are not needed any more.
	rm -f "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_Packages
	{
		echo "suite=$SUITE variant=$VARIANT recipe=$RECIPE packages=${PACKAGES[*]}"
		echo "mirror=$mirror built=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$((SECONDS - start))"
	} >"$tmp/.wcp360-rootfs"
	cache_seal "$tmp" "$dest"
	cache_log "built $dest in $((SECONDS - start)) s ($(du -sh --one-file-system "$dest" | cut -f1))"
	echo "$dest"
}
