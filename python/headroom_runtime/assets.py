"""The embedded default: tiny random-initialised models of real architectures, built locally.

Models cannot be downloaded on these machines, so set-up builds them: a byte-level BPE
tokenizer trained on the shipped dataset, and a tiny Phi-3 (the default) and a tiny Llama
(for tests) with random weights, saved as ordinary Hugging Face model directories that
`from_pretrained` (and so BitsAndBytesConfig quantization) loads like any other.

    python -m headroom_runtime.assets ensure     # idempotent; prints the directories
    python -m headroom_runtime.assets path tiny-phi3
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATASET = REPO_ROOT / "examples" / "data" / "stdlib-docs.jsonl"
# Bump when the recipe below changes so `ensure` rebuilds stale copies.
RECIPE_VERSION = 3

# Phi-3's chat format (<|user|> … <|end|>), so adapters trained here see the same layout.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% else %}{{ eos_token }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
# A multiple of 64 so embedding and lm_head shapes stay kernel-friendly.
VOCAB_SIZE = 1024

# Std of the random weights. HF's 0.02 caps a random lm_head's logits near 0.02 * hidden_size
# (about 5 at 256), too flat for LoRA on a frozen random base to express the data's token
# frequencies; 0.05 leaves room to learn, so the default fine-tune's loss visibly drops.
INITIALIZER_RANGE = 0.05

# Few million parameters: big enough to show memory terms, small enough to train in a minute on 2 cores.
ARCHITECTURES = {
    "tiny-phi3": dict(
        family="phi3", hidden_size=256, intermediate_size=768, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
    ),
    "tiny-llama": dict(
        family="llama", hidden_size=128, intermediate_size=384, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
    ),
}


def assets_dir() -> Path:
    """Where the built models live (gitignored). HEADROOM_ASSETS overrides, e.g. for tests."""
    return Path(os.environ.get("HEADROOM_ASSETS", REPO_ROOT / ".headroom" / "assets"))


def model_dir(name: str) -> Path:
    return assets_dir() / name


def _corpus(path: Path):
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            yield "\n".join(m["content"] for m in row["messages"])


def build_tokenizer(dataset: Path = DEFAULT_DATASET):
    """A byte-level BPE tokenizer (any UTF-8 text round-trips) trained on the shipped dataset."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_corpus(dataset), trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<pad>",
        additional_special_tokens=SPECIAL_TOKENS[2:],
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def build_model(name: str, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config

    spec = dict(ARCHITECTURES[name])
    family = spec.pop("family")
    config_class = {"phi3": Phi3Config, "llama": LlamaConfig}[family]
    # Phi3Config defaults pad_token_id=32000, which is outside a 1k vocabulary: always pass all three.
    config = config_class(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False, initializer_range=INITIALIZER_RANGE, **spec,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def is_built(name: str) -> bool:
    marker = model_dir(name) / "headroom-asset.json"
    try:
        return json.loads(marker.read_text())["recipe"] == RECIPE_VERSION
    except (OSError, ValueError, KeyError):
        return False


def ensure(name: str = "tiny-phi3") -> Path:
    """Builds the named tiny model (and its tokenizer) unless an up-to-date copy exists."""
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown embedded model {name!r}; known: {', '.join(ARCHITECTURES)}")
    target = model_dir(name)
    if is_built(name):
        return target
    tokenizer = build_tokenizer()
    model = build_model(name, tokenizer)
    # Build beside the target and rename, so an interrupted build never looks complete.
    staging = target.with_name(f".{name}.tmp-{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    params = sum(p.numel() for p in model.parameters())
    (staging / "headroom-asset.json").write_text(json.dumps({"recipe": RECIPE_VERSION, "name": name, "params": params}))
    import shutil

    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:
        # Another process (a concurrent run) finished the same build first: keep its copy.
        shutil.rmtree(staging, ignore_errors=True)
        if not is_built(name):
            raise
    return target


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "ensure"
    if command == "ensure":
        for name in ARCHITECTURES:
            was_built = is_built(name)
            path = ensure(name)
            print(f"headroom assets: {name} {'ok' if was_built else 'built'} at {path}", file=sys.stderr)
        return 0
    if command == "path" and len(argv) == 2:
        print(ensure(argv[1]))
        return 0
    print("usage: python -m headroom_runtime.assets [ensure | path NAME]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
