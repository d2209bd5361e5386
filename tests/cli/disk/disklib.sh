# disklib.sh: a real full disk for the full-disk tests (sourced after
# $KINA_CLI_LIB). disk_setup SIZE mounts a tmpfs of SIZE at $FS and puts
# KINA_HOME and HOME on it; before each run of a command a filler file leaves
# exactly K pages free, K growing until the command succeeds (sweep).

# disk_setup SIZE: skips (77) where a tmpfs cannot be mounted.
disk_setup() {
  [ "$(id -u)" = 0 ] || { echo "skip: mounting a tmpfs needs root"; exit 77; }
  command -v fallocate >/dev/null || { echo "skip: no fallocate"; exit 77; }
  FS="$TEST_TMP/fs"
  mount_tmpfs "$FS" "$1" 2>/dev/null || { echo "skip: cannot mount a tmpfs here"; exit 77; }
  export KINA_HOME="$FS/home" HOME="$FS/user"
  mkdir -m 0700 "$KINA_HOME" "$HOME"
  PAGE=$(stat -f -c %S "$FS")
}

# fill K: remove the filler, then make it leave exactly K pages free. A
# running machine may take pages between the count and the filler (its
# overlay, its console): then the filler is made again.
fill() {
  local avail try
  for try in 1 2 3 4 5 6 7 8 9 10; do
    rm -f "$FS/filler"
    avail=$(stat -f -c %a "$FS")
    [ "$avail" -gt "$1" ] || fail "the tmpfs has only $avail free pages"
    fallocate -l $(( (avail - $1) * PAGE )) "$FS/filler" 2>/dev/null || { sleep 1; continue; }
    [ "$(stat -f -c %a "$FS")" = "$1" ] && return
    sleep 1
  done
  fail "the filler could not leave exactly $1 pages free (now $(stat -f -c %a "$FS"))"
}

# snap: every path on the tmpfs with its type, mode, and for a file its size
# and content hash (over its data, holes skipped: a sparse disk image of
# 2 GiB costs what it holds), for a symlink its target. Not listed: the
# filler, the audit log unless SNAP_LOG=1, empty lock files, and directories
# holding nothing else (a cluster directory made for its lock, which no
# reader takes for a cluster), and regular files whose path matches the
# Python regular expression SNAP_SKIP (a test that sets it checks those
# files itself).
SNAP_LOG=0
SNAP_SKIP=
snap() {
  python3 - "$FS" "$SNAP_LOG" "$SNAP_SKIP" <<'PY'
import hashlib, os, re, stat, sys
root, with_log = sys.argv[1], sys.argv[2] == "1"
skip = re.compile(sys.argv[3]) if sys.argv[3] else None
lines = []
def digest(p, size):
    h = hashlib.sha256()
    fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        off = 0
        while off < size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            h.update(b"@%d:" % data)
            while data < hole:
                chunk = os.pread(fd, min(1 << 20, hole - data), data)
                if not chunk:
                    break
                h.update(chunk)
                data += len(chunk)
            off = hole
    finally:
        os.close(fd)
    return h.hexdigest()
def walk(d):
    """Lists d's entries; returns whether d holds anything that counts."""
    counts = False
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        rel = os.path.relpath(p, root)
        st = os.lstat(p)
        if stat.S_ISDIR(st.st_mode):
            mark = len(lines)
            if walk(p):
                lines.insert(mark, "d %o %s" % (stat.S_IMODE(st.st_mode), rel))
                counts = True
            continue
        if rel == "filler" or (rel == "home/audit/log.jsonl" and not with_log):
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size == 0 and (name == "lock" or name.endswith(".lock")):
            continue
        if stat.S_ISREG(st.st_mode) and skip and skip.search(rel):
            continue
        if stat.S_ISLNK(st.st_mode):
            lines.append("l %s -> %s" % (rel, os.readlink(p)))
        elif stat.S_ISREG(st.st_mode):
            lines.append("f %o %d %s %s" % (stat.S_IMODE(st.st_mode), st.st_size, digest(p, st.st_size), rel))
        else:
            lines.append("? %o %s" % (st.st_mode, rel))
        counts = True
    return counts
walk(root)
print("\n".join(lines))
PY
}

# disks_whole WHY FILE...: each FILE that exists is a whole ext4 file
# system (e2fsck -fn): a cache disk a failed command kept.
disks_whole() {
  local why=$1 d; shift
  for d in "$@"; do
    [ -e "$d" ] || continue
    e2fsck -fn "$d" >/dev/null 2>&1 || fail "$why: $d is not a whole file system: $(e2fsck -fn "$d" 2>&1 | tail -3)"
  done
}

# failed_step: notes which step of a failed `kina create cluster` failed
# (its ✗ line in $TEST_TMP/err; none when a write of the front end itself
# failed); failed_steps: what was noted, counted, on one line.
failed_step() {
  local at; at=$(sed -n 's/^ ✗ \(.*\) ([0-9.]*s, exit [0-9]*)$/\1/p' "$TEST_TMP/err")
  printf '%s\n' "${at:-a write of the front end itself}" >> "$TEST_TMP/steps-failed"
}
failed_steps() { uniq -c < "$TEST_TMP/steps-failed" | sed 's/^ *//' | paste -sd ';' -; }

# sweep NAME CHECK CMD...: runs CMD with K free pages, K = 0, 1, 2, ..., until
# it succeeds; each failure is checked as the tests' headers say, the success
# by CHECK. SWEEP_GROW=geometric grows K by a quarter each time instead
# (0..8 one by one, then 10, 12, 15, 18, 22, ...) for a command that needs
# thousands of pages; SWEEP_FAILED, when set, names one more check run after
# each failure (no process left, say).
SWEEP_GROW=linear
SWEEP_FAILED=
# SWEEP_END, when set, names a function that is given the exit code of a
# run that failed other than 73 or 74: when it succeeds, that failure is
# where the sweep was meant to end (a step past the ones swept, failing for
# its own reasons), and CHECK is run on it as on a success.
SWEEP_END=
# SWEEP_ERRORS=each: a command that works on several things at once (the
# nodes of a cluster) may print one error line per thing that failed; each
# must name the cause. Default: exactly one error line.
SWEEP_ERRORS=one
sweep() {
  local name=$1 check=$2; shift 2
  local k=0 tries=0 before after rc events
  while :; do
    fill "$k"
    before=$(snap)
    events=$(audit_events)
    rc=0; "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
    [ "$rc" -eq 0 ] && break
    if [ "$rc" -ne 73 ] && [ "$rc" -ne 74 ] && [ -n "$SWEEP_END" ] && "$SWEEP_END" "$rc"; then break; fi
    local why="$name with $k free pages"
    [ "$rc" -eq 73 ] || [ "$rc" -eq 74 ] || fail "$why: exit $rc, expected 73 or 74: $(cat "$TEST_TMP/err")"
    grep -q 'No space left on device' "$TEST_TMP/err" || fail "$why: the error does not name the cause: $(cat "$TEST_TMP/err")"
    if [ "$SWEEP_ERRORS" = one ]; then
      [ "$(grep -c ': error: ' "$TEST_TMP/err")" = 1 ] || fail "$why: not one error line: $(cat "$TEST_TMP/err")"
    else
      ! grep ': error: ' "$TEST_TMP/err" | grep -qv 'No space left on device' ||
        fail "$why: an error line that does not name the cause: $(cat "$TEST_TMP/err")"
    fi
    [ ! -s "$TEST_TMP/out" ] || fail "$why: printed output although it failed: $(head -c 300 "$TEST_TMP/out")"
    [ -z "$SWEEP_FAILED" ] || "$SWEEP_FAILED" "$why"
    after=$(snap)
    [ "$after" = "$before" ] || fail "$why: the files changed:
$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") || true)"
    rm -f "$FS/filler"
    expect_exit 0 kina-audit verify
    # Its error event is in the log, or stderr said it could not be written
    # (kina-audit records only what it changed: a key, never its own errors).
    case $name in kina-audit*) ;; *)
      [ "$(audit_events)" -gt "$events" ] || grep -q 'warning: audit log: ' "$TEST_TMP/err" ||
        fail "$why: no audit event and no warning" ;;
    esac
    if [ "$SWEEP_GROW" = geometric ] && [ "$k" -ge 8 ]; then k=$((k + k / 4)); else k=$((k + 1)); fi
    tries=$((tries + 1))
    [ "$tries" -le 300 ] || fail "$name never succeeded"
  done
  rm -f "$FS/filler"
  local end="succeeded"; [ "$rc" -eq 0 ] || end="came to its end (exit $rc)"
  [ "$k" -gt 0 ] || fail "$name $end with no free page (the test reproduced nothing)"
  "$check" || fail "$name: wrong state after it $end with $k free pages"
  expect_exit 0 kina-audit verify
  ok "$name: failed cleanly $tries times (0 to $((k - 1)) free pages), $end with $k"
}
