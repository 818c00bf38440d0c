//! The loader's own commands, as the shell lists them (`help`).

use crate::platform::Sh;
use crate::{cmd_boot, cmd_cpus, cmd_distro, cmd_fdt, cmd_info, cmd_net, cmd_storage as cs};
use alloc::string::String;
use shell::{CmdResult, Command};

type CmdFn = fn(&mut Sh, &[String]) -> CmdResult;

static LOADER_COMMANDS: &[(&str, &str, &str, CmdFn)] = &[
    (
        "bdinfo",
        "bdinfo",
        "print board info: loader, EL, DT, RAM, memory map, load addresses, boot time",
        cmd_info::cmd_bdinfo,
    ),
    (
        "bootstage",
        "bootstage [report]",
        "print the loader's stage timestamps (microseconds since entry)",
        cmd_info::cmd_bootstage,
    ),
    (
        "virtio",
        "virtio scan | virtio info | virtio read <addr> <blk#> <cnt>",
        "scan for, list, or read raw blocks from virtio block devices (device ${virtio_dev}, default 0)",
        cs::cmd_virtio,
    ),
    (
        "part",
        "part list virtio <dev> [-bootable] [<var>] | part uuid virtio <dev>:<part> [<var>]",
        "list a disk's partitions (or put their numbers in <var>); print a partition's UUID",
        cmd_distro::cmd_part,
    ),
    ("ls", "ls virtio <dev>[:<part>] [path]", "list files in a directory", cs::cmd_ls),
    (
        "load",
        "load virtio <dev>[:<part>] <addr> <path> [bytes [pos]]",
        "load a file into memory (sets filesize, fileaddr)",
        cs::cmd_load,
    ),
    (
        "fatload",
        "fatload virtio <dev>[:<part>] <addr> <path> [bytes [pos]]",
        "load a file from FAT into memory (alias of load)",
        cs::cmd_load,
    ),
    ("size", "size virtio <dev>[:<part>] <path>", "set filesize to a file's size", cs::cmd_size),
    (
        "fatwrite",
        "fatwrite virtio <dev>[:<part>] <addr> <path> <bytes>",
        "write memory to a file on FAT (create or replace)",
        cs::cmd_fatwrite,
    ),
    ("saveenv", "saveenv", "save the environment to virtio 0 (/parkboot.env, /parkboot-redund.env)", cs::cmd_saveenv),
    ("source", "source [addr]", "run a script (plain text or mkimage legacy script image) from memory", cs::cmd_source),
    (
        "cpus",
        "cpus",
        "list the CPUs: MPIDR, state (boot/parked/off/missing/lost), pen slot, gather time",
        cmd_cpus::cmd_cpus,
    ),
    (
        "booti",
        "booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>]",
        "boot an arm64 Linux Image or Image.gz (from a patched copy of the loader's DT by default)",
        cmd_boot::cmd_booti,
    ),
    (
        "bootm",
        "bootm <uImage_addr> [<initrd_addr>[:<size>] | -] [<fdt_addr>]",
        "boot a legacy (mkimage) arm64 kernel image",
        cmd_boot::cmd_bootm,
    ),
    (
        "fdt",
        "fdt addr [addr] | fdt move <fdt> <newaddr> [<len>] | fdt print [path] | fdt get value <var> <path> <prop> [<index>] | fdt get size <var> <path> [<prop>] | fdt get name <var> <path> <index> | fdt set <path> <prop> [value] | fdt rm <path> [prop] | fdt resize [extra] | fdt header | fdt chosen [<start> <size>] | fdt apply <addr>",
        "inspect and edit a device tree in memory",
        cmd_fdt::cmd_fdt,
    ),
    (
        "kaslrseed",
        "kaslrseed",
        "write a KASLR seed from a hardware RNG (RNDR or virtio-rng) into /chosen of the working fdt",
        cmd_fdt::cmd_kaslrseed,
    ),
    (
        "unzip",
        "unzip <srcaddr> <dstaddr> [<dstsize>]",
        "inflate a gzip file in memory (sets filesize)",
        cmd_distro::cmd_unzip,
    ),
    (
        "sysboot",
        "sysboot [-p] virtio <dev[:part]> <any|fat> [<addr>] [<filename>]",
        "boot from an extlinux.conf / syslinux menu file",
        cmd_distro::cmd_sysboot,
    ),
    (
        "distroboot",
        "distroboot",
        "U-Boot's distro boot: extlinux.conf, boot.scr.uimg, boot.scr, boot.cmd in / and /boot/ of every disk",
        cmd_distro::cmd_distroboot,
    ),
    (
        "dhcp",
        "dhcp [addr] [[ip:]file]",
        "get an address (and boot parameters) by DHCP; then TFTP bootfile unless autoload=no",
        cmd_net::cmd_dhcp,
    ),
    (
        "bootp",
        "bootp [addr] [[ip:]file]",
        "as dhcp (a plain BOOTP answer is taken too)",
        cmd_net::cmd_dhcp,
    ),
    ("ping", "ping <ip>", "send ICMP echo requests until the host answers (10 s)", cmd_net::cmd_ping),
    (
        "tftpboot",
        "tftpboot [addr] [[ip:]file]",
        "load a file by TFTP from ${serverip} (sets filesize, fileaddr)",
        cmd_net::cmd_tftpboot,
    ),
    (
        "tftp",
        "tftp [addr] [[ip:]file]",
        "load a file by TFTP (alias of tftpboot)",
        cmd_net::cmd_tftpboot,
    ),
    (
        "wget",
        "wget [addr] [[ip:]path | http://ip[:port]/path]",
        "load a file by HTTP/1.1 (sets filesize, fileaddr)",
        cmd_net::cmd_wget,
    ),
    (
        "pxe",
        "pxe get | pxe boot [addr]",
        "fetch a pxelinux.cfg file (by MAC, IP, default) to ${pxefile_addr_r}, or boot from one",
        cmd_net::cmd_pxe,
    ),
    (
        "bootscript",
        "bootscript",
        "find /boot.cmd, /boot/boot.cmd, /boot.scr or /boot/boot.scr on the disks and run it",
        cs::cmd_bootscript,
    ),
];

/// Registers the loader's commands with the shell.
pub fn register(sh: &mut Sh) {
    for &(name, usage, help, run) in LOADER_COMMANDS {
        sh.register(Command {
            name,
            usage,
            help,
            run,
        });
    }
    #[cfg(feature = "cmd-exception")]
    sh.register(Command {
        name: "exception",
        usage: "exception undefined|breakpoint|abort|panic",
        help: "raise an exception or a panic on purpose (test builds only)",
        run: crate::cmd_exception::cmd_exception,
    });
}
