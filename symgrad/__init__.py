"""symgrad: exact gradients by the chain rule over SymPy expression DAGs."""

from .errors import SymgradError
from .functions import relu, sigmoid

__all__ = ["SymgradError", "relu", "sigmoid"]
__version__ = "0.1.0"
