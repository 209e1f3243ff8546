"""CPU training flushes subnormal floats (they made each step 2.3x slower, performance.md)."""

import torch

from engine.train import TrainConfig, _seed


def test_a_cpu_training_run_flushes_subnormals_to_zero():
    try:
        # Earlier tests in this process may have trained (and so turned flushing on): turn it
        # off before the subnormal is made, or the float32 conversion itself flushes it.
        torch.set_flush_denormal(False)
        tiny = torch.tensor([1e-39], dtype=torch.float32)  # subnormal in float32
        assert (tiny * 1.0).item() != 0.0
        _seed(TrainConfig(name="x", train_sets={"deepcrack-train": 1.0}, threads=None))
        assert (tiny * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)
