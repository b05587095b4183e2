"""tadsr: one-step diffusion super-resolution with time-aware distillation."""

from tadsr._version import __version__

__all__ = ["Upscaler", "__version__"]


def __getattr__(name):
    # Lazy so that `import tadsr` stays cheap and `tadsr --help` does not import torch.
    if name == "Upscaler":
        from tadsr.inference.upscaler import Upscaler

        return Upscaler
    raise AttributeError(name)
