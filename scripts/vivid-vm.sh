#!/usr/bin/env bash
# Runs one command in a short-lived qemu guest that has real V4L2 devices:
# the kernel's `vivid` test driver, from Debian's stock kernel package.
# The host kernel this project is built on may have no V4L2 at all; the
# guest sees the host's root file system read-only over 9p, so binaries
# built on the host run there unchanged.
#
#   scripts/vivid-vm.sh --prepare        fetch the kernel, build the initramfs (cached), exit
#   scripts/vivid-vm.sh --check          say whether a run can happen here; exit 0 if so
#   scripts/vivid-vm.sh [--] CMD [ARG…]  boot, run CMD as root in the current directory, power off
#
# The exit status is CMD's; 125 means the guest never reported one (no
# kernel, boot failure, timeout), 2 a usage error. CMD's output comes
# through the guest's serial console.
#
# Inside the guest:
#   /                   the host's root, read-only
#   the current dir     the host's, read-write, at the same path (results land on the host)
#   /tmp /run /dev/shm  fresh tmpfs (the host's /tmp is not visible)
#   lo                  up; no other network, unless FW_VM_FORWARD is set:
#   eth0                with FW_VM_FORWARD=HOSTPORT:GUESTPORT, 10.0.2.15 on
#                       qemu's user network, restricted (the guest reaches
#                       nothing outside); 127.0.0.1:HOSTPORT on the host
#                       reaches GUESTPORT in the guest
#   modprobe            finds the guest kernel's modules, so
#                       `rmmod vivid; modprobe vivid n_devs=2` works
#
# Knobs: FW_VM_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/framewire-vm),
# FW_VM_KERNEL_PKG (default linux-image-amd64), FW_VM_MEM (1024M),
# FW_VM_CPUS (2), FW_VM_ACCEL (auto|kvm|tcg), FW_VM_TIMEOUT (seconds, 600),
# FW_VM_VIVID_OPTS (vivid module parameters), FW_VM_VERBOSE=1 (boot log),
# FW_VM_FORWARD (HOSTPORT:GUESTPORT, one TCP port into the guest).
set -euo pipefail

say() { printf 'vivid-vm: %s\n' "$*" >&2; }
fail() { say "$*"; exit 125; }

CACHE=${FW_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/framewire-vm}
KPKG=${FW_VM_KERNEL_PKG:-linux-image-amd64}
MEM=${FW_VM_MEM:-1024M}
CPUS=${FW_VM_CPUS:-2}
ACCEL=${FW_VM_ACCEL:-auto}
TIMEOUT=${FW_VM_TIMEOUT:-600}
VERBOSE=${FW_VM_VERBOSE:-0}

mode=run
case "${1:-}" in
  --prepare) mode=prepare; shift ;;
  --check) mode=check; shift ;;
  --help | -h) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --) shift ;;
esac
if [ $mode = run ] && [ $# -eq 0 ]; then
  echo "usage: $0 [--prepare | --check | [--] COMMAND [ARG…]]" >&2
  exit 2
fi

# --- host tools -------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=("qemu-system-x86_64 (package qemu-system-x86)")
bb_ldd=$(command -v busybox >/dev/null && LC_ALL=C ldd "$(command -v busybox)" 2>&1 || true)
[[ $bb_ldd == *"not a dynamic"* ]] || missing+=("a static busybox (package busybox-static)")
command -v depmod >/dev/null || [ -x /sbin/depmod ] || missing+=("depmod (package kmod)")
command -v v4l2-ctl >/dev/null || missing+=("v4l2-ctl (package v4l-utils)")
((${#missing[@]} == 0)) || fail "missing on this host: ${missing[*]}; scripts/setup.sh installs them"
DEPMOD=$(command -v depmod || echo /sbin/depmod)
MODPROBE=$(command -v modprobe || echo /sbin/modprobe)
BUSYBOX=$(command -v busybox)

# --- kernel: Debian's package unpacked into the cache, never installed --------
KROOT=$CACHE/kernel
kver() { cat "$CACHE/kernel.version" 2>/dev/null; }
if [ -z "$(kver)" ] || [ ! -d "$KROOT/lib/modules/$(kver)" ]; then
  [ $mode = check ] && fail "no guest kernel in $CACHE yet; run: scripts/vivid-vm.sh --prepare"
  mkdir -p "$CACHE"
  # linux-image-amd64 is a meta package: the image is what it depends on.
  pkg=$(apt-cache depends "$KPKG" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  pkg=${pkg:-$KPKG}
  say "downloading $pkg into $CACHE (once)"
  rm -f "$CACHE"/*.deb
  (cd "$CACHE" && { apt-get download "$pkg" >/dev/null 2>&1 || { apt-get update -qq && apt-get download "$pkg" >/dev/null; }; }) ||
    fail "cannot download $pkg with apt-get"
  deb=$(ls "$CACHE"/*.deb | head -n1)
  rm -rf "$KROOT" && mkdir -p "$KROOT"
  dpkg-deb -x "$deb" "$KROOT"
  v=$(ls "$KROOT/lib/modules" | head -n1)
  "$DEPMOD" -b "$KROOT" "$v" # the package's postinst would have done this
  echo "$v" >"$CACHE/kernel.version"
  rm -f "$deb"
fi
KVER=$(kver)
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || fail "kernel image $VMLINUZ is missing; remove $CACHE and prepare again"
find "$KROOT/lib/modules/$KVER" -name 'vivid.ko*' | grep -q . || fail "kernel $KVER has no vivid module"

# --- initramfs: busybox, the modules to mount 9p, vivid and what it needs ------
INITRD=$CACHE/initramfs-$KVER.gz
stamp=$(sha256sum "$0" | cut -c1-16)
if [ ! -s "$INITRD" ] || [ "$(cat "$INITRD.stamp" 2>/dev/null)" != "$stamp" ]; then
  [ $mode = check ] && fail "the initramfs is missing or stale; run: scripts/vivid-vm.sh --prepare"
  say "building the initramfs for $KVER"
  ir=$(mktemp -d "$CACHE/ir.XXXXXX")
  mkdir -p "$ir"/{bin,dev,proc,sys,root,ko}
  cp "$BUSYBOX" "$ir/bin/busybox"
  # The load order comes from the host's modprobe, so the guest needs only insmod.
  order() {
    local list=$1
    shift
    for m in "$@"; do "$MODPROBE" -d "$KROOT" -S "$KVER" --show-depends "$m"; done |
      awk '$1 == "insmod" && !seen[$2]++ {print $2}' |
      while read -r ko; do
        cp "$ko" "$ir/ko/"
        basename "$ko"
      done >"$ir/ko/$list"
  }
  order boot virtio_pci 9pnet_virtio 9p virtio_net
  order vivid vivid
  cat >"$ir/init" <<'GUEST'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
quiet=1
grep -q fw_vm.verbose /proc/cmdline && { quiet=0; set -x; } || echo 1 >/proc/sys/kernel/printk
off() {
  sync
  [ $quiet = 1 ] && echo 0 >/proc/sys/kernel/printk
  poweroff -f; sleep 5; echo o >/proc/sysrq-trigger
}
die() { echo "vivid-vm guest: $*"; off; }

for ko in $(cat /ko/boot); do insmod "/ko/$ko" || die "insmod $ko"; done
# virtio devices are probed in the background: wait for the four shares.
n=0
until [ "$(ls -d /sys/bus/virtio/drivers/9pnet_virtio/virtio* 2>/dev/null | wc -l)" -ge 4 ]; do
  n=$((n + 1)); [ $n -gt 1000 ] && die "the 9p shares did not appear"; sleep 0.01
done
P9=trans=virtio,version=9p2000.L,msize=512000
R=/root
mount -t 9p -o ro,$P9,cache=loose host $R || die "cannot mount the host root"
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mount -t tmpfs -o mode=755 tmpfs $R/run
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mkdir -p $R/run/fw-vm $R/run/fw-vm-modules/lib/modules
mount -t 9p -o $P9,cache=none ctl $R/run/fw-vm || die "cannot mount the control share"
mount -t 9p -o ro,$P9,cache=loose modules $R/run/fw-vm-modules/lib/modules || die "cannot mount the modules"
WORK=$(cat $R/run/fw-vm/workdir)
mkdir -p "$R$WORK" 2>/dev/null
mount -t 9p -o $P9,cache=none work "$R$WORK" || die "cannot mount $WORK"

for ko in $(cat /ko/vivid); do
  if [ "$ko" = vivid.ko ] || [ "$ko" = vivid.ko.xz ] || [ "$ko" = vivid.ko.zst ]; then
    insmod "/ko/$ko" $(cat $R/run/fw-vm/vivid_opts) || die "insmod vivid"
  else
    insmod "/ko/$ko" || die "insmod $ko"
  fi
done
n=0
until [ -e $R/dev/video0 ]; do n=$((n + 1)); [ $n -gt 500 ] && break; sleep 0.01; done
ip link set lo up
if [ -e $R/run/fw-vm/net ]; then
  n=0
  until [ -e /sys/class/net/eth0 ]; do n=$((n + 1)); [ $n -gt 500 ] && die "no eth0 for FW_VM_FORWARD"; sleep 0.01; done
  ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || die "cannot configure eth0"
fi

stty -F /dev/console -onlcr 2>/dev/null
chroot $R /bin/bash /run/fw-vm/run.sh </dev/console >/dev/console 2>&1
echo $? >$R/run/fw-vm/status
umount "$R$WORK" $R/run/fw-vm 2>/dev/null
off
GUEST
  chmod +x "$ir/init"
  (cd "$ir" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1) >"$INITRD.new"
  mv "$INITRD.new" "$INITRD"
  echo "$stamp" >"$INITRD.stamp"
  rm -rf "$ir"
fi

case $mode in
  prepare) say "ready: kernel $KVER, $INITRD"; exit 0 ;;
  check) say "ready: kernel $KVER"; exit 0 ;;
esac

# --- one run ------------------------------------------------------------------
ctl=$(mktemp -d "${TMPDIR:-/tmp}/fw-vm.XXXXXX")
trap 'rm -rf "$ctl"' EXIT
trap 'exit 130' INT TERM
WORK=$(pwd -P)
echo "$WORK" >"$ctl/workdir"
echo "${FW_VM_VIVID_OPTS:-}" >"$ctl/vivid_opts"
net=()
if [ -n "${FW_VM_FORWARD:-}" ]; then
  [[ $FW_VM_FORWARD =~ ^([0-9]+):([0-9]+)$ ]] || { echo "FW_VM_FORWARD: expected HOSTPORT:GUESTPORT, got $FW_VM_FORWARD" >&2; exit 2; }
  # restrict=on: the guest reaches nothing, only the forwarded port reaches it.
  net=(-netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${BASH_REMATCH[1]}-10.0.2.15:${BASH_REMATCH[2]}"
    -device virtio-net-pci,netdev=n0)
  touch "$ctl/net"
fi
mkdir "$ctl/bin"
printf '#!/bin/sh\nexec %s -d /run/fw-vm-modules "$@"\n' "$MODPROBE" >"$ctl/bin/modprobe"
chmod +x "$ctl/bin/modprobe"
{
  printf 'export PATH=/run/fw-vm/bin:%q HOME=%q TERM=dumb FW_VM_GUEST=1\n' "$PATH" "${HOME:-/root}"
  printf 'cd %q || exit 126\n' "$WORK"
  printf '%q ' "$@"
  echo
} >"$ctl/run.sh"

# KVM only with a hardware-virtualisation module: a /dev/kvm backed by
# anything else may not boot a stock kernel. TCG is slower but works anywhere.
if [ "$ACCEL" = auto ]; then
  ACCEL=tcg
  if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then ACCEL=kvm; fi
fi
case $ACCEL in
  kvm) accel=(-accel kvm -cpu host,-arch-capabilities) ;;
  *) accel=(-accel tcg,thread=multi -cpu max) ;;
esac
append="console=ttyS0 panic=-1 rdinit=/init tsc=reliable no_timer_check"
if [ "$VERBOSE" = 1 ]; then append+=" loglevel=7 fw_vm.verbose"; else append+=" quiet loglevel=1"; fi

share() { # tag path [readonly]
  local ro=""
  [ "${3:-}" = ro ] && ro=",readonly=on"
  echo "-fsdev local,id=$1,path=$2,security_model=none$ro,multidevs=remap -device virtio-9p-pci,fsdev=$1,mount_tag=$1"
}
say "booting $KVER ($ACCEL, $CPUS cpus, $MEM): $*"
t0=$(date +%s)
set +e
# shellcheck disable=SC2046 # share prints words on purpose
timeout --foreground -k 5 "$TIMEOUT" qemu-system-x86_64 \
  -machine q35 "${accel[@]}" -smp "$CPUS" -m "$MEM" \
  -nodefaults -no-user-config -display none -vga none -no-reboot -monitor none -serial stdio \
  -kernel "$VMLINUZ" -initrd "$INITRD" -append "$append" \
  $(share host / ro) $(share work "$WORK") $(share ctl "$ctl") $(share modules "$KROOT/lib/modules" ro) \
  "${net[@]}"
q=$?
set -e
[ $q = 124 ] || [ $q = 137 ] && say "killed after ${TIMEOUT}s (FW_VM_TIMEOUT)"
[ -s "$ctl/status" ] || fail "the guest reported no exit status (qemu status $q)"
status=$(cat "$ctl/status")
say "exit status $status after $(($(date +%s) - t0)) s"
exit "$status"
