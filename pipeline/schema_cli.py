"""``callqa schema``: the JSON Schema of a public contract, generated from its model."""

from __future__ import annotations

import json

import click
from pydantic import BaseModel


def contract_models() -> dict[str, type[BaseModel]]:
    """Contract name → the model that defines it (docs/contracts.md)."""
    from pipeline.schema import Result, Transcript
    from pipeline.scripts_check.rubric import Rubric

    return {"transcript": Transcript, "result": Result, "rubric": Rubric}


def contract_schema(name: str) -> dict:
    """JSON Schema (draft 2020-12) of what ``name`` accepts as input."""
    schema = contract_models()[name].model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


@click.command("schema")
@click.argument("contract", type=click.Choice(["transcript", "result", "rubric"]))
def schema(contract: str) -> None:
    """Print the JSON Schema of CONTRACT (transcript JSON, result JSON or rubric YAML)."""
    click.echo(json.dumps(contract_schema(contract), indent=2, ensure_ascii=False))
