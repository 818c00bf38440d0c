#!/bin/sh
# Regenerates extlinux.conf with Debian's own u-boot-update (package u-boot-menu 4.2.2,
# bookworm), as a Debian system with a separate FAT /boot partition would get it.
# Run as root:  unshare -m sh tests/distro/u-boot-menu/regenerate.sh
# with U_BOOT_MENU and LINUX_BASE pointing at the unpacked packages (apt-get download
# u-boot-menu linux-base; dpkg -x <deb> <dir>) and OVERLAY at parkboot-uart.dtbo
# (dtc -@ -I dts -O dtb of parkboot-uart.dts). Everything it mounts lives in the private
# mount namespace: /boot and /etc/default become empty tmpfs there, the host's are untouched.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
V=6.1.0-parkboot-arm64
mount -t tmpfs tmpfs /boot
mount -t tmpfs tmpfs /etc/default
cp "$HERE/default-u-boot" /etc/default/u-boot
# The boot partition's layout, seen from the installed system with /boot on its own partition.
mkdir -p /boot/boot/dtbo /boot/usr/lib/linux-image-$V/qemu
: > /boot/vmlinuz-$V
: > /boot/initrd.img-$V
: > /boot/usr/lib/linux-image-$V/qemu/virt.dtb
cp "$OVERLAY" /boot/boot/dtbo/
PATH="$LINUX_BASE/usr/bin:$PATH" PERL5LIB="$LINUX_BASE/usr/share/perl5" \
    sh "$U_BOOT_MENU/usr/sbin/u-boot-update"
cp /boot/extlinux/extlinux.conf "$HERE/extlinux.conf"
