"""Full-reference image metrics under the published FiveK protocol, in torch, on any device.

The protocol (``docs/uegan-spec.md``, "Evaluation protocol"): 8-bit RGB images, 4 pixels cropped
from every border, float64 arithmetic.

- :func:`psnr`: ``10 log10(255^2 / MSE)`` over all remaining pixels and channels.
- :func:`ssim` with ``protocol="published"``: what the published scripts compute, i.e.
  scikit-image ``structural_similarity(a, b, channel_axis=-1, data_range=255)`` with its
  defaults: 7x7 uniform window, sample covariance (``N / (N - 1)``), K1 = 0.01, K2 = 0.03, the
  SSIM map averaged over the positions where the window fits entirely, then over channels.
- :func:`ssim` with ``protocol="gaussian"``: the SSIM of Wang et al. (2004) and of MATLAB's
  ``ssim``: 11x11 Gaussian window with sigma 1.5, population covariance, same constants;
  equal to scikit-image with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``.
  Most other enhancement papers report this one; it gives different figures.
- :func:`ciede2000`: the mean over the remaining pixels of the CIEDE2000 colour difference
  (Sharma, Wu & Dalal 2005; kL = kC = kH = 1) between the two images in CIE Lab. The 8-bit
  values / 255 are taken as sRGB and converted to Lab (D65, 2 degree observer) with the formulas
  and constants of scikit-image's ``rgb2lab`` (:func:`srgb_to_lab`), and the difference follows
  scikit-image's ``deltaE_ciede2000`` branch for branch (:func:`ciede2000_lab`); the two agree to
  rounding (about 1e-13). Lower is better; identical images give 0.

Inputs: ``numpy.ndarray`` of shape H x W x 3 (uint8), or ``torch.Tensor`` of shape H x W x 3 or
3 x H x W, uint8 or floating point holding values in [0, 255] (normally whole numbers, e.g. from
:func:`quantize`). Layout is decided by which end has size 3 (``layout=`` overrides it when both
do). Tensors are evaluated on their own device; both inputs must share it. Batched tensors
(N x 3 x H x W) go to :func:`psnr_batch` / :func:`ssim_batch` / :func:`ciede2000_batch`, which
return one value per image.

scikit-image is *not* a dependency: it is only the reference the tests compare against.
"""

from uegan.metrics.colour import (D65_WHITE, DEVICE_TILE_PIXELS, SRGB_TO_XYZ, ciede2000, ciede2000_batch,
                                  ciede2000_lab, srgb_to_lab)
from uegan.metrics.fidelity import gaussian_window_1d, psnr, psnr_batch, ssim, ssim_batch
from uegan.metrics.protocol import (BORDER, CPU_TILE_ELEMENTS, DATA_RANGE, DIGITS, GAUSSIAN_SIGMA,
                                    GAUSSIAN_TRUNCATE, K1, K2, LOWER_IS_BETTER, PUBLISHED_WINDOW,
                                    SSIM_PROTOCOLS, ImageLike, Layout, SsimProtocol, published_script_average,
                                    quantize, to_chw, true_mean)

FULL_REFERENCE: tuple[str, ...] = ("psnr", "ssim", "ciede2000")
"""The full-reference metrics, in table order: what :func:`full_reference_scores` returns, and
what evaluation, validation during training, reports and the demo show."""


def full_reference_scores(pred: ImageLike, target: ImageLike, protocol: SsimProtocol = "published"
                          ) -> dict[str, float]:
    """Every metric of :data:`FULL_REFERENCE` for one 8-bit RGB image against its reference."""
    return {"psnr": psnr(pred, target), "ssim": ssim(pred, target, protocol=protocol),
            "ciede2000": ciede2000(pred, target)}


__all__ = [
    "BORDER", "CPU_TILE_ELEMENTS", "D65_WHITE", "DATA_RANGE", "DEVICE_TILE_PIXELS", "DIGITS",
    "FULL_REFERENCE", "full_reference_scores", "GAUSSIAN_SIGMA", "GAUSSIAN_TRUNCATE", "K1", "K2", "LOWER_IS_BETTER", "PUBLISHED_WINDOW",
    "SRGB_TO_XYZ", "SSIM_PROTOCOLS", "ImageLike", "Layout", "SsimProtocol", "ciede2000",
    "ciede2000_batch", "ciede2000_lab", "gaussian_window_1d", "psnr", "psnr_batch",
    "published_script_average", "quantize", "srgb_to_lab", "ssim", "ssim_batch", "to_chw", "true_mean",
]
