"""Streamed reads of url sources: batches of chosen columns, the same values as a whole
load, within the byte budget, the allowed paths and the egress policy."""

from __future__ import annotations

import http.server
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from loopback import HttpServers
from modelmon.api.policy import CGROUP_MEMORY_FILES, Egress, Policy, container_memory
from modelmon.api.policy import default_max_memory as default_memory
from modelmon.api.v1alpha1 import Source
from modelmon.sources import DataError, LoadContext, SourceError, Stream, load, open_stream

LOOPBACK = Egress(allow=("127.0.0.0/8",))
ROWS = 30_000


def data(rows: int = ROWS, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 10, rows)
    income[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame({"income": income, "count": rng.integers(0, 9, rows),
                         "region": rng.choice(["n", "s", "e"], rows),
                         "wide": [f"{i:060d}" for i in range(rows)]})


def ctx(policy: Policy | None = None, **kw: Any) -> LoadContext:
    return LoadContext(role="spec.current.source", retries=0,
                       policy=policy or Policy(local_paths=None, egress=LOOPBACK), **kw)


def opened(url: str, context: LoadContext | None = None, **source: Any) -> Stream:
    stream = open_stream(Source(url=url, **source), context or ctx())
    assert stream is not None
    return stream


@pytest.fixture(params=["parquet", "csv"])
def written(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / f"w.{request.param}"
    frame = data()
    if request.param == "parquet":
        frame.to_parquet(path, index=False, row_group_size=4_000)
    else:
        frame.to_csv(path, index=False)
    return path


def test_batches_hold_the_values_a_whole_load_holds(written: Path) -> None:
    stream = opened(str(written))
    assert stream.columns == ["income", "count", "region", "wide"]
    whole = load(Source(url=str(written)), ctx(columns=["income", "region"])).frame
    batches = list(stream.batches(["region", "income"], 5_000))
    assert len(batches) >= ROWS // 5_000 and all(len(b) <= 5_000 for b in batches)
    assert all(list(b.columns) == ["income", "region"] for b in batches)
    joined = pd.concat(batches, ignore_index=True)
    assert len(joined) == ROWS
    np.testing.assert_array_equal(joined["income"].to_numpy(), whole["income"].to_numpy())
    assert (joined["region"].astype(str) == whole["region"].astype(str)).all()


def test_held_bytes_estimate_counts_only_the_asked_columns(written: Path) -> None:
    stream = opened(str(written))
    one = stream.held_bytes(["income"])
    both = stream.held_bytes(["income", "wide"])
    assert one is not None and both is not None and 0 < one < both
    if written.suffix == ".parquet":
        assert stream.rows == ROWS
        assert one >= 8 * ROWS  # a float64 in memory, whatever the encoding on disk
        assert 0 < stream.largest_chunk("income") < one
    else:
        assert stream.rows is None
        assert both < written.stat().st_size


def test_every_pass_is_held_to_the_byte_budget(written: Path) -> None:
    size = written.stat().st_size
    stream = opened(str(written), max_bytes=size + 4096)
    for _ in range(2):  # a pass counts afresh: two passes of one file each fit
        assert sum(len(b) for b in stream.batches(["income"], 5_000)) == ROWS
    small = opened(str(written), max_bytes=size // 3)  # the footer or header fits
    with pytest.raises(DataError, match=r"^spec.current.source.maxBytes: the source has "
                                        r"more than \d+ bytes"):
        for _ in small.batches(stream.columns, 5_000):
            pass


def test_the_files_of_a_prefix_stream_in_path_order(tmp_path: Path) -> None:
    frame = data()
    (tmp_path / "d").mkdir()
    frame.iloc[:10_000].to_parquet(tmp_path / "d" / "a.parquet", index=False)
    frame.iloc[10_000:].to_parquet(tmp_path / "d" / "b.parquet", index=False)
    stream = opened(str(tmp_path / "d") + "/")
    assert stream.rows == ROWS
    joined = pd.concat(stream.batches(["count"], 3_000), ignore_index=True)
    np.testing.assert_array_equal(joined["count"].to_numpy(), frame["count"].to_numpy())


def test_a_file_of_a_prefix_without_a_column_is_named(tmp_path: Path) -> None:
    frame = data(100)
    (tmp_path / "d").mkdir()
    frame.to_csv(tmp_path / "d" / "a.csv", index=False)
    frame.drop(columns=["region"]).to_csv(tmp_path / "d" / "b.csv", index=False)
    with pytest.raises(DataError, match=r"schema changed under .*b\.csv lacks region"):
        opened(str(tmp_path / "d") + "/")


def test_json_lines_are_not_streamed(tmp_path: Path) -> None:
    data(100).to_json(tmp_path / "w.jsonl", orient="records", lines=True)
    assert open_stream(Source(url=str(tmp_path / "w.jsonl")), ctx()) is None


def test_local_paths_outside_the_allowed_directories_are_refused(written: Path,
                                                                 tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    policy = Policy(local_paths=(other.resolve(),), egress=LOOPBACK)
    with pytest.raises(SourceError, match="outside the directories this operator may read"):
        open_stream(Source(url=str(written)), ctx(policy))


def test_a_file_that_does_not_parse_is_not_quoted(tmp_path: Path) -> None:
    path = tmp_path / "w.parquet"
    path.write_bytes(b"PAR1 secret-looking-bytes PAR1")
    with pytest.raises(DataError) as info:
        open_stream(Source(url=str(path)), ctx())
    assert "not readable as parquet" in str(info.value)
    assert "secret-looking" not in str(info.value)


class CsvFile(http.server.BaseHTTPRequestHandler):
    """Serves ``body`` with a Content-Length and an ETag (so the version is known)."""

    protocol_version = "HTTP/1.1"
    body: ClassVar[bytes] = b""

    def log_message(self, *args: object) -> None:
        pass

    def _head(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(CsvFile.body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()

    def do_HEAD(self) -> None:
        self._head()

    def do_GET(self) -> None:
        self._head()
        self.wfile.write(CsvFile.body)


def test_http_csv_streams_within_the_egress_policy(http_servers: HttpServers) -> None:
    CsvFile.body = data(5_000).to_csv(index=False).encode()
    url = http_servers.start(CsvFile) + "/w.csv"
    stream = opened(url)
    assert sum(len(b) for b in stream.batches(["income"], 1_000)) == 5_000
    closed = Policy(local_paths=(), egress=Egress())  # loopback refused by default
    with pytest.raises(SourceError, match=r"^spec.current.source.url: .*refused"):
        open_stream(Source(url=url), ctx(closed))


@pytest.mark.parametrize(("text", "limit"), [
    ("max\n", None), ("1073741824\n", 2**30), ("9223372036854771712\n", None)])
def test_the_container_memory_limit_is_read_from_its_cgroup(tmp_path: Path, text: str,
                                                            limit: int | None) -> None:
    (tmp_path / "memory.max").write_text(text)
    files = (tmp_path / "memory.max", tmp_path / "absent")
    assert container_memory(files) == limit
    assert default_memory(files) == (None if limit is None else limit // 4)
    assert container_memory((tmp_path / "absent",)) is None
    assert len(CGROUP_MEMORY_FILES) == 2


def test_a_whole_load_reads_column_chunks_over_a_megabyte(tmp_path: Path) -> None:
    # A metered read returns at most a megabyte; pyarrow must still get each range whole.
    frame = pd.DataFrame({"x": np.random.default_rng(1).random(400_000)})
    frame.to_parquet(tmp_path / "one.parquet", index=False, compression=None)
    loaded = load(Source(url=str(tmp_path / "one.parquet")), ctx(columns=["x"])).frame
    np.testing.assert_array_equal(loaded["x"].to_numpy(), frame["x"].to_numpy())


def test_csv_files_that_fit_the_memory_limit_are_not_opened_for_streaming(
        written: Path) -> None:
    size = written.stat().st_size
    roomy = Policy(local_paths=None, egress=LOOPBACK, max_memory=size)
    tight = Policy(local_paths=None, egress=LOOPBACK, max_memory=size - 1)
    fits = open_stream(Source(url=str(written)), ctx(roomy))
    assert (fits is None) == (written.suffix == ".csv")  # parquet: decided from its footer
    assert open_stream(Source(url=str(written)), ctx(tight)) is not None
