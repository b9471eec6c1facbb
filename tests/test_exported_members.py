"""The package's public surface: ``__all__`` is sorted, complete and importable."""

from __future__ import annotations

import oversight


def test_all_is_sorted_and_importable() -> None:
    assert oversight.__all__ == sorted(oversight.__all__, key=lambda n: (n[0].islower(), n))
    for name in oversight.__all__:
        assert getattr(oversight, name) is not None


def test_every_public_re_export_is_listed() -> None:
    public = {
        name
        for name, value in vars(oversight).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("oversight")
    }
    assert public <= set(oversight.__all__) | {"errors"}
