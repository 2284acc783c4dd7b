"""A CPU tensor that behaves like one on a GPU where that matters to host code.

``.numpy()`` on a CUDA tensor raises; host code must copy to the CPU first. ``on_gpu(t)`` gives
a tensor that raises the same way until ``.cpu()`` or ``.to('cpu')`` is called, so a test on a
machine without a GPU shows the defects of code that forgets the copy.
"""

from __future__ import annotations

import torch


def _to_host(func, args, kwargs) -> bool:
    if func is torch.Tensor.cpu:
        return True
    if func is not torch.Tensor.to:
        return False
    wanted = [*args[1:], kwargs.get("device")]
    return any(isinstance(a, (str, torch.device)) and torch.device(a).type == "cpu" for a in wanted)


class GpuLikeTensor(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.numpy:
            raise TypeError("can't convert cuda:0 device type tensor to numpy (GpuLikeTensor)")
        result = super().__torch_function__(func, types, args, kwargs)
        if _to_host(func, args, kwargs) and isinstance(result, torch.Tensor):
            return result.as_subclass(torch.Tensor)
        return result


def on_gpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_subclass(GpuLikeTensor)
