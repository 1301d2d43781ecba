"""Build PyLate's PLAID index (Stanford backend, use_fast=False; nbits=2) of SciFact at /tmp/peers/pylate-index/scifact.
fast-plaid (PyLate's default backend) segfaults here: fast-plaid 1.4.6.2110 is built for torch==2.11.0, venv has 2.13.0."""

import os
import sys
import time

# own JIT-extension cache (colbert-ai and PyLate vendored code share extension names)
os.environ.setdefault("TORCH_EXTENSIONS_DIR", "/tmp/peers/torch_ext_pylate")
sys.path.insert(0, "/tmp/peers")
import torch

torch.set_num_threads(2)
import scifact_data as sd  # noqa: E402
from pylate import indexes, models  # noqa: E402

if __name__ == "__main__":
    ids, texts = sd.load_corpus()
    model = models.ColBERT(model_name_or_path="/tmp/peers/minilm-pylate", device="cpu")
    t0 = time.time()
    emb = model.encode(texts, is_query=False, batch_size=32, show_progress_bar=True)
    t1 = time.time()
    print("ENCODE_SECONDS", t1 - t0, "num_embeddings", sum(e.shape[0] for e in emb), flush=True)
    index = indexes.PLAID(
        index_folder="/tmp/peers/pylate-index", index_name="scifact", override=True, nbits=2, use_fast=False
    )
    index.add_documents(documents_ids=ids, documents_embeddings=emb)
    print("INDEX_SECONDS", time.time() - t1, flush=True)
