"""The lab's one error type: its message is shown to the operator as is."""
from kvmplace.exception import KvmplaceError


class LabError(KvmplaceError):
    """Something the lab needs is missing or a step failed; say which."""
