"""A font installed after matplotlib wrote its font cache is still found for the evaluation charts."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
from matplotlib import font_manager

from evaluation import charts

FAMILY = "DejaVu Sans Mono"


@pytest.fixture
def stale_manager() -> font_manager.FontManager:
    """matplotlib's font list as a cache written before FAMILY was installed would hold it."""
    manager = copy.deepcopy(font_manager.fontManager)
    manager.ttflist = [font for font in manager.ttflist if font.name != FAMILY]
    return manager


def _installed_copy(folder: Path) -> Path:
    source = next((Path(p) for p in font_manager.findSystemFonts() if Path(p).name == "DejaVuSansMono.ttf"), None)
    if source is None:  # matplotlib ships DejaVu in its own data folder
        source = Path(font_manager.findfont(FAMILY, fallback_to_default=False))
    folder.mkdir()
    return Path(shutil.copy(source, folder / "NewlyInstalled.ttf"))


def test_a_font_missing_from_the_cache_is_found_in_the_font_folders(tmp_path: Path, stale_manager) -> None:
    fonts = tmp_path / "fonts"
    installed = _installed_copy(fonts)
    assert charts.cjk_font(manager=stale_manager, font_dirs=[tmp_path / "empty"], families=(FAMILY,)) is None
    assert charts.cjk_font(manager=stale_manager, font_dirs=[fonts], families=(FAMILY,)) == FAMILY
    assert str(installed) in {font.fname for font in stale_manager.ttflist}


def test_a_font_the_cache_already_lists_needs_no_search(tmp_path: Path) -> None:
    manager = copy.deepcopy(font_manager.fontManager)
    before = len(manager.ttflist)
    assert charts.cjk_font(manager=manager, font_dirs=[tmp_path], families=("DejaVu Sans",)) == "DejaVu Sans"
    assert len(manager.ttflist) == before
