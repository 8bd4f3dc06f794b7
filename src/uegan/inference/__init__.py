"""Enhancing photos with a trained UEGAN generator.

- :mod:`uegan.inference.enhancer`: :class:`Enhancer`, a generator ready for images of any size
  and kind (PIL, numpy, torch);
- :mod:`uegan.inference.transfer`: the local affine colour transfer that carries the effect
  computed at a working size to full resolution;
- :mod:`uegan.inference.acceleration`: speed-ups of the forward pass;
- :mod:`uegan.inference.padding`: padding to the sizes the generator accepts.

The exact tiled forward pass lives with the generator, in :mod:`uegan.models.tiling`.
"""

from uegan.inference.acceleration import (AcceleratedGenerator, InferenceAcceleration,
                                          prepare_generator_for_inference)
from uegan.inference.enhancer import (DEFAULT_MAX_SIDE, STRIP_ROWS, Enhancer, quantize,
                                      working_size)
from uegan.inference.padding import pad_reflect, padded_size, reflect_indices
from uegan.inference.transfer import (DEFAULT_GUIDE_EPS, DEFAULT_GUIDE_RADIUS, LocalAffineTransfer,
                                      fit_local_affine)
from uegan.models.tiling import (DECODER_HALO, DEFAULT_TILE, ENCODER_HALO, tileable,
                                 tiled_forward, tiling_matches)

__all__ = ["AcceleratedGenerator", "DECODER_HALO", "DEFAULT_GUIDE_EPS", "DEFAULT_GUIDE_RADIUS",
           "DEFAULT_MAX_SIDE", "DEFAULT_TILE", "ENCODER_HALO", "Enhancer", "InferenceAcceleration",
           "LocalAffineTransfer", "STRIP_ROWS", "fit_local_affine", "pad_reflect", "padded_size",
           "prepare_generator_for_inference", "quantize", "reflect_indices", "tileable",
           "tiled_forward", "tiling_matches", "working_size"]
