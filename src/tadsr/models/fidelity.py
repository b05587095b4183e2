"""A model's fidelity dial settings, the part that needs no image: reading a value, finding a
model's faithful endpoint and default in the registry (`fidelity_plan`). Below both the
pipeline (which loads a model at its plan) and `tadsr.inference` (whose `inference.fidelity`
adds `auto`'s estimate from an image, and the dial's description)."""

from __future__ import annotations

import math

__all__ = ["AUTO", "default_fidelity", "endpoint_for", "fidelity_plan", "parse_fidelity"]

AUTO = "auto"


def parse_fidelity(value: str | float | None) -> float | str | None:
    """A fidelity as given (a number, a string, "auto", None) -> float in [0, 1], "auto" or
    None; ValueError in one line for anything else (nan and inf included)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
        return None if value is None else AUTO
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"fidelity must be a number from 0 to 1 or 'auto', got {value!r}"
        ) from None
    if not (math.isfinite(f) and 0.0 <= f <= 1.0):
        raise ValueError(f"fidelity must be from 0 (realistic) to 1 (faithful), got {value!r}")
    return f


def _entry(model: str | None) -> dict:
    from tadsr.models import DEFAULT_MODEL, registry

    return registry().get(str(model or DEFAULT_MODEL), {})


def endpoint_for(model: str | None, endpoint: str | None = None) -> str | None:
    """The faithful endpoint of `model`: `endpoint` when given, else its registry entry's
    "fidelity_endpoint" (a bundled name), else None (none known)."""
    if endpoint is not None:
        return str(endpoint)
    return _entry(model).get("fidelity_endpoint")


def default_fidelity(model: str | None) -> float | str | None:
    """The registry's "default_fidelity" of a bundled model: a number, "auto", or None (other
    models)."""
    return parse_fidelity(_entry(model).get("default_fidelity"))


def fidelity_plan(
    model: str | None,
    fidelity: str | float | None = None,
    endpoint: str | None = None,
    *,
    fixed: bool = False,
) -> tuple[float | str | None, str | None]:
    """(F or "auto", the endpoint to blend with) for loading `model`, or (None, None) for the
    model as it is. `fidelity` None means the registry's "default_fidelity" (a default of 0
    loads the plain model, so its output stays what it was; so does F = 0 for a model with no
    endpoint, since the dial's F = 0 end is the model itself). `fixed`: for one fixed graph
    (ONNX), where a default of "auto" cannot be, the plain model (F = 0) stands in. ValueError
    in one line for a bad value, or a fidelity with no endpoint known."""
    f = parse_fidelity(fidelity)
    if f is None:
        f = default_fidelity(model)
        if fixed and f == AUTO:
            f = None
        if not f and endpoint is not None:
            raise ValueError("a fidelity endpoint needs a fidelity (0 to 1 or 'auto')")
        if not f:
            return None, None
    found = endpoint_for(model, endpoint)
    if found is None and f == 0:  # the realism end is the model itself: nothing to blend
        return None, None
    if found is None:
        from tadsr.models import DEFAULT_MODEL

        raise ValueError(
            f"fidelity: model {model or DEFAULT_MODEL} has no faithful endpoint to blend with; "
            "name one (--fidelity-endpoint FILE, or fidelity_endpoint= in Python)"
        )
    return f, found
