"""The protected application of the browser tests: it shows who nginx says is signed in
(the identity headers that forward-auth returned)."""

import html
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        user = self.headers.get("X-User", "")
        email = self.headers.get("X-Email", "")
        groups = self.headers.get("X-Groups", "")
        body = (
            f"<!doctype html><html><body><h1>App</h1><p id=path>{html.escape(self.path)}</p>"
            f"<p id=user>{html.escape(user)}</p><p id=email>{html.escape(email)}</p>"
            f"<p id=groups>{html.escape(groups)}</p></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
