"""Build the colbert-ai PLAID index of SciFact (CPU, nbits=2) at /tmp/peers/colbert-index."""

import os
import sys
import time

# own JIT-extension cache (colbert-ai and PyLate vendored code share extension names)
os.environ.setdefault("TORCH_EXTENSIONS_DIR", "/tmp/peers/torch_ext_colbert")
os.environ["CUDA_VISIBLE_DEVICES"] = ""
sys.path.insert(0, "/tmp/peers")
import torch

torch.set_num_threads(2)
from colbert import Indexer  # noqa: E402
from colbert.infra import ColBERTConfig, Run, RunConfig  # noqa: E402
from colbert.infra.config.settings import RunSettings  # noqa: E402

# total_visible_gpus is a class attribute (= torch.cuda.device_count()), not a constructor kwarg
assert RunSettings.total_visible_gpus == 0
import scifact_data  # noqa: E402

CKPT = "/work/main/benchmarks/models/minilm-colbert"

if __name__ == "__main__":
    ids, texts = scifact_data.load_corpus()
    with Run().context(RunConfig(nranks=1, gpus=0, experiment="scifact", root="/tmp/peers/colbert-exp")):
        cfg = ColBERTConfig(
            nbits=2, doc_maxlen=180, query_maxlen=32, dim=128, index_root="/tmp/peers", gpus=0
        )
        t0 = time.time()
        indexer = Indexer(checkpoint=CKPT, config=cfg)
        indexer.index(name="colbert-index", collection=texts, overwrite="force_silent_overwrite")
        print("INDEX_SECONDS", time.time() - t0, "->", indexer.get_index())
    # colbert-ai's Run config overrides index_root, so the index lands under colbert-exp/...; move it.
    import shutil

    src = "/tmp/peers/colbert-exp/scifact/indexes/colbert-index"
    if os.path.realpath(src) != "/tmp/peers/colbert-index":
        shutil.rmtree("/tmp/peers/colbert-index", ignore_errors=True)
        shutil.move(src, "/tmp/peers/colbert-index")
        os.symlink("/tmp/peers/colbert-index", src)
