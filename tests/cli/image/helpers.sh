# helpers.sh: sourced by the kina-image CLI tests after lib.sh.
HERE="$KINA_SRC/tests/cli/image"
treecmp() { python3 "$HERE/treecmp.py" "$@"; }
tree_hash() { python3 "$HERE/treecmp.py" --hash "$1"; }

# build_rich_image LAYOUT TAG: a two-layer image made with umoci that has
# setuid files, xattrs (a file capability too), hardlinks, absolute and
# relative symlinks, devices, a FIFO, and deletions (whiteouts) in layer 2.
build_rich_image() {
  local layout=$1 tag=$2
  local b="$TEST_TMP/bundle-$tag"
  [ -d "$layout" ] || umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$b" >/dev/null
  local r="$b/rootfs"
  mkdir -p "$r/etc" "$r/usr/bin" "$r/var" "$r/run" "$r/gone/deep" "$r/opt/app"
  echo hello >"$r/etc/hello"
  head -c 200000 /dev/urandom >"$r/usr/bin/big"
  cp "$r/usr/bin/big" "$r/usr/bin/tool"
  chmod 4755 "$r/usr/bin/tool"
  chmod 2711 "$r/usr/bin/big"
  ln "$r/usr/bin/tool" "$r/usr/bin/tool-link"
  ln -s /run "$r/var/run"
  ln -s ../etc/hello "$r/opt/app/rel"
  ln -s /nonexistent/abs "$r/opt/app/dangling"
  mknod "$r/dev-null" c 1 3
  mknod "$r/dev-loop" b 7 0
  mkfifo "$r/fifo"
  echo x >"$r/gone/deep/file"
  echo y >"$r/opt/app/old"
  chown 1000:1000 "$r/opt/app/old"
  chown -h 12:34 "$r/opt/app/rel"
  chmod 0700 "$r/opt/app"
  python3 - "$r" <<'PY'
import os, sys
r = sys.argv[1]
os.setxattr(r + "/etc/hello", "user.note", b"kina")
os.setxattr(r + "/usr/bin/tool", "security.capability", bytes.fromhex("0100000200200000000000000000000000000000"))
os.setxattr(r + "/opt/app", "trusted.overlay.opaque", b"y")
PY
  umoci repack --refresh-bundle --image "$layout:$tag" "$b"
  # Layer 2: deletions and a replaced file.
  rm -rf "$r/gone" "$r/opt/app/old"
  echo changed >"$r/etc/hello"
  mkdir -p "$r/etc/new"
  echo n >"$r/etc/new/file"
  umoci repack --image "$layout:$tag" "$b"
  rm -rf "$b"
}

# start_registry: Debian's docker-registry on 127.0.0.1 (a free port) with its
# own config and storage in $TEST_TMP; sets $reg (HOST:PORT); its log (access
# lines included) is $TEST_TMP/registry.log.
start_registry() {
  local port
  port=$(free_port)
  reg="127.0.0.1:$port"
  cat >"$TEST_TMP/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $TEST_TMP/registry-data
http:
  addr: 127.0.0.1:$port
YML
  docker-registry serve "$TEST_TMP/registry.yml" >"$TEST_TMP/registry.log" 2>&1 &
  track_pid $!
  for _ in $(seq 100); do curl -fs "http://$reg/v2/" >/dev/null && break; sleep 0.1; done
  curl -fs "http://$reg/v2/" >/dev/null || fail "registry did not start: $(cat "$TEST_TMP/registry.log")"
}

# start_token_registry: docker-registry on 127.0.0.1 asking token_server.py
# (service kina-test) for JWTs signed by a fresh tok.key; sets $treg
# (HOST:PORT); logs in $TEST_TMP/treg.log and $TEST_TMP/token.log.
start_token_registry() {
  local tport rport code
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TEST_TMP/tok.key" -out "$TEST_TMP/tok.crt" -days 1 -subj /CN=kina-token 2>/dev/null
  { read -r tport; read -r rport; } < <(free_ports 2)
  treg="127.0.0.1:$rport"
  python3 "$HERE/token_server.py" "$tport" "$TEST_TMP/tok.key" "$TEST_TMP/tok.crt" "$TEST_TMP/token.log" &
  track_pid $!
  cat >"$TEST_TMP/treg.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $TEST_TMP/treg-data
http:
  addr: 127.0.0.1:$rport
auth:
  token:
    realm: http://127.0.0.1:$tport/token
    service: kina-test
    issuer: kina-test-issuer
    rootcertbundle: $TEST_TMP/tok.crt
YML
  docker-registry serve "$TEST_TMP/treg.yml" >"$TEST_TMP/treg.log" 2>&1 &
  track_pid $!
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$treg/v2/" || true)
    [ "$code" = 401 ] && grep -q ready "$TEST_TMP/token.log" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the token registry did not start: $(cat "$TEST_TMP/treg.log")"
}
