"""Pages per second of a real-size, randomly initialised page model (no trained weights are reachable here).

The model is ColModernVBert at the published ``ModernVBERT/colmodernvbert`` size (SigLIP base,
512 px tiles of 16 px patches shuffled 4x4 into 64 vectors, ModernBERT-base: about 250M parameters),
built offline from its config; the processor is the fixture's with the real image settings (pages
resized to 2,048 px on their longest side, cut into 512 px tiles plus a global image). ColPali at its
real size (PaliGemma-3B, 448 px, 1,024 patches) is ``--family colpali`` (12 GB of memory in fp32).
Vectors of random weights mean nothing; the time is what it is, since it does not depend on the weights.

Run from the repository root::

    python benchmarks/page_encoding.py [--family colmodernvbert] [--pages 4] [--device cpu]

It writes ``benchmarks/results/page_encoding_<family>.json`` with the machine described and its 1-minute
load average before and after the timed pages (other work on the machine slows the figure).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image

from lirlab.machine import describe_machine
from lirlab.page_encoder import FAMILIES, PageEncoder

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pages"
RESULTS = Path(__file__).resolve().parent / "results"


def real_size(family: str) -> PageEncoder:
    """A randomly initialised model of ``family`` at its published size, with the fixture's tokenizer."""
    spec = FAMILIES[family]
    processor = getattr(transformers, spec.processor_class).from_pretrained(FIXTURES / family, backend="pil")
    vocab = len(processor.tokenizer)
    if family == "colmodernvbert":
        processor.image_processor.size = {"longest_edge": 2048}
        processor.image_processor.max_image_size = {"longest_edge": 512}
        processor.image_seq_len = 64
        vlm = transformers.ModernVBertConfig(
            text_config={"model_type": "modernbert", "vocab_size": max(vocab, 50368)},
            vision_config={"model_type": "siglip_vision_model", "image_size": 512, "patch_size": 16},
            pixel_shuffle_factor=4,
            image_token_id=processor.image_token_id,
        )
        config = transformers.ColModernVBertConfig(vlm_config=vlm, embedding_dim=128)
    elif family == "colpali":
        processor.image_processor.size = {"height": 448, "width": 448}
        processor.image_seq_length = processor.image_processor.image_seq_length = 1024
        vlm = transformers.PaliGemmaConfig(
            vision_config={
                "model_type": "siglip_vision_model",
                "image_size": 448,
                "patch_size": 14,
                "hidden_size": 1152,
                "intermediate_size": 4304,
                "num_hidden_layers": 27,
                "num_attention_heads": 16,
                "projection_dim": 2048,
            },  # fmt: skip
            text_config={"model_type": "gemma", "vocab_size": max(vocab, 257216)},
            image_token_index=processor.image_token_id,
            projection_dim=2048,
            hidden_size=2048,
        )
        config = transformers.ColPaliConfig(vlm_config=vlm, embedding_dim=128)
    else:
        raise SystemExit(f"no real-size config here for {family}; choose colmodernvbert or colpali")
    model = getattr(transformers, spec.model_class)(config)
    return PageEncoder(model, processor, family, name=f"random {family} (real size)", device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="colmodernvbert", choices=["colmodernvbert", "colpali"])
    parser.add_argument("--pages", type=int, default=4, help="pages timed (after one warm-up page)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = real_size(args.family)
    encoder.model.to(args.device)
    encoder.device = torch.device(args.device)
    rng = np.random.default_rng(0)
    pages = [
        Image.fromarray(rng.integers(0, 256, (1754, 1240, 3), dtype=np.uint8))  # A4 at 150 dpi
        for _ in range(args.pages + 1)
    ]
    encoder.encode_documents(pages[:1], progress=False)  # warm-up
    load_before = os.getloadavg()
    start = time.perf_counter()
    encoded = encoder.encode_documents(pages[1:], batch_size=1, progress=True)
    seconds = time.perf_counter() - start
    result = {
        "benchmark": "page_encoding",
        "family": args.family,
        "parameters": sum(p.numel() for p in encoder.model.parameters()),
        "page_pixels": [1240, 1754],
        "pages": args.pages,
        "vectors_per_page": float(encoded.lengths.float().mean()),
        "patches_per_page": float(encoded.is_patch.sum()) / args.pages,
        "seconds": round(seconds, 2),
        "pages_per_second": round(args.pages / seconds, 4),
        "batch_size": 1,
        "load_average_1min": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "machine": describe_machine(args.device),
        "command": f"python benchmarks/page_encoding.py --family {args.family} --pages {args.pages} --device {args.device}",
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"page_encoding_{args.family}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps({k: result[k] for k in ("family", "parameters", "vectors_per_page", "pages_per_second")})
    )


if __name__ == "__main__":
    main()
