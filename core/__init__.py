"""TrainScope's engine: plain Python, no streamlit.

Importing the package pins torch to one intra-op thread (override with TRAINSCOPE_TORCH_THREADS):
the models here are tiny, and on a 2-core laptop two threads fighting over each small matmul
made 200 training steps 60x slower (4.8 s against 0.08 s, see bench/train_overhead.py).
"""
import os

import torch

torch.set_num_threads(int(os.environ.get("TRAINSCOPE_TORCH_THREADS", "1")))
