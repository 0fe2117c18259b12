"""Engine selection with graceful fallback: tensorrt -> onnxruntime -> torch -> warp (docs/DESIGN.md contract 3).

The node and `augment-bag` call `create_engine_with_fallback`. An engine that cannot start is always reported at
ERROR level with its reason; with `fallback=True` the next engine in `fallback_order()` (the registry's ranks, so
engines added with `register_engine` take part) is tried (and the substitution is logged at ERROR too, never
silently), otherwise the error is raised.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

from model.engines.base import Engine, EngineError, create_engine, engine_class, engine_entry, fallback_order


class ErrorLog(Protocol):
    """Where failures are reported: a logging.Logger, or anything with its `error(msg, *args)`."""

    def error(self, msg: str, *args: Any) -> None: ...


def fallback_chain(name: str) -> list[str]:
    """The engines tried for `name`: itself, then every engine after it in `fallback_order()`."""
    order = fallback_order()
    if name not in order:
        raise EngineError(f"unknown engine {name!r}; choose one of {order}")
    return order[order.index(name) :]


def accepted_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of `options` that engine `name`'s constructor takes (engines differ: warp takes no model_path).

    When the engine's module cannot be imported, all options are returned and create_engine reports the import error.
    """
    try:
        parameters = inspect.signature(engine_class(name)).parameters
    except EngineError:
        return dict(options)
    return {key: value for key, value in options.items() if key in parameters}


def create_engine_with_fallback(name: str, fallback: bool, log: ErrorLog, **options: Any) -> Engine:
    """Create engine `name`; if it cannot start and `fallback`, the next one that can (ERROR logs for each failure).

    options: every engine's options (model_path, steps, num_threads, force_engine_update, ...); each engine receives
    those its constructor accepts. `model_path` names an export directory for `tensorrt`/`onnxruntime` and a model
    directory for `torch`: it goes to the engines of the requested engine's kind only, so e.g. torch falling in for
    onnxruntime starts with its own default (the bundled weights). Raises EngineError listing every engine's reason
    when none starts.
    """
    chain = fallback_chain(name) if fallback else [name]
    reasons = []
    for candidate in chain:
        try:
            same_kind = engine_entry(candidate).model_path_kind == engine_entry(name).model_path_kind
            own = options if same_kind else {k: v for k, v in options.items() if k != "model_path"}
            engine = create_engine(candidate, **accepted_options(candidate, own))
        except (EngineError, ImportError, OSError, RuntimeError) as exc:
            reasons.append(f"{candidate}: {exc}")
            nxt = chain[chain.index(candidate) + 1] if candidate != chain[-1] else None
            log.error(
                "engine %r cannot start: %s%s",
                candidate,
                exc,
                f"; falling back to {nxt!r}" if nxt else "" if fallback else " (fallback is off)",
            )
            continue
        if candidate != name:
            log.error(
                "running engine %r instead of the requested %r (fallback after: %s)",
                candidate,
                name,
                " | ".join(reasons),
            )
        return engine
    raise EngineError(f"no engine could start (tried {chain}): " + " | ".join(reasons))
