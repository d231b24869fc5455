"""``make setup-llm``: reassemble the embedded language model and check its sha256 (the one
assembler, :mod:`pipeline.transcribe.models`, with the LLM model table)."""

from __future__ import annotations

from pipeline.llm.config import MODELS_FILE
from pipeline.transcribe.models import main as install_main


def main(argv: list[str] | None = None) -> None:
    install_main(argv, MODELS_FILE)


if __name__ == "__main__":
    main()
