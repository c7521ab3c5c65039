"""Re-export shim only (no tests): the schema tests now live in test_schema_*.py.

test_payload.py and test_pydantic_models.py still import from here; once they import from
tests.unit.schema_helpers instead, delete this file.
"""

from tests.unit.schema_helpers import SIGNATURES, columns, tensor

__all__ = ["SIGNATURES", "columns", "tensor"]
