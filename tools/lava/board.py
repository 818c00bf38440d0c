#!/usr/bin/env python3
"""A QEMU virt machine running parkboot, as LAVA drives a board (docs/lava.md): its serial
console on a unix socket and its power through QMP. The device dictionary
(devices/qemu-parkboot.jinja2) names these commands:

    board.py connect DIR   the serial console on stdio (LAVA's connection_command); waits for
                           the board to be powered on, then joins stdio to the console
    board.py reset DIR     power on (start QEMU), or reset a running board (QMP system_reset)
    board.py off DIR       power off (QMP quit)

DIR holds qemu.args (QEMU's arguments, one per line, written by `cargo xtask lava`) and the
board's sockets, pid file and log. QEMU waits for the console's client before it runs, so
nothing the board prints is lost between power-on and the connection.
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import tty


def paths(d):
    return {
        "args": os.path.join(d, "qemu.args"),
        "serial": os.path.join(d, "serial.sock"),
        "qmp": os.path.join(d, "qmp.sock"),
        "pid": os.path.join(d, "qemu.pid"),
        "log": os.path.join(d, "qemu.log"),
    }


def running(p):
    try:
        with open(p["pid"]) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def qmp(p, command):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(p["qmp"])
    f = s.makefile("rw")
    f.readline()  # greeting
    for c in ("qmp_capabilities", command):
        f.write(json.dumps({"execute": c}) + "\n")
        f.flush()
        while True:
            reply = json.loads(f.readline())
            if "return" in reply or "error" in reply:
                break
    s.close()


def reset(d):
    p = paths(d)
    if running(p):
        qmp(p, "system_reset")
        return
    for k in ("serial", "qmp"):
        if os.path.exists(p[k]):
            os.unlink(p[k])
    with open(p["args"]) as f:
        args = [a for a in f.read().split("\n") if a]
    args += [
        "-chardev", "socket,id=con,path=%s,server=on,wait=on" % p["serial"],
        "-serial", "chardev:con",
        "-qmp", "unix:%s,server=on,wait=off" % p["qmp"],
        "-display", "none",
        "-monitor", "none",
    ]
    log = open(p["log"], "ab")
    q = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True)
    with open(p["pid"], "w") as f:
        f.write("%d\n" % q.pid)
    # Powered on once QEMU listens for the console (it then waits for the connection).
    for _ in range(300):
        if os.path.exists(p["serial"]):
            return
        if q.poll() is not None:
            sys.exit("qemu exited (%d): see %s" % (q.returncode, p["log"]))
        time.sleep(0.1)
    sys.exit("qemu did not create %s" % p["serial"])


def off(d):
    p = paths(d)
    pid = running(p)
    if not pid:
        return
    try:
        qmp(p, "quit")
    except OSError:
        pass
    for _ in range(50):
        if not running(p):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def connect(d):
    p = paths(d)
    s = None
    deadline = time.time() + 600
    while s is None:
        try:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(p["serial"])
            s = c
        except OSError:
            if time.time() > deadline:
                sys.exit("no console at %s" % p["serial"])
            time.sleep(0.1)
    fd = sys.stdin.fileno()
    if os.isatty(fd):
        tty.setraw(fd)  # a serial line: no echo, no line editing, bytes as they are
    out = sys.stdout.fileno()
    while True:
        r, _, _ = select.select([fd, s], [], [])
        if s in r:
            data = s.recv(4096)
            if not data:
                return
            os.write(out, data)
        if fd in r:
            data = os.read(fd, 4096)
            if not data:
                return
            s.sendall(data)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("connect", "reset", "off"):
        sys.exit(__doc__)
    {"connect": connect, "reset": reset, "off": off}[sys.argv[1]](sys.argv[2])


if __name__ == "__main__":
    main()
