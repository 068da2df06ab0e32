"""TrainScope's engine: plain Python, no streamlit.

Importing the package pins torch to one intra-op thread, and numpy/scipy's BLAS to as many
(override both with TRAINSCOPE_TORCH_THREADS): the models here are tiny, and on a 2-core laptop two
threads fighting over each small matmul made 200 training steps 60x slower (4.8 s against 0.08 s,
see bench/train_overhead.py); a two-thread eigensolve of a 354 x 354 Hessian on two busy cores took
0.77 s against 0.02 s on one thread.
"""
import os

import torch
from threadpoolctl import threadpool_limits

THREADS = int(os.environ.get("TRAINSCOPE_TORCH_THREADS", "1"))
torch.set_num_threads(THREADS)
threadpool_limits(limits=THREADS, user_api="blas")
