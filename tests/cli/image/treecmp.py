#!/usr/bin/env python3
"""treecmp.py A B: compares two root trees on type, mode, owner, mtime, size, content
hash, symlink target, device numbers, hardlink groups and xattrs. Prints every
difference; exit 1 if any. treecmp.py --hash DIR prints one digest of a tree."""
import hashlib, os, stat, sys

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
                e["xattrs"] = sorted((k, os.getxattr(p, k, follow_symlinks=False).hex())
                                     for k in os.listxattr(p, follow_symlinks=False))
            except OSError:
                e["xattrs"] = []
            out[rel] = e
    groups = sorted(sorted(g) for g in inodes.values() if len(g) > 1)
    return out, groups

if sys.argv[1] == "--hash":
    t, g = walk(sys.argv[2])
    print(hashlib.sha256(repr((sorted(t.items()), g)).encode()).hexdigest())
    sys.exit(0)
a, ga = walk(sys.argv[1])
b, gb = walk(sys.argv[2])
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
