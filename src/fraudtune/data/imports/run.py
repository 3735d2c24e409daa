"""`fraudtune data import` (alias `import-csv`): one command for both kinds of input.

A mapping with a `log:` section means a raw transaction log (fraudtune.data.imports.log: streamed, point-in-time
features, card tokens); without it, each row carries the customer profile (fraudtune.data.importers.import_csv).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fraudtune.config import DataConfig
from fraudtune.data.csv_mapping import load_mapping
from fraudtune.data.importers import import_csv
from fraudtune.data.imports.log import import_log


def import_data(
    path: Path,
    map_path: Path,
    out_dir: Path,
    profile_path: Path,
    data_cfg: DataConfig | None = None,
    key_file: Path | None = None,
    key_env: str | None = None,
    keep_warmup: bool | None = None,
) -> dict[str, Any]:
    """`fraudtune data import` (alias import-csv): a log mapping (with `log:`) streams the file through
    fraudtune.data.imports.log; rows that carry the customer profile go through import_csv.

    Args:
        path: CSV or Parquet file of labelled transactions.
        map_path: the column mapping YAML.
        out_dir: folder for the data set files.
        profile_path: issuer profile used to explain each label (never to change it).
        data_cfg: seed, split method and fractions, chunk size (defaults from DataConfig).
        key_file, key_env: the card token key of a log import (default: the mapping's log section).
        keep_warmup: a log import writes its warm-up rows into the splits too (default: log.keep_warmup).
    """
    if load_mapping(Path(map_path)).log is None:
        return import_csv(path, map_path, out_dir, profile_path, data_cfg)
    return import_log(path, map_path, out_dir, profile_path, data_cfg, key_file, key_env, keep_warmup)
