//! tools/lava's device type against LAVA's own templates (no QEMU): the QEMU test of LAVA's
//! u-boot ramdisk method (tests/tests/net.rs, `qemu_harness::LavaRamdisk`) types exactly what
//! LAVA 2023.01 would type for a parkboot device, so a change of either side fails here.
//!
//! LAVA's base.jinja2 and base-uboot.jinja2 come from Debian's lava-server package
//! (`xtask::lava::ensure_templates`; `cargo xtask test` fetches them first). The rendering is
//! tools/lava/render.py, lava-server's own jinja2 settings; the placeholders are then filled
//! in as lava-dispatcher's `BootloaderCommandOverlay` does for a TFTP deploy without a TEE.
use qemu_harness::LavaRamdisk;
use std::process::Command;

fn render(args: &[&str]) -> String {
    let templates = xtask::lava::ensure_templates().unwrap_or_else(|e| panic!("{e}"));
    let tools = xtask::lava::tools_dir();
    let out = Command::new(xtask::lava::python())
        .arg(tools.join("render.py"))
        .arg(&templates)
        .arg(tools.join("devices/qemu-parkboot.jinja2"))
        .args(args)
        .output()
        .expect("python3 (python3-jinja2, python3-yaml)");
    assert!(
        out.status.success(),
        "render.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// lava-dispatcher 2023.01's substitution for `commands: ramdisk` after a TFTP deploy: the
/// TEE line goes (no TEE in the job), `{BOOTX}` is `booti <kernel> <ramdisk> <dtb>` (the
/// ramdisk has a u-boot header, so no `:size`), the rest are the deploy's paths.
fn substitute(line: &str, files: &[(&str, &str)], addrs: &[&str; 3]) -> Option<String> {
    if line.contains("{TEE") {
        return None;
    }
    let mut l = line.replace(
        "{BOOTX}",
        &format!("booti {} {} {}", addrs[0], addrs[1], addrs[2]),
    );
    for (k, v) in files {
        l = l.replace(k, v);
    }
    Some(l)
}

#[test]
fn the_device_type_gives_the_sequence_the_qemu_test_types() {
    let booti = render(&["--booti"]);
    let addrs: Vec<&str> = booti.split_whitespace().collect();
    assert_eq!(addrs, ["0x48200000", "0x4e600000", "0x4c200000"], "{booti}");
    let addrs = [addrs[0], addrs[1], addrs[2]];
    let (kernel, ramdisk, dtb) = (
        "1/tftp-deploy-x/kernel/Image",
        "1/tftp-deploy-x/ramdisk/ramdisk.cpio.gz.uboot",
        "1/tftp-deploy-x/dtb/virt.dtb",
    );
    let files = [
        ("{SERVER_IP}", "10.0.2.2"),
        ("{KERNEL_ADDR}", addrs[0]),
        ("{RAMDISK_ADDR}", addrs[1]),
        ("{DTB_ADDR}", addrs[2]),
        ("{KERNEL}", kernel),
        ("{RAMDISK}", ramdisk),
        ("{DTB}", dtb),
    ];
    let lava: Vec<String> = render(&["--commands", "ramdisk"])
        .lines()
        .filter_map(|l| substitute(l, &files, &addrs))
        .collect();
    let ours = LavaRamdisk {
        server_ip: "10.0.2.2",
        kernel_addr: addrs[0],
        ramdisk_addr: addrs[1],
        dtb_addr: addrs[2],
        kernel,
        ramdisk,
        dtb,
        console: "ttyAMA0,115200n8",
        kernel_args: "",
    }
    .commands();
    assert_eq!(lava, ours);
}

#[test]
fn the_device_type_keeps_lava_s_uboot_prompts_and_errors() {
    let dev = render(&[]);
    for want in [
        "bootloader_prompt: =>",
        "interrupt-prompt: 'Hit any key to stop autoboot'",
        "final-message: 'Starting kernel'",
        "- 'TFTP error'",
        "- 'Retry count exceeded'",
    ] {
        assert!(dev.contains(want), "{want} not in:\n{dev}");
    }
}
