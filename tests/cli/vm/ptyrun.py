#!/usr/bin/env python3
"""ptyrun.py: runs a command on a new pseudo-terminal, as its controlling
terminal's foreground job, the way an interactive shell would. Its output
(as the terminal shows it) goes to stdout; the exit status is the command's
(128+N for signal N), or 124 after --timeout (the whole session is killed).

  ptyrun.py [--send TEXT] [--ctrl-c-when FILE] [--timeout S] -- CMD...

--send TEXT is typed on the terminal at once; --ctrl-c-when FILE types
Ctrl-C once FILE exists and is not empty (polled, no fixed sleep)."""
import argparse, os, pty, select, signal, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--send", default=None)
ap.add_argument("--ctrl-c-when", default=None)
ap.add_argument("--timeout", type=float, default=60)
ap.add_argument("cmd", nargs=argparse.REMAINDER)
a = ap.parse_args()
cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd

pid, fd = pty.fork()
if pid == 0:
    for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(s, signal.SIG_DFL)
    os.execvp(cmd[0], cmd)

def kill_session():
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == pid:  # field 6: session id
                os.kill(int(p), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            pass

out = b""
deadline = time.monotonic() + a.timeout
if a.send is not None:
    os.write(fd, a.send.encode())
sent_ctrl_c = False
status = None
while True:
    if time.monotonic() > deadline:
        kill_session()
        sys.stdout.buffer.write(out)
        sys.stderr.write(f"ptyrun: timed out after {a.timeout}s: {' '.join(cmd)}\n")
        sys.exit(124)
    if a.ctrl_c_when and not sent_ctrl_c and os.path.exists(a.ctrl_c_when) and os.path.getsize(a.ctrl_c_when) > 0:
        os.write(fd, b"\x03")
        sent_ctrl_c = True
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if chunk:
            out += chunk
            continue
    if status is None:
        w, st = os.waitpid(pid, os.WNOHANG)
        if w == pid:
            status = st
    if status is not None and not r:
        break
    if r and not chunk:  # EOF/EIO: the session's terminal is gone
        if status is None:
            time.sleep(0.01)
            continue
        break
try:
    while True:
        r, _, _ = select.select([fd], [], [], 0)
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        out += chunk
except OSError:
    pass
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
