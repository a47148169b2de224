"""sdk: fast semantic image synthesis from label maps.

``from sdk import Synthesizer``; ``Synthesizer.from_pretrained(bundle)`` returns the pipeline
the bundle needs: :class:`LabelToImage`, :class:`PerClassLabelToImage`, :class:`Unconditional`
or :class:`ImageToImage`. The runtime needs numpy, pillow and onnxruntime only; torch and
TensorRT backends are optional and imported when chosen. Label maps are read by a bundle's
:class:`LabelIntake` (``s.intake``) into a :class:`Label`, at every door.
"""
from .bundle import Bundle
from .editor import Editor, EditResult
from .errors import BackendError, BundleError, LabelError, SDKError
from .intake import Label, LabelIntake
from .per_class import PerClassLabelToImage, load_codes, save_codes
from .synthesizer import ImageToImage, LabelToImage, Synthesizer, Unconditional

__version__ = "0.1.0"
__all__ = ["BackendError", "Bundle", "BundleError", "EditResult", "Editor", "ImageToImage", "Label", "LabelError",
           "LabelIntake", "LabelToImage", "PerClassLabelToImage", "SDKError", "Synthesizer", "Unconditional",
           "__version__", "load_codes", "save_codes"]
