"""Importing an issuer's own transaction log: point-in-time customer features, card tokens, streaming, leakage.

`fraudtune data import FILE --map MAP.yaml --out DIR` reads a CSV or Parquet log through a column mapping whose
`log:` section names the card column (configs/cardlog_mapping.example.yaml); see `fraudtune.data.imports.log`.
"""
