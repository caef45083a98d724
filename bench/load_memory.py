#!/usr/bin/python3
"""Writes the torch.save files that bench/load_memory.cpp loads (needs PyTorch):

    load_memory.py <path> <megabytes> [--legacy]

A state_dict of float32 [1000, 1000] tensors (4 MB each) of about <megabytes> MB,
in the zip format, or with --legacy in the pre-1.6 format.
"""
import collections
import sys

import torch

path, megabytes = sys.argv[1], int(sys.argv[2])
legacy = "--legacy" in sys.argv[3:]
torch.manual_seed(0)
state = collections.OrderedDict(
    (f"layer{i}.weight", torch.randn(1000, 1000)) for i in range(max(1, megabytes // 4)))
torch.save(state, path, _use_new_zipfile_serialization=not legacy)
