"""The one exception type a user sees: a sentence saying what is wrong and what to do."""


class DenselabError(Exception):
    """Bad input or usage. The CLI prints ``denselab: <message>`` and exits with status 2."""

    exit_code = 2


class CheckFailed(DenselabError):
    """A verification found a difference (exit status 1), e.g. the C engine disagrees with TFLM."""

    exit_code = 1
