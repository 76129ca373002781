# The small service's upstream for the test: GET /items/<id>?delay=<ms>
# answers {"id": id, "name": "item<id>"} after delay ms; anything else 404.
# Loopback only; the port is the first argument.
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Items(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlparse(self.path)
        delay = int(parse_qs(url.query).get("delay", ["0"])[0])
        time.sleep(delay / 1000)
        parts = url.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "items" and parts[1].isdigit():
            code, body = 200, {"id": int(parts[1]), "name": "item" + parts[1]}
        else:
            code, body = 404, {"detail": "Not Found"}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Items).serve_forever()
