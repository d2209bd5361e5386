# cluster.sh: kina's cluster verbs (create, delete, get, export, load, stop,
# start), sourced by tools/kina/kina. Each verb pipes kina's tools:
#   kina-node plan | (boot with kina-vm) | kina-node init | addons | join | wait
# and kina-kube for the PKI and kubeconfigs. State of a cluster lives in
# $KINA_HOME/clusters/NAME/: plan.jsonl (the resolved plan), machines.jsonl
# (the Machine records of its nodes), state (creating|running|stopped), and
# cluster.lock (an flock, held by every verb that changes the cluster).
# Portable to macOS: the locks, the load balancer's session and the timing
# use kina-node and POSIX tools only (no flock(1), setsid(1), GNU date).

KINA_NETWORK=net                 # the one cluster network's name
KINA_BOOT_TIMEOUT=${KINA_BOOT_TIMEOUT:-900s}
KINA_DISK_SIZE=${KINA_DISK_SIZE:-8Gi}
KINA_KUBECONFIG_TTL_DEFAULT=168h  # the admin kubeconfig create merges (docs/cluster.md)

quiet=0 verbose=0
cleanup_hook=''

# verb_exit: the EXIT trap of every cluster verb: the verb's cleanup
# (cleanup_hook), then its audit event with the cluster's name and the real
# exit code (get clusters/nodes only read and are not recorded).
verb_exit() {
  rc=$?
  trap - EXIT INT TERM HUP
  [ -z "$cleanup_hook" ] || eval "$cleanup_hook"
  cluster=$(cat "$KINA_FE_CLUSTER_FILE" 2>/dev/null || true)
  rm -f "$KINA_FE_CLUSTER_FILE"
  case $action in
    get-clusters|get-nodes) ;;
    *) record "$action" "$rc" "$cluster" "$cmd" "$what" "$@" ;;
  esac
  exit "$rc"
}

say() { [ "$quiet" = 1 ] || printf '%s\n' "$*" >&2; }
vsay() { [ "$verbose" = 1 ] && printf '%s: %s\n' "$me" "$*" >&2 || true; }
die() { code=$1; shift; printf '%s: error: %s\n' "$me" "$*" >&2; exit "$code"; }

# now_ms: milliseconds since the epoch (GNU date), else whole seconds (BSD date prints %3N as is).
now_ms() {
  t=$(date +%s%3N)
  case $t in ''|*[!0-9]*) echo "$(date +%s)000" ;; *) echo "$t" ;; esac
}

# step NAME CMD...: runs CMD, then prints kind's "✓ NAME" line with the time
# it took ("✗ NAME" and the exit code on failure).
step() {
  sname=$1; shift
  vsay "$sname ..."
  t0=$(now_ms)
  src=0
  # in the background, so that a signal to kina is answered at once (a
  # trapped signal interrupts `wait`; a foreground kubeadm would hold it)
  # (without the cluster lock's fd 9: a step left running by a kill -9 of
  # kina must not keep the lock from `kina delete cluster`)
  "$@" 9>&- &
  step_pid=$!
  wait $step_pid || src=$?
  step_pid=''

  t1=$(now_ms)
  secs=$(( (t1 - t0) / 1000 )).$(( ( (t1 - t0) % 1000 ) / 100 ))
  if [ "$src" -eq 0 ]; then
    say " ✓ $sname (${secs}s)"
    # (the steps' times are for bench/: one that cannot be written is left out)
    [ -z "${steps_file:-}" ] || printf '%s\t%s\n' "$sname" "$((t1 - t0))" 2>/dev/null >> "$steps_file" || true
  else
    say " ✗ $sname (${secs}s, exit $src)"
  fi
  return "$src"
}

# tool NAME ARGS...: runs one of kina's tools (next to this script, else PATH).
tool_path() {
  for cand in "$kina_dir/$1" "$kina_dir/../$1/$1" "$kina_dir/../../build/tools/$1/$1"; do
    [ -x "$cand" ] && { printf '%s\n' "$cand"; return 0; }
  done
  command -v "$1" 2>/dev/null && return 0
  echo "$me: error: $1: not installed (build it with scripts/bootstrap)" >&2
  return 69
}
# fd 9 (the cluster lock) is closed for the tools: a machine's QEMU lives on
# and would hold the lock for its whole life.
tool() { t=$1; shift; tp=$(tool_path "$t") || return 69; "$tp" "$@" 9>&-; }

# The tools call each other by name (kina-node runs kina-vm and kina-kube):
# put the directories of the ones found first on PATH.
tools_on_path() {
  for t in kina-vm kina-kube kina-image kina-audit kina-node; do
    p=$(tool_path "$t" 2>/dev/null) || continue
    PATH=$(dirname "$p"):$PATH
  done
  export PATH
}

kina_home() {
  h=${KINA_HOME:-$HOME/.kina}
  make_dir "$h/clusters" || return $?
  chmod 700 "$h"
  (cd "$h" && pwd)
}

valid_name() {
  case $1 in
    ''|*[!a-z0-9-]*|-*|*-) return 1 ;;
  esac
  [ ${#1} -le 40 ]
}

# cluster_name FLAG_VALUE: --name, else KINA_CLUSTER_NAME, else KIND_CLUSTER_NAME, else "kind".
cluster_name() {
  n=${1:-${KINA_CLUSTER_NAME:-${KIND_CLUSTER_NAME:-kind}}}
  valid_name "$n" || die 64 "invalid cluster name '$n': lower-case letters, digits and '-', at most 40, not starting or ending with '-'"
  [ -z "${KINA_FE_CLUSTER_FILE:-}" ] || printf '%s\n' "$n" > "$KINA_FE_CLUSTER_FILE"
  printf '%s\n' "$n"
}

# lock_fd FD TIMEOUT: an flock on the shell's descriptor FD, held until it is
# closed (kina-node lock: flock(1)'s `flock -w` without util-linux).
lock_fd() {
  lp=$(tool_path kina-node) || return 69
  "$lp" lock --fd "$1" --timeout "$2"
}

# lock_cluster DIR: the cluster's lock on fd 9 (waits up to 10 minutes).
lock_cluster() {
  lf=$1/cluster.lock
  [ ! -L "$lf" ] || die 73 "$lf: is a symlink; refusing to use it as a lock"
  # (made first, checked: a failed redirection of exec would end the shell
  # with the shell's own message)
  : | append_to "$lf" || exit 74
  exec 9>>"$lf"
  # (in a subshell: the lock is on the open file, which the shell shares)
  lrc=0; lerr=$(lock_fd 9 10m 2>&1) || lrc=$?
  case $lrc in
    0) ;;
    75) die 75 "cluster $(basename "$1") is busy (another kina command holds $lf)" ;;
    *) die "$lrc" "cannot lock $lf: $lerr" ;;
  esac
}

# write_to FILE, append_to FILE: stdin to FILE (0600 when new). A write that
# fails (a full disk) is one error line naming FILE and the cause, and 74,
# which the caller passes on: nothing goes on from a file half written.
io_failed() {
  printf '%s: error: writing %s: %s\n' "$me" "$1" "$(printf '%s\n' "$2" | head -n 1 | sed 's/^[^:]*: //')" >&2
}
write_to() { werr=$( (umask 077; cat 2>&1 > "$1") ) || { io_failed "$1" "$werr"; return 74; }; }
make_dir() { werr=$(mkdir -p "$1" 2>&1) || { io_failed "$1" "$werr"; return 74; }; }
append_to() { werr=$( (umask 077; cat 2>&1 >> "$1") ) || { io_failed "$1" "$werr"; return 74; }; }
# write_atomic FILE: stdin to FILE through a temporary name in its directory
# (removed when the write fails: FILE is the old one or the new one).
write_atomic() {
  tmpf="$1.tmp.$$"
  write_to "$tmpf" || { rm -f "$tmpf"; return 74; }
  werr=$(mv -f "$tmpf" "$1" 2>&1) || { rm -f "$tmpf"; io_failed "$1" "$werr"; return 74; }
}
# jq_in_place FILE JQ-ARGS...: FILE rewritten by `jq -c JQ-ARGS FILE`, atomically.
jq_in_place() {
  jf=$1; shift
  jout=$(jq -c "$@" "$jf") || return 65
  printf '%s\n' "$jout" | write_atomic "$jf"
}

# verb_tmp WHAT: a private temporary directory of this verb inside the
# cluster's directory, so that `kina delete cluster` removes what a kill -9
# left (it may hold a client key); those of processes that are gone are
# swept first.
verb_tmp() {
  for d in "$cdir"/.tmp-*; do
    [ -d "$d" ] || continue
    kill -0 "${d##*-}" 2>/dev/null || rm -rf "$d"
  done
  d=$cdir/.tmp-$1-$$
  rm -rf "$d"
  werr=$( (umask 077; mkdir "$d") 2>&1) || { io_failed "$d" "$werr"; return 74; }
  printf '%s\n' "$d"
}

plan_records() { cat "$cdir/plan.jsonl"; }
machine_records() { [ -f "$cdir/machines.jsonl" ] && cat "$cdir/machines.jsonl" || true; }
node_names() { jq -r 'select(.kind=="NodePlan") | .name' "$cdir/plan.jsonl"; }
api_server() { jq -r 'select(.kind=="ClusterPlan") | "https://\(.networking.apiServerAddress | if . == "0.0.0.0" then "127.0.0.1" else . end):\(.networking.apiServerPort)"' "$cdir/plan.jsonl"; }
bootstrap_ip() { jq -r 'select(.kind=="Machine") | .ip' "$cdir/machines.jsonl" | head -n 1; }

# tcp_listening PORT: whether anything listens on TCP PORT of any address
# (ss on Linux, lsof on macOS, else netstat).
tcp_listening() {
  if command -v ss > /dev/null 2>&1; then
    [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
  elif command -v lsof > /dev/null 2>&1; then
    lsof -nP -iTCP:"$1" -sTCP:LISTEN > /dev/null 2>&1
  else
    netstat -an 2>/dev/null | grep -qE "[.:]$1[[:space:]].*LISTEN"
  fi
}

# free_port: a TCP port nothing listens on, from 30000-60999.
free_port() {
  p=$(( 30000 + ($$ * 7919 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ')) % 31000 ))
  i=0
  while [ $i -lt 200 ]; do
    if ! tcp_listening "$p" && ! grep -qE "\"(hostPort|apiServerPort)\":$p[,}]" "$1" 2>/dev/null; then
      printf '%s\n' "$p"; return 0
    fi
    p=$(( p + 1 )); [ $p -le 60999 ] || p=30000; i=$((i + 1))
  done
  return 75
}

# resolve_ports PLANFILE: hostPort 0 (kind's "any port") becomes a free port.
resolve_zero_ports() {
  while grep -q '"hostPort":0[,}]' "$1"; do
    p=$(free_port "$1") || die 75 "no free host port found"
    # the first port 0 of the first node that has one: one at a time
    first=$(jq -r 'select(.kind=="NodePlan") | select([.extraPortMappings[] | select(.hostPort == 0)] | length > 0) | .name' "$1" | head -n 1)
    jq_in_place "$1" --argjson p "$p" --arg n "$first" '
      if .kind == "NodePlan" and .name == $n then
        .extraPortMappings |= (. as $m | ([range(0; length) | select($m[.].hostPort == 0)] | first) as $i | .[$i].hostPort = $p)
      else . end' || return $?
  done
}

# resolve_ports PLANFILE: hostPort 0 (kind's "any port", and the API
# server's default) becomes a free port. The API server's port is the
# bootstrap node's 6443 mapping; with several control planes it is the load
# balancer's (kina-node lb) and each control plane publishes 6443 on a
# loopback port of its own, the balancer's backends.
resolve_ports() {
  resolve_zero_ports "$1" || return $?
  port=$(jq -r 'select(.kind=="NodePlan" and .bootstrap) | .extraPortMappings[] | select(.containerPort == 6443) | .hostPort' "$1" | head -n 1)
  jq_in_place "$1" --argjson p "$port" 'if .kind == "ClusterPlan" then .networking.apiServerPort = $p else . end' || return $?
  ncp=$(jq -r 'select(.kind=="ClusterPlan") | .controlPlanes' "$1")
  [ "$ncp" -gt 1 ] || return 0
  jq_in_place "$1" '
    if .kind == "NodePlan" and .role == "control-plane" then
      if .bootstrap then
        .extraPortMappings |= map(if .containerPort == 6443 then .hostPort = 0 | .listenAddress = "127.0.0.1" else . end)
      else
        .extraPortMappings = [{listenAddress: "127.0.0.1", hostPort: 0, containerPort: 6443, protocol: "TCP"}] + .extraPortMappings
      end
    else . end' || return $?
  resolve_zero_ports "$1"
}

# The load balancer of a cluster with several control planes. Its backends
# are the control planes that have joined, in $cdir/lb-backends (the
# balancer reads the file again when it changes): the bootstrap node's at
# first, each other control plane's once its join succeeded (lb_add). A
# published port accepts even before the node's API server listens, so a
# node that has not joined must not be a backend.
lb_backend() {
  jq -r --arg n "$1" 'select(.kind=="NodePlan" and .name==$n) | .extraPortMappings[] | select(.containerPort == 6443) | "127.0.0.1:\(.hostPort)"' "$cdir/plan.jsonl" | head -n 1
}
lb_add() {
  [ -f "$cdir/lb-backends" ] || return 0
  b=$(lb_backend "$1")
  [ -n "$b" ] || return 0
  { cat "$cdir/lb-backends"; printf '%s\n' "$b"; } | awk '!seen[$0]++' | write_atomic "$cdir/lb-backends"
}
# lb_pid: the pid of the cluster's balancer when it runs (ps, not /proc:
# macOS has none; any flags between `lb` and `--listen`, as lb_start's
# --detach).
lb_pid() {
  p=$(cat "$cdir/lb.pid" 2>/dev/null) || return 1
  case $p in ''|*[!0-9]*) return 1 ;; esac
  ps -o args= -p "$p" 2>/dev/null | grep -q "kina-node lb .*--listen" || return 1
  printf '%s\n' "$p"
}
lb_start() {
  ncp=$(jq -r 'select(.kind=="ClusterPlan") | .controlPlanes' "$cdir/plan.jsonl")
  [ "$ncp" -gt 1 ] || return 0
  ! lb_pid > /dev/null || return 0
  listen=$(jq -r 'select(.kind=="ClusterPlan") | "\(.networking.apiServerAddress):\(.networking.apiServerPort)"' "$cdir/plan.jsonl")
  if [ ! -s "$cdir/lb-backends" ]; then
    # create: the bootstrap node; start of a cluster made before this file
    # existed (lb_start all): every control plane.
    sel='select(.kind=="NodePlan" and .bootstrap) | .name'
    [ "${1:-}" != all ] || sel='select(.kind=="NodePlan" and .role=="control-plane") | .name'
    for n in $(jq -r "$sel" "$cdir/plan.jsonl"); do lb_backend "$n"; done | write_atomic "$cdir/lb-backends" || return $?
  fi
  lbp=$(tool_path kina-node) || return 69
  : | append_to "$cdir/lb.log" || return $?
  "$lbp" lb --detach --listen "$listen" --backends-file "$cdir/lb-backends" >> "$cdir/lb.log" 2>&1 < /dev/null 9>&- &
  lbpid=$!
  echo "$lbpid" | write_atomic "$cdir/lb.pid" || { kill -TERM "$lbpid" 2>/dev/null; return 74; }
  sleep 0.5
  lb_pid > /dev/null || { sed "s/^/   lb: /" "$cdir/lb.log" >&2; return 69; }
}
lb_stop() {
  p=$(lb_pid) || return 0
  kill -TERM "$p" 2>/dev/null || true
  rm -f "$cdir/lb.pid"
}

# ensure_image REF: REF in kina's store; kina's own node images
# (kina.local/node:vX.Y.Z) are built on first use.
ensure_image() {
  tool kina-image inspect "$1" > /dev/null 2>&1 && return 0
  case $1 in
    kina.local/node:v*)
      say "   node image $1 is not in kina's store: building it (the first build takes about 20 minutes)"
      "$kina_dir/kina" build node-image --kubernetes-version "${1#kina.local/node:}" --image "$1" > /dev/null 9>&- ;;
    *)
      tool kina-image pull "$1" > /dev/null ;;
  esac
}

# node_disk REF: the ext4 disk of image REF (read-only base shared by every
# node booted from it; each node writes to its own overlay), made once per
# image digest under $KINA_HOME/disks/.
node_disk() {
  digest=$(tool kina-image inspect "$1" | jq -r 'select(.kind=="Image") | .digest' | head -n 1)
  [ -n "$digest" ] || return 66
  d=$home/disks/node-${digest#sha256:}.ext4
  make_dir "$home/disks" || return $?
  # (made first, checked: a failed redirection of exec would end the shell)
  : | append_to "$home/disks/.node-disk.lock" || return $?
  (
    exec 8>>"$home/disks/.node-disk.lock"
    lock_fd 8 2h 9>&- || exit $?
    if [ ! -f "$d" ]; then
      rm -f "$d.tmp"
      urc=0; tool kina-image unpack "$1" --disk "$d.tmp" --disk-size "$KINA_DISK_SIZE" > /dev/null || urc=$?
      [ $urc -eq 0 ] || { rm -f "$d.tmp"; exit $urc; }
      werr=$(mv -f "$d.tmp" "$d" 2>&1) || { rm -f "$d.tmp"; io_failed "$d" "$werr"; exit 74; }
    fi
  ) || return $?
  printf '%s\n' "$d"
}

# plan_backend PLANFILE: the cluster's kina-vm backend: the plan's (a
# kina/v1alpha1 config's `backend:`), where auto is apple on macOS and qemu
# elsewhere.
plan_backend() {
  b=$(jq -r 'select(.kind=="ClusterPlan") | .backend // "auto"' "$1")
  if [ "$b" = auto ]; then
    case $(uname -s) in Darwin) b=apple ;; *) b=qemu ;; esac
  fi
  printf '%s\n' "$b"
}

# apple_image REF: REF from kina's store loaded into Apple container's image
# store (`container image load` of kina-image's OCI archive); prints
# REF@DIGEST, what `kina-vm boot --backend apple --image` runs.
apple_image() {
  digest=$(tool kina-image inspect "$1" | jq -r 'select(.kind=="Image") | .digest' | head -n 1)
  [ -n "$digest" ] || return 66
  tool kina-image export "$1" --out "$work/apple-image.tar" > /dev/null || return $?
  rc=0
  container image load --input "$work/apple-image.tar" > "$work/apple-image.log" 2>&1 || rc=$?
  rm -f "$work/apple-image.tar"
  if [ $rc -ne 0 ]; then
    sed 's/^/   container image load: /' "$work/apple-image.log" >&2
    return 69
  fi
  printf '%s@%s\n' "$1" "$digest"
}

# boot_args NODEPLAN_JSON: kina-vm boot flags for one node.
boot_args() {
  printf '%s\n' "$1" | jq -r '
    "--cpus", (.cpus|tostring), "--memory", "\(.memoryMiB)Mi",
    (.extraPortMappings[] | "--publish", "\(.listenAddress):\(.hostPort):\(.containerPort)/\(.protocol | ascii_downcase)"),
    (.extraMounts[] | "--mount", "\(.hostPath):\(.containerPath)\(if .readOnly then ":ro" else "" end)")'
}

# A node's boot or join counts only when its success marker could be
# written (NODE.ok in $work): a failure whose record could not be written
# (a full disk) is never taken for a success.
# (its own variable names: `what` is kina's, recorded in the audit event)
all_ok() {
  okstep=$1; shift
  for okn in "$@"; do
    [ -e "$work/$okstep-$okn.ok" ] && continue
    frc=$(cut -d' ' -f2 "$work/$okstep.failed" 2>/dev/null | head -n 1)
    return "${frc:-74}"
  done
}

boot_nodes() {
  : > "$work/boot.failed" || return 74
  for n in $(node_names); do
    (
      np=$(jq -c --arg n "$n" 'select(.kind=="NodePlan" and .name==$n)' "$cdir/plan.jsonl")
      img=$(printf '%s\n' "$np" | jq -r .image)
      # the node's root: the image's disk (qemu) or its REF@DIGEST (apple)
      root=$(grep -F "$img	" "$work/disks" | cut -f2)
      # one flag per line: paths with spaces stay whole
      set --
      while IFS= read -r a; do set -- "$@" "$a"; done <<EOF
$(boot_args "$np")
EOF
      if [ "$backend" = apple ]; then set -- --backend apple --image "$root" "$@"; else set -- --disk "$root" "$@"; fi
      # (its errors kept in memory: on a full disk, a file for them could
      # not be written either)
      rc=0
      err=$(tool kina-vm boot --name "$n" --cluster "$cname" --network "$KINA_NETWORK" \
        --ready systemd --timeout "$KINA_BOOT_TIMEOUT" "$@" 2>&1 > "$work/boot-$n.json") || rc=$?
      [ $rc -ne 0 ] || err=$(true 2>&1 > "$work/boot-$n.ok") || rc=74
      if [ $rc -ne 0 ]; then
        echo "$n $rc" 2>/dev/null >> "$work/boot.failed"
        printf '%s\n' "$err" | sed "s/^/   $n: /" >&2
      fi
    ) &
  done
  wait
  all_ok boot $(node_names) || return $?
  records=$(for n in $(node_names); do cat "$work/boot-$n.json"; done | jq -c 'select(.kind=="Machine")') || return 65
  printf '%s\n' "$records" | write_atomic "$cdir/machines.jsonl"
}

# ensure_kernel: the kernel kina-vm boots (Debian's cloud kernel, fetched once).
ensure_kernel() { tool kina-vm kernel > /dev/null 2>&1 || tool kina-vm kernel --fetch > /dev/null; }

pki_init() { tool kina-kube pki init --cluster "$cname" > /dev/null; }

node_step() {
  # node_step CMD ARGS...: kina-node CMD with the plan and machines on stdin
  { plan_records; machine_records; } | tool kina-node "$@" $vflag
}

join_nodes() {
  role=$1
  nodes=$(jq -r --arg r "$role" 'select(.kind=="NodePlan" and .role==$r and (.bootstrap|not)) | .name' "$cdir/plan.jsonl")
  [ -n "$nodes" ] || return 0
  if [ "$role" = control-plane ]; then
    for n in $nodes; do node_step join --node "$n" > /dev/null || return $?; lb_add "$n" || return $?; done
    return 0
  fi
  : > "$work/join.failed" || return 74
  for n in $nodes; do
    ( rc=0; err=$(node_step join --node "$n" 2>&1 > /dev/null) || rc=$?
      [ $rc -ne 0 ] || err=$(true 2>&1 > "$work/join-$n.ok") || rc=74
      [ $rc -eq 0 ] || { echo "$n $rc" 2>/dev/null >> "$work/join.failed"; printf '%s\n' "$err" | sed "s/^/   $n: /" >&2; } ) &
  done
  wait
  all_ok join $nodes
}

# mint_kubeconfig OUT USER GROUP TTL [internal]: a kubeconfig signed by the cluster CA.
mint_kubeconfig() {
  server=$(api_server)
  [ "${5:-}" != internal ] || server=https://$(bootstrap_ip):6443
  tool kina-kube sign --cluster "$cname" --user "$2" --group "$3" --ttl "$4" --server "$server" --out "$1"
}

export_kubeconfig() {
  kc=$cdir/kubeconfigs/kina-admin.kubeconfig
  make_dir "$cdir/kubeconfigs" || return $?
  rm -f "$kc"
  if [ -n "${1:-}" ]; then
    mint_kubeconfig "$kc" kina-admin kina:cluster-admins "$2" "${3:-}" | tool kina-kube merge --kubeconfig "$1" > /dev/null
  else
    mint_kubeconfig "$kc" kina-admin kina:cluster-admins "$2" "${3:-}" | tool kina-kube merge > /dev/null
  fi
}

# marked_pids ID: the processes whose environment has KINA_CREATE_ID=ID,
# from BSD-style `ps e`, which appends each process's environment to its
# command (procps on Linux, ps on macOS).
marked_pids() {
  ps axeww -o pid= -o command= 2>/dev/null |
    awk -v m="KINA_CREATE_ID=$1" -v self="$$" '$1 != self { for (i = 2; i <= NF; i++) if ($i == m) { printf " %s", $1; break } }'
}

# stop_marked ID: SIGTERM (then SIGKILL after 5 s) to those processes.
stop_marked() {
  pids=$(marked_pids "$1")
  [ -n "$pids" ] || return 0
  vsay "stopping what the create left running:$pids"
  kill -TERM $pids 2>/dev/null || true
  i=0
  while [ $i -lt 50 ]; do
    alive=''
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -n "$alive" ] || return 0
    sleep 0.1; i=$((i + 1))
  done
  kill -KILL $alive 2>/dev/null || true
}

# remove_cluster: the load balancer, every machine, the network, the kubeconfig entries and the
# directory of cluster $cname. Works on whatever a failed or killed create left.
# The kubeconfig entries go last but one: their removal reads the merge's
# state in the cluster's directory, and rewrites the kubeconfig, which on a
# full disk can fail; then the directory is kept (the next delete finishes)
# and the verb fails with unmerge's error.
remove_cluster() {
  # the processes a killed or failed create left running (its tools carry
  # KINA_CREATE_ID in their environment; the shell itself does not)
  st=$(cat "$home/clusters/$cname/state" 2>/dev/null || true)
  case $st in creating\ *) stop_marked "${st#creating }" ;; esac
  cdir=$home/clusters/$cname; lb_stop
  machines=$(tool kina-vm ls --cluster "$cname" 2>/dev/null | jq -r 'select(.kind=="Machine") | .name' || true)
  for m in $machines; do
    tool kina-vm rm -f --cluster "$cname" "$m" > /dev/null 2>&1 || tool kina-vm rm -f --cluster "$cname" "$m" > /dev/null || true
  done
  tool kina-vm network rm -f "$KINA_NETWORK" --cluster "$cname" > /dev/null 2>&1 || true
  urc=0; uerr=$(tool kina-kube unmerge --cluster "$cname" 2>&1 > /dev/null) || urc=$?
  if [ "$urc" -ne 0 ]; then
    printf '%s\n' "$uerr" | grep ': error: ' >&2 || printf '%s\n' "$uerr" >&2
    say "   the kubeconfig entries of cluster \"$cname\" are still there: its directory is kept for the next 'kina delete cluster --name $cname'"
    return "$urc"
  fi
  [ -n "$cname" ] && rm -rf "$home/clusters/$cname"
}

usage_create() {
  cat <<USAGE
usage: kina create cluster [--name N] [--config FILE] [--image REF] [--retain] [--wait DURATION]
                           [--kubeconfig FILE] [--kubeconfig-ttl DURATION] [--policy FILE]
                           [--allow-public] [-q] [-v]
Creates a cluster whose nodes are VMs from kind's config (kind.x-k8s.io/v1alpha4 or
kina/v1alpha1; none: one control plane). The name: --name, else KINA_CLUSTER_NAME, else
KIND_CLUSTER_NAME, else the config's, else "kind". Merges an admin kubeconfig (group
kina:cluster-admins, valid --kubeconfig-ttl, default $KINA_KUBECONFIG_TTL_DEFAULT) as context kina-NAME.
--wait D waits up to D for every node to be Ready (default: do not wait, as kind).
A failed or interrupted create removes what it made unless --retain.
USAGE
}

cmd_create_cluster() {
  name='' config='' image='' retain=0 waitd='' kubeconfig='' ttl=$KINA_KUBECONFIG_TTL_DEFAULT policy='' public=''
  while [ $# -gt 0 ]; do
    case $1 in
      --name) name=${2:?--name needs a value}; shift 2 ;;
      --name=*) name=${1#*=}; shift ;;
      --config) config=${2:?--config needs a value}; shift 2 ;;
      --config=*) config=${1#*=}; shift ;;
      --image) image=${2:?--image needs a value}; shift 2 ;;
      --image=*) image=${1#*=}; shift ;;
      --retain) retain=1; shift ;;
      --wait) waitd=${2:?--wait needs a value}; shift 2 ;;
      --wait=*) waitd=${1#*=}; shift ;;
      --kubeconfig) kubeconfig=${2:?--kubeconfig needs a value}; shift 2 ;;
      --kubeconfig=*) kubeconfig=${1#*=}; shift ;;
      --kubeconfig-ttl) ttl=${2:?--kubeconfig-ttl needs a value}; shift 2 ;;
      --policy) policy=${2:?--policy needs a value}; shift 2 ;;
      --allow-public) public=--allow-public; shift ;;
      -q|--quiet) quiet=1; shift ;;
      -v|--verbose) verbose=1; shift ;;
      -h|--help) usage_create; return 0 ;;
      *) echo "$me: error: create cluster: unknown flag '$1'" >&2; usage_create >&2; return 64 ;;
    esac
  done
  vflag=''; [ "$verbose" = 1 ] && vflag=-v
  home=$(kina_home) || return $?
  tools_on_path
  set --
  [ -z "$config" ] || set -- "$@" --config "$config"
  n=${name:-${KINA_CLUSTER_NAME:-${KIND_CLUSTER_NAME:-}}}
  if [ -n "$n" ]; then cn=$(cluster_name "$n") || return $?; set -- "$@" --name "$cn"; fi
  [ -z "$image" ] || set -- "$@" --image "$image"
  [ -z "$policy" ] || set -- "$@" --policy "$policy"
  [ -z "$public" ] || set -- "$@" "$public"
  plan=$(tool kina-node plan "$@") || return $?
  cname=$(printf '%s\n' "$plan" | jq -r 'select(.kind=="ClusterPlan") | .name')
  backend=$(printf '%s\n' "$plan" | plan_backend /dev/stdin)
  # Several control planes sit behind kina-node lb on the host's loopback,
  # which the nodes reach at QEMU's 10.0.2.2; Apple's containers have no such
  # path to the host's loopback yet.
  if [ "$backend" = apple ] && [ "$(printf '%s\n' "$plan" | jq -r 'select(.kind=="ClusterPlan") | .controlPlanes')" -gt 1 ]; then
    die 69 "several control planes on the apple backend: not supported yet (the host-side load balancer is reached only from QEMU nodes); use one control plane"
  fi
  [ -z "${KINA_FE_CLUSTER_FILE:-}" ] || printf '%s\n' "$cname" > "$KINA_FE_CLUSTER_FILE"
  cdir=$home/clusters/$cname
  make_dir "$cdir" || return $?
  chmod 700 "$cdir"
  lock_cluster "$cdir"
  if [ -e "$cdir/plan.jsonl" ]; then
    die 73 "cluster '$cname' already exists (kina delete cluster --name $cname removes it)"
  fi
  work=$(verb_tmp create) || return $?
  steps_file=$work/steps
  created=0
  create_cleanup() {
    unset KINA_CREATE_ID
    [ -z "${step_pid:-}" ] || kill -TERM "$step_pid" 2>/dev/null
    if [ "$rc" -ne 0 ] && [ "$created" = 0 ]; then
      if [ "$retain" = 1 ]; then
        say "   create failed (exit $rc); --retain: the nodes are kept (kina delete cluster --name $cname removes them)"
        echo failed | write_atomic "$cdir/state" || true
      else
        say "   create failed (exit $rc): removing what it made"
        remove_cluster
      fi
    fi
    rm -rf "$work"
  }
  cleanup_hook=create_cleanup
  KINA_CREATE_ID=$cname-$$-$(date +%s)-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
  export KINA_CREATE_ID
  echo "creating $KINA_CREATE_ID" | write_atomic "$cdir/state" || return $?
  say "Creating cluster \"$cname\" ..."
  printf '%s\n' "$plan" | write_to "$work/plan.jsonl" || return $?
  resolve_ports "$work/plan.jsonl" || return $?
  write_atomic "$cdir/plan.jsonl" < "$work/plan.jsonl" || return $?
  : > "$work/disks" || return 74
  for img in $(jq -r 'select(.kind=="NodePlan") | .image' "$cdir/plan.jsonl" | sort -u); do
    step "Ensuring node image $img" ensure_image "$img" || return $?
    if [ "$backend" = apple ]; then
      d=$(step "Loading the node image into container" apple_image "$img") || return $?
    else
      d=$(step "Preparing the node disk" node_disk "$img") || return $?
    fi
    printf '%s\t%s\n' "$img" "$d" | append_to "$work/disks" || return $?
  done
  [ "$backend" = apple ] || { step "Ensuring the node kernel" ensure_kernel || return $?; }
  step "Creating the cluster CAs" pki_init || return $?
  step "Creating the cluster network" tool kina-vm network create "$KINA_NETWORK" --cluster "$cname" --backend "$backend" > /dev/null || return $?
  step "Booting nodes" boot_nodes || return $?
  step "Starting the load balancer" lb_start || return $?
  step "Starting the control plane (kubeadm init)" node_step init > /dev/null || return $?
  step "Installing the CNI and StorageClass" node_step addons > /dev/null || return $?
  step "Joining control-plane nodes" join_nodes control-plane || return $?
  step "Joining worker nodes" join_nodes worker || return $?
  if [ -n "$waitd" ]; then
    step "Waiting for the nodes to be Ready" node_step wait --timeout "$waitd" > /dev/null || return $?
  fi
  # (the state first: a kubeconfig is merged only for a cluster that is kept)
  echo running | write_atomic "$cdir/state" || return $?
  step "Writing the kubeconfig" export_kubeconfig "$kubeconfig" "$ttl" || return $?
  write_atomic "$cdir/create-steps.tsv" < "$steps_file" 2>/dev/null || true
  created=1
  say "Set kubectl context to \"kina-$cname\""
  say "You can now use your cluster with:"
  say ""
  say "kubectl cluster-info --context kina-$cname"
  return 0
}

cmd_delete_cluster() {
  name=''
  while [ $# -gt 0 ]; do
    case $1 in
      --name) name=${2:?--name needs a value}; shift 2 ;;
      --name=*) name=${1#*=}; shift ;;
      --kubeconfig) shift 2 ;;
      -q|--quiet) quiet=1; shift ;;
      -v|--verbose) verbose=1; shift ;;
      -h|--help) echo "usage: kina delete cluster [--name N]: removes every node, the network, the kubeconfig entries and the state of cluster N"; return 0 ;;
      *) echo "$me: error: delete cluster: unknown flag '$1'" >&2; return 64 ;;
    esac
  done
  home=$(kina_home) || return $?
  tools_on_path
  cname=$(cluster_name "$name") || return $?
  cdir=$home/clusters/$cname
  say "Deleting cluster \"$cname\" ..."
  [ -d "$cdir" ] || return 0
  lock_cluster "$cdir"
  remove_cluster || return $?
  say "Deleted nodes: cluster \"$cname\""
}

cmd_delete_clusters() {
  all=0
  names=''
  while [ $# -gt 0 ]; do
    case $1 in
      --all|-A) all=1; shift ;;
      -*) echo "$me: error: delete clusters: unknown flag '$1'" >&2; return 64 ;;
      *) names="$names $1"; shift ;;
    esac
  done
  home=$(kina_home) || return $?
  [ "$all" = 0 ] || names=$(cluster_list)
  [ -n "$names" ] || { [ "$all" = 1 ] && return 0; echo "$me: error: delete clusters: name clusters or pass --all" >&2; return 64; }
  rc=0
  for n in $names; do (cmd_delete_cluster --name "$n") || rc=$?; done
  return $rc
}

cluster_list() {
  for d in "$home"/clusters/*/; do
    [ -f "$d/plan.jsonl" ] && basename "$d"
  done 2>/dev/null || true
}

cmd_get() {
  what=${1:-}; [ $# -gt 0 ] && shift
  home=$(kina_home) || return $?
  tools_on_path
  case $what in
    clusters)
      l=$(cluster_list)
      [ -n "$l" ] || { echo "No kina clusters found." >&2; return 0; }
      printf '%s\n' "$l" ;;
    nodes)
      name='' allc=0
      while [ $# -gt 0 ]; do
        case $1 in
          --name) name=${2:?}; shift 2 ;;
          --name=*) name=${1#*=}; shift ;;
          -A|--all-clusters) allc=1; shift ;;
          *) echo "$me: error: get nodes: unknown flag '$1'" >&2; return 64 ;;
        esac
      done
      if [ "$allc" = 1 ]; then
        for c in $(cluster_list); do tool kina-vm ls --cluster "$c" | jq -r 'select(.kind=="Machine") | .name'; done
      else
        cname=$(cluster_name "$name") || return $?
        [ -f "$home/clusters/$cname/plan.jsonl" ] || { echo "No kina nodes found for cluster \"$cname\"." >&2; return 0; }
        tool kina-vm ls --cluster "$cname" | jq -r 'select(.kind=="Machine") | .name'
      fi ;;
    kubeconfig)
      name='' internal='' user=kina-admin group=kina:cluster-admins ttl=$KINA_KUBECONFIG_TTL_DEFAULT groups_given=0
      while [ $# -gt 0 ]; do
        case $1 in
          --name) name=${2:?}; shift 2 ;;
          --name=*) name=${1#*=}; shift ;;
          --internal) internal=internal; shift ;;
          --user) user=${2:?--user needs a value}; shift 2 ;;
          --group) [ "$groups_given" = 1 ] || group=''; groups_given=1; group="$group ${2:?--group needs a value}"; shift 2 ;;
          --ttl) ttl=${2:?--ttl needs a value}; shift 2 ;;
          *) echo "$me: error: get kubeconfig: unknown flag '$1'" >&2; return 64 ;;
        esac
      done
      cname=$(cluster_name "$name") || return $?
      cdir=$home/clusters/$cname
      [ -f "$cdir/plan.jsonl" ] || die 66 "cluster '$cname' does not exist"
      if [ "$groups_given" = 0 ] && [ "$user" != kina-admin ]; then group=''; fi
      work=$(verb_tmp kubeconfig) || return $?
      cleanup_hook='rm -rf "$work"'
      set --
      for g in $group; do set -- "$@" --group "$g"; done
      server=$(api_server)
      [ -z "$internal" ] || server=https://$(bootstrap_ip):6443
      tool kina-kube sign --cluster "$cname" --user "$user" "$@" --ttl "$ttl" --server "$server" --out "$work/kc" > /dev/null || return $?
      cat "$work/kc" ;;
    ''|*) echo "$me: error: get: kina can get clusters, nodes, kubeconfig" >&2; return 64 ;;
  esac
}

cmd_export() {
  what=${1:-}; [ $# -gt 0 ] && shift
  home=$(kina_home) || return $?
  tools_on_path
  case $what in
    kubeconfig)
      name='' kubeconfig='' internal='' ttl=$KINA_KUBECONFIG_TTL_DEFAULT
      while [ $# -gt 0 ]; do
        case $1 in
          --name) name=${2:?}; shift 2 ;;
          --name=*) name=${1#*=}; shift ;;
          --kubeconfig) kubeconfig=${2:?}; shift 2 ;;
          --internal) internal=internal; shift ;;
          --kubeconfig-ttl|--ttl) ttl=${2:?}; shift 2 ;;
          *) echo "$me: error: export kubeconfig: unknown flag '$1'" >&2; return 64 ;;
        esac
      done
      cname=$(cluster_name "$name") || return $?
      cdir=$home/clusters/$cname
      [ -f "$cdir/plan.jsonl" ] || die 66 "cluster '$cname' does not exist"
      lock_cluster "$cdir"
      export_kubeconfig "$kubeconfig" "$ttl" "$internal"
      say "Set kubectl context to \"kina-$cname\"" ;;
    logs)
      dir='' name=''
      while [ $# -gt 0 ]; do
        case $1 in
          --name) name=${2:?}; shift 2 ;;
          --name=*) name=${1#*=}; shift ;;
          -*) echo "$me: error: export logs: unknown flag '$1'" >&2; return 64 ;;
          *) dir=$1; shift ;;
        esac
      done
      cname=$(cluster_name "$name") || return $?
      cdir=$home/clusters/$cname
      [ -f "$cdir/plan.jsonl" ] || die 66 "cluster '$cname' does not exist"
      [ -n "$dir" ] || dir=$(mktemp -d "${TMPDIR:-/tmp}/kina-logs.XXXXXX") || return 73
      mkdir -p "$dir" || die 73 "export logs: cannot make $dir"
      export_logs "$dir" || return $?
      printf '%s\n' "$dir" ;;
    *) echo "$me: error: export: kina can export kubeconfig, logs" >&2; return 64 ;;
  esac
}

# collect FILE CMD...: CMD's output into FILE (export logs). What fails is
# noted and the export goes on: a command that fails in a node is a warning
# (the node may lack it, or be broken: why logs are exported); a write into
# the export directory that fails (a full disk) makes the export fail (74)
# once everything else was tried. The output goes through cat, whose
# failure is seen whatever the command does when its own writes fail (a
# program in a node may not check them). Each side of the pipe reports on
# fd 3 in one line written at once ("kina-rc=N WHY", "kina-wrc WHY"), so
# the two reports never mix.
collect() {
  cf=$1; shift
  cout=$( { { lerr=$("$@" 2>&1 >&4 4>&- 3>&-); lrc=$?
              printf 'kina-rc=%s %s\n' "$lrc" "$(printf '%s\n' "$lerr" | grep -v '^$' | head -n 1)" >&3; } 4>&1 |
            { werr=$(cat 2>&1 > "$cf") ||
                printf 'kina-wrc %s\n' "$(printf '%s\n' "${werr:-cat failed}" | head -n 1)" >&3; }; } 3>&1 )
  rline=$(printf '%s\n' "$cout" | sed -n 's/^kina-rc=//p' | head -n 1)
  crc=${rline%% *} cwhy=${rline#* }
  if printf '%s\n' "$cout" | grep -q '^kina-wrc '; then
    cwhy=$(printf '%s\n' "$cout" | sed -n 's/^kina-wrc //p' | head -n 1)
    export_unwritten="$export_unwritten ${cf#"$export_dir"/}"
    [ -n "$export_why" ] || export_why=${cwhy##*: }
  elif [ "${crc:-0}" = 0 ]; then
    return 0
  fi
  say "$me: warning: export logs: ${cf#"$export_dir"/}: ${cwhy:-exit $crc}"
}

export_logs() {
  export_dir=$1 export_unwritten='' export_why=''
  collect "$1/plan.jsonl" cat "$cdir/plan.jsonl"
  # (the nodes from memory: machines.jsonl may be the first write that fails)
  mrecs=$(tool kina-vm ls --cluster "$cname" | jq -c 'select(.kind=="Machine")') ||
    say "$me: warning: export logs: kina-vm ls failed: the nodes' logs are left out"
  collect "$1/machines.jsonl" printf '%s\n' "$mrecs"
  for n in $(printf '%s\n' "$mrecs" | jq -r .name); do
    nd=$1/$n
    mkdir -p "$nd" || { export_unwritten="$export_unwritten $n/"; export_why=${export_why:-"cannot make $n/"}; continue; }
    mdir=$(printf '%s\n' "$mrecs" | jq -r --arg n "$n" 'select(.name==$n) | .dir')
    for f in console.old.log console.log; do
      [ ! -f "$mdir/$f" ] || collect "$nd/$f" cat "$mdir/$f"
    done
    state=$(printf '%s\n' "$mrecs" | jq -r --arg n "$n" 'select(.name==$n) | .state')
    [ "$state" = running ] || continue
    collect "$nd/journal.log" tool kina-vm exec --cluster "$cname" "$n" -- journalctl --no-pager
    collect "$nd/kubelet.log" tool kina-vm exec --cluster "$cname" "$n" -- journalctl --no-pager -u kubelet
    collect "$nd/containerd.log" tool kina-vm exec --cluster "$cname" "$n" -- journalctl --no-pager -u containerd
    collect "$nd/kubernetes-version.txt" tool kina-vm exec --cluster "$cname" "$n" -- cat /kind/version
    collect "$nd/containers.txt" tool kina-vm exec --cluster "$cname" "$n" -- crictl ps -a
    collect "$nd/pod-logs.tar" tool kina-vm exec --cluster "$cname" "$n" -- tar -C /var/log -cf - pods containers
  done
  collect "$1/audit.jsonl" jq -c --arg c "$cname" 'select(.cluster == $c)' "$home/audit/log.jsonl"
  [ -z "$export_unwritten" ] ||
    die 74 "export logs: $1 is incomplete: $(echo $export_unwritten | wc -w | tr -d ' ') of its files could not be written (the warnings above name them): $export_why"
}

# load_archive FILE NODES...: ctr import of an image archive in each node (k8s.io namespace).
load_archive() {
  f=$1; shift
  : > "$work/load.failed" || return 74
  for n in "$@"; do
    ( rc=0; err=$(tool kina-vm exec --cluster "$cname" -i "$n" -- ctr --namespace=k8s.io images import --digests --snapshotter=overlayfs - \
        < "$f" 2>&1 > /dev/null) || rc=69
      [ $rc -ne 0 ] || err=$(true 2>&1 > "$work/load-$n.ok") || rc=74
      [ $rc -eq 0 ] || { echo "$n $rc" 2>/dev/null >> "$work/load.failed"; printf '%s\n' "$err" | sed "s/^/   $n: /" >&2; } ) &
  done
  wait
  all_ok load "$@"
}

cmd_load() {
  what=${1:-}; [ $# -gt 0 ] && shift
  home=$(kina_home) || return $?
  tools_on_path
  name='' nodes='' src=''
  while [ $# -gt 0 ]; do
    case $1 in
      --name) name=${2:?}; shift 2 ;;
      --name=*) name=${1#*=}; shift ;;
      --nodes) nodes=$(printf '%s' "${2:?}" | tr ',' ' '); shift 2 ;;
      --nodes=*) nodes=$(printf '%s' "${1#*=}" | tr ',' ' '); shift ;;
      -*) echo "$me: error: load: unknown flag '$1'" >&2; return 64 ;;
      *) src=$1; shift ;;
    esac
  done
  [ -n "$src" ] || { echo "$me: error: load $what: name an archive or an image" >&2; return 64; }
  cname=$(cluster_name "$name") || return $?
  cdir=$home/clusters/$cname
  [ -f "$cdir/plan.jsonl" ] || die 66 "cluster '$cname' does not exist"
  [ -n "$nodes" ] || nodes=$(node_names)
  for n in $nodes; do node_names | grep -qx "$n" || die 66 "node '$n' is not in cluster '$cname'"; done
  work=$(verb_tmp load) || return $?
  cleanup_hook='rm -rf "$work"'
  case $what in
    image-archive)
      [ -f "$src" ] || die 66 "$src: not a regular file"
      load_archive "$src" $nodes ;;
    image)
      tool kina-image export "$src" --out "$work/image.tar" > /dev/null || return $?
      load_archive "$work/image.tar" $nodes ;;
    *) echo "$me: error: load: kina can load image-archive, image" >&2; return 64 ;;
  esac
}

# stop_start stop|start [--name N]: workers first on stop, control planes first on start.
cmd_stop_start() {
  verb=$1; shift
  name='' waitd=15m
  while [ $# -gt 0 ]; do
    case $1 in
      --name) name=${2:?}; shift 2 ;;
      --name=*) name=${1#*=}; shift ;;
      --wait) waitd=${2:?}; shift 2 ;;
      -q|--quiet) quiet=1; shift ;;
      -v|--verbose) verbose=1; shift ;;
      *) echo "$me: error: $verb cluster: unknown flag '$1'" >&2; return 64 ;;
    esac
  done
  vflag=''; [ "$verbose" = 1 ] && vflag=-v
  home=$(kina_home) || return $?
  tools_on_path
  cname=$(cluster_name "$name") || return $?
  cdir=$home/clusters/$cname
  [ -f "$cdir/plan.jsonl" ] || die 66 "cluster '$cname' does not exist"
  lock_cluster "$cdir"
  cps=$(jq -r 'select(.kind=="NodePlan" and .role=="control-plane") | .name' "$cdir/plan.jsonl")
  ws=$(jq -r 'select(.kind=="NodePlan" and .role=="worker") | .name' "$cdir/plan.jsonl")
  if [ "$verb" = stop ]; then
    for n in $ws $cps; do
      step "Stopping $n" tool kina-vm stop --cluster "$cname" --timeout "${KINA_STOP_TIMEOUT:-180s}" "$n" > /dev/null || return $?
    done
    lb_stop
    echo stopped | write_atomic "$cdir/state" || return $?
  else
    step "Starting the load balancer" lb_start all || return $?
    for n in $cps $ws; do
      step "Starting $n" tool kina-vm start --cluster "$cname" --ready systemd --timeout "$KINA_BOOT_TIMEOUT" "$n" > /dev/null || return $?
    done
    records=$(tool kina-vm ls --cluster "$cname" | jq -c 'select(.kind=="Machine")') || return 69
    printf '%s\n' "$records" | write_atomic "$cdir/machines.jsonl" || return $?
    step "Waiting for the nodes to be Ready" node_step wait --timeout "$waitd" > /dev/null || return $?
    echo running | write_atomic "$cdir/state" || return $?
  fi
}
