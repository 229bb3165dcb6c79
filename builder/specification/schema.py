"""JSON Schemas of stacks.yaml and fragment.yaml, generated from the models.

Editors use them through the yaml-language-server modeline; the committed
copies in `schema/` are kept equal to these by a test.
"""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from builder.specification.models import FragmentFile, StacksFile

SCHEMAS: dict[str, type[BaseModel]] = {"stacks": StacksFile, "fragment": FragmentFile}


def schema(kind: str) -> dict[str, Any]:
    model = SCHEMAS[kind]
    document = model.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = f"{kind}.yaml" if kind == "fragment" else "stacks.yaml"
    return document


def schema_text(kind: str) -> str:
    return json.dumps(schema(kind), indent=2, sort_keys=True) + "\n"
