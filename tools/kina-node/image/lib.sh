# lib.sh: shared by the node-image build steps (sourced, POSIX sh).
# Exit codes are kina's (docs/protocol.md): 64 usage, 65 bad data, 66 missing
# input, 69 unavailable, 70 internal, 71 OS error, 73 cannot create output,
# 75 temporary failure.

: "${me:=$(basename "$0")}"
here_lib=$(cd "$(dirname "${0}")" && pwd)

die() { code=$1; shift; printf '%s: error: %s\n' "$me" "$*" >&2; exit "$code"; }
log() { printf '%s: %s\n' "$me" "$*" >&2; }

# The cache of node-image builds: $KINA_CACHE_DIR, else the user's cache
# directory ($XDG_CACHE_HOME, else ~/.cache) under kina/.
kina_cache() {
  if [ -n "${KINA_CACHE_DIR:-}" ]; then printf '%s\n' "$KINA_CACHE_DIR"
  else printf '%s/kina\n' "${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}"; fi
}

# step NAME: start a timed step (progress on stderr); step_done ends it.
step() { step_name=$1; step_start=$(date +%s); log "step $step_name ..."; }
step_done() { log "step $step_name done in $(( $(date +%s) - step_start ))s${1:+ ($1)}"; }

# sha256 of stdin.
hash_stdin() { sha256sum | cut -c1-64; }

# valid_version V: a Kubernetes release version vX.Y.Z (no pre-releases).
valid_version() {
  printf '%s\n' "$1" | grep -Eq '^v(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,3})$'
}

# publish TMP DIR: move a finished TMP into place as DIR (the cache entry
# appears whole or not at all; a concurrent builder that won keeps its copy).
publish() {
  if mv -T "$1" "$2" 2>/dev/null; then return 0; fi
  [ -d "$2" ] && { rm -rf "$1"; return 0; }
  die 73 "$2: cannot publish the build output"
}

# sweep DIR: remove the temporaries (.tmp.*) a killed build left in DIR whose
# owner (the PID in the name) is gone.
sweep() {
  [ -d "$1" ] || return 0
  for t in "$1"/.tmp.*; do
    [ -e "$t" ] || continue
    pid=${t##*.tmp.}; pid=${pid%%.*}
    case "$pid" in ''|*[!0-9]*) continue ;; esac
    kill -0 "$pid" 2>/dev/null || rm -rf "$t"
  done
}

# lock_cache FILE: hold an exclusive lock on FILE (descriptor 9) until exit,
# so two builds of the same cache entry do not race.
lock_cache() {
  exec 9>"$1"
  flock 9 || die 71 "$1: cannot lock"
}

# kina_tool NAME: the path of one of kina's binaries: $KINA_BIN_DIR/NAME, else
# the build tree this script belongs to, else PATH.
kina_tool() {
  for c in "${KINA_BIN_DIR:+$KINA_BIN_DIR/$1}" "$here_lib/../../../build/tools/$1/$1" "$here_lib/../../../../build/tools/$1/$1"; do
    [ -n "$c" ] && [ -x "$c" ] && { printf '%s\n' "$c"; return 0; }
  done
  command -v "$1" 2>/dev/null || die 69 "$1 is not installed (build it with scripts/bootstrap)"
}

# run CMD...: run a long command in its own process group and wait for it. A
# shell runs its traps only once the foreground child ends, so long children
# run in the background here, and on SIGINT/SIGTERM/SIGHUP on_signal ends the
# whole group (debootstrap's dpkg, go's compilers) before the step's EXIT
# trap removes its temporary files.
child=""
run() {
  setsid -w "$@" &
  child=$!
  rc=0
  wait "$child" || rc=$?
  child=""
  return "$rc"
}
on_signal() {
  trap '' INT TERM HUP
  if [ -n "$child" ]; then
    kill -TERM -- "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  exit "$1"
}
catch_signals() {
  trap 'on_signal 130' INT
  trap 'on_signal 143' TERM
  trap 'on_signal 129' HUP
}

# help_text: the script's opening comment block (after the #! line), as --help.
help_text() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
