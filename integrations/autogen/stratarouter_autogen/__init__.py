"""StrataRouter for AutoGen: pick the next speaker of a group chat with a router.

- `SpeakerSelector`: `selector_func` / `candidate_func` for autogen-agentchat's
  `SelectorGroupChat`; returning None hands the turn to the model selector.
- `ag2_speaker_selection`: `speaker_selection_method` for classic ag2 `GroupChat`
  (extra `stratarouter-autogen[ag2]`; ag2 is never imported by this package).

Both take `(router, ..., targets={route: agent name}, fallback=...)` and keep their recent
`RoutingDecision`s in `.decisions`. `RoutingDecision` is `stratarouter_core`'s, re-exported
here for the imports written before it moved there.
"""

from __future__ import annotations

from stratarouter_core import RoutingDecision

from .ag2 import Ag2SpeakerSelector, ag2_speaker_selection
from .selector import SpeakerSelector

__all__ = [
    "Ag2SpeakerSelector",
    "RoutingDecision",
    "SpeakerSelector",
    "ag2_speaker_selection",
]
