# A flash-kernel style boot script: what Debian's flash-kernel writes to
# /boot/boot.scr for a board using its generic U-Boot template
# (bootscript/all/bootscr.uboot-generic), with the template's @@...@@ values
# filled as flash-kernel fills them (LINUX_KERNEL_CMDLINE from
# /etc/default/flash-kernel, the installed kernel version, BOOT_CMD booti).
# Written for parkboot's tests from flash-kernel's documented behaviour.
#
# Called by the distro boot scan with devtype, devnum, distro_bootpart
# (bootpart on older U-Boot), prefix, kernel_addr_r, fdt_addr_r and
# ramdisk_addr_r set.

# Serial consoles of some boards lack the baud rate
if test "${console}" = "ttymxc0" && test -n "${baudrate}"; then
  setenv console "${console},${baudrate}"
fi

if test -n "${console}"; then
  setenv bootargs "${bootargs} console=${console}"
fi

setenv bootargs "console=ttyAMA0 parkboot.poweroff=1 ${bootargs} quiet"

if test -z "${fk_kvers}"; then
   setenv fk_kvers '6.1.0-parkboot-arm64'
fi

# The DT: the one for this board from the kernel's dtbs, else the old name
if test -n "${fdtfile}"; then
   setenv fdtpath dtbs/${fk_kvers}/${fdtfile}
else
   setenv fdtpath dtb-${fk_kvers}
fi

if test -z "${distro_bootpart}"; then
  setenv partition ${bootpart}
else
  setenv partition ${distro_bootpart}
fi

if test -z "${fk_image_locations}"; then
  setenv fk_image_locations ${prefix}
fi

for pathprefix in ${fk_image_locations}
do
  if test -e ${devtype} ${devnum}:${partition} ${pathprefix}vmlinuz-${fk_kvers}
  then
    load ${devtype} ${devnum}:${partition} ${kernel_addr_r} ${pathprefix}vmlinuz-${fk_kvers} \
    && load ${devtype} ${devnum}:${partition} ${fdt_addr_r} ${pathprefix}${fdtpath} \
    && load ${devtype} ${devnum}:${partition} ${ramdisk_addr_r} ${pathprefix}initrd.img-${fk_kvers} \
    && echo "Booting Debian ${fk_kvers} from ${devtype} ${devnum}:${partition}..." \
    && booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}
  fi
done

# No versioned kernel: the unversioned names
for pathprefix in ${fk_image_locations}
do
  if test -e ${devtype} ${devnum}:${partition} ${pathprefix}vmlinuz
  then
    load ${devtype} ${devnum}:${partition} ${kernel_addr_r} ${pathprefix}vmlinuz \
    && load ${devtype} ${devnum}:${partition} ${fdt_addr_r} ${pathprefix}dtb \
    && load ${devtype} ${devnum}:${partition} ${ramdisk_addr_r} ${pathprefix}initrd.img \
    && echo "Booting Debian from ${devtype} ${devnum}:${partition}..." \
    && booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}
  fi
done
