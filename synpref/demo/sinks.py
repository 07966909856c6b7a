"""Sinks: stream chunks into each file format."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

NESTED_FIELDS = (("question", "text"), ("chosen", "answer"), ("rejected", "answer"))
NESTED_SCHEMA = pa.schema([(col, pa.struct([(sub, pa.string())])) for col, sub in NESTED_FIELDS])


def pack(items: list, shape: str) -> bytes | str | dict[str, list[str]]:
    """A chunk's records as its sink takes them (done in the worker, so the writer only writes)."""
    if shape == "labelled_outputs":
        return ",\n".join(items)
    if shape == "prompt_chosen_rejected":
        return {f"{col}.{sub}": [item[col][sub] for item in items] for col, sub in NESTED_FIELDS}
    return ("\n".join(items) + "\n").encode("utf-8")


class JsonlSink:
    def __init__(self, path: Path):
        self.raw = path.open("wb")
        # mtime=0 and no file name in the header keep the bytes reproducible; level 1 for speed
        self.f = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0, compresslevel=1) \
            if path.name.endswith(".gz") else self.raw

    def write(self, lines: bytes) -> None:
        self.f.write(lines)

    def close(self) -> None:
        self.f.close()
        self.raw.close()


class JsonArraySink:
    """A JSON array written incrementally: '[', items joined by ',', ']'."""

    def __init__(self, path: Path):
        self.f = path.open("w", encoding="utf-8")
        self.f.write("[")
        self.first = True

    def write(self, items: str) -> None:
        self.f.write(("\n" if self.first else ",\n") + items)
        self.first = False

    def close(self) -> None:
        self.f.write("\n]\n")
        self.f.close()


class ParquetSink:
    def __init__(self, path: Path):
        self.writer = pq.ParquetWriter(path, NESTED_SCHEMA, compression="zstd")

    def write(self, columns: dict[str, list[str]]) -> None:
        arrays = [pa.StructArray.from_arrays([pa.array(columns[f"{col}.{sub}"], pa.string())], [sub])
                  for col, sub in NESTED_FIELDS]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=NESTED_SCHEMA))  # a row group per chunk

    def close(self) -> None:
        self.writer.close()


def open_sink(path: Path, shape: str):
    if shape == "labelled_outputs":
        return JsonArraySink(path)
    if shape == "prompt_chosen_rejected":
        return ParquetSink(path)
    return JsonlSink(path)
