"""Real data shipped by installed packages, for the multimodal tests and benchmarks.

* digits: scikit-learn's 8x8 handwritten digits, written out as PNG files.
* newsgroups: the 200 Usenet posts (alt.atheism, sci.space) that gensim ships as test data
  (``gensim/test/test_data/mini_newsgroup``: a zlib-compressed scikit-learn ``Bunch``). It
  is read with :mod:`pickletools`, which only *parses* the opcodes — nothing is unpickled or
  executed: the posts are the stream's text constants, each post's group its header line.
* airports: vega_datasets' US airports (latitude/longitude).
"""

from __future__ import annotations

import importlib.util
import pickletools
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

NEWSGROUPS = ("alt.atheism", "sci.space")
# US census regions, to check that airports cluster by place
_REGIONS = {
    "Northeast": "CT ME MA NH RI VT NJ NY PA",
    "Midwest": "IL IN MI OH WI IA KS MN MO NE ND SD",
    "South": "DE FL GA MD NC SC VA DC WV AL KY MS TN AR LA OK TX",
    "West": "AZ CO ID MT NV NM UT WY AK CA HI OR WA",
}
STATE_REGION = {state: region for region, states in _REGIONS.items() for state in states.split()}


def write_digits(root: Path, n: int, seed: int = 0, scale: int = 4) -> pd.DataFrame:
    """``n`` random digits as ``root/digit-<i>.png`` (grey, upscaled ``scale`` x); frame of path + label."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = np.random.default_rng(seed).choice(len(digits.target), size=n, replace=False)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in rows:
        pixels = (digits.images[i] / 16.0 * 255).astype(np.uint8)
        image = Image.fromarray(pixels, mode="L").resize((8 * scale, 8 * scale), Image.Resampling.NEAREST)
        path = root / f"digit-{i}.png"
        image.save(path)
        paths.append(str(path))
    return pd.DataFrame({"image": paths, "label": digits.target[rows]})


def newsgroups_posts() -> pd.DataFrame:
    """The gensim mini newsgroups corpus: ``text`` (body, headers removed) and ``group``."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('the newsgroup corpus comes from gensim: pip install -e ".[dev]"')
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / "mini_newsgroup"
    stream = zlib.decompress(path.read_bytes())
    texts, groups = [], []
    for opcode, argument, _ in pickletools.genops(stream):
        if opcode.name != "UNICODE" or len(argument) < 100:
            continue
        header, _, body = argument.partition("\n\n")
        match = re.search(r"^Newsgroups:\s*(.+)$", header, re.MULTILINE)
        named = [g for g in NEWSGROUPS if match and g in match.group(1)]
        if len(named) == 1 and body.strip():
            texts.append(body.strip())
            groups.append(named[0])
    return pd.DataFrame({"text": texts, "group": groups})


def airports() -> pd.DataFrame:
    """vega_datasets' airports with the US census ``region`` of each state (NaN outside)."""
    from vega_datasets import data

    frame = data.airports()
    frame["region"] = frame["state"].map(STATE_REGION)
    return frame
