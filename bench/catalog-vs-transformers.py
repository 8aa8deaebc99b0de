"""Rebuilds each catalog model with transformers on the meta device (no memory, no weights)
and checks Headroom's parameter count and per-layer Linear names/shapes/bias against it.

    node --import tsx bench/catalog-dump.ts | .venv/bin/python bench/catalog-vs-transformers.py

Prints one line per model and exits 1 on any mismatch.
"""
import json
import sys

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


def main() -> int:
    rows = json.load(sys.stdin)
    failures = 0
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for row in rows:
        cfg = dict(row["config"])
        model_type = cfg.pop("model_type")
        config = AutoConfig.for_model(model_type, **cfg)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        # parameters() yields a tied weight once, as the hub's safetensors total counts it
        params = sum(p.numel() for p in model.parameters())
        layer = model.model.layers[0]
        linears = [
            {"name": name.rsplit(".", 1)[-1], "inFeatures": m.in_features, "outFeatures": m.out_features, "bias": m.bias is not None}
            for name, m in layer.named_modules()
            if isinstance(m, torch.nn.Linear)
        ]
        # transformers registers phi3's o_proj before qkv_proj; Headroom lists forward order
        by_name = lambda ms: sorted(ms, key=lambda m: m["name"])
        same_linears = by_name(linears) == by_name(row["layerLinears"])
        ok = params == row["params"] and same_linears
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {row['id']:<28} transformers {params:>14,}  headroom {row['params']:>14,}")
        if not same_linears:
            print(f"     transformers linears {linears}\n     headroom     linears {row['layerLinears']}")
    print(f"{len(rows) - failures} match, {failures} differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
