#!/usr/bin/env bash
# Builds the recovery live ISO from Debian 12 packages: ./image-build/build.sh [OUTDIR]
#
# Output: OUTDIR/recovery.iso (hybrid: BIOS + UEFI + Secure Boot, CD or raw USB stick),
# OUTDIR/{vmlinuz,initrd.img} (the ISO's own, for booting the kernel directly),
# OUTDIR/recovery.iso.manifest (Debian and Python package versions inside the image).
# Stages are cached in OUTDIR keyed on their inputs: a second run with unchanged inputs does
# nothing, a change to our Python code only redoes the squashfs and the ISO.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
OUT="$(mkdir -p "${1:-$REPO/build}" && cd "${1:-$REPO/build}" && pwd)"
SUITE=bookworm
MIRROR="${RECOVERY_MIRROR:-http://deb.debian.org/debian}"
PYTHON="${PYTHON:-python3}"
log() { printf 'build: [%3d s] %s\n' "$SECONDS" "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "build.sh must run as root (mmdebstrap --mode=root)" >&2; exit 1; }
for tool in mmdebstrap mksquashfs xorriso grub-mkimage mkfs.msdos mcopy strip; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run tests/setup.sh" >&2; exit 1; }
done

# One build at a time per OUTDIR (two test sessions may ask at once); the second waits and
# then finds the ISO up to date.
exec 9>"$OUT/.lock"
flock 9

hash_of() { cat "$@" | sha256sum | cut -c1-16; }
list_files() { (cd "$REPO" && find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort); }

BASE_KEY="$(hash_of "$HERE/packages.txt" "$HERE/exclude.txt" "$HERE/requirements.txt" \
  $(list_files image-build/initramfs | sed "s|^|$REPO/|") \
  "$HERE/initramfs-hook-no-net" \
  <(sed -n '/^# BASE-STAGE-BEGIN/,/^# BASE-STAGE-END/p' "$0"))"
ISO_KEY="$(cd "$REPO" && hash_of <(echo "$BASE_KEY") $(list_files recovery image-build pyproject.toml))"

if [ -f "$OUT/recovery.iso" ] && [ "$(cat "$OUT/recovery.iso.key" 2>/dev/null)" = "$ISO_KEY" ]; then
  log "up to date: $OUT/recovery.iso"
  exit 0
fi
START=$SECONDS

# BASE-STAGE-BEGIN
# Wheels are made on the host: pip inside the chroot cannot reach the registry.
WHEELS="$OUT/wheels-$BASE_KEY"
if [ ! -f "$WHEELS/.done" ]; then
  log "making wheels into $WHEELS"
  rm -rf "$OUT"/wheels-* && mkdir -p "$WHEELS"
  # (grep: this host's pip configuration names local indexes that may be absent.)
  "$PYTHON" -m pip wheel -q --disable-pip-version-check -w "$WHEELS" \
    -r "$HERE/requirements.txt" 2>&1 | { grep -v "is ignored: it is neither" >&2 || true; }
  "$PYTHON" -m pip download -q --disable-pip-version-check --only-binary=:all: --no-deps \
    -d "$WHEELS" pip 2>&1 | { grep -v "is ignored: it is neither" >&2 || true; }
  ls "$WHEELS"/pip-*.whl "$WHEELS"/pyparted-*.whl >/dev/null
  touch "$WHEELS/.done"
fi

BASE="$OUT/base-$BASE_KEY.tar"
if [ ! -f "$BASE" ]; then
  log "mmdebstrap $SUITE (minbase) into $BASE"
  rm -f "$OUT"/base-*.tar
  excludes=()
  while read -r pattern; do excludes+=(--dpkgopt="path-exclude=$pattern"); done \
    < <(grep -v -e '^#' -e '^$' "$HERE/exclude.txt")
  pipwheel="$(basename "$(ls "$WHEELS"/pip-*.whl)")"
  packages="$(grep -v -e '^#' -e '^$' "$HERE/packages.txt" | paste -sd, -)"
  # The merged-usr hook lays out merged /usr itself (as debootstrap does) and installs
  # usr-is-merged; without it the essential init-system-helpers pulls in usrmerge, and with
  # it the whole of Perl (45 MiB unpacked, 9 MiB of the ISO) for a conversion never run.
  mmdebstrap --mode=root --variant=minbase --include="$packages" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --components=main,non-free-firmware \
    --aptopt='APT::Install-Recommends "false"' "${excludes[@]}" \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-include=/lib/firmware/rtl_nic/*' \
    --dpkgopt='path-include=/usr/lib/firmware/rtl_nic/*' \
    --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"' \
    --setup-hook="cp '$HERE/initramfs.conf' \"\$1/etc/initramfs-tools/conf.d/recovery.conf\"" \
    --setup-hook="mkdir -p \"\$1/etc/initramfs-tools/scripts\" && cp -r '$HERE/initramfs/.' \"\$1/etc/initramfs-tools/scripts/\"" \
    --setup-hook='mkdir -p "$1/etc/initramfs-tools/hooks"' \
    --setup-hook="install -m 755 '$HERE/initramfs-hook-no-net' \"\$1/etc/initramfs-tools/hooks/recovery-no-net\"" \
    --customize-hook="mkdir -p \"\$1/tmp/wheels\" && cp '$WHEELS'/*.whl '$HERE/requirements.txt' \"\$1/tmp/wheels/\"" \
    --customize-hook="chroot \"\$1\" python3 /tmp/wheels/$pipwheel/pip install -q --no-index --find-links /tmp/wheels --break-system-packages --root-user-action=ignore --no-warn-script-location -r /tmp/wheels/requirements.txt" \
    --customize-hook='rm -rf "$1/tmp/wheels" "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$OUT/base.partial.tar" "$MIRROR"
  mv "$OUT/base.partial.tar" "$BASE"
fi
# BASE-STAGE-END

log "installing recovery into the image"
ROOT="$OUT/root"
rm -rf "$ROOT" && mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$BASE"
ourwheels="$(mktemp -d)"
trap 'rm -rf "$ourwheels"' EXIT
# From a copy: setuptools would otherwise leave build/ and *.egg-info in the work tree.
mkdir "$ourwheels/src" && cp -r "$REPO/recovery" "$REPO/pyproject.toml" "$ourwheels/src/"
"$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$ourwheels" \
  "$ourwheels/src" 2>&1 \
  | { grep -v "is ignored: it is neither" >&2 || true; }
mkdir -p "$ROOT/tmp/ours" && cp "$ourwheels"/*.whl "$ROOT/tmp/ours/"
pipwheel="$(ls "$WHEELS"/pip-*.whl)"
cp "$pipwheel" "$ROOT/tmp/ours/"
chroot "$ROOT" sh -c "python3 /tmp/ours/$(basename "$pipwheel")/pip install -q --no-index \
  --no-deps --break-system-packages --root-user-action=ignore /tmp/ours/recovery-*.whl"
rm -rf "$ROOT/tmp/ours"
# The base stage's tarball clamps file times, so the .pyc files pip wrote there no longer
# match their sources and Python would recompile every module of Textual, rich, ... on
# each boot (into the RAM overlay, lost at power-off): 9 s of a TCG boot. Compile again.
chroot "$ROOT" python3 -m compileall -q -j 0 /usr/local/lib/python3.11/dist-packages
# What the TUI reads up to its first frame, for recovery-console to read ahead of it.
mkdir -p "$ROOT/usr/share/recovery"
chroot "$ROOT" python3 -m recovery.ui.tui.prefetch /usr/share/recovery/first-frame-files
# pip builds the binary wheels (zstandard, libyal's bindings, PyYAML) with their symbols
# and debug information: 40 MiB unpacked; stripped, the squashfs is 6.5 MiB smaller.
find "$ROOT/usr/local/lib" -name '*.so' -exec strip --strip-unneeded {} +
# udev reads only the compiled hwdb.bin (kept); its 8 MiB of sources would only matter to a
# `systemd-hwdb update`, which Debian runs from dpkg, never at boot.
rm -f "$ROOT"/usr/lib/udev/hwdb.d/*.hwdb
cp -a "$HERE/rootfs/." "$ROOT/"
chroot "$ROOT" systemctl -q enable recovery-console@tty1.service recovery-console@ttyS0.service \
  recovery-unattended.service getty@tty2.service systemd-networkd.service
# Consoles belong to the recovery program; no swap, no timers that touch the disks or network
# (smartd would poll every disk, the failing one too: health is read once, when listed).
for unit in getty@tty1.service serial-getty@ttyS0.service swap.target \
    smartmontools.service smartd.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
    fstrim.timer getty-static.service keyboard-setup.service console-setup.service \
    systemd-networkd-wait-online.service systemd-resolved.service \
    rpcbind.service rpcbind.socket nfs-client.target rpc-statd.service \
    rpc-statd-notify.service nfs-blkmap.service ssh.service; do
  ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
done
echo recovery > "$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 recovery\n' > "$ROOT/etc/hosts"
: > "$ROOT/etc/machine-id"

mkdir -p "$ROOT/usr/share/recovery"
{
  echo "# recovery live image, built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $SUITE"
  echo "# git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "## debian"
  chroot "$ROOT" dpkg-query -W -f='${Package}=${Version}\n'
  echo "## python"
  chroot "$ROOT" python3 -c 'import importlib.metadata as m
for d in sorted(m.distributions(), key=lambda d: d.metadata["Name"].lower()):
    print(d.metadata["Name"] + "==" + d.version)'
} > "$ROOT/usr/share/recovery/image-manifest.txt"
cp "$ROOT/usr/share/recovery/image-manifest.txt" "$OUT/recovery.iso.manifest"

log "squashfs"
TREE="$OUT/iso-tree"
rm -rf "$TREE" && mkdir -p "$TREE/live" "$TREE/.disk" "$TREE/boot/grub/i386-pc"
cp "$ROOT"/boot/vmlinuz-* "$TREE/live/vmlinuz"
cp "$ROOT"/boot/initrd.img-* "$TREE/live/initrd.img"
rm -rf "$ROOT"/boot/* "$ROOT"/tmp/* "$ROOT"/var/tmp/*
# 128 KiB blocks, not 1 MiB: a page fault in a small file decompresses its whole fragment
# block, and the kernel caches only 3 of them; at boot systemd's ~40 libraries thrashed
# that cache (1 MiB blocks: 30 s from exec to systemd's first line under TCG, 128K: 11 s).
mksquashfs "$ROOT" "$TREE/live/filesystem.squashfs" -comp zstd -Xcompression-level 15 -b 128K \
  -noappend -quiet
rm -rf "$ROOT"
echo "recovery live $(date -u +%Y%m%d)" > "$TREE/.disk/info"
cp "$HERE/grub/grub.cfg" "$TREE/boot/grub/grub.cfg"

log "boot loaders"
# BIOS: a GRUB core for El Torito; the same file system's grub.cfg is read by every path.
grub-mkimage -O i386-pc-eltorito -p /boot/grub -o "$TREE/boot/grub/i386-pc/eltorito.img" \
  biosdisk iso9660 part_msdos part_gpt search search_fs_file configfile normal linux serial \
  terminal echo test halt reboot
# UEFI + Secure Boot: Debian's signed shim and signed removable-media GRUB on a small ESP.
# No boot/grub/x86_64-efi/ on the ISO: signed GRUB would load its config from there first.
ESP="$OUT/efi.img"
rm -f "$ESP"
mkfs.msdos -C -n RECOVERYESP "$ESP" 8192 >/dev/null
mmd -i "$ESP" ::/EFI ::/EFI/BOOT ::/EFI/debian ::/boot ::/boot/grub
mcopy -i "$ESP" /usr/lib/shim/shimx64.efi.signed ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$ESP" /usr/lib/shim/mmx64.efi.signed ::/EFI/BOOT/mmx64.efi
mcopy -i "$ESP" /usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed ::/EFI/BOOT/grubx64.efi
mcopy -i "$ESP" "$HERE/grub/esp.cfg" ::/EFI/debian/grub.cfg
mcopy -i "$ESP" "$HERE/grub/esp.cfg" ::/boot/grub/grub.cfg

log "xorriso"
rm -f "$OUT/recovery.iso"
xorriso -as mkisofs -quiet -iso-level 3 -full-iso9660-filenames -R -J -V RECOVERY \
  --grub2-mbr /usr/lib/grub/i386-pc/boot_hybrid.img -partition_offset 16 \
  -c boot/boot.cat -b boot/grub/i386-pc/eltorito.img -no-emul-boot -boot-load-size 4 -boot-info-table \
  --grub2-boot-info \
  -eltorito-alt-boot -e --interval:appended_partition_2:all:: -no-emul-boot \
  -append_partition 2 0xef "$ESP" -appended_part_as_gpt \
  -o "$OUT/recovery.iso.part" "$TREE"
mv "$OUT/recovery.iso.part" "$OUT/recovery.iso"
# The kernel and initrd stay next to the ISO for direct (-kernel/-initrd) boots.
cp "$TREE/live/vmlinuz" "$TREE/live/initrd.img" "$OUT/"
rm -rf "$TREE"
echo "$ISO_KEY" > "$OUT/recovery.iso.key"
log "done in $((SECONDS - START)) s: $OUT/recovery.iso ($(du -m "$OUT/recovery.iso" | cut -f1) MiB)"
