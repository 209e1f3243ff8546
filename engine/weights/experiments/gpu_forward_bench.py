"""The H200 forward-pass figures of README "Scaling out on Ray": each shipped model on 512 px
tiles, batches 16/64/128, with nvidia-smi utilisation (run on a GPU machine:
`python3 engine/weights/experiments/gpu_forward_bench.py`; output beside it)."""

import json
import subprocess
import threading
import time

import torch

from engine.bench import bench_model
from engine.registry import PROFILE_MODELS, load_model

KEYS = ("model", "batch_size", "tile_size", "megapixels_per_s", "seconds_per_batch_median",
        "gpu_util_median", "gpu_util_samples")
out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "runs": []}
util: list[str] = []
stop = False


def poll() -> None:
    while not stop:
        try:
            r = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=5)
            util.append(r.stdout.strip())
        except Exception as e:  # noqa: BLE001 - a failed poll is recorded, not fatal
            util.append(str(e))
        time.sleep(0.5)


for name in sorted(set(PROFILE_MODELS.values())):
    net = load_model(name, device="cuda")
    for bs in (16, 64, 128):
        util.clear()
        stop = False
        t = threading.Thread(target=poll)
        t.start()
        r = bench_model(net, tile_size=512, batch_size=bs, iterations=30, warmup=3,
                        device="cuda")
        stop = True
        t.join()
        vals = [int(u.split(",")[0]) for u in util if u and u.split(",")[0].strip().isdigit()]
        r.update(model=name, gpu_util_samples=len(vals),
                 gpu_util_median=sorted(vals)[len(vals) // 2] if vals else None)
        out["runs"].append({k: r[k] for k in KEYS if k in r}
                           | {"peak_gpu_mib": r.get("peak_gpu_mib")})
        print(json.dumps(out["runs"][-1]), flush=True)
print(json.dumps(out, indent=1))
