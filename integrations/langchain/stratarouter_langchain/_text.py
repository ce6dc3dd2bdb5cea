"""Turn whatever LangChain hands a runnable into the query text the router needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.prompt_values import PromptValue
from stratarouter_core import InvalidQueryError

__all__ = ["RouterInput", "to_text"]

RouterInput: TypeAlias = (
    str | Mapping[str, Any] | BaseMessage | Sequence[BaseMessage] | PromptValue
)
"""What the runnables accept: text, a dict holding it, a message, a message list or a prompt."""


def to_text(value: object, input_key: str, owner: str) -> str:
    """The text to route for `value`.

    Args:
        value: A str, a dict (its `input_key` entry is used), a `BaseMessage`, a list of
            messages (the last human message is used) or a `PromptValue`.
        input_key: The dict key holding the query.
        owner: Name of the calling runnable, for error messages.

    Raises:
        TypeError: For any other input type; the message names the type.
        KeyError: For a dict without `input_key`.
        InvalidQueryError: For a message list with no human message.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, BaseMessage):
        return str(value.text)
    if isinstance(value, PromptValue):
        return to_text(value.to_messages(), input_key, owner)
    if isinstance(value, Mapping):
        if input_key not in value:
            raise KeyError(f"{owner}: input dict has no key {input_key!r} (keys: {sorted(value)}); "
                           f"pass input_key=... to read another key")
        return to_text(value[input_key], input_key, owner)
    if isinstance(value, Sequence) and value and all(isinstance(m, BaseMessage) for m in value):
        for message in reversed(value):
            if isinstance(message, HumanMessage):
                return str(message.text)
        raise InvalidQueryError(f"{owner}: the message list holds no HumanMessage to route")
    raise TypeError(f"{owner} cannot route input of type {type(value).__name__}: pass a str, "
                    f"a dict with key {input_key!r}, a BaseMessage or a list of messages")
