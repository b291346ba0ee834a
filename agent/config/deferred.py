"""Config fields whose models are imported when a file first uses them (issue 22, memory).

The camera gateway's sections (`[[cameras]]`, `[alarm_http]`: ~30 models of cameras, zones,
detectors and thresholds in agent.vision.config) cost a patrol device about 1.5 MB it never
uses. `deferred(resolve)` is the field type that puts them off: the one `Config` keeps the field,
its default and its place (so dumps and the order of errors do not change), and a file that
has the section is validated by exactly those models, imported and built at that moment.

Errors keep their key paths and wording: a `ValidationError` raised inside a validator becomes
the same line errors in pydantic-core, under the field's location. The default (`[]`, None) is
never validated, so a file without the section never imports the models. Options of the outer
call (`strict=`, `context=`) do not reach the deferred models; the agent's config uses none.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import PlainValidator, TypeAdapter


@dataclass(frozen=True)
class Deferred:
    """The marker a deferred field carries: `annotation()` is its real type (check-config)."""

    resolve: Callable[[], Any]

    def annotation(self) -> Any:
        """The real annotation (imports its module)."""
        return self.resolve()


def deferred(resolve: Callable[[], Any]) -> Any:
    """A field type validated as `resolve()` is, importing it at the first value to validate."""
    adapter = functools.cache(lambda: TypeAdapter(resolve()))

    def validate(value: Any) -> Any:
        return adapter().validate_python(value)

    return Annotated[Any, PlainValidator(validate), Deferred(resolve)]
