#!/usr/bin/env python3
"""treecmp.py A B: compares two root trees on type, mode, owner, mtime, size, content
hash, symlink target, device numbers, hardlink groups and xattrs. Prints every
difference; exit 1 if any. treecmp.py --hash DIR prints one digest of a tree.
A tree named ext4:IMAGE is read from an ext4 image with debugfs (no mount):
its lost+found is left out unless the other tree has one. --ignore-dir-mtime:
directories' mtimes are not compared (directories an unpack made because an
entry needed them get the time of the unpack)."""
import hashlib, os, re, stat, struct, subprocess, sys, tempfile

def acl_canon(name, value):
    """POSIX ACLs in xattr form, with the ids of the owner, group, mask and other
    entries (undefined in the kernel's form, 0 in libext2fs's) made equal."""
    if not name.startswith("system.posix_acl_") or len(value) < 4 or (len(value) - 4) % 8:
        return value
    out = bytearray(value[:4])
    for off in range(4, len(value), 8):
        tag, perm, uid = struct.unpack_from("<HHI", value, off)
        out += struct.pack("<HHI", tag, perm, uid if tag in (0x02, 0x08) else 0xffffffff)
    return bytes(out)

def debugfs(image, cmds):
    """Runs debugfs commands on image; the output of each command, in order."""
    with tempfile.NamedTemporaryFile("w", suffix=".cmds") as f:
        f.write("".join(c + "\n" for c in cmds))
        f.flush()
        out = subprocess.run(["debugfs", "-f", f.name, image], capture_output=True, text=True,
                             errors="surrogateescape", check=True).stdout
    parts = re.split(r"^debugfs: .*$\n?", out, flags=re.M)
    return parts[1:]

TYPES = {"regular": stat.S_IFREG, "directory": stat.S_IFDIR, "symlink": stat.S_IFLNK,
         "character special": stat.S_IFCHR, "block special": stat.S_IFBLK, "FIFO": stat.S_IFIFO,
         "socket": stat.S_IFSOCK}

def xtime(base, extra):
    sec = struct.unpack("<i", struct.pack("<I", base))[0] + ((extra & 3) << 32)
    return sec * 1000000000 + (extra >> 2)

def walk_ext4(image, keep_lost_found):
    entries, todo = {}, [("", 2)]  # rel path -> inode
    while todo:  # one debugfs run per level of the tree
        outs = debugfs(image, [f"ls -p <{ino}>" for _, ino in todo])
        nxt = []
        for (rel, _), out in zip(todo, outs):
            for line in out.splitlines():
                m = re.match(r"^/(\d+)/(\d+)/\d+/\d+/(.*)/(\d*)/$", line)
                if not m or m.group(3) in (".", ".."):
                    continue
                name, ino, mode = m.group(3), int(m.group(1)), int(m.group(2), 8)
                r = os.path.join(rel, name) if rel else name
                if r == "lost+found" and not keep_lost_found:
                    continue
                entries[r] = ino
                if stat.S_ISDIR(mode):
                    nxt.append((r, ino))
        todo = nxt
    inos = sorted(set(entries.values()))
    stats = dict(zip(inos, debugfs(image, [f"stat <{i}>" for i in inos])))
    eas = dict(zip(inos, debugfs(image, [f"ea_list <{i}>" for i in inos])))
    tmp = tempfile.mkdtemp()
    cmds, files = [], {}
    info = {}
    for i in inos:
        st = stats[i]
        typ = TYPES[re.search(r"Type: (.+?)\s{2,}Mode:", st).group(1)]
        e = {"type": typ, "mode": oct(int(re.search(r"Mode:\s+(\d+)", st).group(1), 8)),
             "mtime": xtime(*(int(x, 16) for x in re.search(r"mtime: 0x([0-9a-f]+):([0-9a-f]+)", st).groups())),
             "uid": int(re.search(r"User:\s+(\d+)", st).group(1)), "gid": int(re.search(r"Group:\s+(\d+)", st).group(1))}
        links = int(re.search(r"Links: (\d+)", st).group(1))
        size = int(re.search(r"Size: (\d+)", st).group(1))
        if typ == stat.S_IFREG:
            e["size"] = size
        elif typ == stat.S_IFLNK:
            m = re.search(r'Fast link dest: "(.*)"', st)
            if m:
                e["target"] = m.group(1)
        elif typ in (stat.S_IFCHR, stat.S_IFBLK):
            m = re.search(r"Device major/minor number: (\d+):(\d+)", st)
            e["rdev"] = (int(m.group(1)), int(m.group(2)))
        if typ == stat.S_IFREG or (typ == stat.S_IFLNK and "target" not in e):
            files[i] = os.path.join(tmp, str(i))
            cmds.append(f"dump <{i}> {files[i]}")
        names = re.findall(r"^  (\S+) \(\d+\)", eas[i], flags=re.M)
        for n in names:
            cmds.append(f"ea_get -f {os.path.join(tmp, f'{i}.{n}')} <{i}> {n}")
        info[i] = (e, links, names)
    if cmds:
        debugfs(image, cmds)
    out, groups = {}, {}
    for rel, i in entries.items():
        e, links, names = info[i]
        e = dict(e)
        if i in files:
            with open(files[i], "rb") as f:
                data = f.read()
            if e["type"] == stat.S_IFREG:
                e["sha256"] = hashlib.sha256(data).hexdigest()
                if links > 1:
                    groups.setdefault(i, []).append(rel)
            else:
                e["target"] = data.decode(errors="surrogateescape")
        xs = []
        for n in names:
            with open(os.path.join(tmp, f"{i}.{n}"), "rb") as f:
                xs.append((n, acl_canon(n, f.read()).hex()))
        e["xattrs"] = sorted(xs)
        out[rel] = dict(sorted(e.items(), key=lambda kv: list(ORDER).index(kv[0])))
    subprocess.run(["rm", "-rf", tmp], check=True)
    return out, sorted(sorted(g) for g in groups.values() if len(g) > 1)

ORDER = ("type", "mode", "mtime", "uid", "gid", "size", "sha256", "target", "rdev", "xattrs")

def walk(root):
    out, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            e = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)), "mtime": st.st_mtime_ns,
                 "uid": st.st_uid, "gid": st.st_gid}
            if stat.S_ISREG(st.st_mode):
                e["size"] = st.st_size
                with open(p, "rb") as f:
                    e["sha256"] = hashlib.sha256(f.read()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                e["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            try:
                e["xattrs"] = sorted((k, acl_canon(k, os.getxattr(p, k, follow_symlinks=False)).hex())
                                     for k in os.listxattr(p, follow_symlinks=False))
            except OSError:
                e["xattrs"] = []
            out[rel] = e
    groups = sorted(sorted(g) for g in inodes.values() if len(g) > 1)
    return out, groups

def load(tree, other):
    if tree.startswith("ext4:"):
        return walk_ext4(tree[5:], not other.startswith("ext4:") and os.path.isdir(os.path.join(other, "lost+found")))
    return walk(tree)

if sys.argv[1] == "--hash":
    t, g = load(sys.argv[2], "")
    print(hashlib.sha256(repr((sorted(t.items()), g)).encode()).hexdigest())
    sys.exit(0)
args = sys.argv[1:]
ignore_dir_mtime = "--ignore-dir-mtime" in args
args = [x for x in args if x != "--ignore-dir-mtime"]
sys.argv[1:] = args
a, ga = load(sys.argv[1], sys.argv[2])
b, gb = load(sys.argv[2], sys.argv[1])
if ignore_dir_mtime:
    for t in (a, b):
        for e in t.values():
            if e["type"] == stat.S_IFDIR:
                e.pop("mtime", None)
diffs = []
for k in sorted(set(a) | set(b)):
    if k not in a: diffs.append(f"only in {sys.argv[2]}: {k}")
    elif k not in b: diffs.append(f"only in {sys.argv[1]}: {k}")
    elif a[k] != b[k]: diffs.append(f"{k}: {a[k]} != {b[k]}")
if ga != gb:
    diffs.append(f"hardlink groups differ: {ga} != {gb}")
for d in diffs: print(d)
print(f"compared {len(a)} entries, {len(ga)} hardlink groups, {len(diffs)} differences", file=sys.stderr)
sys.exit(1 if diffs else 0)
