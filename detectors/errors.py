"""The detectors' errors: a detector misconfigured by a policy or the environment, and one that cannot load."""


class DetectorError(Exception):
    """A detector setting is wrong (unknown detector, unknown setting, bad value): one sentence naming it."""


class DetectorUnavailable(Exception):
    """Raised while loading a detector: its message is the one-sentence `unavailable_reason`."""
