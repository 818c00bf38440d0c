#!/usr/bin/env python3
"""Regenerate the seed corpora in tests/fuzz/corpus/<target>/.

Seeds come from the project's own fixtures:
  dt_parse      loader/tests/fixtures/*.dtb
  fdt_edit      the same DTBs, each with `fdt set/rm/print` edit scripts
  pen_ops       pens of 1-8 slots, no or a few scribbles, op sequences
  image_header  the first 64 bytes of build/kernel/Image (if present) and of
                target/loader.bin (if built), plus synthetic headers, each
                followed by a small memory-map description
  part_table,   drivers/tests/fixtures/*.img.gz, decompressed and converted
  fat           to the sparse-disk format of fuzz_common::SparseDisk, without
                the blocks of file contents (recognised by the fixtures'
                position pattern, see drivers/tests/fixtures/make.sh), so a
                40 MiB image becomes a few KiB of metadata
  shell_line    command lines in the style of docs/shell.md
  shell_input   console byte streams (keys, escape sequences, CPR replies)
  env_text      saveenv texts
  memmap_ops    a few op sequences
  tftp_client   TFTP exchanges (OACK + data, RFC 1350 only, window, error,
                timeouts) in the target's event format
  dhcp_reply    QEMU-style OFFER/ACK and a plain BOOTP reply
  http_response Content-Length, chunked, until-close, 404 and lying responses
  boot_config   extlinux.conf files in the style of Debian's u-boot-menu,
                Fedora and a pxelinux.cfg with includes
  booti_plan    the fixture DTBs with raw and gzip'd kernels (synthetic
                headers), initrds, pens and cpu_methods over a loader-like
                memory map

Run from anywhere: python3 tests/fuzz/mkcorpus.py [GENERATOR...]
(generators: the function names in main(); default all).
The corpora are then minimised with `cargo fuzz cmin` (cargo xtask fuzz cmin).
"""
import gzip
import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")


def put(target, data, name=None):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    name = name or hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- DTBs

def dtbs():
    fx = os.path.join(ROOT, "loader", "tests", "fixtures")
    for n in sorted(os.listdir(fx)):
        if n.endswith(".dtb"):
            put("dt_parse", open(os.path.join(fx, n), "rb").read(), "seed-" + n)


EDITS = [
    "set /chosen bootargs console=ttyAMA0 root=/dev/vda\nprint /chosen\n",
    "set /config/environment bootcmd run x\n",
    "set /chosen linux,initrd-start <0x0 0x48000000>\nset /chosen x [01 02 03]\nrm /chosen x\n",
    "set / model \"hello world\"\nrm /chosen\nprint /\n",
    "set /cpus/cpu@1 enable-method spin-table\nset /cpus/cpu@1 cpu-release-addr <0 0x7ff00340>\nrm /psci\n",
    "set /memory@40000000 reg <0 0x40000000 0 0x20000000>\nrm /memory@40000000 device_type\n",
]


def fdt_edits():
    fx = os.path.join(ROOT, "loader", "tests", "fixtures")
    for n in sorted(os.listdir(fx)):
        if not n.endswith(".dtb"):
            continue
        blob = open(os.path.join(fx, n), "rb").read()
        if len(blob) > 0xFFFF:
            continue
        for i, e in enumerate(EDITS):
            put("fdt_edit", struct.pack("<H", len(blob)) + blob + e.encode(), f"seed-{n}-{i}")


def pen_ops():
    # nr-1, el bit, MPIDRs (u16 each), scribble count, then ops:
    # op, pick (not 0 mod 4: an MPIDR of the pen), entry selector 1 + u16.
    for nr in (1, 2, 4, 8):
        head = bytes([nr - 1, 0]) + b"".join(struct.pack("<H", i) for i in range(nr))
        ops = b""
        for op in range(7):
            ops += bytes([op, 1 + 4 * op]) + bytes([1]) + struct.pack("<H", 0x40 + op)
        put("pen_ops", head + bytes([0, 14]) + ops + ops, f"seed-{nr}-clean")
        # a few scribbles well past the header (state records / release words)
        scr = b"".join(struct.pack("<H", 0x200 + 0x40 * i) + struct.pack("<Q", 1) for i in range(3))
        put("pen_ops", head + bytes([3]) + scr + bytes([14]) + ops + ops, f"seed-{nr}-scribbled")


# ---------------------------------------------------------- Image header

def addr_raw(v):
    """fuzz_common::Bytes::addr encoding of a raw u64 (mode 7)."""
    return bytes([7]) + struct.pack("<Q", v)


def mapdesc(banks, claims, loaded_at, file_len):
    out = bytes([len(banks)])
    for b, s in banks:
        out += addr_raw(b) + addr_raw(s)
    out += bytes([len(claims)])
    for b, s in claims:
        out += addr_raw(b) + addr_raw(s)
    return out + addr_raw(loaded_at) + addr_raw(file_len)


def image_headers():
    ram = [(0x4000_0000, 1 << 30)]
    loader_claim = [(0x4000_0000, 0x40_0000)]
    heads = []
    for rel in (("build", "kernel", "Image"), ("target", "loader.bin")):
        p = os.path.join(ROOT, *rel)
        if os.path.exists(p):
            with open(p, "rb") as f:
                h = f.read(64)
            heads.append((rel[-1], h, os.path.getsize(p)))

    def synth(text_offset, image_size, flags, code0=0x14000010):
        return struct.pack("<IIQQQQQQII", code0, 0, text_offset, image_size,
                           flags, 0, 0, 0, 0x644D5241, 0)

    heads.append(("legacy", synth(0x80000, 0, 0), 8 << 20))
    heads.append(("anywhere", synth(0, 32 << 20, 0xA), 20 << 20))
    heads.append(("near-base", synth(0, 32 << 20, 0x2), 20 << 20))
    heads.append(("efi", synth(0, 32 << 20, 0xA, code0=0x91005A4D)[:60]
                  + struct.pack("<I", 0x40), 20 << 20))
    for name, h, size in heads:
        put("image_header", h + mapdesc(ram, loader_claim, 0x4040_0000, size),
            "seed-" + name)
        put("image_header", h + mapdesc(ram, loader_claim, 0x4020_0000, size),
            "seed-" + name + "-unaligned")


def booti_plans():
    import gzip as gz
    fx = os.path.join(ROOT, "loader", "tests", "fixtures")

    def synth(text_offset, image_size, flags):
        return struct.pack("<IIQQQQQQII", 0x14000010, 0, text_offset, image_size,
                           flags, 0, 0, 0, 0x644D5241, 0)

    ram = [(0x4000_0000, 1 << 30)]
    claims = [(0x4000_0000, 0x10_0000), (0x4020_0000, 0x60_0000), (0x7fff_0000, 0x1000)]

    def tail(kaddr, loaded_sel, loaded, initrd, pen):
        out = addr_raw(kaddr) + bytes([loaded_sel])
        if loaded_sel == 2:
            out += addr_raw(loaded)
        out += addr_raw(initrd[0]) + addr_raw(initrd[1])
        out += addr_raw(0x4800_0000) + addr_raw(0x4200_0000)
        out += bytes([len(ram)]) + b"".join(addr_raw(b) + addr_raw(s) for b, s in ram)
        out += bytes([len(claims)]) + b"".join(addr_raw(b) + addr_raw(s) for b, s in claims)
        out += addr_raw(pen[0]) + addr_raw(pen[1]) + addr_raw(pen[0] + 0x40)
        out += bytes([0xff, pen[2], 0]) + struct.pack("<I", 0)
        return out

    for n in sorted(os.listdir(fx)):
        if not n.endswith(".dtb"):
            continue
        blob = open(os.path.join(fx, n), "rb").read()
        if len(blob) > 0xFFFF:
            continue
        dt = struct.pack("<H", len(blob)) + blob
        raw_any = synth(0, 32 << 20, 0xA)
        raw_near = synth(0x80000, 32 << 20, 0x2)
        member = gz.compress(synth(0, 16 << 20, 0xA) + bytes(4096), mtime=0)
        gzk = struct.pack("<H", len(member)) + member
        pen = (0x7fff_0000, 0x1000, 0)
        seeds = [
            # flags, kernel, tail
            (0x00, raw_any, tail(0x4400_0000, 2, 20 << 20, (0, 0), pen), "raw-in-place"),
            (0x04, raw_near, tail(0x4400_1000, 0, 0, (0, 0), pen), "raw-move-pen"),
            (0x07, gzk, tail(0x4600_0000, 1, 0, (0x4a00_0000, 0x10_0000), pen), "gz-initrd-pen"),
            (0x2f, gzk, tail(0x4600_0000, 1, 0, (0x4a00_0000, 0x10_0000), pen), "gz-psci"),
            (0x06, raw_any, tail(0x4400_0000, 0, 0, (0x4a00_0000, 0x10_0000),
                                 (0x7fff_0000, 0x1000, 0x8)), "raw-unusable-cpu"),
            (0x02, raw_any, tail(0x4400_0000, 0, 0, (0x4000_0000, 0x10_0000), pen), "initrd-overlap"),
        ]
        for flags, kernel, t, name in seeds:
            put("booti_plan", bytes([flags]) + dt + kernel + t, f"seed-{n}-{name}")


# ----------------------------------------------------------- disk images

def is_pattern_block(blk):
    """A 512-byte block of file contents written by make.sh's pat()."""
    if len(blk) < 64:
        return False
    head = struct.unpack("<Q", blk[:8])[0]
    seed, idx = head >> 48, head & ((1 << 48) - 1)
    if seed == 0:
        return False
    base = idx * 512
    return all(blk[o] == (((base + o) * 131 + seed * 7) >> 3) & 0xFF
               for o in range(8, 64))


def sparse(img, config, block_size=512):
    """Encode img in the SparseDisk format: non-zero, non-file-content blocks."""
    blocks = len(img) // block_size
    out = bytearray([config]) + struct.pack("<I", blocks)
    run_start, run = None, bytearray()

    def flush():
        nonlocal run_start, run
        if run_start is not None:
            # split long runs into u16-length extents
            step = (0xFFFF // block_size) * block_size
            for i in range(0, len(run), step):
                out.extend(struct.pack("<IH", run_start + i // block_size,
                                       len(run[i:i + step])))
                out.extend(run[i:i + step])
        run_start, run = None, bytearray()

    for lba in range(blocks):
        blk = img[lba * block_size:(lba + 1) * block_size]
        keep = any(blk) and not all(
            is_pattern_block(blk[i:i + 512]) for i in range(0, block_size, 512))
        if keep:
            if run_start is None:
                run_start = lba
            run.extend(blk)
        else:
            flush()
    flush()
    return bytes(out)


def disks():
    fx = os.path.join(ROOT, "drivers", "tests", "fixtures")
    for n in sorted(os.listdir(fx)):
        if not n.endswith(".img.gz"):
            continue
        img = gzip.open(os.path.join(fx, n)).read()
        base = n[:-len(".img.gz")]
        put("part_table", sparse(img, 0), "seed-" + base)
        # fat: default partition (bit 2), read only / also write (bit 3) 2100 bytes
        put("fat", sparse(img, 0x34), "seed-" + base + "-read")
        put("fat", sparse(img, 0x3C), "seed-" + base + "-write")


# ------------------------------------------------------------------ shell

SHELL_LINES = [
    "echo hello world",
    "echo -n no newline",
    "setenv a 1; echo $a",
    "setenv x 'a b'; echo ${x} \"$x\" '$x'",
    "false && echo no || echo yes",
    "true && echo a && echo b; echo $?",
    "if test -n \"$fdt_addr_r\"; then echo ok; else echo no; fi",
    "if false; then echo a; elif true; then echo b; else echo c; fi",
    "if test 1 -lt 0x10 -a abc != abd; then echo y; fi",
    "test ! -z \"$kernel_addr_r\" -o x = y && echo t",
    "setenv cmd 'echo in cmd; setenv n 2'; run cmd; echo $n",
    "setenv loop 'run loop'; run loop",
    "run bootcmd",
    "printenv; printenv kernel_addr_r missing",
    "help; help md mw; version",
    "md 40000000 10; md.b 40000000 20; md.q 0x40000000 4",
    "mw.l 40000000 12345678 4; md.w 40000000 8",
    "mw.b 40000010 ff 10; cmp.b 40000000 40000010 10",
    "crc32 40000000 100 crc; echo $crc; crc32 40000000 8 *40000100",
    "md ffffffffffffff00 100",
    "mw.q 40003ff8 1 2",
    "sleep 0.001; sleep .5; sleep 2",
    "echo ${?} ${} ${a.b-c} $ $$ \\$x \"\\\"\" '\\'",
    "# comment\necho after comment \\\n continued",
    "setenv bootargs console=ttyAMA0 root=/dev/vda rw; printenv bootargs",
    "setenv a; setenv 'bad name' x; setenv .-_ ok",
    "echo a;;echo b; ; echo c",
    "echo a | b",
    "reset; poweroff",
    "for i in a b c; do echo $i; done",
    "for o in ${overlays}; do if test $o = x; then continue; fi; echo $o; done",
    "setenv n 0; while test $n -lt 3; do setexpr n $n + 1; done; echo $n",
    "until false; do break; done; while true; do x=1; done",
    "x=1 y=$x; echo $x$y ${z:-def} ${w:=set} ${x:+alt}; showvar",
    "setenv s 'echo a; exit 2; echo b'; run s; echo $?",
    "for a in 1 2; do for b in 3 4; do break 2; done; done",
    "env export -t 40000000; env import -t 40000000 -; printenv filesize",
    "env export -b 40000100 bootcmd; env import -d -b 40000100 - bootcmd",
    "env export -c -s 200 40000000; env import -c 40000000 200",
    "env default -a; env default bootcmd; env exists bootcmd && env delete -f bootcmd",
    "setexpr x 10 / 0; setexpr.b x *40000000 + 1; setexpr.s y *40000000",
    "setenv t 'root=/dev/sda1 rw'; setexpr t sub 'root=[^ ]*' 'root=/dev/vda' ; setexpr u gsub (a)(b) \\2\\1 abab",
    "itest.b *40000000 == 0 && itest.s abc < abd; itest 1 =! 2",
    "if test -e virtio 0:1 /boot.scr -o -n \"$x\"; then echo e; fi; [ a = a ] && echo br",
    "test 0x10 -eq 16 -a ! 010 -eq 10 && test a =~ ^a",
]

SHELL_INPUTS = [
    b"\x02echo hello\r",
    b"\x02echo one\r\necho two\nsetenv a b\r\nprintenv a",
    b"\x02ab\x08\x7fc\x03echo after ctrl-c\r",
    b"\x01echo edit mode\r\x1b[A\x1b[B\x1b[C\x1b[D\r",
    b"\x01\x1b[24;80Recho hi\x1b[H\x1b[F\x1b[3~\x01\x05\x0b\x15\x17x\r",
    b"\x00\x1b[24;80Rprintenv\r",
    b"\x00echo no terminal\r",
    b"\x02" + b"x" * 1100 + b"\recho ok\r",
    b"\x01\x1b[R\x1b[0;0R\x1b[99999;99999R\x1bOA\x04",
    b"\x02for i in 1 2\rdo\recho $i\rdone\r",
    b"\x02if true\r\x03echo after\r",
    b"\x01\x1b[24;80Rwhile false\rdo echo\rdone\recho 'a\rb'\r",
    b"\x02echo a\\\rb &&\r\recho c\r",
]

ENV_TEXTS = [
    "bootcmd=run distro_bootcmd\nbootdelay=2\nkernel_addr_r=0x40400000\n",
    "# saved env\n\n  # indented comment\r\na=1\r\nb=line\\nbreak\\\\back\\rcr\n",
    "x=1\nx=\ny=2\n",
    "bootargs=console=ttyAMA0 earlycon root=/dev/vda2 rw\n",
]


def shell():
    for s in SHELL_LINES:
        put("shell_line", s)
    for s in SHELL_INPUTS:
        put("shell_input", s)
    for s in ENV_TEXTS:
        put("env_text", s)


# ----------------------------------------------------------------- memmap

def memmap():
    one_bank = bytes([1]) + addr_raw(0x4000_0000) + addr_raw(1 << 30)
    ops = bytearray(one_bank)
    # claim loader image, claim overlapping, find_free low/high, reserve,
    # default load addresses, release, in_ram, claim_at
    ops += bytes([0]) + addr_raw(0x4000_0000) + addr_raw(0x40_0000)
    ops += bytes([1]) + addr_raw(0x4020_0000) + addr_raw(0x40_0000)
    ops += bytes([3]) + addr_raw(0x100_0000) + bytes([21, 0, 0])
    ops += bytes([3]) + addr_raw(0x1000) + bytes([12, 1]) + addr_raw(0x8000_0000) + bytes([1])
    ops += bytes([4]) + addr_raw(0x7FE0_0000) + addr_raw(0x40_0000)
    ops += bytes([7])
    ops += bytes([2, 0])
    ops += bytes([5]) + addr_raw(0x4000_0000) + addr_raw(1 << 30)
    ops += bytes([6]) + addr_raw(0x7FF0_0000)
    put("memmap_ops", bytes(ops), "seed-ops")
    two_banks = bytes([2]) + addr_raw(0x4000_0000) + addr_raw(0x1000_0000) \
        + addr_raw(0x8000_0000) + addr_raw(0x4000_0000) + bytes([7, 3]) \
        + addr_raw(0x10_0000) + bytes([21, 1]) + addr_raw(0x9000_0000) + bytes([1])
    put("memmap_ops", two_banks, "seed-two-banks")


def crc32(b):
    import zlib
    return zlib.crc32(b) & 0xFFFFFFFF


def legacy_script(text, typ=6):
    data = struct.pack(">II", len(text), 0) + text
    h = bytearray(64)
    h[0:4] = struct.pack(">I", 0x27051956)
    h[12:16] = struct.pack(">I", len(data))
    h[24:28] = struct.pack(">I", crc32(data))
    h[28], h[29], h[30] = 5, 22, typ
    h[32:32 + 9] = b"boot.scr\0"
    h[4:8] = struct.pack(">I", crc32(bytes(h)))
    return bytes(h) + data


BOOT_CMD = (b"setenv bootargs console=ttyAMA0 root=/dev/vda2 rw\n"
            b"fatload virtio 0:1 ${kernel_addr_r} Image\n"
            b"fatload virtio 0:1 ${ramdisk_addr_r} initrd.img\n"
            b"booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}\n")


def boot_scripts():
    # mode 0: device arguments
    for s in ["0", "0:1", "1:auto", "0x1:0x2", "0:", ":1", "ffffffffffffffffff:1"]:
        put("boot_script", b"\x00" + s.encode())
    # mode 1: plain text / raw legacy image, bit 7: run it
    put("boot_script", b"\x81" + BOOT_CMD, "seed-boot.cmd")
    put("boot_script", b"\x81" + legacy_script(BOOT_CMD), "seed-boot.scr")
    put("boot_script", b"\x01" + legacy_script(b"echo hi\n", typ=2), "seed-kernel-type")
    # mode 2: checksums fixed by the target
    put("boot_script", b"\x82" + legacy_script(b"echo fixed\n"), "seed-fixed")


# ------------------------------------------------------------------ gzip

def gz_member(payload, flags=0, name=b"Image", extra=b"", level=9):
    import zlib
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    deflated = c.compress(payload) + c.flush()
    h = bytearray([0x1F, 0x8B, 8, flags, 0, 0, 0, 0, 0, 3])
    if flags & 0x04:
        h += struct.pack("<H", len(extra)) + extra
    if flags & 0x08:
        h += name + b"\0"
    if flags & 0x10:
        h += b"comment\0"
    if flags & 0x02:
        h += struct.pack("<H", crc32(bytes(h)) & 0xFFFF)
    return bytes(h) + deflated + struct.pack("<II", crc32(payload), len(payload) & 0xFFFFFFFF)


def gzips():
    img = os.path.join(ROOT, "build", "kernel", "Image")
    if os.path.exists(img):
        with open(img, "rb") as f:
            head = f.read(16384)
        put("gzip", gz_member(head, flags=0x08), "seed-image-head")
    put("gzip", gz_member(b"hello hello hello hello\n" * 100), "seed-hello")
    put("gzip", gz_member(b"x" * 3000, flags=0x1E, extra=b"AB\x02\x00hi"), "seed-all-flags")
    put("gzip", gz_member(bytes(range(256)) * 4, level=0), "seed-stored")
    put("gzip", gz_member(b""), "seed-empty")


# ------------------------------------------------------------------- pen

PEN_BASE = 0x4800_0000


def pen_image(nr=4, code_size=0x100, el=2, base=PEN_BASE, gen=1):
    def up(v, a):
        return (v + a - 1) & ~(a - 1)
    slot_off = up(0x80 + code_size, 64)
    state_off = up(slot_off + 64 * nr, 2048)
    total = up(state_off + 64 * nr, 4096)
    h = bytearray(128)
    struct.pack_into("<8sII", h, 0, b"PKBTPEN1", 1, 128)
    struct.pack_into("<QQIIIIIIQIIII", h, 16, total, base, 0x80, code_size,
                     slot_off, 64, nr, el, gen, state_off, 64, 0x80, 0x84)
    struct.pack_into("<I", h, 124, crc32(bytes(h[:124])))
    m = bytearray(total)
    m[:128] = h
    for i in range(code_size):
        m[0x80 + i] = i & 0xFF
    for i in range(nr):
        struct.pack_into("<Q", m, slot_off + 64 * i + 8, i)
    return bytes(m), slot_off


def pens():
    img, slot_off = pen_image()
    put("pen_header", b"\x00" + img, "seed-pen-4cpus")
    put("pen_header", b"\x0c" + img[:128], "seed-pen-header-padded")
    big, _ = pen_image(nr=64, code_size=0x400, el=1)
    put("pen_header", b"\x08" + big[:4096], "seed-pen-64cpus-truncated")
    # mode 1: nr u16, code u16, el u8, phys (Bytes::addr mode 7), entry u16, park u16, gen u64
    put("pen_header", b"\x01" + struct.pack("<HHB", 4, 0x100, 2) + addr_raw(PEN_BASE)
        + struct.pack("<HHQ", 0, 4, 1), "seed-layout")
    # mode 2: 4 spin-table CPUs whose release addresses are the pen's slots,
    # one /memreserve/ over the pen, then the memory
    cfgs = bytes([4, 1, 0, 1, 0])  # 4 CPUs, 1 reserve, boot CPU 0, EL2, no PSCI
    for i in range(4):
        cfgs += bytes([12, i]) + struct.pack("<H", (slot_off + 64 * i) // 8) + addr_raw(PEN_BASE + 0x84)
    cfgs += bytes([1, 0, 0])
    put("pen_header", b"\x02" + cfgs + img, "seed-reclaim")
    put("pen_header", b"\x0e" + cfgs + img, "seed-reclaim-same-code")
    # CPUs 1-3 arrived and armed (status 1, mpidr_seen set) in the old pen
    armed = bytearray(img)
    state_off = 0x800
    for i in range(1, 4):
        struct.pack_into("<QQQ", armed, state_off + 64 * i, 1, i, 1)
    put("pen_header", b"\x02" + cfgs + bytes(armed), "seed-reclaim-armed")


# ---------------------------------------------------------------- network

def tftp_ev_packet(port_sel, pkt):
    return bytes([port_sel << 1]) + struct.pack("<H", len(pkt)) + pkt


def tftp_ev_tick(units):
    return bytes([1]) + struct.pack("<H", units)


def tftp_data(block, payload):
    return struct.pack(">HH", 3, block) + payload


def tftp_oack(opts):
    b = struct.pack(">H", 6)
    for k, v in opts:
        b += k.encode() + b"\0" + v.encode() + b"\0"
    return b


def net():
    # tftp_client: [blksize sel, window, limit sel, flags] + events
    ev = tftp_ev_packet(1, tftp_oack([("tsize", "2000"), ("blksize", "512"), ("timeout", "1")]))
    for i in range(1, 4):
        ev += tftp_ev_packet(1, tftp_data(i, bytes([i]) * 512))
    ev += tftp_ev_packet(1, tftp_data(4, b"\x04" * 464))
    put("tftp_client", bytes([1, 1, 3, 1]) + ev, "seed-oack-tsize")
    ev = tftp_ev_packet(0, tftp_data(1, b"a" * 512)) + tftp_ev_packet(0, tftp_data(2, b"b" * 10))
    put("tftp_client", bytes([1, 1, 3, 0]) + ev, "seed-rfc1350")
    ev = tftp_ev_packet(1, tftp_oack([("blksize", "8"), ("windowsize", "4"), ("timeout", "1")]))
    for i in [1, 3, 2, 1, 2, 3, 4, 5, 6, 7, 8]:
        ev += tftp_ev_packet(1, tftp_data(i, bytes([i]) * 8))
    ev += tftp_ev_packet(1, tftp_data(9, b""))
    put("tftp_client", bytes([0, 4, 2, 0]) + ev, "seed-window-reorder")
    ev = tftp_ev_packet(1, struct.pack(">HH", 5, 1) + b"File not found\0")
    put("tftp_client", bytes([3, 1, 3, 1]) + ev, "seed-error")
    ev = tftp_ev_tick(150) * 5
    put("tftp_client", bytes([3, 1, 3, 1]) + ev, "seed-timeouts")
    ev = tftp_ev_packet(1, tftp_oack([("tsize", "100000")]))
    put("tftp_client", bytes([3, 1, 2, 1]) + ev, "seed-too-large")

    # dhcp_reply: [flags] + (len u16, reply, tick)
    def reply(kind, bootp=False):
        p = bytearray(236)
        p[0], p[1], p[2] = 2, 1, 6
        p[16:20] = bytes([10, 0, 2, 15])
        p[20:24] = bytes([10, 0, 2, 2])
        p[108:113] = b"Image"
        p += bytes([99, 130, 83, 99])
        if not bootp:
            p += bytes([53, 1, kind, 54, 4, 10, 0, 2, 2, 51, 4, 0, 1, 0x51, 0x80])
        p += bytes([1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 6, 4, 10, 0, 2, 3])
        p += bytes([12, 4]) + b"host" + bytes([67, 5]) + b"vmlnz" + bytes([255])
        return bytes(p)
    for name, seq in [("seed-offer-ack", [reply(2), reply(5)]), ("seed-bootp", [reply(0, True)])]:
        d = b"\x03"
        for r in seq:
            d += struct.pack("<H", len(r)) + r + b"\x02"
        put("dhcp_reply", d, name)

    # http_response: [limit sel, piece] + bytes
    resps = {
        "seed-length": b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: application/octet-stream\r\n\r\nhello world",
        "seed-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: 1\r\n\r\n",
        "seed-close": b"HTTP/1.0 200 OK\r\nServer: test\r\n\r\nuntil the end",
        "seed-404": b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
        "seed-redirect": b"HTTP/1.1 301 Moved\r\nLocation: http://10.0.2.2/x\r\n\r\n",
        "seed-lying": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhello world",
    }
    for name, r in resps.items():
        put("http_response", bytes([3, 7]) + r, name)


DEBIAN_EXTLINUX = """## /boot/extlinux/extlinux.conf
##
## IMPORTANT WARNING
##
## The configuration of this file is generated automatically.
## Do not edit this file manually, use: u-boot-update

default l0
menu title U-Boot menu
prompt 0
timeout 50


label l0
\tmenu label Debian GNU/Linux 12 (bookworm) 6.1.0-18-arm64
\tlinux /boot/vmlinuz-6.1.0-18-arm64
\tinitrd /boot/initrd.img-6.1.0-18-arm64
\tfdtdir /usr/lib/linux-image-6.1.0-18-arm64/
\t
\tappend root=/dev/vda2 ro quiet

label l0r
\tmenu label Debian GNU/Linux 12 (bookworm) 6.1.0-18-arm64 (rescue target)
\tlinux /boot/vmlinuz-6.1.0-18-arm64
\tinitrd /boot/initrd.img-6.1.0-18-arm64
\tfdtdir /usr/lib/linux-image-6.1.0-18-arm64/
\tappend root=/dev/vda2 ro  single
"""

FEDORA_EXTLINUX = (
    "# extlinux.conf generated by anaconda\r\n\r\nui menu.c32\r\n\r\nmenu autoboot Welcome to Fedora. Automatic boot in # second{,s}.\r\n"
    "menu title Fedora Boot Options.\r\nmenu hidden\r\n\r\ntimeout 20\r\ntotaltimeout 600\r\n\r\n"
    "label Fedora (6.5.6-300.fc39.aarch64) 39\r\n\tkernel /vmlinuz-6.5.6-300.fc39.aarch64\r\n"
    "\tappend ro root=UUID=1234 rhgb quiet\r\n\tfdtdir /dtb-6.5.6-300.fc39.aarch64/\r\n"
    "\tinitrd /initramfs-6.5.6-300.fc39.aarch64.img\r\n\tdevicetree-overlay /o/a.dtbo /o/b.dtbo\r\n"
    "\tkaslrseed\r\n\r\nlabel rescue\r\n\tlocalboot 1\r\n\tipappend 3\r\n"
)

PXE = b"default menu\nprompt 1\ntimeout 30\nmenu title PXE\ninclude 1\nlabel local\n  localboot 0\n\xfelabel linux\n  menu label ^Linux\n  kernel Image#conf\n  append console=ttyAMA0 initrd=rd.img\n  menu default\n  fdt qemu.dtb\nmenu include 2\n\xfe# empty\nfallback local\n"


def bootconfs():
    put("boot_config", DEBIAN_EXTLINUX, "seed-debian-u-boot-menu")
    put("boot_config", FEDORA_EXTLINUX, "seed-fedora")
    put("boot_config", PXE, "seed-pxe-includes")
    put("boot_config", b"label a\n kernel\n", "seed-error")


GENERATORS = ["dtbs", "fdt_edits", "pen_ops", "gzips", "pens", "boot_scripts",
              "image_headers", "disks", "shell", "memmap", "net", "bootconfs",
              "booti_plans"]


def main():
    wanted = sys.argv[1:] or GENERATORS
    for g in wanted:
        if g not in GENERATORS:
            sys.exit(f"mkcorpus: no generator '{g}' ({', '.join(GENERATORS)})")
        globals()[g]()
    report()


def report():
    total = 0
    for d, _, files in os.walk(CORPUS):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except FileNotFoundError:  # a running fuzzer replaced it
                pass
    print(f"corpus: {total} bytes in {CORPUS}", file=sys.stderr)


if __name__ == "__main__":
    main()
