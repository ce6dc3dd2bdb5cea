"""The public names are pinned: a change here is a deliberate API change."""

from __future__ import annotations

import subprocess
import sys

import stratarouter_core

EXPECTED = [
    "BaseEncoder",
    "CachedEncoder",
    "Candidate",
    "ConfigError",
    "DecisionLog",
    "DimensionMismatchError",
    "DuplicateRouteError",
    "EncoderError",
    "FusionWeights",
    "IndexConfig",
    "IndexNotBuiltError",
    "InvalidQueryError",
    "InvalidResultError",
    "IsotonicCalibrator",
    "MissingDependencyError",
    "ModelChoice",
    "ModelRouter",
    "ModelRouterConfig",
    "ModelRoutingReport",
    "ModelSpec",
    "NoRouteError",
    "NotFittedError",
    "PersistenceError",
    "Route",
    "RouteNotFoundError",
    "RouteResult",
    "RouteValidationError",
    "Router",
    "RouterConfig",
    "RoutesFileError",
    "RoutingDecision",
    "StrataRouterError",
    "__version__",
    "simd_enabled",
]


def test_all_is_pinned_and_importable() -> None:
    assert sorted(stratarouter_core.__all__) == sorted(EXPECTED)
    for name in stratarouter_core.__all__:
        assert hasattr(stratarouter_core, name)
    assert stratarouter_core.__version__[0].isdigit()


def test_import_is_light() -> None:
    code = (
        "import sys, stratarouter_core;"
        "heavy = {'torch', 'sklearn', 'scipy', 'tokenizers', 'openai', 'langchain_core', 'crewai',"
        " 'autogen_agentchat', 'redis', 'psycopg', 'hnswlib'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_simd_flag_is_honest() -> None:
    from stratarouter_core.simd import simd_features

    assert stratarouter_core.simd_enabled == bool(simd_features())
