"""Shared test setup: small thread counts so tests behave on 2-core CI machines."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
