#!/usr/bin/env python3
"""fake_registry.py LAYOUT PORT BLOBPORT LOG: a registry v2 that serves one OCI
layout with bearer-token auth, for the auth tests. /token (on PORT) wants
Basic user:secret and issues a token; manifests need "Bearer <token>"; blob
requests are redirected to BLOBPORT on another host name (localhost instead of
127.0.0.1), which logs the Authorization and Range headers it receives and
honours Range (unless the file LOG.ignore-range exists; LOG.oversize makes
it send more bytes than the descriptor says; LOG.trickle makes it send one
byte a second; LOG.drop-once makes it send half of the next blob, then close).
A blob the layout does not have is an endless stream of zeros (capped at
64 MiB), as a registry behind a manifest declaring a huge layer would be."""
import base64, hashlib, json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

layout, port, blobport, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
TOKEN = "tok-" + hashlib.sha256(os.urandom(8)).hexdigest()[:16]
index = json.load(open(os.path.join(layout, "index.json")))
tags = {m.get("annotations", {}).get("org.opencontainers.image.ref.name"): m for m in index["manifests"]}

def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")

def blob_path(d):
    return os.path.join(layout, "blobs", "sha256", d.split(":", 1)[1])

class Registry(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def deny(self):
        self.send_response(401)
        self.send_header("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{port}/token",service="fake",scope="repository:test/img:pull"')
        self.send_header("Content-Type", "application/json")
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"auth required"}]}'
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        p = self.path
        if p.startswith("/token"):
            auth = self.headers.get("Authorization", "")
            note(f"token auth={auth[:6]} query={p.split('?',1)[-1]}")
            if auth != "Basic " + base64.b64encode(b"user:secret").decode():
                self.send_response(401); self.send_header("Content-Length", "0"); self.end_headers(); return
            body = json.dumps({"token": TOKEN}).encode()
            self.send_response(200); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body); return
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self.deny()
        if p == "/v2/":
            self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers(); return
        parts = p.split("/")  # /v2/test/img/manifests/REF
        if len(parts) == 6 and parts[4] == "manifests":
            ref = parts[5]
            m = tags.get(ref) or next((m for m in index["manifests"] if m["digest"] == ref), None)
            if not m:
                self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
            body = open(blob_path(m["digest"]), "rb").read()
            self.send_response(200); self.send_header("Content-Type", m["mediaType"])
            self.send_header("Docker-Content-Digest", m["digest"])
            self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body); return
        if len(parts) == 6 and parts[4] == "blobs":
            self.send_response(307)
            # Like a CDN's presigned URL: the query is a credential.
            self.send_header("Location", f"http://localhost:{blobport}/data/{parts[5]}?X-Amz-Signature=presigned-secret")
            self.send_header("Content-Length", "0"); self.end_headers(); return
        self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers()

class Blobs(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        note(f"blob {path} authorization={'yes' if self.headers.get('Authorization') else 'no'} range={self.headers.get('Range')}")
        bp = blob_path(path.rsplit("/", 1)[1])
        if not os.path.exists(bp):
            self.send_response(200); self.send_header("Content-Length", str(1 << 50)); self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"\0" * (1 << 20))
            except OSError:
                pass
            return
        if os.path.exists(log + ".trickle"):
            self.send_response(200); self.send_header("Content-Length", str(os.path.getsize(bp))); self.end_headers()
            try:
                for b in open(bp, "rb").read():
                    self.wfile.write(bytes([b])); self.wfile.flush(); time.sleep(1)
            except OSError:
                pass
            return
        data = open(bp, "rb").read()
        if os.path.exists(log + ".drop-once"):
            os.unlink(log + ".drop-once")
            self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers()
            self.wfile.write(data[:len(data) // 2]); self.wfile.flush()
            self.close_connection = True
            return
        if os.path.exists(log + ".oversize"):  # more bytes than the descriptor says
            data += b"x" * 4096
        rng = self.headers.get("Range")
        if os.path.exists(log + ".ignore-range"):  # behave like a server without Range support
            rng = None
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data)-1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)

a = ThreadingHTTPServer(("127.0.0.1", port), Registry)
b = ThreadingHTTPServer(("127.0.0.1", blobport), Blobs)
threading.Thread(target=b.serve_forever, daemon=True).start()
note("ready")
a.serve_forever()
