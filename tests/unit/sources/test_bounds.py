"""The administrator's bounds on sources: local directories, byte budgets, and messages
that never quote the data of a source that failed to parse."""

from __future__ import annotations

import gzip
import http.server
import time
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest

from loopback import HttpServers
from modelmon.api.policy import Egress, Policy
from modelmon.api.v1alpha1 import ModelMonitorSpec, Source
from modelmon.check import run_check
from modelmon.sources import DataError, LoadContext, SourceError, load
from modelmon.sources.resolvers import LocalResolver

FRAME = pd.DataFrame({"a": [1.0, 2.5, 3.0], "b": ["x", "y", "z"]})
SECRET = "planted-token-9f3b1c7e"  # fake: must never reach a message


#: The test servers listen on loopback, which the operator's egress policy refuses unless
#: an administrator allows it (as these tests do).
LOOPBACK = Egress(allow=("127.0.0.0/8",))


def operator(*dirs: Path, max_bytes: int = 64 * 2**20) -> Policy:
    return Policy(local_paths=tuple(d.resolve() for d in dirs), max_bytes=max_bytes,
                  egress=LOOPBACK)


def ctx(policy: Policy, **kw: Any) -> LoadContext:
    return LoadContext(role="spec.current.source", policy=policy, retries=0, **kw)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """allowed/ holds data, a symlink out, and a link to a directory outside; outside/
    holds a 'secret'."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "part").mkdir(parents=True)
    outside.mkdir()
    FRAME.to_csv(allowed / "d.csv", index=False)
    FRAME.to_csv(allowed / "part" / "p1.csv", index=False)
    (outside / "token.csv").write_text(f"{SECRET}\n")
    (allowed / "escape.csv").symlink_to(outside / "token.csv")
    (allowed / "outdir").symlink_to(outside, target_is_directory=True)
    return tmp_path


# ------------------------------------------------------------------------- local paths

def test_the_operator_default_reads_no_local_file(tree: Path) -> None:
    for url in (str(tree / "allowed" / "d.csv"), f"file://{tree}/allowed/d.csv", "d.csv",
                f"{tree}/allowed/part/"):
        with pytest.raises(SourceError) as info:
            load(Source(url=url), ctx(Policy.operator(), base_dir=tree / "allowed"))
        text = str(info.value)
        assert text.startswith("spec.current.source.url: this operator reads no local file")
        assert "--allow-local-path" in text and not info.value.transient


def test_files_under_an_allowed_directory_are_read(tree: Path) -> None:
    policy = operator(tree / "allowed")
    for url in (str(tree / "allowed" / "d.csv"), f"file://{tree}/allowed/d.csv",
                f"file://localhost{tree}/allowed/d.csv", f"{tree}/allowed/part/"):
        assert len(load(Source(url=url), ctx(policy)).frame) == 3


@pytest.mark.parametrize("url", [
    "{t}/outside/token.csv",                 # plainly outside
    "{t}/allowed/../outside/token.csv",      # .. out of the allowed directory
    "{t}/allowed/escape.csv",                # a symlink inside that points out
    "{t}/allowed/outdir/token.csv",          # through a symlinked directory
    "{t}/allowed/outdir/",                   # a prefix that is a symlinked directory
    "file://{t}/allowed/escape.csv",         # file:// is a local path too
    "{t}/allowed/nonexistent/../../outside/missing.csv",
])
def test_paths_that_resolve_outside_are_refused(tree: Path, url: str) -> None:
    with pytest.raises(SourceError) as info:
        load(Source(url=url.format(t=tree)), ctx(operator(tree / "allowed")))
    text = str(info.value)
    assert text.startswith("spec.current.source.url: ")
    assert "is outside the directories this operator may read" in text
    assert "modelmon run --allow-local-path DIR" in text and SECRET not in text


def test_a_prefix_with_a_symlink_out_is_refused(tree: Path) -> None:
    (tree / "allowed" / "part" / "p2.csv").symlink_to(tree / "outside" / "token.csv")
    with pytest.raises(SourceError, match="is outside the directories") as info:
        load(Source(url=f"{tree}/allowed/part/"), ctx(operator(tree / "allowed")))
    assert SECRET not in str(info.value)


def test_a_refusal_does_not_tell_whether_the_file_exists(tree: Path) -> None:
    said = []
    for name in ("token.csv", "missing.csv"):
        with pytest.raises(SourceError) as info:
            load(Source(url=str(tree / "outside" / name)), ctx(operator(tree / "allowed")))
        said.append(str(info.value).replace(name, "NAME"))
    assert said[0] == said[1]


def test_a_file_url_with_a_host_is_refused() -> None:
    with pytest.raises(SourceError, match="file:// url names no host"):
        load(Source(url="file://etc/passwd"), ctx(Policy.local()))


def test_modelmon_check_reads_any_local_path(tree: Path) -> None:
    got = load(Source(url="../outside/token.csv"), LoadContext(base_dir=tree / "allowed"))
    assert list(got.frame.columns) == [SECRET]  # the person running check reads it anyway


# ------------------------------------------------------------------------- byte budgets

def test_a_file_over_the_budget_is_refused_from_its_size(tree: Path) -> None:
    size = (tree / "allowed" / "d.csv").stat().st_size
    with pytest.raises(DataError) as info:
        load(Source(url=str(tree / "allowed" / "d.csv"), max_bytes=size - 1),
             ctx(operator(tree / "allowed")))
    assert str(info.value) == (
        f"spec.current.source.maxBytes: the source has more than {size - 1} bytes "
        f"(size {size}); raise maxBytes or narrow the window")
    assert info.value.reason == "InvalidData"
    assert len(load(Source(url=str(tree / "allowed" / "d.csv"), max_bytes=size),
                    ctx(operator(tree / "allowed"))).frame) == 3


def test_the_operator_default_budget_and_its_fix(tree: Path) -> None:
    with pytest.raises(DataError) as info:
        load(Source(url=str(tree / "allowed" / "d.csv")),
             ctx(operator(tree / "allowed", max_bytes=10)))
    text = str(info.value)
    assert text.startswith("spec.current.source.maxBytes: the source has more than 10 bytes")
    assert "modelmon run --max-source-bytes" in text and "raise maxBytes" not in text


def test_max_bytes_may_not_exceed_the_operators(tree: Path) -> None:
    with pytest.raises(DataError) as info:
        load(Source(url=str(tree / "allowed" / "d.csv"), max_bytes="1Gi"),
             ctx(operator(tree / "allowed", max_bytes=64 * 2**20)))
    assert str(info.value).startswith(
        "spec.current.source.maxBytes: 1073741824 bytes (1 GiB) is above the operator's "
        "limit of 67108864 bytes (64 MiB)")


def test_a_prefix_counts_every_file_together(tree: Path) -> None:
    part = tree / "allowed" / "part"
    FRAME.to_csv(part / "p2.csv", index=False)
    one = (part / "p1.csv").stat().st_size
    with pytest.raises(DataError, match=r"more than \d+ bytes \(2 files, size together "
                                        rf"{2 * one}\)"):
        load(Source(url=f"{part}/", max_bytes=one + 10), ctx(operator(tree / "allowed")))
    assert len(load(Source(url=f"{part}/", max_bytes=2 * one),
                    ctx(operator(tree / "allowed"))).frame) == 6


def test_parquet_counts_only_the_columns_it_reads(tmp_path: Path) -> None:
    wide = pd.DataFrame({"keep": range(20_000), "big": [f"{i:0200d}" for i in range(20_000)]})
    wide.to_parquet(tmp_path / "w.parquet", index=False, compression=None)
    size = (tmp_path / "w.parquet").stat().st_size
    budget = size // 4
    got = load(Source(url=str(tmp_path / "w.parquet"), max_bytes=budget),
               ctx(operator(tmp_path), columns=["keep"]))
    assert list(got.frame.columns) == ["keep"]
    with pytest.raises(DataError, match="more than"):
        load(Source(url=str(tmp_path / "w.parquet"), max_bytes=budget),
             ctx(operator(tmp_path)))


class Streaming(http.server.BaseHTTPRequestHandler):
    """Serves ``ROWS`` CSV rows generated as they are sent: chunked (no Content-Length),
    or with a Content-Length; HEAD tells the length only when ``length`` is set."""

    protocol_version = "HTTP/1.1"
    rows: ClassVar[int] = 2_000_000
    length: ClassVar[bool] = False
    sent: ClassVar[int] = 0
    LINE = b"1.5,2.5,abc\n"

    def log_message(self, *args: object) -> None:
        pass

    def _head(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        if Streaming.length:
            self.send_header("Content-Length", str(6 + Streaming.rows * len(self.LINE)))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._head()

    def do_GET(self) -> None:
        self._head()
        body = [b"a,b,c\n"] + [self.LINE * 1000] * (Streaming.rows // 1000)
        try:
            for block in body:
                if Streaming.length:
                    self.wfile.write(block)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                Streaming.sent += len(block)
            if not Streaming.length:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def streaming(http_servers: HttpServers) -> str:
    Streaming.sent, Streaming.length = 0, False
    return http_servers.start(Streaming) + "/big.csv"


def test_http_without_content_length_is_cut_off_while_streaming(streaming: str) -> None:
    total = 6 + Streaming.rows * len(Streaming.LINE)  # 24 MB
    with pytest.raises(DataError) as info:
        load(Source(url=streaming, max_bytes="256Ki"), ctx(operator()))
    text = str(info.value)
    assert text.startswith("spec.current.source.maxBytes: the source has more than 262144 "
                           "bytes (stopped after "), text
    assert Streaming.sent < total  # the operator hung up long before the end
    Streaming.rows, saved = 1000, Streaming.rows
    try:
        assert len(load(Source(url=streaming, max_bytes="256Ki"), ctx(operator())).frame) \
            == 1000
    finally:
        Streaming.rows = saved


def test_http_content_length_is_refused_before_the_body(streaming: str) -> None:
    Streaming.length = True
    with pytest.raises(DataError) as info:
        load(Source(url=streaming, max_bytes="256Ki"), ctx(operator()))
    total = 6 + Streaming.rows * len(Streaming.LINE)
    assert f"(Content-Length {total})" in str(info.value)
    assert Streaming.sent == 0  # HEAD told the size: no GET was made


# --------------------------------------------------------------- no data in messages

@pytest.mark.parametrize(("name", "content"), [
    ("bad.csv", f"a,b\n1,2\n3,{SECRET},5,6\n"),              # ragged: the C parser's error
    ("bad.jsonl", f'{{"a": 1}}\n{{"a": "{SECRET}\n'),        # broken JSON
    ("bad.parquet", f"PAR1{SECRET}"),                        # not parquet
    ("bad2.csv", b"a,b\n\xff\xfe" + SECRET.encode() + b"\n"),  # not UTF-8
])
def test_a_file_that_fails_to_parse_is_not_quoted(tmp_path: Path, name: str,
                                                   content: str | bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(DataError) as info:
        load(Source(url=str(path)), ctx(Policy.local()))
    text = str(info.value)
    assert "is not readable as" in text and SECRET not in text and "\\xff" not in text
    assert f"{path.stat().st_size} bytes read" in text, text


def test_the_line_number_is_given_when_the_parser_knows_it(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text(f"a,b\n1,2\n3,4\n5,{SECRET},6\n")
    with pytest.raises(DataError) as info:
        load(Source(url=str(tmp_path / "r.csv")), ctx(Policy.local()))
    assert "is not readable as csv at line 4: expected CSV text with a header row" in \
        str(info.value)


def test_no_status_message_quotes_an_unparsable_source(tmp_path: Path) -> None:
    """The real check, both roles: the secret reaches no condition, finding or history."""
    FRAME.to_csv(tmp_path / "ref.csv", index=False)
    (tmp_path / "cur.csv").write_text(f"a,b\n1,x\n{SECRET},{SECRET},{SECRET}\n")
    (tmp_path / "ref.jsonl").write_text(f'{{"a": "{SECRET}"\n')
    for ref, cur in (("ref.csv", "cur.csv"), ("ref.jsonl", "cur.csv")):
        spec = ModelMonitorSpec.model_validate({
            "model": {"name": "m", "task": "regression"},
            "reference": {"source": {"url": ref}},
            # A small reference is enough here: what is read is the point, not a verdict.
            "current": {"source": {"url": cur}, "minRows": 1},
            "columns": {"features": ["a"]}})
        status = run_check(spec, base_dir=tmp_path,
                           policy=Policy(local_paths=(tmp_path.resolve(),)))
        ready = status.condition("Ready")
        assert ready is not None and ready.status == "False"
        assert ready.reason == "InvalidData"
        dumped = status.model_dump_json()
        assert SECRET not in dumped and "is not readable as" in dumped


class Maps(LocalResolver):
    def __init__(self, texts: dict[str, str]) -> None:
        super().__init__(env={})
        self.texts = texts

    def config_map(self, name: str, key: str) -> str:
        return self.texts[key]


@pytest.mark.parametrize(("key", "text"), [
    ("d.csv", f"a,b\n1,2\n{SECRET},3,4,5\n"),
    ("d.json", f'{{"a": [1, "{SECRET}"'),
    ("d.jsonl", f'{{"a": 1}}\n{SECRET}\n'),
])
def test_a_config_map_that_fails_to_parse_is_not_quoted(key: str, text: str) -> None:
    src = Source.model_validate({"configMap": {"name": "c", "key": key}})
    with pytest.raises(DataError) as info:
        load(src, ctx(Policy.operator(), resolver=Maps({key: text})))
    said = str(info.value)
    assert said.startswith(f"spec.current.source.configMap: key '{key}' of ConfigMap 'c' "
                           "is not readable as ")
    assert SECRET not in said and f"{len(text)} bytes read" in said


def test_a_config_map_counts_against_max_bytes() -> None:
    src = Source.model_validate({"configMap": {"name": "c", "key": "d.csv"},
                                 "maxBytes": 10})
    with pytest.raises(DataError, match=r"^spec\.current\.source\.maxBytes: the source has "
                                        r"more than 10 bytes \(size 12\)"):
        load(src, ctx(Policy.operator(), resolver=Maps({"d.csv": "a,b\n1,2\n3,4\n"})))


def test_a_secret_read_as_a_header_is_not_listed_as_columns(tmp_path: Path) -> None:
    """A token or key file parses as CSV with its content as the header: the check's
    'not a column' message shows no names of a file without rows, nor long names."""
    (tmp_path / "token.csv").write_text(f"{SECRET}\n")
    (tmp_path / "long.csv").write_text(f"{'k' * 65},b\n1,2\n")
    for ref, hidden in (("token.csv", SECRET), ("long.csv", "k" * 65)):
        spec = ModelMonitorSpec.model_validate({
            "model": {"name": "m", "task": "regression"},
            "reference": {"source": {"url": ref}},
            "current": {"source": {"url": ref}},
            "columns": {"features": ["a"]}})
        status = run_check(spec, base_dir=tmp_path)
        ready = status.condition("Ready")
        assert ready is not None and ready.reason == "InvalidSpec"
        assert "spec.columns.features: 'a' is not a column" in ready.message
        assert hidden not in status.model_dump_json(), ready.message


class GzipBomb(http.server.BaseHTTPRequestHandler):
    """Sends a small gzip body that inflates to 64 MB (sent although not asked for)."""

    protocol_version = "HTTP/1.1"
    body: ClassVar[bytes] = b""

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(GzipBomb.body)))
        self.end_headers()
        self.wfile.write(GzipBomb.body)


def test_a_gzip_answer_counts_what_it_inflates_to(http_servers: HttpServers) -> None:
    GzipBomb.body = gzip.compress(b"a,b\n" + b"1,2\n" * (16 * 10**6), compresslevel=9)
    assert len(GzipBomb.body) < 2**20  # well under the budget as sent
    url = http_servers.start(GzipBomb) + "/d.csv"
    with pytest.raises(DataError, match=r"more than 4194304 bytes \(stopped after "):
        load(Source(url=url, max_bytes="4Mi"), ctx(operator()))
    GzipBomb.body = gzip.compress(b"a,b\n1,2\n3,4\n")
    assert load(Source(url=url, max_bytes="4Mi"), ctx(operator())).frame.shape == (2, 2)


class Trickle(http.server.BaseHTTPRequestHandler):
    """Answers at once, then sends one small chunk every 0.2 s, for ever."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self.wfile.write(b"4\r\na,b\n\r\n")
            for _ in range(150):
                self.wfile.write(b"4\r\n1,2\n\r\n")
                self.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass


def test_a_trickling_server_is_held_to_the_timeout_for_the_whole_answer(
        http_servers: HttpServers) -> None:
    src = Source.model_validate({"url": http_servers.start(Trickle) + "/d.csv", "timeout": "1s"})
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"did not answer within 1s \(spec\.current"
                                          r"\.source\.timeout\)") as info:
        load(src, ctx(operator()))
    assert time.monotonic() - started < 5 and info.value.transient
