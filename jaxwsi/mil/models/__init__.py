"""The MIL models (registry kind ``"mil"``); importing this package registers them:
``attention_mil``, ``gated_attention_mil``, ``clam_sb``, ``clam_mb``, ``mil_fc``, ``transmil``.
The call convention is in `jaxwsi.mil.models.common`."""

from jaxwsi.mil.models.attention import AttentionMIL
from jaxwsi.mil.models.clam import CLAM, MILFC
from jaxwsi.mil.models.common import masked_softmax
from jaxwsi.mil.models.transmil import TransMIL

__all__ = ["CLAM", "MILFC", "AttentionMIL", "TransMIL", "masked_softmax"]
