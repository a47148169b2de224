"""User-facing errors. Each message names the problem and the fix; the CLI prints it
and exits with status 2, no traceback."""


class SDKError(ValueError):
    """Base class of every error the SDK raises for bad input."""


class LabelError(SDKError):
    """A label map (or instance map) the model cannot take."""


class BundleError(SDKError):
    """A bundle that is missing, incomplete, corrupt or tampered with."""


class BackendError(SDKError):
    """A backend that is unavailable here, or an engine built for another machine."""
