"""cluster_rig: a coordinator (`conclave serve` with [cluster] on) and `conclave node`
processes on loopback, for the multi-process cluster tests (docs/cluster.md). Every
process is started with its own log file, signalled by pid and reaped on exit."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rig:
    def __init__(self, binary, model, tokenizer, workdir=None):
        self.binary, self.model, self.tokenizer = binary, model, tokenizer
        self.dir = workdir or tempfile.mkdtemp(prefix="conclave-cluster-")
        self.token = os.path.join(self.dir, "token")
        with open(self.token, "w") as f:
            f.write(os.urandom(24).hex() + "\n")
        os.chmod(self.token, 0o600)
        self.procs = {}  # name -> Popen
        self.http_port = None
        self.cluster_port = None

    def _start(self, name, args):
        log = open(os.path.join(self.dir, name + ".log"), "wb")
        p = subprocess.Popen([self.binary] + args, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = p
        return p

    def log(self, name):
        with open(os.path.join(self.dir, name + ".log"), "rb") as f:
            return f.read().decode(errors="replace")

    def serve(self, ranks=0, replicas=1, extra=(), name="serve", keep_ports=False, kv_mib=64,
              ready_s=30):
        """A coordinator with `ranks` ranks per replica (0: no cluster: the reference);
        `keep_ports` starts it again on the ports of the last one (a restart)."""
        if not keep_ports:
            self.http_port = free_port()
        args = ["serve", "--model", self.model, "--tokenizer", self.tokenizer,
                "--port", str(self.http_port), "--threads", "1", "--kv-cache-mib", str(kv_mib),
                "--replicas", str(replicas), "--fault-injection", "--name", "m"]
        if ranks:
            if not keep_ports:
                self.cluster_port = free_port()
            args += ["--cluster-port", str(self.cluster_port), "--cluster-token-file",
                     self.token, "--ranks-per-replica", str(ranks)]
        self._start(name, list(args) + list(extra))
        deadline = time.time() + ready_s
        while time.time() < deadline:
            try:
                self.get("/health")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise RuntimeError("the coordinator did not start:\n" + self.log(name))

    def node(self, name, cpu_ranks=1, token=None, extra=()):
        return self._start(name, ["node", "--join", "127.0.0.1:%d" % self.cluster_port,
                                  "--cluster-token-file", token or self.token,
                                  "--cpu-ranks", str(cpu_ranks), "--model", self.model]
                           + list(extra))

    def signal(self, name, sig):
        self.procs[name].send_signal(sig)

    def kill9(self, name):
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait()

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http_port, path),
                                    timeout=30) as r:
            return json.loads(r.read())

    def post(self, path, body, timeout=120):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.http_port, path),
                                     data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def wait_until(self, what, pred, timeout=60):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = self.get("/admin/cluster")
                if pred(last):
                    return last
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        # The replicas' health histories would bury the logs: their last check only.
        brief = json.loads(json.dumps(last)) if last is not None else None
        for r in (brief or {}).get("replicas", []):
            if r.get("health"):
                r["health"] = r["health"][-1:]
        raise AssertionError("timed out waiting for %s; last /admin/cluster:\n%s\nlogs:\n%s" %
                             (what, json.dumps(brief, indent=1), self.all_logs()))

    def wait_up(self, replicas=1, timeout=60):
        return self.wait_until("%d replica(s) up" % replicas, lambda c: sum(
            1 for r in c["replicas"] if r["state"] == "up") >= replicas, timeout)

    def all_logs(self):
        return "\n".join("== %s\n%s" % (n, self.log(n)[-8000:]) for n in self.procs)

    def complete(self, prompt_ids, max_tokens, stream=False, progress=None):
        """Greedy completion with top-5 logprobs: (token strings, logprobs, top5 dicts)."""
        body = {"model": "m", "prompt": prompt_ids, "max_tokens": max_tokens,
                "temperature": 0, "logprobs": 5}
        if not stream:
            status, r = self.post("/v1/completions", body)
            assert status == 200, r
            lp = r["choices"][0]["logprobs"]
            return lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]
        body["stream"] = True
        req = urllib.request.Request("http://127.0.0.1:%d/v1/completions" % self.http_port,
                                     data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        tokens, lps, tops = [], [], []
        with urllib.request.urlopen(req, timeout=180) as r:
            for raw in r:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                ev = json.loads(line[6:])
                if "error" in ev:
                    raise AssertionError("stream failed: %s" % ev)
                lp = ev["choices"][0].get("logprobs") or {}
                tokens += lp.get("tokens", [])
                if progress is not None:
                    progress[0] = len(tokens)
                lps += lp.get("token_logprobs", [])
                tops += lp.get("top_logprobs", [])
        return tokens, lps, tops

    def close(self):
        for name, p in self.procs.items():
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 20
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def same_outputs(ref, got, rel=1e-5):
    """Tokens identical; every logprob and top-5 entry within `rel` relative."""
    rt, rl, rtop = ref
    gt, gl, gtop = got
    assert gt == rt, "tokens differ:\n ref %r\n got %r" % (rt, gt)
    worst = 0.0
    for a, b in zip(rl, gl):
        worst = max(worst, abs(a - b) / max(1.0, abs(a)))
    for a, b in zip(rtop, gtop):
        assert set(a) == set(b) or len(a) != len(b), "top-5 differ: %r vs %r" % (a, b)
        for k in a:
            if k in b:
                worst = max(worst, abs(a[k] - b[k]) / max(1.0, abs(a[k])))
    assert worst <= rel, "logprobs differ by %g relative (limit %g)" % (worst, rel)
    return worst
