#!/usr/bin/env bash
# Installs everything the demo and the tests need on Debian 12 (run as root); safe to repeat.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  ntfs-3g gdisk fdisk parted dosfstools exfatprogs mtools partclone udev util-linux
  libparted-dev pkg-config libvshadow-utils qemu-utils xz-utils zstd fuse3 python3-hivex smartmontools
  exfat-fuse exfatprogs  # a customer's exFAT stick as an extraction target (tests)
  # the live ISO build (image-build/build.sh) and the QEMU end-to-end tests (qemu/)
  mmdebstrap squashfs-tools xorriso binutils grub-pc-bin grub-efi-amd64-bin grub-efi-amd64-signed
  shim-signed ovmf qemu-system-x86 e2fsprogs
  # network image stores: servers the tests start on 127.0.0.1 (tests/netstore/servers.py),
  # the SSH store's client (the host kernel has no cifs or NFS client: those run in QEMU);
  # socat relays each guest connection of QEMU's guestfwd to its server (qemu/vm.py)
  openssh-server openssh-client sshfs samba nfs-ganesha nfs-ganesha-vfs socat
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The server packages' own services must never start (they would listen on every
  # address): the tests run their servers with throwaway configs on 127.0.0.1.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now ssh.service smbd.service nmbd.service nfs-ganesha.service \
      rpcbind.service rpcbind.socket 2>/dev/null || true
  fi
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 \
  | grep -v -e "is ignored: it is neither" -e "Running pip as the 'root'" >&2 || true
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true

# hivex (the BCD writer for restores that move partitions on MBR disks) has Python bindings
# only as a Debian package; an interpreter other than Debian's (pyenv) sees them through a
# .pth naming a directory that holds just those bindings, so nothing else of Debian's
# dist-packages shadows pip's packages.
if ! python3 -c 'import hivex' 2>/dev/null; then
  bindings=/usr/local/lib/recovery-debian-bindings
  mkdir -p "$bindings"
  ln -sfn /usr/lib/python3/dist-packages/hivex "$bindings/hivex"
  ln -sf /usr/lib/python3/dist-packages/libhivexmod.cpython-311-x86_64-linux-gnu.so "$bindings/"
  echo "$bindings" > "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/recovery-debian-bindings.pth"
fi

# udev is not running on a fresh machine; the disk listing and its tests need its database.
if ! pgrep -x systemd-udevd >/dev/null 2>&1; then
  /lib/systemd/systemd-udevd --daemon >/dev/null 2>&1 || true
  udevadm trigger >/dev/null 2>&1 || true
  udevadm settle --timeout=30 >/dev/null 2>&1 || true
fi
