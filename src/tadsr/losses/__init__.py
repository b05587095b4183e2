"""TAD-SR losses, one small callable each."""

from tadsr.losses.adversarial import d_hinge_loss, g_hinge_loss
from tadsr.losses.flat import flat_area_loss
from tadsr.losses.hfsd import hfsd_loss
from tadsr.losses.regression import regression_loss, split_regression_loss
from tadsr.losses.teacher import teacher_loss

__all__ = [
    "d_hinge_loss",
    "flat_area_loss",
    "g_hinge_loss",
    "hfsd_loss",
    "regression_loss",
    "split_regression_loss",
    "teacher_loss",
]
