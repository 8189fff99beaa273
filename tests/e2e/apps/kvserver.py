#!/usr/bin/python3
# The Python application of tests/e2e/70-apps.bats: the stock interpreter,
# a threaded HTTP server (one thread per connection) and a key-value
# store in memory, plus a worker thread that keeps rewriting and checking
# a block of data of its own.
#
#   kvserver.py PORT MIB
#
#   PUT /kv/KEY (body)  store, answer 201
#   GET /kv/KEY         the body stored, or 404
#   GET /check          "PASS KEYS ROUNDS" if the worker's data and every
#                       round it checked were right, else "FAIL ..." (500)
import hashlib
import http.server
import socketserver
import sys
import threading
import time

store = {}
lock = threading.Lock()
state = {"rounds": 0, "fail": None}


def worker(mib):
    # MIB MiB in 1 MiB blocks; block i of generation g holds a known pattern
    blocks = [bytearray(hashlib.sha256(b"%d:0" % i).digest() * 32768) for i in range(mib)]
    gens = [0] * mib
    i = 0
    while True:
        b = i % mib
        want = hashlib.sha256(b"%d:%d" % (b, gens[b])).digest() * 32768
        if blocks[b] != want:
            state["fail"] = "block %d generation %d differs" % (b, gens[b])
            return
        gens[b] += 1
        blocks[b][:] = hashlib.sha256(b"%d:%d" % (b, gens[b])).digest() * 32768
        i += 1
        state["rounds"] = i
        time.sleep(0.01)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not self.path.startswith("/kv/"):
            return self.answer(404, b"")
        with lock:
            store[self.path[4:]] = body
        self.answer(201, b"")

    def do_GET(self):
        if self.path == "/check":
            if state["fail"]:
                return self.answer(500, ("FAIL " + state["fail"]).encode())
            return self.answer(200, b"PASS %d %d" % (len(store), state["rounds"]))
        with lock:
            v = store.get(self.path[4:]) if self.path.startswith("/kv/") else None
        self.answer(200, v) if v is not None else self.answer(404, b"")

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    port, mib = int(sys.argv[1]), int(sys.argv[2])
    threading.Thread(target=worker, args=(mib,), daemon=True).start()
    srv = Server(("0.0.0.0", port), Handler)
    print("READY", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
