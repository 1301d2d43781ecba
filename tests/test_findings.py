"""The findings studies (issue 30): their figures draw the data given, fit the output area, and
``lirlab bench findings`` runs a study on tiny data into a folder of its own with the machine described."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from lirlab import cli
from lirlab.bench import findings
from lirlab.plots import MIN_FONT_PT, OUTPUT_AREA_PX, figure_png
from lirlab.plots.findings import plot_limit, plot_padding_gap, plot_query_length
from lirlab.widgets import png_size

from .conftest import REPO

SAVED = REPO / "benchmarks" / "results" / "amd-zen3-avx2"
WIDTH, HEIGHT = OUTPUT_AREA_PX


def fits(figure) -> None:
    width, height = png_size(figure_png(figure, dpi=figure.dpi))
    assert width <= WIDTH and height <= HEIGHT, (width, height)
    figure.canvas.draw()
    small = [
        (t.get_text(), t.get_fontsize())
        for t in figure.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT
    ]
    assert not small, small


def limit_curve(scale: float = 1.0) -> pd.DataFrame:
    rows = []
    for n in (10, 30, 100):
        for representation, dim, base in (
            ("multi-vector", 128, 0.9),
            ("mean-pooled", 128, 0.6),
            ("MUVERA", 512, 0.4),
            ("MUVERA", 2048, 0.5),
        ):
            value = scale * base * 10 / n
            rows.append(
                {"n_docs": n, "representation": representation, "dim": dim, "R@2": value, "R@100": 2 * value}
            )
    return pd.DataFrame(rows)


def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.lines}


# ------------------------------------------------------------------------------------------- figures


def test_the_limit_figure_draws_each_representation_of_each_model():
    curves = {"untrained": limit_curve(), "trained": limit_curve(0.5)}
    figure = plot_limit(curves)
    fits(figure)
    assert len(figure.axes) == 4 and len(figure.legends) == 1
    for (name, curve), row in zip(curves.items(), (figure.axes[:2], figure.axes[2:])):
        for ax, measure in zip(row, ("R@2", "R@100")):
            assert ax.get_title() == f"{name}: {measure}"
            lines = lines_by_label(ax)
            assert set(lines) == {
                "multi-vector (MaxSim)",
                "mean-pooled (d=128)",
                "MUVERA (d=512)",
                "MUVERA (d=2048)",
            }
            for label, representation, dim in (
                ("multi-vector (MaxSim)", "multi-vector", 128),
                ("mean-pooled (d=128)", "mean-pooled", 128),
                ("MUVERA (d=2048)", "MUVERA", 2048),
            ):
                rows = curve[(curve.representation == representation) & (curve.dim == dim)]
                np.testing.assert_array_equal(lines[label].get_xdata(), rows.n_docs)
                np.testing.assert_array_equal(lines[label].get_ydata(), rows[measure])
    one = plot_limit(limit_curve().to_dict("records"))  # the rows a results file holds
    assert [ax.get_title() for ax in one.axes] == ["R@2", "R@100"]
    with pytest.raises(ValueError, match="lacks the columns"):
        plot_limit(limit_curve().drop(columns="R@100"))


def test_the_limit_figure_fits_the_saved_full_run():
    saved = json.loads((SAVED / "findings-limit.json").read_text())
    figure = findings.findings_figure("limit", saved)
    fits(figure)
    untrained = pd.DataFrame(saved["models"]["untrained"]["curve"])
    multi = untrained[untrained.representation == "multi-vector"]
    line = lines_by_label(figure.axes[1])["multi-vector (MaxSim)"]
    np.testing.assert_array_equal(line.get_ydata(), multi["R@100"])


def query_length_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    by_variant = pd.DataFrame(
        [
            {"variant": v, "padded": p, "nDCG@10": value, "score_spread": 0.5}
            for v, p, value in (
                ("whole", False, 0.69),
                ("whole", True, 0.61),
                ("first 16", False, 0.66),
                ("first 16", True, 0.57),
                ("first 4", False, 0.33),
                ("first 4", True, 0.05),
            )
        ]
    )
    by_length = pd.DataFrame(
        [
            {
                "length_bin": b,
                "variant": "whole",
                "padded": p,
                "nDCG@10": 0.5 + 0.1 * i + 0.05 * p,
                "score_spread": 0.4 + 0.2 * i,
                "queries": 10 + i,
            }
            for i, b in enumerate(["(12, 16]", "(0, 8]", "(8, 12]"])  # as groupby meets them: unsorted
            for p in (False, True)
        ]
        + [
            {
                "length_bin": "(0, 8]",
                "variant": "first 4",
                "padded": False,
                "nDCG@10": 0.1,
                "score_spread": 0.1,
                "queries": 11,
            }
        ]
    )
    return by_length, by_variant


def test_the_query_length_figure_draws_the_variants_and_the_bins_in_order():
    by_length, by_variant = query_length_tables()
    figure = plot_query_length(by_length, by_variant)
    fits(figure)
    bars_ax, quality_ax, spread_ax = figure.axes
    assert [t.get_text() for t in bars_ax.get_xticklabels()] == [
        "first 4 pieces",
        "first 16 pieces",
        "whole",
    ]
    unpadded, padded = bars_ax.containers
    heights = [bar.get_height() for bar in unpadded]
    expected = by_variant[~by_variant.padded].set_index("variant")["nDCG@10"]
    assert heights == [expected[v] for v in ("first 4", "first 16", "whole")]
    assert [bar.get_height() for bar in padded] == list(
        by_variant[by_variant.padded].set_index("variant").loc[["first 4", "first 16", "whole"], "nDCG@10"]
    )
    ordered = ["(0, 8]", "(8, 12]", "(12, 16]"]
    assert [t.get_text().split("\n")[0] for t in quality_ax.get_xticklabels()] == ordered
    assert quality_ax.get_xticklabels()[0].get_text() == "(0, 8]\n11 q"
    whole = by_length[by_length.variant == "whole"]
    for ax, column in ((quality_ax, "nDCG@10"), (spread_ax, "score_spread")):
        for line, padded in zip(ax.lines, (False, True)):
            rows = whole[whole.padded == padded].set_index("length_bin").loc[ordered]
            np.testing.assert_array_equal(line.get_ydata(), rows[column])


def test_the_query_length_figure_fits_both_saved_runs():
    for name in ("findings-query-length-scifact", "findings-query-length-scifact-trained"):
        saved = findings.read_findings(SAVED, name)
        figure = findings.findings_figure("query-length", saved)
        fits(figure)
        bars = figure.axes[0].containers[0]
        shown = {t.get_text() for t in figure.axes[0].get_xticklabels()}
        assert shown == {"first 4 pieces", "first 8 pieces", "first 16 pieces", "whole"}
        unpadded = pd.DataFrame(saved["by_variant"]).query("not padded").set_index("variant")["nDCG@10"]
        assert [b.get_height() for b in bars] == [
            unpadded[v] for v in ("first 4", "first 8", "first 16", "whole")
        ]


def gap_rows() -> pd.DataFrame:
    steps = [40, 0, 10, 200]  # unsorted: drawn along the step
    return pd.DataFrame(
        {
            "step": steps,
            "train_seconds_wall": [s * 3.0 for s in steps],
            "nDCG@10 pad32": [0.3, 0.1, 0.2, 0.35],
            "nDCG@10 nopad": [0.33, 0.32, 0.33, 0.36],
            "nDCG@10 gap": [-0.03, -0.22, -0.13, -0.01],
            "seconds": 1.0,
        }
    )


def test_the_gap_figure_draws_the_padded_unpadded_and_gap_rows_against_training():
    rows = gap_rows()
    figure = plot_padding_gap(rows)
    fits(figure)
    quality_ax, gap_ax = figure.axes[:2]
    ordered = rows.sort_values("step")
    padded, unpadded = quality_ax.lines
    assert padded.get_label() == "nDCG@10, padded to 32" and unpadded.get_label() == "nDCG@10, unpadded"
    np.testing.assert_array_equal(padded.get_xdata(), ordered.step)
    np.testing.assert_array_equal(padded.get_ydata(), ordered["nDCG@10 pad32"])
    np.testing.assert_array_equal(unpadded.get_ydata(), ordered["nDCG@10 nopad"])
    gap, zero = gap_ax.lines
    np.testing.assert_array_equal(gap.get_ydata(), ordered["nDCG@10 gap"])
    assert list(zero.get_ydata()) == [0.0, 0.0]
    by_time = plot_padding_gap(rows.to_dict("records"), x="train_seconds_wall", xscale="linear")
    np.testing.assert_array_equal(by_time.axes[1].lines[0].get_xdata(), ordered.train_seconds_wall)
    with pytest.raises(ValueError, match="gap"):
        plot_padding_gap(rows.drop(columns="nDCG@10 gap"))


def test_the_gap_figure_fits_the_saved_run_and_shows_both_measures():
    saved = findings.read_findings(SAVED / "findings-mask-gap.json")
    figure = findings.findings_figure("mask-gap", saved)
    fits(figure)
    labels = [line.get_label() for line in figure.axes[1].lines]
    assert labels == ["nDCG@10 gap", "R@100 gap", "no gap"]
    assert max(figure.axes[1].lines[0].get_ydata()) < 0  # the full run's gap never crossed zero


# ------------------------------------------------------------------------------------ bench findings


def test_every_study_knob_has_a_help_and_parses_one_way():
    options = findings.knob_options()
    for name in findings.STUDIES:
        assert set(findings.study_knobs(name)) <= set(options)
        assert set(findings.study_knobs(name)) == set(findings.STUDIES[name].knobs), name
    assert options["sizes"]["nargs"] == "+" and options["sizes"]["type"] is int
    assert "query-length: " in options["dataset"]["help"] and "mask-gap: " in options["dataset"]["help"]


def test_the_machine_folder_names_vendor_core_and_vector_width():
    amd = {"processor": "AMD EPYC", "cpu_flags": ["avx", "avx2"]}
    assert findings.machine_folder(amd | {"cpu_family": 25, "cpu_model": 1}) == "amd-zen3-avx2"
    assert findings.machine_folder(amd | {"cpu_family": 25, "cpu_model": 0x11}) == "amd-zen4-avx2"
    assert findings.machine_folder(amd) == "amd-avx2"
    arm = {"processor": "", "cpu_flags": ["asimd"]}
    assert findings.machine_folder(arm).endswith("-neon")
    here = findings.machine_folder()
    assert here and "/" not in here


def test_help_lists_every_knob_without_loading_torch():
    probe = (
        "import sys\n"
        "from lirlab.cli import main\n"
        "try:\n"
        "    main(['bench', 'findings', '--help'])\n"
        "except SystemExit as done:\n"
        "    print('EXIT', done.code, file=sys.stderr)\n"
        "print('TORCH', 'torch' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "EXIT 0" in done.stderr and "TORCH False" in done.stderr, done.stderr
    assert done.stdout.startswith("usage: lirlab bench findings ")
    for knob in findings.knob_options():
        assert findings._flag(knob) in done.stdout


def test_the_cli_parses_a_study_and_refuses_what_it_does_not_take(capsys, tmp_path):
    parser = cli._bench_own_parser("findings")
    args = parser.parse_args(["--study", "limit", "--sizes", "8", "12", "--fde-dims", "64", "--out", "x"])
    assert args.study == "limit" and args.sizes == [8, 12] and args.fde_dims == [64] and args.core is None
    assert args.func is findings.run_from_args
    assert cli.main(["bench", "findings", "--study", "limit", "--every", "2", "--out", str(tmp_path)]) == 2
    assert "--every is a knob of mask-gap, not of limit" in capsys.readouterr().err
    assert cli.main(["bench", "--queries", "3", "findings"]) == 2
    assert "takes its own options after 'findings'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["bench", "findings", "--study", "nope"])
    assert not list(tmp_path.iterdir())


def test_the_limit_study_runs_on_tiny_data_and_saves_the_machine(stanford_dir, tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["bench", "findings", "--study", "limit", "--models", f"tiny={stanford_dir}"]
    argv += ["--core", "4", "--sizes", "8", "12", "--fde-dims", "64", "--doc-maxlen", "64", "--out", str(out)]
    assert cli.main(argv) == 0
    assert "findings-limit.json" in capsys.readouterr().out
    saved = json.loads((out / "findings-limit.json").read_text())
    assert saved["machine"]["cpu_count"] >= 1 and saved["machine"]["torch"]
    assert saved["benchmark"] == "findings-limit" and saved["queries"] == 6 and saved["core"] == 4
    curve = pd.DataFrame(saved["models"]["tiny"]["curve"])
    assert list(zip(curve.n_docs, curve.representation)) == [
        (n, r) for n in (8, 12) for r in ("multi-vector", "mean-pooled", "MUVERA")
    ]
    assert curve[["R@2", "R@100"]].stack().between(0, 1).all()
    png = out / "findings-limit.png"
    assert png.is_file() and png_size(png.read_bytes())[0] <= WIDTH
    assert sorted(p.name for p in out.iterdir()) == ["findings-limit.json", "findings-limit.png"]


def test_the_gap_study_scores_the_start_model_and_each_snapshot(stanford, stanford_dir, tmp_path):
    from lirlab.train.checkpoints import save_checkpoint

    run = tmp_path / "run"
    for step, seconds in ((3, 12.5), (7, 30.0)):
        save_checkpoint(
            run / f"checkpoint-{step:06d}", stanford, trainer_state={"step": step, "train_seconds": seconds}
        )
    seen = []
    results = findings.mask_gap_study(
        run=str(run),
        start=str(stanford_dir),
        dataset="demo",
        every=2,
        measures=("nDCG@10",),
        max_queries=4,
        max_docs=30,
        save=lambda partial: seen.append(len(partial["rows"])),
    )
    assert seen == [1, 2]
    assert [(r["step"], r["train_seconds_wall"]) for r in results["rows"]] == [(0, 0.0), (3, 12.5)]
    row = results["rows"][1]
    assert row["nDCG@10 gap"] == pytest.approx(row["nDCG@10 pad32"] - row["nDCG@10 nopad"])
    with pytest.raises(FileNotFoundError, match="no such training run"):
        findings.mask_gap_study(run=str(tmp_path / "none"), dataset="demo")

    only = findings.mask_gap_study(
        run=str(run),
        start=str(stanford_dir),
        dataset="demo",
        steps=(7,),
        measures=("nDCG@10",),
        curve_maxlens=(8, 32),
        max_queries=4,
        max_docs=30,
    )
    assert [r["step"] for r in only["rows"]] == [7]
    curve = pd.DataFrame(only["rows"][0]["curve"])
    assert sorted(zip(curve.padding, curve.query_maxlen)) == [
        ("fixed", 8),
        ("fixed", 32),
        ("min", 8),
        ("min", 32),
    ]
    from lirlab import data
    from lirlab.analysis.masks import padding_gap

    demo = data.load("demo").slice(max_queries=4, max_docs=30)
    fixed32 = curve[(curve.padding == "fixed") & (curve.query_maxlen == 32)]["nDCG@10"].item()
    assert fixed32 == pytest.approx(padding_gap(stanford, demo, measures=("nDCG@10",))["nDCG@10 pad32"])
    with pytest.raises(ValueError, match=r"no checkpoint of step\(s\) \[5\]"):
        findings.mask_gap_study(run=str(run), start=str(stanford_dir), dataset="demo", steps=(5,))


def test_the_query_length_study_writes_its_tables_and_figure(stanford_dir, tmp_path):
    path = findings.run_study(
        "query-length",
        out=tmp_path,
        label="tiny",
        model=str(stanford_dir),
        dataset="demo",
        cuts=[4],
        max_queries=5,
        max_docs=30,
        cache="",
    )
    saved = findings.read_findings(path)
    assert path.name == f"findings-query-length-{saved['dataset']}-tiny.json"
    assert saved["machine"]["torch"] and saved["queries"] == 5 and saved["cuts"] == [4]
    rows = pd.read_csv(path.with_suffix(".rows.csv"))
    assert len(rows) == len(saved["rows"]) == 5 * 2 * 2
    assert {(r["variant"], r["padded"]) for r in saved["by_variant"]} == {
        (v, p) for v in ("whole", "first 4") for p in (False, True)
    }
    assert path.with_suffix(".png").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging folder left behind"


def test_the_curves_by_step_draw_each_snapshots_curve():
    from lirlab.plots.findings import plot_curves_by_step

    rows = [
        {
            "step": step,
            "curve": [
                {"padding": p, "query_maxlen": m, "nDCG@10": step / 1000 + m / 100 + (p == "min") / 10}
                for p in ("fixed", "min")
                for m in (8, 16, 32)
            ],
        }
        for step in (0, 500)
    ] + [{"step": 900}]
    figure = plot_curves_by_step(rows)
    fits(figure)
    lines = {line.get_label(): line for line in figure.axes[0].lines}
    assert sorted(lines) == ["step 0, fixed", "step 0, min", "step 500, fixed", "step 500, min"]
    assert list(lines["step 500, min"].get_ydata()) == pytest.approx(
        [0.5 + 0.08 + 0.1, 0.5 + 0.16 + 0.1, 0.5 + 0.32 + 0.1]
    )
    with pytest.raises(ValueError, match="no snapshot has a query_maxlen curve"):
        plot_curves_by_step([{"step": 1}])


def test_the_xtr_and_warp_figures_draw_the_rows_given():
    from lirlab.plots.findings import plot_warp_knobs, plot_xtr

    quality = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b"],
            "scoring": ["maxsim", "xtr"] * 2,
            "k_prime": [None, 1000] * 2,
            "nDCG@10": [0.30, 0.20, 0.31, 0.25],
        }
    )
    sweeps = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b"],
            "method": ["plaid", "warp"] * 2,
            "p50_ms": [1.0, 2.0, 3.0, 4.0],
            "nDCG@10": [0.3, 0.2, 0.3, 0.1],
        }
    )
    centroids = pd.DataFrame(
        {"model": ["a", "a", "b"], "spearman": [0.4, 0.6, 0.7], "recall_kept": [1.0, 0.8, 0.9]}
    )
    figure = plot_xtr(quality, sweeps, centroids)
    fits(figure)
    scoring_ax, sweep_ax, centroid_ax = figure.axes
    assert [bar.get_height() for bar in scoring_ax.patches] == pytest.approx([0.30, 0.20, 0.31, 0.25])
    assert [bar.get_height() for bar in centroid_ax.patches] == pytest.approx([0.5, 0.9, 0.7, 0.9])
    warp_b = next(line for line in sweep_ax.lines if line.get_label() == "b, WARP")
    assert list(warp_b.get_xdata()) == [4.0] and list(warp_b.get_ydata()) == [0.1]

    rows = pd.DataFrame(
        {
            "collection": ["x"] * 4 + ["y"] * 2,
            "nprobe": [4, 8, 4, 8, 4, 8],
            "t_prime_share": [0.01, 0.01, 0.02, 0.02, 0.01, 0.01],
            "exhaustive_recall@10": [0.8, 0.9, 0.85, 0.95, 0.7, 0.75],
        }
    )
    figure = plot_warp_knobs(rows, {"nprobe": 8, "t_prime_share": 0.01})
    fits(figure)
    assert [ax.get_title() for ax in figure.axes] == ["x", "y"]
    y_lines = {line.get_label(): line for line in figure.axes[1].lines}
    assert list(y_lines["t' = 1.00% of tokens"].get_ydata()) == [0.7, 0.75]
    assert list(y_lines["chosen default"].get_ydata()) == [0.75]


def test_the_xtr_and_warp_knob_studies_run_on_tiny_data(stanford_dir, tmp_path):
    xtr = findings.run_study(
        "xtr",
        out=tmp_path,
        models=(f"one={stanford_dir}", f"two={stanford_dir}"),
        dataset="demo",
        k_primes=(50,),
        n_timed=2,
        cache=str(tmp_path / "cache"),
        max_queries=4,
        max_docs=40,
    )
    results = findings.read_findings(xtr)
    assert xtr.name == "findings-xtr-demo.json" and xtr.with_suffix(".png").is_file()
    quality = pd.DataFrame(results["quality"])
    assert list(zip(quality.model, quality.scoring)) == [
        ("one", "maxsim"),
        ("one", "xtr"),
        ("two", "maxsim"),
        ("two", "xtr"),
    ]
    # the same weights twice: the same quality, the same centroid informativeness
    assert (
        quality[quality.model == "one"]["nDCG@10"].tolist()
        == quality[quality.model == "two"]["nDCG@10"].tolist()
    )
    means = pd.DataFrame(results["centroid_means"]).set_index("model")
    assert means.loc["one"].tolist() == pytest.approx(means.loc["two"].tolist())
    assert sorted((tmp_path / "cache").iterdir()) == [tmp_path / "cache" / "one", tmp_path / "cache" / "two"]

    knobs = findings.run_study(
        "warp-knobs",
        out=tmp_path,
        model=str(stanford_dir),
        datasets=("demo",),
        chosen_on=("demo",),
        nprobes=(1, 4),
        t_prime_shares=(0.01,),
        min_recall=0.0,
        n_timed=2,
        cache="",
    )
    results = findings.read_findings(knobs)
    assert len(results["rows"]) == 2 and results["chosen"]["t_prime_share"] == 0.01
    assert [row["held_out"] for row in results["check"]] == [False]

    unreachable = findings.warp_knobs_study(
        model=str(stanford_dir),
        datasets=("demo",),
        chosen_on=("demo",),
        nprobes=(1,),
        t_prime_shares=(0.01,),
        min_recall=1.01,
        n_timed=2,
        cache="",
    )
    assert unreachable["chosen"] is None and "lower min_recall" in unreachable["error"]
    assert len(unreachable["rows"]) == 1


# ------------------------------------------------------------------------ document length, fixed counts


def doc_length_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    by_length = pd.DataFrame(
        {  # bins out of order, one bin without relevant documents
            "length_bin": ["(64, 96]", "(64, 96]", "(0, 32]", "(0, 32]", "(32, 64]"],
            "relevant": [False, True, False, True, False],
            "pairs": [40, 3, 20, 1, 30],
            "mean_score": [9.0, 11.0, 7.0, 10.0, 8.0],
            "score_vs_query_mean": [0.2, 1.5, -0.5, 1.0, 0.0],
        }
    )
    quality = pd.DataFrame(
        {
            "scoring": ["MaxSim", "MeanMaxSim", "MaxSim / doc_tokens^0.02", "MaxSim / doc_tokens^0.1"],
            "alpha": [0.0, 0.0, 0.02, 0.1],
            "nDCG@10": [0.61, 0.61, 0.62, 0.55],
            "R@100": [0.87, 0.87, 0.86, 0.85],
        }
    )
    return by_length, quality


def test_the_doc_length_figure_draws_the_scores_per_bin_and_each_scoring():
    from lirlab.plots.findings import plot_doc_length

    by_length, quality = doc_length_tables()
    figure = plot_doc_length(by_length, quality)
    fits(figure)
    score_ax, quality_ax = figure.axes
    assert [t.get_text() for t in score_ax.get_xticklabels()] == ["(0, 32]", "(32, 64]", "(64, 96]"]
    lines = lines_by_label(score_ax)
    assert list(lines["non-relevant documents"].get_xdata()) == [0, 1, 2]
    assert list(lines["non-relevant documents"].get_ydata()) == [7.0, 8.0, 9.0]
    assert list(lines["relevant documents"].get_xdata()) == [0, 2]
    assert list(lines["relevant documents"].get_ydata()) == [10.0, 11.0]
    assert [bar.get_height() for bar in quality_ax.patches] == pytest.approx([0.61, 0.61, 0.62, 0.55])
    assert [t.get_text() for t in quality_ax.get_xticklabels()] == [
        "MaxSim",
        "MeanMaxSim",
        "/ n^0.02",
        "/ n^0.1",
    ]

    centred = plot_doc_length(
        by_length.to_dict("records"), quality.to_dict("records"), measure="R@100", score="score_vs_query_mean"
    )
    assert list(lines_by_label(centred.axes[0])["relevant documents"].get_ydata()) == [1.0, 1.5]
    assert [bar.get_height() for bar in centred.axes[1].patches] == pytest.approx([0.87, 0.87, 0.86, 0.85])
    with pytest.raises(ValueError, match="quality lacks the columns"):
        plot_doc_length(by_length, quality.drop(columns="nDCG@10"))


def fixed_count_rows() -> pd.DataFrame:
    rows = [("pool factor", f, 150 / f) for f in (1, 2, 5, 10)] + [("fixed count", n, n) for n in (32, 8)]
    return pd.DataFrame(
        [
            {
                "method": f"{method} {value}",
                "setting": value,
                "vectors_per_doc": per_doc,
                "vectors": int(per_doc * 100),
                "index_bytes": int(per_doc * 100 * 516),
                "nDCG@10": 0.3 + per_doc / 1000 + (method == "pool factor") / 100,
                "R@100": 0.8 + per_doc / 2000,
            }
            for method, value, per_doc in rows
        ]
    )


def test_the_fixed_count_figure_draws_pool_factors_and_fixed_counts_against_size():
    from lirlab.plots.findings import plot_fixed_count

    rows = fixed_count_rows()
    figure = plot_fixed_count(rows)
    fits(figure)
    assert len(figure.axes) == 2 and len(figure.legends) == 1
    for ax, measure in zip(figure.axes, ("nDCG@10", "R@100")):
        assert ax.get_xscale() == "log" and ax.get_ylabel() == measure
        pooled, fixed = ax.lines
        expected_pooled = rows[rows.method.str.startswith("pool")].sort_values("index_bytes")
        expected_fixed = rows[rows.method.str.startswith("fixed")].sort_values("index_bytes")
        assert list(pooled.get_xdata()) == expected_pooled.index_bytes.tolist()
        assert list(pooled.get_ydata()) == pytest.approx(expected_pooled[measure].tolist())
        assert list(fixed.get_xdata()) == expected_fixed.index_bytes.tolist()
        assert list(fixed.get_ydata()) == pytest.approx(expected_fixed[measure].tolist())
    # each point named by its factor or count
    assert sorted(t.get_text() for t in figure.axes[0].texts) == sorted(["1", "2", "5", "10", "8", "32"])

    per_doc = plot_fixed_count(rows.to_dict("records"), measures=("nDCG@10",), x="vectors_per_doc")
    fits(per_doc)
    (ax,) = per_doc.axes
    assert list(ax.lines[1].get_xdata()) == [8.0, 32.0]
    assert ax.get_xlabel() == "vectors per document (mean)"
    with pytest.raises(ValueError, match="no 'pool factor' or 'fixed count' row"):
        plot_fixed_count(rows.assign(method="other 1"))


def test_the_new_studies_defaults_are_the_analyses_own():
    from lirlab.analysis.doc_lengths import DOC_LENGTH_ALPHAS
    from lirlab.analysis.fixed_count import DEFAULT_COUNTS, DEFAULT_POOL_FACTORS

    assert findings.study_knobs("doc-length")["alphas"] == DOC_LENGTH_ALPHAS
    assert findings.study_knobs("fixed-count")["counts"] == DEFAULT_COUNTS
    assert findings.study_knobs("fixed-count")["pool_factors"] == DEFAULT_POOL_FACTORS
    options = findings.knob_options()
    assert options["doc_maxlen"]["type"] is int and "doc-length: 0" in options["doc_maxlen"]["help"]
    assert options["alphas"]["nargs"] == "+" and options["alphas"]["type"] is float
    assert options["pool_factors"]["type"] is int and options["measures"]["type"] is str
    assert "mask-gap" in options["measures"]["help"] and "fixed-count" in options["measures"]["help"]


def test_the_doc_length_and_fixed_count_studies_run_on_tiny_data(stanford_dir, tmp_path, capsys):
    cache = tmp_path / "cache"
    path = findings.run_study(
        "doc-length",
        out=tmp_path,
        label="tiny",
        model=str(stanford_dir),
        dataset="demo",
        doc_maxlen=64,
        alphas=(0.05,),
        cache=str(cache),
        max_queries=4,
        max_docs=30,
    )
    saved = findings.read_findings(path)
    assert path.name == "findings-doc-length-demo-tiny.json" and path.with_suffix(".png").is_file()
    assert saved["machine"]["torch"] and saved["model"] == str(stanford_dir) and saved["doc_maxlen"] == 64
    assert saved["queries"] == 4 and saved["documents"] == 30 and saved["alphas"] == [0.05]
    assert saved["doc_tokens"]["max"] <= 64
    # a model other than the benchmark's, at a doc_maxlen of its own: a cache folder of its own
    assert [p.relative_to(cache) for p in cache.glob("*/*/*-flat")] == [
        Path(findings._slug(str(stanford_dir)), "doc-maxlen-64", "demo-flat")
    ]
    quality = pd.DataFrame(saved["quality"]).set_index("scoring")
    assert list(quality.index) == ["MaxSim", "MeanMaxSim", "MaxSim / doc_tokens^0.05"]
    assert quality.loc["MeanMaxSim", "nDCG@10"] == quality.loc["MaxSim", "nDCG@10"]
    assert quality.loc["MeanMaxSim", "top10_overlap"] == 1.0
    rows = pd.DataFrame(saved["rows"])
    assert ((rows["rank"] <= 10) | rows.relevant).all()
    assert sum(r["pairs"] for r in saved["by_length"]) == 4 * 30
    assert {r["depth"] for r in saved["correlation"]} == {"10", "100", "all"}
    assert path.with_suffix(".rows.csv").is_file()

    out = tmp_path / "fixed"
    argv = ["bench", "findings", "--study", "fixed-count", "--model", str(stanford_dir), "--dataset", "demo"]
    argv += ["--counts", "4", "--pool-factors", "1", "2", "--measures", "nDCG@10", "--cache", ""]
    argv += ["--max-queries", "4", "--max-docs", "30", "--out", str(out)]
    assert cli.main(argv) == 0
    assert "findings-fixed-count-demo.json" in capsys.readouterr().out
    saved = findings.read_findings(out, "findings-fixed-count-demo")
    assert [(r["method"], r["setting"]) for r in saved["rows"]] == [
        ("pool factor 1", 1),
        ("pool factor 2", 2),
        ("fixed count 4", 4),
    ]
    rows = pd.DataFrame(saved["rows"])
    assert rows.vectors_per_doc.iloc[2] <= 4 and rows.vectors.iloc[1] < rows.vectors.iloc[0]
    assert rows["nDCG@10"].between(0, 1).all() and "R@100" not in rows
    assert saved["queries"] == 4 and saved["documents"] == 30 and saved["measures"] == ["nDCG@10"]
    assert sorted(p.name for p in out.iterdir()) == [
        "findings-fixed-count-demo.json",
        "findings-fixed-count-demo.png",
        "findings-fixed-count-demo.rows.csv",
    ]


@pytest.mark.parametrize(
    "stem",
    [
        *(f"findings-doc-length-{d}" for d in ("scifact", "nfcorpus", "scifact-trained", "nfcorpus-trained")),
        "findings-doc-length-scifact-trained-doc128",
        "findings-fixed-count-scifact",
        "findings-fixed-count-nfcorpus",
    ],
)
def test_the_saved_doc_length_and_fixed_count_runs_draw(stem):
    results = findings.read_findings(SAVED, stem)
    study = "doc-length" if "doc-length" in stem else "fixed-count"
    figure = findings.findings_figure(study, results)
    fits(figure)
    if study == "doc-length":
        quality = pd.DataFrame(results["quality"])
        assert [bar.get_height() for bar in figure.axes[1].patches] == pytest.approx(
            quality["nDCG@10"].tolist()
        )
        assert len(figure.axes[0].get_xticklabels()) == len({r["length_bin"] for r in results["by_length"]})
        assert f"doc_maxlen {results['doc_maxlen']}" in figure._suptitle.get_text()
    else:
        rows = pd.DataFrame(results["rows"])
        drawn = np.concatenate([line.get_ydata() for line in figure.axes[0].lines])
        assert sorted(drawn) == pytest.approx(sorted(rows["nDCG@10"]))
        assert len(figure.axes) == 2  # nDCG@10 and R@100
