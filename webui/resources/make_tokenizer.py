"""Regenerate the shipped CLIP tokenizer files from OpenAI's BPE vocabulary.

Development helper only: it regenerates the shipped files from OpenAI's BPE
vocab; it is not needed at run time (the generated files are committed under
``webui/resources/tokenizers/clip/``).

OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` ships inside the ``open-clip-torch``
wheel on PyPI. Fetch it without installing the package::

    pip download open-clip-torch==3.3.0 --no-deps -d /tmp/oc
    cd /tmp/oc && unzip -o open_clip_torch-3.3.0-py3-none-any.whl \
        open_clip/bpe_simple_vocab_16e6.txt.gz

then run::

    python webui/resources/make_tokenizer.py /tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz

The vocabulary is laid out exactly like OpenAI's CLIP tokenizer (and therefore
the Hugging Face ``openai/clip-vit-large-patch14`` tokenizer files):

* ids 0..255: the 256 byte symbols of the byte-to-unicode table,
* ids 256..511: the same symbols followed by ``</w>``,
* the merged symbols, one per merge rule (the first 49152 - 256 - 2 rules
  after the header line of the gz file),
* ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).

49408 tokens in total.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

VOCAB_SIZE = 49408
NUM_MERGES = 49152 - 256 - 2
SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
MERGES_HEADER = "#version: 0.2"

OUTPUT_DIR = Path(__file__).resolve().parent / "tokenizers" / "clip"


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins for raw bytes, in GPT-2/CLIP order.

    Printable latin-1 bytes map to themselves and come first (in byte order);
    every remaining byte is then mapped, in byte order, to code points from 256
    upward so that no symbol is whitespace or a control character.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\N{INVERTED EXCLAMATION MARK}"), ord("\N{NOT SIGN}") + 1))
        + list(range(ord("\N{REGISTERED SIGN}"), ord("\N{LATIN SMALL LETTER Y WITH DIAERESIS}") + 1))
    )
    keep = set(printable)
    order = list(printable)
    codes = list(printable)
    extra = 0
    for b in range(256):
        if b not in keep:
            order.append(b)
            codes.append(256 + extra)
            extra += 1
    mapping = dict(zip(order, codes))
    # Insertion order (printable bytes first) defines the token ids.
    return [chr(mapping[b]) for b in order]


def read_merges(gz_path: Path) -> list[tuple[str, str]]:
    text = gzip.open(gz_path, "rb").read().decode("utf-8")
    lines = text.split("\n")
    # Line 0 is a header; keep exactly the merges OpenAI's tokenizer uses.
    selected = lines[1 : 1 + NUM_MERGES]
    merges: list[tuple[str, str]] = []
    for line in selected:
        left, right = line.split(" ")
        merges.append((left, right))
    if len(merges) != NUM_MERGES:
        raise ValueError(f"expected {NUM_MERGES} merges, found {len(merges)}")
    return merges


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += [left + right for left, right in merges]
    tokens += list(SPECIAL_TOKENS)
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(tokens) != VOCAB_SIZE or len(vocab) != VOCAB_SIZE:
        raise ValueError(f"vocabulary has {len(tokens)} tokens ({len(vocab)} unique), expected {VOCAB_SIZE}")
    return vocab


def tokenizer_config() -> dict:
    # Minimal, hub-free tokenizer_config.json (pad token as in SD 1.x; the
    # runtime helper overrides it per family).
    return {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }


def special_tokens_map() -> dict:
    return {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }


def write_files(gz_path: Path, out_dir: Path = OUTPUT_DIR) -> None:
    merges = read_merges(gz_path)
    vocab = build_vocab(merges)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "vocab.json", "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    with open(out_dir / "merges.txt", "w", encoding="utf-8", newline="\n") as f:
        f.write(MERGES_HEADER + "\n")
        for left, right in merges:
            f.write(f"{left} {right}\n")
    for name, data in (
        ("tokenizer_config.json", tokenizer_config()),
        ("special_tokens_map.json", special_tokens_map()),
    ):
        with open(out_dir / name, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bpe_gz", type=Path, help="path to bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--out", type=Path, default=OUTPUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    write_files(args.bpe_gz, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
