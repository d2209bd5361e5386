#!/usr/bin/env python3
"""token_server.py PORT KEY CERT LOG: a docker registry token service (the
"Docker Registry v2 authentication via central service" protocol). It issues
RS256 JWTs signed with KEY (openssl CLI) carrying CERT in x5c, to clients that
present Basic user:secret; everyone else gets 401. Logs each request."""
import base64, json, os, subprocess, sys, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, key, cert, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True, capture_output=True).stdout
b64url = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def sign(claims):
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
    inp = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=inp.encode(), check=True, capture_output=True).stdout
    return inp + "." + b64url(sig)

class Token(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        auth = self.headers.get("Authorization", "")
        with open(log, "a") as f:
            f.write(f"token scope={q.get('scope')} service={q.get('service')} auth={auth.split(' ')[0] or 'none'}\n")
        if auth != "Basic " + base64.b64encode(b"user:secret").decode():
            self.send_response(401); self.send_header("Content-Length", "0"); self.end_headers(); return
        access = []
        for scope in q.get("scope", []):
            for s in scope.split(" "):
                typ, name, actions = s.split(":", 2) if s.count(":") >= 2 else (None, None, None)
                if typ: access.append({"type": typ, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        tok = sign({"iss": "kina-test-issuer", "sub": "user", "aud": q.get("service", [""])[0], "exp": now + 600,
                    "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access})
        body = json.dumps({"token": tok, "access_token": tok, "expires_in": 600}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)

srv = ThreadingHTTPServer(("127.0.0.1", port), Token)
with open(log, "a") as f: f.write("ready\n")
srv.serve_forever()
