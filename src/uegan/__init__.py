"""uegan: unsupervised photo enhancement with UEGAN (Ni et al., IEEE TIP 2020)."""

from uegan.errors import UserError

__version__ = "0.1.0"

__all__ = ["UserError", "__version__"]
