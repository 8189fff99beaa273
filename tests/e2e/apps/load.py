#!/usr/bin/python3
# A client of a real server for tests/e2e/70-apps.bats: it writes during a
# migration and records every write the server acknowledged, then checks
# that each of them is there.
#
#   load.py load KIND LOG STOPFILE ADDR:PORT [ADDR:PORT...]
#       write 1, 2, 3, ... until STOPFILE exists; after the server
#       acknowledged write N, append "N WALL_MS" to LOG (a tick log: the
#       largest gap between two lines is the stall the client saw).  On
#       any error (the server moved: its connections were closed) it
#       reconnects, trying each ADDR:PORT in turn, and writes N again
#       (every write is idempotent).  Ends with "DONE N RECONNECTS" in LOG.
#       LOAD_RECONNECT=0: one connection only; an error is "FAIL ..." in
#       LOG and exit status 1.
#   load.py verify KIND LOG ADDR:PORT
#       every write acknowledged in LOG is on the server: prints
#       "VERIFY PASS N" or "VERIFY FAIL ..." (exit 1)
#   load.py mcfill N SIZE ADDR:PORT / load.py mccheck N SIZE ADDR:PORT
#       store / check N memcached items item:I of SIZE bytes each whose
#       contents follow from I: prints "MCCHECK PASS N BYTES" or
#       "MCCHECK FAIL ..." (exit 1)
#
# KIND: redis (SET ack:N), memcached (set ack:N), pg (INSERT INTO acks,
# autocommit), http (PUT /kv/ack:N on the Python app), nginx (GET of the
# files listed in $APP_MANIFEST: each answer checked; nothing to verify).
import hashlib
import http.client
import os
import random
import socket
import sys
import time


def value(n):
    return b"v%d" % n


class Redis:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=5)
        self.f = self.s.makefile("rwb")

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.f.write(out)
        self.f.flush()
        return self.reply()

    def reply(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b":"):
            return rest
        if t == b"-":
            raise RuntimeError("redis: " + rest.decode())
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if t == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError("redis: bad reply %r" % line)

    def write(self, n):
        if self.cmd("SET", "ack:%d" % n, value(n)) != b"OK":
            raise RuntimeError("SET not OK")

    def check(self, ns):
        for i in range(0, len(ns), 1000):
            part = ns[i:i + 1000]
            got = self.cmd("MGET", *["ack:%d" % n for n in part])
            for n, v in zip(part, got):
                if v != value(n):
                    return "ack:%d is %r" % (n, v)
        return None


class Memcached:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=5)
        self.f = self.s.makefile("rwb")

    def write(self, n):
        v = value(n)
        self.f.write(b"set ack:%d 0 0 %d\r\n%s\r\n" % (n, len(v), v))
        self.f.flush()
        line = self.f.readline()
        if line != b"STORED\r\n":
            raise ConnectionError("memcached answered %r" % line)

    def get_many(self, keys):
        self.f.write(b"get " + b" ".join(keys) + b"\r\n")
        self.f.flush()
        got = {}
        while True:
            line = self.f.readline()
            if not line:
                raise ConnectionError("memcached closed the connection")
            if line == b"END\r\n":
                return got
            _, k, _, ln = line.split()
            got[k] = self.f.read(int(ln) + 2)[:-2]

    def check(self, ns):
        for i in range(0, len(ns), 100):
            part = ns[i:i + 100]
            got = self.get_many([b"ack:%d" % n for n in part])
            for n in part:
                if got.get(b"ack:%d" % n) != value(n):
                    return "ack:%d is %r" % (n, got.get(b"ack:%d" % n))
        return None


class Pg:
    def __init__(self, host, port):
        import psycopg2
        self.c = psycopg2.connect(host=host, port=port, user="postgres", dbname="postgres",
                                  connect_timeout=5)
        self.c.autocommit = True
        self.cur = self.c.cursor()

    def write(self, n):
        # committed when execute returns (autocommit)
        self.cur.execute("INSERT INTO acks VALUES (%s) ON CONFLICT DO NOTHING", (n,))

    def check(self, ns):
        self.cur.execute("SELECT n FROM acks")
        have = {r[0] for r in self.cur.fetchall()}
        miss = [n for n in ns if n not in have]
        return "%d committed rows missing, first %d" % (len(miss), miss[0]) if miss else None


class Http:
    def __init__(self, host, port):
        self.c = http.client.HTTPConnection(host, port, timeout=5)

    def req(self, method, path, body=None):
        self.c.request(method, path, body=body)
        r = self.c.getresponse()
        return r.status, r.read()

    def write(self, n):
        st, _ = self.req("PUT", "/kv/ack:%d" % n, value(n))
        if st != 201:
            raise RuntimeError("PUT answered %d" % st)

    def check(self, ns):
        for n in ns:
            st, body = self.req("GET", "/kv/ack:%d" % n)
            if st != 200 or body != value(n):
                return "GET /kv/ack:%d answered %d %r" % (n, st, body[:40])
        return None


class Nginx(Http):
    files = None

    def __init__(self, host, port):
        super().__init__(host, port)
        if Nginx.files is None:
            with open(os.environ["APP_MANIFEST"]) as f:
                Nginx.files = [ln.split() for ln in f if ln.strip()]

    def write(self, n):
        # "write" N: a GET whose body must hash as the manifest says
        name, want = Nginx.files[n % len(Nginx.files)]
        st, body = self.req("GET", "/" + name)
        if st != 200 or hashlib.sha256(body).hexdigest() != want:
            raise RuntimeError("GET /%s answered %d, %d bytes, wrong content" %
                               (name, st, len(body)))

    def check(self, ns):
        return None


def item(i, size):
    d = hashlib.sha256(b"item:%d" % i).digest()
    return (d * (size // len(d) + 1))[:size]


def mcfill(n, size, a):
    m = Memcached(*addr(a))
    m.s.settimeout(60)
    for i0 in range(0, n, 256):
        out = b"".join(b"set item:%d 0 0 %d noreply\r\n%s\r\n" % (i, size, item(i, size))
                       for i in range(i0, min(n, i0 + 256)))
        m.f.write(out)
    m.f.write(b"mn\r\n")
    m.f.flush()
    if m.f.readline() != b"MN\r\n":
        print("MCFILL FAIL no answer to mn")
        return 1
    return 0


def mccheck(n, size, a):
    m = Memcached(*addr(a))
    m.s.settimeout(60)
    for i0 in range(0, n, 100):
        got = m.get_many([b"item:%d" % i for i in range(i0, min(n, i0 + 100))])
        for i in range(i0, min(n, i0 + 100)):
            if got.get(b"item:%d" % i) != item(i, size):
                print("MCCHECK FAIL item:%d is missing or differs" % i)
                return 1
    print("MCCHECK PASS %d %d" % (n, n * size))
    return 0


KINDS = {"redis": Redis, "memcached": Memcached, "pg": Pg, "http": Http, "nginx": Nginx}


def addr(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)


def load(kind, log, stop, addrs):
    cls = KINDS[kind]
    out = open(log, "a", buffering=1)
    cli, n, reconnects, i = None, 1, 0, 0
    while not os.path.exists(stop):
        try:
            if cli is None:
                cli = cls(*addr(addrs[i % len(addrs)]))
            cli.write(n)
            out.write("%d %d\n" % (n, time.time() * 1000))
            n += 1
            time.sleep(0.002)
        except Exception as e:
            if os.environ.get("LOAD_RECONNECT") == "0":
                out.write("FAIL write %d: %s: %s\n" % (n, type(e).__name__, e))
                sys.exit(1)
            if cli is not None:
                out.write("# reconnect after write %d: %s: %s\n" % (n, type(e).__name__, e))
                reconnects += 1
            cli = None
            i += 1
            time.sleep(0.01)
    out.write("DONE %d %d\n" % (n - 1, reconnects))


def verify(kind, log, a):
    ns = []
    with open(log) as f:
        for ln in f:
            w = ln.split()
            if len(w) == 2 and w[0].isdigit():
                ns.append(int(w[0]))
    if not ns:
        print("VERIFY FAIL no acknowledged write in %s" % log)
        return 1
    why = KINDS[kind](*addr(a)).check(ns)
    if why:
        print("VERIFY FAIL %s" % why)
        return 1
    print("VERIFY PASS %d" % len(ns))
    return 0


def main():
    if sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
        return 0
    if sys.argv[1] == "verify":
        return verify(sys.argv[2], sys.argv[3], sys.argv[4])
    if sys.argv[1] in ("mcfill", "mccheck"):
        f = mcfill if sys.argv[1] == "mcfill" else mccheck
        return f(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    print("usage: load.py load|verify KIND LOG ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    random.seed(1)
    sys.exit(main())
