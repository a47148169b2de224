"""sdk: fast semantic image synthesis from label maps.

``from sdk import Synthesizer``. The runtime needs numpy, pillow and onnxruntime only;
torch and TensorRT backends are optional and imported when chosen. Label maps are read by
a bundle's :class:`LabelIntake` (``s.intake``) into a :class:`Label`, at every door.
"""
from .bundle import Bundle
from .editor import EditResult, Editor
from .errors import BackendError, BundleError, LabelError, SDKError
from .intake import Label, LabelIntake
from .per_class import load_codes, save_codes
from .synthesizer import Synthesizer

__version__ = "0.1.0"
__all__ = ["BackendError", "Bundle", "BundleError", "EditResult", "Editor", "Label", "LabelError", "LabelIntake", "SDKError", "Synthesizer",
           "__version__", "load_codes", "save_codes"]
