#!/usr/bin/env python3
"""Renders a LAVA device dictionary the way lava-server does (lava_scheduler_app/environment.py:
a sandboxed jinja2 environment, autoescape off, trim_blocks on, the device dictionaries' and the
device types' directories on the loader path).

    render.py LAVA_DEVICE_TYPES DEVICE.jinja2 [--board-dir DIR] [--commands METHOD]

LAVA_DEVICE_TYPES holds LAVA's own templates (base.jinja2, base-uboot.jinja2: from Debian's
lava-server package, `cargo xtask lava` extracts them); tools/lava/device-types is searched
before it. Prints the device configuration (YAML) lava-run takes, with BOARD_DIR replaced by
--board-dir; with --commands, only the u-boot method's command list for METHOD (e.g. ramdisk),
one per line, as the template gives them (placeholders unsubstituted).
"""
import argparse
import os
import sys

import jinja2
import jinja2.sandbox
import yaml


def render(lava_types, device, board_dir):
    here = os.path.dirname(os.path.abspath(__file__))
    env = jinja2.sandbox.SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(
            [
                os.path.dirname(os.path.abspath(device)),
                os.path.join(here, "device-types"),
                lava_types,
            ]
        ),
        autoescape=False,
        trim_blocks=True,
    )
    text = env.get_template(os.path.basename(device)).render()
    if board_dir:
        text = text.replace("BOARD_DIR", board_dir)
    return text


def main():
    p = argparse.ArgumentParser()
    p.add_argument("lava_types")
    p.add_argument("device")
    p.add_argument("--board-dir")
    p.add_argument("--commands")
    a = p.parse_args()
    text = render(a.lava_types, a.device, a.board_dir)
    config = yaml.safe_load(text)
    if a.commands:
        uboot = config["actions"]["boot"]["methods"]["u-boot"]
        for c in uboot[a.commands]["commands"]:
            print(c)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
