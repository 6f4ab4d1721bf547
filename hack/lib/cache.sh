# shellcheck shell=bash
# A cache entry built once, atomically, under a lock: the pattern of
# hack/lib/rootfs.sh and hack/vm-kernel.sh. An entry is a directory
# DEST in CACHE that a COMPLETE function (called with a directory) accepts.
# It is built in a temporary directory and renamed into place only when
# complete, under the cache's lock, so an interrupted run never leaves
# something that passes for an entry; the next run removes its leftovers.
#
#	cache_get "$dest" complete "$@" && exit 0   # ready (or --path): printed
#	cache_lock "$cache" "$dest" complete "$prefix" && exit 0
#	cache_tmp "$cache" "$prefix"                # build in $CACHE_TMP ...
#	cache_seal "$CACHE_TMP" "$dest"             # ... then seal it
#
# CACHE_NAME names the caller in the log.

cache_log() { echo "${CACHE_NAME:-cache}: $*" >&2; }

# cache_get returns 0, with dest printed, when it is ready (or with
# --path, for its path alone); 1 when it must be built, which needs root.
cache_get() {
	local dest=$1 complete=$2
	if [[ ${3:-} == --path ]] || "$complete" "$dest"; then
		echo "$dest"
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		cache_log "building $dest needs root"
		exit 1
	fi
	return 1
}

# cache_lock takes the cache's lock (held until the script exits). It
# returns 0, with dest printed, when another run finished dest meanwhile;
# else it removes an incomplete dest and the leftovers of interrupted runs
# (.build-<prefix>-*) and returns 1: build now.
cache_lock() {
	local cache=$1 dest=$2 complete=$3 prefix=$4 old
	mkdir -p "$cache"
	chmod 755 "$cache"
	exec 9>"$cache/.lock"
	flock 9
	if "$complete" "$dest"; then
		echo "$dest"
		return 0
	fi
	if [[ -e $dest ]]; then
		cache_log "$dest exists but is incomplete; rebuilding it"
		rm -rf --one-file-system "$dest"
	fi
	for old in "$cache"/.build-"$prefix"-*; do
		[[ -e $old ]] || continue
		cache_log "removing the leftover $old"
		rm -rf --one-file-system "$old"
	done
	return 1
}

# cache_tmp makes the build directory, CACHE_TMP, removed when the script
# exits (sealed, it is not there any more).
cache_tmp() {
	CACHE_TMP=$(mktemp -d "$1/.build-$2-XXXXXX")
	chmod 755 "$CACHE_TMP"
	trap 'rm -rf --one-file-system "$CACHE_TMP"' EXIT
}

# cache_seal moves the finished built directory into place as dest.
cache_seal() {
	sync -f "$1"
	mv -T "$1" "$2"
}
