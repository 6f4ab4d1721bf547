#!/usr/bin/env bash
# Fetches, once, what the kernel tests boot in QEMU (internal/testutil/vm):
# Debian's cloud kernel and an initramfs with busybox-static, the modules the
# tests need and an init that runs a test binary. Prints the directory that
# holds them (vmlinuz, initramfs.gz, kernel.release) on stdout; everything
# else goes to stderr.
#
#	hack/vm-kernel.sh            # build if missing, print the directory
#	hack/vm-kernel.sh --path     # print the directory it would use, build nothing
#
# Nothing is installed: the packages are fetched with `apt-get download` and
# unpacked with `dpkg-deb -x` in a temporary directory (never into /boot or
# /lib/modules). The result lives in $WCP_VM_CACHE (default
# /var/cache/wcp360/vm) as vm-<hash>, the hash covering the kernel and
# busybox versions apt offers, the module list and the recipe version: a new
# kernel in the mirror, or a change here, builds a new one next to the old.
# It is a cache entry of hack/lib/cache.sh: built aside and renamed into
# place only when complete, under a lock.
#
# The init (see below) mounts proc, sys, devtmpfs and cgroup2, loads the
# modules and runs /wcp/run, which the harness appends to the initramfs per
# run (a second cpio archive: the test binary and a script that runs it).
# Its output goes to the serial console between the markers WCP360-VM-BEGIN
# and WCP360-VM-END, and, with the exit status, to the results disk (the
# virtio disk whose serial is "results"), raw: a header line
# "WCP360-VM-RESULT <status> <bytes>" then the output. Then it powers off.
#
# Needs root and the Debian mirror for the first build (a few seconds and
# ~30 MB to download); a cached run only reads apt's package lists.
set -euo pipefail

# The modules the tests need; their dependencies come along.
MODULES=(virtio_pci virtio_blk xfs quota_v2 quota_tree loop)
# Bump when the recipe below changes what ends up in the directory.
RECIPE=2
CACHE=${WCP_VM_CACHE:-/var/cache/wcp360/vm}

CACHE_NAME=vm-kernel
# shellcheck source=hack/lib/cache.sh
source "$(dirname "$0")/lib/cache.sh"
log() { cache_log "$@"; }

# resolve sets kpkg (the versioned package linux-image-cloud-amd64 depends
# on), kver and bbver (the versions apt would install) from apt's lists.
resolve() {
	kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
	kver= bbver=
	[[ -n $kpkg ]] || return 0
	# One call for both: apt-cache reads all the lists each time.
	read -r kver bbver < <(apt-cache policy "$kpkg" busybox-static 2>/dev/null |
		awk '/^[^ ]/ { p = $1 } /Candidate:/ { v[p] = $2 } END { print v["'"$kpkg"':"], v["busybox-static:"] }')
}

resolve
if [[ -z $kver || -z $bbver || $kver == "(none)" || $bbver == "(none)" ]]; then
	if [[ $(id -u) -ne 0 ]]; then
		log "apt knows no linux-image-cloud-amd64 or busybox-static; run apt-get update as root"
		exit 1
	fi
	log "apt knows no linux-image-cloud-amd64 or busybox-static; running apt-get update"
	apt-get update -qq >&2
	resolve
fi
if [[ -z $kver || -z $bbver || $kver == "(none)" || $bbver == "(none)" ]]; then
	log "this system's apt offers no linux-image-cloud-amd64 or busybox-static (Debian 12 or later is needed)"
	exit 1
fi

hash=$(printf '%s\n' "$kpkg=$kver" "busybox-static=$bbver" "$RECIPE" "${MODULES[@]}" | sha256sum | cut -c1-12)
dest=$CACHE/vm-$hash
marker=.wcp360-vm

complete() { [[ -f $1/$marker && -s $1/vmlinuz && -s $1/initramfs.gz && -s $1/kernel.release ]]; }

cache_get "$dest" complete "$@" && exit 0
cache_lock "$CACHE" "$dest" complete vm && exit 0

start=$SECONDS
cache_tmp "$CACHE" vm
tmp=$CACHE_TMP
mkdir "$tmp/debs" "$tmp/pkg" "$tmp/out"

log "downloading $kpkg $kver and busybox-static $bbver"
# apt's download sandbox user cannot write into a root-only directory.
(cd "$tmp/debs" && apt-get download -q -o APT::Sandbox::User=root "$kpkg=$kver" "busybox-static=$bbver" >&2)
for deb in "$tmp"/debs/*.deb; do
	dpkg-deb -x "$deb" "$tmp/pkg"
done
bb=$tmp/pkg/bin/busybox
release=$(basename "$(find "$tmp/pkg/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -1)")
if [[ -z $release || ! -s $tmp/pkg/boot/vmlinuz-$release || ! -x $bb ]]; then
	log "the downloaded packages have no kernel, modules or busybox where expected"
	exit 1
fi

# The kernel package ships no modules.dep (depmod runs when it is
# installed); busybox's depmod makes one, to find the dependencies.
"$bb" depmod -b "$tmp/pkg" "$release"
moddir=lib/modules/$release
declare -A want=()
add() {
	local m=$1 path deps d
	path=$(awk -v m="/$m.ko:" 'index($0, m) { sub(/:.*/, ""); print; exit }' "$tmp/pkg/$moddir/modules.dep")
	if [[ -z $path ]]; then
		log "the kernel $release has no module $m"
		exit 1
	fi
	[[ -n ${want[$path]:-} ]] && return
	want[$path]=1
	deps=$(awk -v p="$path:" 'index($0, p) == 1 { sub(/^[^:]*:/, ""); print; exit }' "$tmp/pkg/$moddir/modules.dep")
	for d in $deps; do
		d=${d##*/}
		add "${d%.ko}"
	done
}
for m in "${MODULES[@]}"; do
	add "$m"
done

root=$tmp/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,mnt,wcp,"$moddir"}
cp "$bb" "$root/bin/busybox"
for p in "${!want[@]}"; do
	mkdir -p "$root/$moddir/$(dirname "$p")"
	cp "$tmp/pkg/$moddir/$p" "$root/$moddir/$p"
done
cp "$tmp/pkg/$moddir"/modules.{order,builtin} "$root/$moddir/"
"$bb" depmod -b "$root" "$release"

cat >"$root/init" <<EOF
#!/bin/busybox sh
# WCP360 kernel-test init (hack/vm-kernel.sh, recipe $RECIPE).
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
for m in ${MODULES[*]}; do
	modprobe \$m || echo "init: modprobe \$m failed"
done
# The virtio disks appear asynchronously.
i=0
while [ ! -b /dev/vda ] && [ \$i -lt 100 ]; do sleep 0.05; i=\$((i + 1)); done
results=
for d in /sys/block/vd*; do
	[ "\$(cat \$d/serial 2>/dev/null)" = results ] && results=/dev/\${d##*/}
done
echo WCP360-VM-BEGIN
if [ -x /wcp/run ]; then
	{ /wcp/run; echo \$? >/tmp/status; } 2>&1 | tee /tmp/output
else
	echo "init: no /wcp/run in the initramfs" | tee /tmp/output
	echo 127 >/tmp/status
fi
status=\$(cat /tmp/status)
echo "WCP360-VM-END \$status"
if [ -n "\$results" ]; then
	{ echo "WCP360-VM-RESULT \$status \$(wc -c </tmp/output)"; cat /tmp/output; } | dd of=\$results conv=fsync 2>/dev/null
else
	echo "init: no results disk"
fi
sync
poweroff -f
EOF
chmod 755 "$root/init"

(cd "$root" && find . | sort | "$bb" cpio -o -H newc 2>/dev/null) | gzip -6 >"$tmp/out/initramfs.gz"
cp "$tmp/pkg/boot/vmlinuz-$release" "$tmp/out/vmlinuz"
echo "$release" >"$tmp/out/kernel.release"
{
	echo "kernel=$kpkg=$kver busybox-static=$bbver recipe=$RECIPE modules=${MODULES[*]}"
	echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$((SECONDS - start))"
} >"$tmp/out/$marker"
chmod 644 "$tmp/out"/*
chmod 755 "$tmp/out"
cache_seal "$tmp/out" "$dest"
log "built $dest in $((SECONDS - start)) s ($(du -sh "$dest" | cut -f1), kernel $release)"
echo "$dest"
