"""lirlab.train: losses pinned by hand, a tiny model that learns, checkpoints, resume, and bad input.

Everything runs on a tiny random BERT (2 layers, hidden 32) with a 60-token vocabulary, built here.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from lirlab.encoder import ColBERT
from lirlab.train import (
    Negatives,
    TrainableColBERT,
    TrainingData,
    TrainingError,
    checkpoints,
    contrastive_loss,
    distillation_loss,
    lr_at,
    maxsim_scores,
    mine_negatives,
    prepare_encoder,
    read_teacher_scores,
    save_pylate,
    save_stanford,
    train,
    xtr_scores,
)
from lirlab.train import loop as loop_module

# the package exports a function named checkpoints, which hides the module of that name
checkpoint_module = importlib.import_module("lirlab.train.checkpoints")

WORDS = (
    "bees eat nectar pollen honey fish breathe gills water cats sleep sun light stars night moon "
    "rain clouds rivers flow sea salt trees grow leaves roots soil birds fly wings query document "
    "what do how does why the a is are"
).split()
PUNCTUATION = list(".,?!")


def tiny_folder(path, with_unused: bool = True, seed: int = 0):
    """A plain Hugging Face BERT folder: random weights, no dropout, a whitespace-word vocabulary."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
        ["[unused0]", "[unused1]"] if with_unused else []
    )
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(specials + PUNCTUATION + WORDS) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(path / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(specials) + len(PUNCTUATION) + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


QUERIES = {
    "q1": "what do bees eat",
    "q2": "how do fish breathe",
    "q3": "why do cats sleep",
    "q4": "how do trees grow",
    "q5": "why do birds fly",
    "q6": "what is the moon",
}
DOCS = {
    "d1": "bees eat nectar and pollen, honey.",
    "d2": "fish breathe water with gills.",
    "d3": "cats sleep in the sun.",
    "d4": "trees grow roots in the soil, leaves in light.",
    "d5": "birds fly with wings.",
    "d6": "the moon is light at night, stars.",
    "d7": "rain clouds and rivers flow to the sea.",
    "d8": "salt is in the sea water.",
}
PAIRS = [("q1", "d1"), ("q2", "d2"), ("q3", "d3"), ("q4", "d4"), ("q5", "d5"), ("q6", "d6")]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_folder(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny(tiny_dir):
    return ColBERT.load(tiny_dir, device="cpu", query_maxlen=8, doc_maxlen=16)


@pytest.fixture
def pairs():
    return TrainingData.from_pairs(QUERIES, DOCS, PAIRS, name="tiny")


FAST = {"steps": 4, "batch_size": 3, "lr": 1e-3, "warmup": 0.0, "seed": 3}


# -- losses, by hand -------------------------------------------------------------------------------


def test_maxsim_scores_match_a_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(2, 3, 4, generator=g), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(3, 5, 4, generator=g), dim=-1)
    q_mask = torch.tensor([[True, True, False], [True, True, True]])
    d_mask = torch.tensor([[True] * 5, [True, True, False, False, False], [False, True, True, True, True]])
    got = maxsim_scores(q, q_mask, d, d_mask)
    for a in range(2):
        for b in range(3):
            expected = 0.0
            for i in range(3):
                if q_mask[a, i]:
                    expected += max(float(q[a, i] @ d[b, j]) for j in range(5) if d_mask[b, j])
            assert got[a, b].item() == pytest.approx(expected, abs=1e-6)


def _xtr_by_loops(q, q_mask, d, d_mask, k_train):
    """XTR's eq. 5 with Python loops: each query token's k_train best tokens over every document."""
    expected = torch.zeros(q.shape[0], d.shape[0])
    for a in range(q.shape[0]):
        retrieved = {}
        for i in range(q.shape[1]):
            if not q_mask[a, i]:
                continue
            sims = [
                (float(q[a, i] @ d[b, j]), b, j)
                for b in range(d.shape[0])
                for j in range(d.shape[1])
                if d_mask[b, j]
            ]
            retrieved[i] = sorted(sims, reverse=True)[:k_train]
        for b in range(d.shape[0]):
            total, hits = 0.0, 0
            for tokens in retrieved.values():
                mine = [s for s, doc, _ in tokens if doc == b]
                if mine:
                    total, hits = total + max(mine), hits + 1
            expected[a, b] = total / max(hits, 1)
    return expected


@pytest.mark.parametrize("k_train", [1, 3, 8, 1000])
def test_xtr_scores_match_a_loop_over_each_query_tokens_retrieved_tokens(k_train):
    g = torch.Generator().manual_seed(k_train)
    q = torch.nn.functional.normalize(torch.randn(2, 3, 4, generator=g), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(3, 5, 4, generator=g), dim=-1)
    q_mask = torch.tensor([[True, True, False], [True, True, True]])
    d_mask = torch.tensor([[True] * 5, [True, True, False, False, False], [False, True, True, True, True]])
    got = xtr_scores(q, q_mask, d, d_mask, k_train)
    torch.testing.assert_close(got, _xtr_by_loops(q, q_mask, d, d_mask, k_train), atol=1e-6, rtol=0)
    if k_train == 1000:  # every token retrieved and every similarity positive: MaxSim over query tokens
        q, d = q.abs(), d.abs()
        expected = maxsim_scores(q, q_mask, d, d_mask) / q_mask.sum(dim=1, keepdim=True)
        torch.testing.assert_close(xtr_scores(q, q_mask, d, d_mask, k_train), expected, atol=1e-6, rtol=0)


def test_xtr_scores_match_sentence_transformers_6():
    st6 = pytest.importorskip("sentence_transformers.multi_vector_encoder.scoring.xtr")
    g = torch.Generator().manual_seed(3)
    n_queries, per_query = 3, 2
    q = torch.nn.functional.normalize(torch.randn(n_queries, 6, 8, generator=g), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(n_queries * per_query, 7, 8, generator=g), dim=-1)
    q_mask = torch.ones(n_queries, 6, dtype=torch.bool)
    q_mask[0, 4:] = False
    d_mask = torch.ones(n_queries * per_query, 7, dtype=torch.bool)
    d_mask[1, 3:] = False
    d_mask[4, 5:] = False
    for k_train in (2, 5, 20):
        reference = st6.xtr_scores(
            q, d.view(n_queries, per_query, 7, 8), q_mask, d_mask.view(n_queries, per_query, 7), top_k=k_train
        )
        got = xtr_scores(q, q_mask, d, d_mask, k_train)
        torch.testing.assert_close(got, reference, atol=1e-5, rtol=0)


def test_contrastive_loss_is_the_hand_computed_cross_entropy():
    scores = torch.tensor([[3.0, 1.0, 0.0], [0.5, 0.5, 2.0]])
    loss = contrastive_loss(scores, torch.tensor([0, 1]), temperature=0.5)
    e = math.exp
    first = -math.log(e(6) / (e(6) + e(2) + e(0)))
    second = -math.log(e(1) / (e(1) + e(1) + e(4)))
    assert loss.item() == pytest.approx((first + second) / 2, abs=1e-6)


def test_contrastive_loss_leaves_excluded_candidates_out_but_never_the_target():
    scores = torch.tensor([[1.0, 2.0, 0.0]])
    exclude = torch.tensor([[True, True, False]])  # the target (0) is excluded by mistake: it stays
    loss = contrastive_loss(scores, torch.tensor([0]), exclude=exclude)
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 1)), abs=1e-6)


def test_distillation_loss_is_the_hand_computed_kl_divergence():
    student = torch.tensor([[0.0, math.log(3.0)]])  # softmax 1/4, 3/4
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # softmax 3/4, 1/4
    expected = 0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.75)
    assert distillation_loss(student, teacher).item() == pytest.approx(expected, abs=1e-6)
    assert distillation_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)
    # temperature 2 halves both log-odds: softmax of [ln3/2, 0] is [sqrt3, 1] / (sqrt3 + 1)
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    expected_t = p * math.log(p / (1 - p)) + (1 - p) * math.log((1 - p) / p)
    assert distillation_loss(student, teacher, temperature=2.0).item() == pytest.approx(expected_t, abs=1e-6)


def test_learning_rate_warms_up_then_decays_linearly():
    assert [lr_at(s, 8, 1.0, 0.25) for s in range(8)] == [0.5, 1.0, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]


# -- the differentiable forward ---------------------------------------------------------------------


def test_training_forward_gives_the_encoder_vectors(tiny):
    encoder = prepare_encoder(tiny, query_augmentation=True)
    net = TrainableColBERT(encoder).eval()
    texts = ["what do bees eat?", "fish"]
    with torch.no_grad():
        q, q_mask = net.queries(texts)
        d, d_mask = net.documents(list(DOCS.values())[:3])
    queries = encoder.encode_queries(texts)
    docs = encoder.encode_documents(list(DOCS.values())[:3], progress=False)
    assert q_mask.sum(dim=1).tolist() == [8, 8]  # [MASK] padding scored
    for i in range(2):
        torch.testing.assert_close(q[i][q_mask[i]], queries.vectors_of(i), atol=1e-5, rtol=0)
    for i in range(3):
        torch.testing.assert_close(d[i][d_mask[i]], docs.vectors_of(i), atol=1e-5, rtol=0)
    assert d_mask.sum().item() == len(docs.vectors)  # punctuation dropped as the encoder drops it


def test_plain_encoder_gets_unused_markers_and_an_orthonormal_projection(tiny):
    encoder = prepare_encoder(tiny)
    assert (encoder.config.query_marker, encoder.config.doc_marker) == ("[unused0]", "[unused1]")
    w = encoder.projections[0].weight.detach()
    assert w.shape == (128, 32)  # the default dim 128 over hidden 32: orthonormal columns
    torch.testing.assert_close(w.T @ w, torch.eye(32), atol=1e-5, rtol=0)


def test_vocabulary_without_unused_tokens_gets_q_and_d_initialized_from_words(tmp_path):
    folder = tiny_folder(tmp_path / "nounused", with_unused=False)
    encoder = ColBERT.load(folder, device="cpu", query_maxlen=8, doc_maxlen=16)
    embeddings = encoder.model.get_input_embeddings().weight.detach().clone()
    query_row = embeddings[encoder.tokenizer.convert_tokens_to_ids("query")]
    prepared = prepare_encoder(encoder, dim=16)
    assert (prepared.config.query_marker, prepared.config.doc_marker) == ("[Q]", "[D]")
    q_id = prepared.tokenizer.convert_tokens_to_ids("[Q]")
    weight = prepared.model.get_input_embeddings().weight
    assert q_id == embeddings.shape[0]  # a new row
    torch.testing.assert_close(weight[q_id], query_row)
    assert prepared.encode_queries(["bees"]).tokens(0)[:2] == ["[CLS]", "[Q]"]


# -- learning, checkpoints, resume -----------------------------------------------------------------


def fixed_batch_loss(encoder, pairs) -> float:
    net = TrainableColBERT(encoder).eval()
    qids = sorted(pairs.queries)
    with torch.no_grad():
        q, qm = net.queries([pairs.queries[x] for x in qids])
        d, dm = net.documents([pairs.docs[pairs.positives[x][0]] for x in qids])
        return contrastive_loss(maxsim_scores(q, qm, d, dm), torch.arange(len(qids))).item()


def test_a_few_steps_lower_the_loss(tiny, pairs, tmp_path):
    before = fixed_batch_loss(prepare_encoder(tiny.with_config()), pairs)
    result = train(tiny, pairs, tmp_path / "run", progress=False, **{**FAST, "steps": 15})
    after = fixed_batch_loss(result.encoder, pairs)
    assert after < before - 0.1
    assert result.steps == 15 and len(result.log) == 15
    assert [c.name for c in checkpoints(tmp_path / "run")] == ["checkpoint-000015"]


@pytest.mark.parametrize("in_batch", [True, False])
def test_a_few_xtr_steps_lower_the_xtr_loss(tiny, pairs, tmp_path, in_batch):
    def xtr_loss(encoder):
        net = TrainableColBERT(encoder)
        net.eval()
        qids = sorted(pairs.queries)
        with torch.no_grad():
            q, qm = net.queries([pairs.queries[x] for x in qids])
            d, dm = net.documents([pairs.docs[pairs.positives[x][0]] for x in qids])
            return contrastive_loss(xtr_scores(q, qm, d, dm, 4) / 0.05, torch.arange(len(qids))).item()

    before = xtr_loss(prepare_encoder(tiny.with_config()))
    knobs = {**FAST, "steps": 15, "scoring": "xtr", "k_train": 4, "temperature": 0.05, "in_batch": in_batch}
    result = train(tiny, pairs, tmp_path / "run", progress=False, **knobs)
    assert xtr_loss(result.encoder) < before - 0.1
    run = json.loads((tmp_path / "run" / "lirlab-train.json").read_text())
    assert run["knobs"]["scoring"] == "xtr" and run["loss"] == "contrastive"


def test_saved_checkpoints_reload_with_identical_vectors_in_both_layouts(tiny, pairs, tmp_path):
    result = train(tiny, pairs, tmp_path / "run", progress=False, **FAST)
    texts = list(DOCS.values())
    expected_q = result.encoder.encode_queries(list(QUERIES.values()))
    expected_d = result.encoder.encode_documents(texts, progress=False)
    for layout in ("stanford", "pylate"):
        loaded = ColBERT.load(result.checkpoint / layout, device="cpu")
        assert loaded.config.checkpoint_format == layout
        if layout == "stanford":  # colbert-ai always pads queries with [MASK]; this run did not
            assert loaded.config.query_augmentation is True
            loaded = loaded.with_config(query_augmentation=False)
        assert torch.equal(loaded.encode_queries(list(QUERIES.values())).vectors, expected_q.vectors)
        assert torch.equal(loaded.encode_documents(texts, progress=False).vectors, expected_d.vectors)
    meta = json.loads((result.checkpoint / "stanford" / "artifact.metadata").read_text())
    assert (meta["query_maxlen"], meta["doc_maxlen"], meta["query_token_id"]) == (8, 16, "[unused0]")
    st = json.loads((result.checkpoint / "pylate" / "config_sentence_transformers.json").read_text())
    assert st["do_query_expansion"] is False and st["query_length"] == 8  # a plain encoder pads nothing
    assert json.loads((result.checkpoint / "stanford" / "config.json").read_text())["architectures"] == [
        "HF_ColBERT"
    ]


def test_the_writers_round_trip_the_benchmark_style_checkpoint(stanford, tmp_path):
    texts = ["what do bees eat?", "Honey is made by bees; they eat nectar!"]
    for write in (save_stanford, save_pylate):
        folder = write(stanford, tmp_path / write.__name__)
        loaded = ColBERT.load(folder, device="cpu")
        assert torch.equal(loaded.encode_queries(texts).vectors, stanford.encode_queries(texts).vectors)
        assert torch.equal(
            loaded.encode_documents(texts, progress=False).vectors,
            stanford.encode_documents(texts, progress=False).vectors,
        )


def test_resume_continues_from_the_saved_step_with_identical_losses(tiny_dir, pairs, tmp_path):
    knobs = {**FAST, "steps": 6, "save_every": 3, "keep_checkpoints": 0, "query_augmentation": True}
    fresh = lambda: ColBERT.load(tiny_dir, device="cpu", query_maxlen=8, doc_maxlen=16)  # noqa: E731
    full = train(fresh(), pairs, tmp_path / "full", progress=False, **knobs)
    # the state an interruption after step 3 leaves: the run file, the log so far, checkpoint 3
    cut = tmp_path / "cut"
    cut.mkdir()
    shutil.copy(tmp_path / "full" / "lirlab-train.json", cut)
    shutil.copytree(tmp_path / "full" / "checkpoint-000003", cut / "checkpoint-000003")
    lines = (tmp_path / "full" / "log.jsonl").read_text().splitlines()
    (cut / "log.jsonl").write_text("\n".join(lines[:3]) + "\n")
    resumed = train(fresh(), pairs, cut, resume=True, progress=False)
    assert resumed.steps == 6
    assert resumed.log.step.tolist() == [1, 2, 3, 4, 5, 6]
    assert resumed.log.loss.tolist() == full.log.loss.tolist(), "bit for bit the uninterrupted run's"
    q = list(QUERIES.values())
    assert torch.equal(resumed.encoder.encode_queries(q).vectors, full.encoder.encode_queries(q).vectors)


def test_an_interrupted_checkpoint_write_leaves_the_last_checkpoint_intact(
    tiny, pairs, tmp_path, monkeypatch
):
    real = checkpoint_module.CHECKPOINT_LAYOUTS["pylate"]
    calls = []

    def failing(encoder, folder):
        calls.append(folder)
        if len(calls) == 2:
            raise KeyboardInterrupt  # interrupted while writing the second checkpoint
        return real(encoder, folder)

    monkeypatch.setitem(checkpoint_module.CHECKPOINT_LAYOUTS, "pylate", failing)
    with pytest.raises(KeyboardInterrupt):
        train(
            tiny, pairs, tmp_path / "run", progress=False, **{**FAST, "save_every": 2, "keep_checkpoints": 0}
        )
    assert [c.name for c in checkpoints(tmp_path / "run")] == ["checkpoint-000002"]
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []
    ColBERT.load(tmp_path / "run" / "checkpoint-000002" / "pylate", device="cpu")
    monkeypatch.setitem(checkpoint_module.CHECKPOINT_LAYOUTS, "pylate", real)
    resumed = train(tiny, pairs, tmp_path / "run", resume=True, progress=False)
    assert resumed.steps == 4


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
    tiny, pairs, tmp_path, monkeypatch
):
    real = loop_module.contrastive_loss
    seen = []

    def poisoned(*args, **kwargs):
        seen.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(seen) == 3 else loss

    monkeypatch.setattr(loop_module, "contrastive_loss", poisoned)
    with pytest.raises(TrainingError, match=r"loss became nan at step 3.*checkpoint-000002"):
        train(tiny, pairs, tmp_path / "run", progress=False, **{**FAST, "save_every": 2})
    assert [c.name for c in checkpoints(tmp_path / "run")] == ["checkpoint-000002"]


def test_gradient_accumulation_and_no_in_batch_negatives_run(tiny, pairs, tmp_path):
    result = train(
        tiny,
        pairs,
        tmp_path / "run",
        progress=False,
        **{**FAST, "steps": 2, "accumulation": 2, "in_batch": False},
    )
    assert result.log.loss.notna().all() and result.steps == 2


def test_periodic_evaluation_is_logged(tiny, pairs, tmp_path):
    from lirlab import data

    dev = data.load("demo").slice(max_queries=2, max_docs=10)
    result = train(
        tiny, pairs, tmp_path / "run", eval_dataset=dev, progress=False, **{**FAST, "eval_every": 2}
    )
    evals = result.log[result.log["eval"].notna()]
    assert evals.step.tolist() == [2, 4] and evals["nDCG@10"].between(0, 1).all()


# -- hard negatives and distillation ---------------------------------------------------------------


def test_mined_negatives_exclude_the_positives_and_round_trip(tiny, pairs, tmp_path):
    encoder = prepare_encoder(tiny)
    mined = mine_negatives(encoder, pairs, depth=3, progress=False)
    for qid, docnos in mined.ranked.items():
        assert len(docnos) == 3 and not set(docnos) & set(pairs.positives[qid])
        assert list(mined.scores[qid]) == sorted(mined.scores[qid], reverse=True)
    mined.save(tmp_path / "neg")
    again = Negatives.load(tmp_path / "neg", pairs)
    assert again.ranked == mined.ranked
    result = train(tiny, pairs, tmp_path / "run", mined=again, progress=False, **{**FAST, "steps": 2})
    assert (result.out / "negatives" / "negatives.tsv").is_file()


def test_distillation_from_a_teacher_file(tiny, pairs, tmp_path):
    lines = ["qid\tdocno\tscore"]
    for qid, (pos,) in pairs.positives.items():
        lines += [f"{qid}\t{pos}\t9.0", f"{qid}\td7\t1.0", f"{qid}\td8\t0.5"]
    (tmp_path / "teacher.tsv").write_text("\n".join(lines) + "\n")
    teacher = read_teacher_scores(tmp_path / "teacher.tsv")
    with_teacher = pairs.with_teacher(teacher)
    result = train(
        tiny, with_teacher, tmp_path / "run", progress=False, **{**FAST, "steps": 2, "negatives": 2}
    )
    assert json.loads((tmp_path / "run" / "lirlab-train.json").read_text())["loss"] == "distillation"
    assert result.log.loss.notna().all()
    jsonl = tmp_path / "teacher.jsonl"
    jsonl.write_text(
        "\n".join(
            json.dumps({"qid": q, "docno": d, "score": s}) for q, ds in teacher.items() for d, s in ds.items()
        )
    )
    assert read_teacher_scores(jsonl) == teacher


# -- bad input: one clear line each -----------------------------------------------------------------


def test_unknown_query_ids_empty_sets_and_unknown_documents():
    with pytest.raises(ValueError, match="1 unknown query id.*'q9'"):
        TrainingData.from_pairs(QUERIES, DOCS, [("q9", "d1")])
    with pytest.raises(ValueError, match="unknown document id.*'d99'"):
        TrainingData.from_pairs(QUERIES, DOCS, [("q1", "d99")])
    with pytest.raises(ValueError, match="empty"):
        TrainingData.from_pairs(QUERIES, DOCS, [])


def test_batch_larger_than_the_data(tiny, pairs, tmp_path):
    with pytest.raises(ValueError, match="batch_size 7 is larger than the training set \\(6 queries\\)"):
        train(tiny, pairs, tmp_path / "run", progress=False, **{**FAST, "batch_size": 7})


def test_teacher_file_with_missing_pairs(pairs, tmp_path):
    with pytest.raises(ValueError, match="teacher file lacks 5 training pair"):
        pairs.with_teacher({"q1": {"d1": 1.0, "d7": 0.0}})
    (tmp_path / "bad.tsv").write_text("q1\td1\tnot-a-number\n")
    with pytest.raises(ValueError, match="not a number"):
        read_teacher_scores(tmp_path / "bad.tsv")


def test_out_folder_holding_a_checkpoint_is_refused_unless_asked(tiny, pairs, tmp_path):
    train(tiny, pairs, tmp_path / "run", progress=False, **{**FAST, "steps": 1})
    with pytest.raises(ValueError, match="already holds a training run.*overwrite.*resume"):
        train(tiny, pairs, tmp_path / "run", progress=False, **{**FAST, "steps": 1})
    again = train(tiny, pairs, tmp_path / "run", overwrite=True, progress=False, **{**FAST, "steps": 2})
    assert [c.name for c in checkpoints(tmp_path / "run")] == ["checkpoint-000002"] and again.steps == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not written by lirlab train"):
        train(tiny, pairs, foreign, overwrite=True, progress=False, **FAST)
    assert (foreign / "notes.txt").is_file()
    with pytest.raises(ValueError, match="nothing to resume"):
        train(tiny, pairs, tmp_path / "missing", resume=True, progress=False)


def test_bad_knobs_name_the_knob(tiny, pairs, tmp_path):
    with pytest.raises(ValueError, match="lr must be >= 0"):
        train(tiny, pairs, tmp_path / "a", progress=False, lr=-1.0)
    with pytest.raises(ValueError, match="unknown setting 'learning_rate'"):
        train(tiny, pairs, tmp_path / "b", progress=False, learning_rate=1e-3)


# -- the command line ------------------------------------------------------------------------------


def beir_folder(path, pairs=PAIRS, split="train"):
    """A BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) holding the tiny corpus."""
    (path / "qrels").mkdir(parents=True, exist_ok=True)
    (path / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in DOCS.items())
    )
    (path / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    (path / "qrels" / f"{split}.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in pairs)
    )
    return path


def test_train_command_trains_refuses_a_used_folder_and_resumes(tiny_dir, tmp_path, capsys):
    from lirlab.cli import main

    out = tmp_path / "run"
    args = ["train", "--model", str(tiny_dir), "--dataset", str(beir_folder(tmp_path / "beir"))]
    args += ["--out", str(out), "--steps", "4", "--save-every", "2", "--batch-size", "3", "--lr", "1e-3"]
    args += ["--query-maxlen", "8", "--doc-maxlen", "16", "--mine-depth", "3", "--no-progress"]
    assert main(args + ["--no-mask-padding"]) == 0
    assert "trained to step 4" in capsys.readouterr().out
    assert [c.name for c in checkpoints(out)] == ["checkpoint-000002", "checkpoint-000004"]
    final = out / "checkpoint-000004"
    assert (final / "stanford" / "config.json").is_file() and (final / "pylate").is_dir()
    reloaded = ColBERT.load(final / "pylate", device="cpu")  # the layout that records the padding switch
    assert reloaded.config.query_maxlen == 8 and reloaded.config.query_augmentation is False

    assert main(args) == 2, "a folder holding a run is refused"
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "already holds a training run" in error[0] and "--overwrite" in error[0]

    shutil.rmtree(final)  # as if the run had been killed before its last checkpoint
    assert main(args + ["--resume"]) == 0
    assert "trained to step 4" in capsys.readouterr().out
    assert [c.name for c in checkpoints(out)][-1] == "checkpoint-000004"


def test_train_command_names_unknown_ids_in_one_line(tiny_dir, tmp_path, capsys):
    from lirlab.cli import main

    beir = beir_folder(tmp_path / "beir", pairs=[*PAIRS, ("q1", "d404")])
    code = main(["train", "--model", str(tiny_dir), "--dataset", str(beir), "--out", str(tmp_path / "r")])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and "d404" in error[0], error
    assert not (tmp_path / "r").exists()


def test_train_and_bench_train_help_teach(capsys):
    from lirlab.cli import main

    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0
    assert (
        "hard negatives" in text and "--mask-padding" in text and "--resume" in text and "examples:" in text
    )
    with pytest.raises(SystemExit) as done:
        main(["bench", "train", "--help"])
    text = capsys.readouterr().out
    assert (
        done.value.code == 0 and "lirlab bench train" in text and "--phases" in text and "--minutes" in text
    )
    assert main(["bench", "--out", "x", "train"]) == 2
    assert "after 'train'" in capsys.readouterr().err


def test_bench_train_mines_and_trains_a_tiny_recipe(tiny_dir, tmp_path, capsys):
    from lirlab.cli import main

    beir = beir_folder(tmp_path / "beir")
    beir_folder(beir, split="test")
    cache, results = tmp_path / "cache", tmp_path / "results"
    args = ["bench", "train", "--model", str(tiny_dir), "--train-dataset", str(beir)]
    args += ["--test-datasets", str(beir), "--steps", "2", "--batch-size", "3", "--mine-depth", "3"]
    args += ["--train-doc-maxlen", "16", "--mine-doc-maxlen", "16", "--recipes", "nomask"]
    args += ["--phases", "mine", "train", "--cache", str(cache), "--out", str(results)]
    assert main(args) == 0
    report = json.loads((results / "train.json").read_text())
    (trained,) = report["training"]
    assert trained["model"] == "nomask" and trained["steps_done"] == 2 and trained["final"]
    if hasattr(os, "getloadavg"):  # the conditions each run ended in, to read its minutes against
        assert len(trained["load_average_at_end"]) == 3 and min(trained["load_average_at_end"]) >= 0
    assert report["settings"]["torch_threads"] == torch.get_num_threads()
    assert (cache / "train" / "negatives" / "negatives.tsv").is_file()
    assert len(report["loss_curve"]) >= 1


def test_the_recipe_figure_draws_what_the_results_hold():
    from lirlab.bench.train import plot_train_results

    quality = [
        {
            "model": m,
            "dataset": "nfcorpus",
            "step": s,
            "train_minutes": t,
            "nDCG@10 pad32": p,
            "nDCG@10 nopad": n,
        }
        for m, s, t, p, n in (("start", 0, 0.0, 0.1, 0.3), ("mask32", 40, 20.0, 0.3, 0.31))
    ]
    curves = [
        {"model": "start", "query_maxlen": q, "attend_to_mask_tokens": a, "masks_used": q > 0, "nDCG@10": 0.2}
        for q in (0, 8, 32)
        for a in (False, True)
    ]
    loss = [{"model": "mask32", "step": i, "loss": 3.0 - i / 10, "train_seconds": 30.0 * i} for i in range(5)]
    figure = plot_train_results({"quality": quality, "mask_curves": curves, "loss_curve": loss})
    loss_ax, quality_ax, curve_ax = figure.axes
    assert [line.get_label() for line in loss_ax.lines] == ["_child0", "mask32 (5 steps)"]
    trained = [line for line in quality_ax.lines if line.get_label().startswith("trained mask32")]
    assert len(trained) == 2 and list(trained[0].get_xdata()) == [0.0, 20.0]
    assert list(trained[0].get_ydata()) == [0.1, 0.3] and list(trained[1].get_ydata()) == [0.3, 0.31]
    assert len(curve_ax.lines) == 2 and list(curve_ax.lines[0].get_xdata()) == [0, 8, 32]
    empty = plot_train_results({"quality": [], "mask_curves": [], "loss_curve": []})
    assert len(empty.axes[0].lines) == 0


@pytest.mark.parametrize(
    "case, expected",
    [
        ("teacher", "the teacher file lacks 5 training pair"),
        ("empty", "empty"),
        ("batch", "batch_size 7 is larger than the training set (6 queries)"),
    ],
)
def test_train_command_bad_input_is_one_line(case, expected, tiny_dir, tmp_path, capsys):
    from lirlab.cli import main

    beir = beir_folder(tmp_path / "beir", pairs=[] if case == "empty" else PAIRS)
    args = ["train", "--model", str(tiny_dir), "--dataset", str(beir), "--out", str(tmp_path / "run")]
    args += ["--mine", "none", "--no-progress", "--steps", "2"]
    if case == "teacher":
        (tmp_path / "teacher.tsv").write_text("q1\td1\t3.5\nq1\td7\t0.5\n")
        args += ["--teacher", str(tmp_path / "teacher.tsv")]
    if case == "batch":
        args += ["--batch-size", "7"]
    assert main(args) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lirlab: error")]
    assert len(error) == 1 and expected in error[0], error
    assert not checkpoints(tmp_path / "run")
