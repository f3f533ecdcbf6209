"""The precision policy of a run: the autocast dtype and memory format of every forward.

Precision is a property of the run, not of its data path or of a plugin: the training step,
selection's validation, A-GEM's memory forward, iCaRL's and LUCIR's old model (a teacher whose
outputs become targets) and evaluation must all compute in the same precision, or the run
compares and distils across rounding regimes. So one function decides (``Precision.for_run``,
from the run's precision setting, its device and its data path), the result is stored on the
strategy in one attribute, and every consumer reads it from there:

    strategy.precision_policy = Precision.for_run("bf16", device)     # the runner does this
    with precision_of(strategy).autocast(strategy.device):
        logits = model(x.contiguous(memory_format=precision_of(strategy).memory_format))

A strategy without the attribute (built outside the runner) runs fp32, NCHW. Who applies it:
``mile_cl.device_data.DeviceDataPlugin`` opens the autocast around Avalanche's training and
evaluation forwards, lays the batches and the model out in the memory format; the other
consumers (``protocols.selection``, ``strategies.agem``, ``strategies.icarl``,
``strategies.lucir``) enter ``autocast`` around their own forwards. Nothing looks the policy up
in a plugin.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

PRECISIONS = ("bf16", "fp32")
_DTYPES = {None: "fp32", torch.bfloat16: "bf16"}


@dataclass(frozen=True)
class Precision:
    """``autocast_dtype``: the dtype autocast computes in (None: no autocast, fp32);
    ``channels_last``: model and input batches in channels_last memory format."""

    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False

    def __post_init__(self):
        if self.autocast_dtype not in _DTYPES:
            raise ValueError(f"autocast_dtype must be None (fp32) or torch.bfloat16, got "
                             f"{self.autocast_dtype!r}")

    @classmethod
    def for_run(cls, precision: str | None, device, *, data_on_device: bool = True) -> Precision:
        """The policy of a run: ``precision`` "bf16" (autocast) or "fp32"; None means bf16 on
        CUDA, fp32 elsewhere. channels_last on CUDA. The host data path (``data_on_device``
        False: DataLoader batches, NCHW) runs fp32 and NCHW whatever ``precision`` says: mixed
        precision and channels_last are only used, and measured, on the device data path."""
        if precision not in (None, *PRECISIONS):
            raise ValueError(f"precision must be one of {PRECISIONS} or None, got {precision!r}")
        if not data_on_device:
            return cls()
        cuda = torch.device(device).type == "cuda"
        bf16 = (precision or ("bf16" if cuda else "fp32")) == "bf16"
        return cls(torch.bfloat16 if bf16 else None, channels_last=cuda)

    @property
    def name(self) -> str:
        """"bf16" or "fp32", as a RunConfig's ``precision``."""
        return _DTYPES[self.autocast_dtype]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device):
        """The context a forward on ``device`` runs in: autocast to ``autocast_dtype``, or
        nothing (fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(device).type, dtype=self.autocast_dtype)


FP32 = Precision()


def precision_of(strategy) -> Precision:
    """The strategy's precision policy (``strategy.precision_policy``); fp32, NCHW without one."""
    policy = getattr(strategy, "precision_policy", None)
    return FP32 if policy is None else policy
