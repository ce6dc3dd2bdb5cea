"""Helpers shared by the LangGraph adapter tests (unique module name: no clash across adapters)."""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import FakeListChatModel

ROUTES = ("billing", "tech_support", "sales")


def agent(name: str):
    """A graph node answering with a fake chat model."""
    model = FakeListChatModel(responses=[f"{name} here"])

    def node(state):
        return {"messages": [model.invoke(state["messages"])]}

    return node


def add_agents(graph, names=(*ROUTES, "human")):
    for name in names:
        graph.add_node(name, agent(name))
    return graph


def ran(app, query, **kwargs):
    """Names of the nodes that ran, step by step (stream_mode="updates")."""
    return [list(update) for update in app.stream({"messages": [("user", query)]},
                                                  stream_mode="updates", **kwargs)]
