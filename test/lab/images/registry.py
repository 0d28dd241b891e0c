#!/usr/bin/env python3
"""Read-only, pull-only container registry for the lab's locally built images.

Serves the layout written by lab/images/mkimage.sh:
    ROOT/blobs/sha256/<hex>                   config and layer blobs
    ROOT/manifests/<repo path>/<tag>          OCI image manifests (JSON)
containerd uses it as the mirror of docker.io and registry.k8s.io, so pods
whose imagePullPolicy is Always (the default for :latest) can still "pull"
ptm/* images. Usage: registry.py ROOT [HOST:PORT]  (default 127.0.0.1:5000)
"""
import hashlib
import http.server
import json
import os
import re
import sys

ROOT = sys.argv[1]
HOST, PORT = (sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:5000").rsplit(":", 1)
MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/sha256:(?P<hex>[0-9a-f]{64})$")
SAFE = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def send(self, code, body=b"", ctype="application/json", digest=None, head=False):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def not_found(self, head):
        body = json.dumps({"errors": [{"code": "NOT_FOUND", "message": "not found"}]}).encode()
        self.send(404, body, head=head)

    def handle_get(self, head):
        path = self.path.split("?", 1)[0]
        if path in ("/v2", "/v2/"):
            return self.send(200, b"{}", head=head)
        m = MANIFEST.match(path)
        if m and SAFE.match(m["name"]):
            name, ref = m["name"], m["ref"]
            # mirrors pass docker.io "library/x" names; ours have no library/ prefix
            name = name[len("library/"):] if name.startswith("library/") else name
            if ref.startswith("sha256:"):
                f = os.path.join(ROOT, "blobs", "sha256", ref[len("sha256:"):])
            elif re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", ref):
                f = os.path.join(ROOT, "manifests", name, ref)
            else:
                return self.not_found(head)
            if not os.path.isfile(f):
                return self.not_found(head)
            with open(f, "rb") as fh:
                body = fh.read()
            ctype = json.loads(body).get("mediaType", "application/vnd.oci.image.manifest.v1+json")
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            return self.send(200, body, ctype, digest, head)
        m = BLOB.match(path)
        if m:
            f = os.path.join(ROOT, "blobs", "sha256", m["hex"])
            if not os.path.isfile(f):
                return self.not_found(head)
            size = os.path.getsize(f)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Docker-Content-Digest", "sha256:" + m["hex"])
            self.end_headers()
            if not head:
                with open(f, "rb") as fh:
                    while True:
                        chunk = fh.read(1 << 20)
                        if not chunk:
                            break
                        self.wfile.write(chunk)
            return None
        return self.not_found(head)

    def do_GET(self):  # noqa: N802
        self.handle_get(head=False)

    def do_HEAD(self):  # noqa: N802
        self.handle_get(head=True)


if __name__ == "__main__":
    http.server.ThreadingHTTPServer((HOST, int(PORT)), Handler).serve_forever()
