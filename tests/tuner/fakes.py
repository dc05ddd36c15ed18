"""Stand-ins for the study loop's GPU side, without kernels or a child process: for the tuner's tests
and for benchmarks/contention_probe.py."""

from kernel_space.spec import config_key
from tuner.trial import TrialResult

FP = {"device_name": "fake GPU", "capability": [9, 0], "sm_count": 132, "total_memory": 1, "driver": "",
      "cuda": "", "torch": "", "triton": "", "kernel_hashes": {}}


class FakeWorker:
    """Answers like the benchmarking child: the unfused arm takes 10 us, a fused config 4-9 us by its
    BLOCK_N and SPLIT_K; the confirmation pairs each candidate with a speedup of 10 / its time."""

    def __init__(self):
        self.trials = []
        self.started_before_requests = None

    def start(self):
        if self.started_before_requests is None:
            self.started_before_requests = not self.trials

    @staticmethod
    def time_of(cfg):
        return 10.0 if cfg["impl"] == "unfused" else 4.0 + cfg["BLOCK_N"] / 64 + cfg["SPLIT_K"] / 8

    def submit(self, task):  # as tuner.worker.Worker: the answer waits for collect()
        self.sent = self.request(task)

    def collect(self):
        reply, self.sent = self.sent, None
        return reply

    def request(self, task):
        if task["kind"] == "trial":
            self.trials.append(config_key(task["config"]))
            return {"ok": True, "result": TrialResult(task["arm"], task["config"], "ok", rel_error=0.0,
                                                      median_us=self.time_of(task["config"]))}
        pairs = [{"config": c, "speedup": 10.0 / self.time_of(c), "fused_us": self.time_of(c)}
                 for c in task["configs"]]
        return {"ok": True, "result": {"pairs": pairs, "unfused_us": 10.0, "cublas_us": 8.0, "floor_us": 2.0}}
