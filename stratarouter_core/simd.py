"""What vector instructions numpy's kernels use on this machine, reported honestly."""

from __future__ import annotations

__all__ = ["simd_enabled", "simd_features"]


def simd_features() -> list[str]:
    """SIMD extensions the CPU offers that numpy's kernels can use (e.g. AVX2, FMA3)."""
    try:
        from numpy._core._multiarray_umath import (  # type: ignore[import-not-found]
            __cpu_features__ as features,
        )
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import (  # type: ignore[no-redef]
            __cpu_features__ as features,
        )
    vector_sets = ("SSE", "AVX", "FMA", "NEON", "ASIMD", "SVE", "VSX", "VX")
    return sorted(
        name for name, present in features.items() if present and name.startswith(vector_sets)
    )


simd_enabled: bool = bool(simd_features())
