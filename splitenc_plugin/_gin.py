"""The plugin's gin helpers: registration safe to import twice, and reading gin files.

* :func:`configurable`: gin registration that is safe to import twice.
* :func:`plugin_in_use`: whether the active gin config asks for the plugin.
* :func:`read_operative_config`: a saved operative config's bindings, read
  statically (no configurable needs to be importable).
* :func:`check_int_binding`: a bound integer checked, or one clear error.
* :func:`bound_value`: a parameter's value in the active config (macros
  followed), or None; :func:`bound_in_a_scope`, :func:`reference_scope`:
  what a scoped binding or reference changes about that.
* :func:`reference_name`: a gin reference's bare configurable name.
* :func:`parse_statements`: gin text's statements, or one clear error where
  gin cannot parse it (for ``--gin_bindings``, ``--where``, fragments).

gin refuses to register a second, different object under a selector that
already exists; re-executing one of our modules (``importlib.reload``, a test
runner importing it under two names) would then fail at import. Our
:func:`configurable` keeps the first registration of a given definition
(matched by module and qualified name) and returns its gin wrapper, so a
re-import is a no-op for gin; a *different* definition under the same name
still fails loudly.
"""

from __future__ import annotations

import inspect
import numbers
import os
import tokenize
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import gin
import gin.config

from splitenc_plugin.errors import ConfigError, SplitencUserError

F = TypeVar("F", bound=Callable)


def _same_definition(a: Callable, b: Callable) -> bool:
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def configurable(name: str, allowlist: Sequence[str]) -> Callable[[F], F]:
    """Like ``gin.configurable(name, allowlist=...)``, but idempotent on re-import.

    Args:
      name: The gin name (``@name`` in configs, ``name.param`` in bindings).
      allowlist: Parameters that may be bound through gin; an empty sequence
        means none (gin itself reads an empty allowlist as "all", so this
        denies every parameter instead). Required: every configurable states it.

    Returns:
      A decorator registering the function under ``<fn.__module__>.<name>``.
    """

    def decorate(fn: F) -> F:
        selector = f"{fn.__module__}.{name}"
        # gin has no public lookup by selector; its registry is a SelectorMap.
        existing = gin.config._REGISTRY.get(selector)
        if existing is not None and _same_definition(existing.wrapped, fn):
            return existing.wrapper
        if allowlist:
            return gin.configurable(name, allowlist=list(allowlist))(fn)
        return gin.configurable(name, denylist=list(inspect.signature(fn).parameters))(fn)

    return decorate


_PACKAGE = "splitenc_plugin"


def _is_plugin_module(module: str | None) -> bool:
    return module is not None and (module == _PACKAGE or module.startswith(_PACKAGE + "."))


def plugin_in_use() -> bool:
    """Whether the active gin config asks for the plugin.

    It does if it imports ``splitenc_plugin`` (or a submodule; gin's
    ``import splitenc_plugin`` line, from any parsed file or binding), or binds
    or references (``@name``, also through a macro) one of the plugin's
    configurables. The compat layer applies the plugin's features (noise
    routing, input-pipeline switch, preflight checks) only then, so a stock
    dlib config runs, and records its operative config, exactly as stock dlib.
    The answer follows the config: ``gin.clear_config()`` (dlib calls it
    after every train/postprocess/evaluate) resets it.
    """
    # gin has no public view of its imports and bindings; these are the
    # structures its own operative_config_str() reads.
    if any(_is_plugin_module(statement.module) for statement in gin.config._IMPORTS):
        return True
    bindings = gin.config._CONFIG
    for _, selector in bindings:
        configurable = gin.config._REGISTRY.get(selector)
        if configurable is not None and _is_plugin_module(configurable.module):
            return True
    return any(_is_plugin_module(reference.configurable.module)
               for reference in gin.config.iterate_references(bindings))


def bound_value(parameter: str) -> Any:
    """The active gin config's value of ``parameter`` (``"dataset.name"``), or None.

    A macro (``encoder.num_latent = %NUM_LATENT``) is followed to the value
    the call will receive. None when it is unbound, or bound only in a scope
    (:func:`bound_in_a_scope` tells the two apart): the caller's check is then
    left to the code that uses the value (dlib raises its own error).
    """
    try:
        value = gin.query_parameter(parameter)
        seen = set()
        # A macro is a reference to gin.macro in the macro's scope, whose
        # `value` binding holds what the call receives.
        while (isinstance(value, gin.config.ConfigurableReference)
               and value.configurable.wrapped is gin.config.macro
               and value.scoped_selector not in seen):
            seen.add(value.scoped_selector)
            value = gin.query_parameter(f"{value.scoped_selector}.value")
        return value
    except ValueError:
        return None


def bound_in_a_scope(parameter: str) -> bool:
    """Whether ``parameter`` (``"configurable.param"``) is bound in some gin scope.

    Such a binding applies only where the configurable is called in that
    scope, which only the call knows; a check of the unscoped value must then
    not read "unbound" as "not set".
    """
    name, arg = parameter.rsplit(".", 1)
    # gin has no public listing of bindings; _CONFIG maps (scope, selector)
    # to that configurable's bound arguments.
    return any(scope and selector.rsplit(".", 1)[-1] == name and arg in args
               for (scope, selector), args in gin.config._CONFIG.items())


def reference_scope(value: Any) -> str:
    """The scope of a gin reference in the active config (``@s/name`` -> ``"s"``), else ``""``."""
    selector = getattr(value, "scoped_selector", "")
    return selector.rsplit("/", 1)[0] if "/" in selector else ""


def is_integer(value: Any) -> bool:
    """Whether a bound value is an integer (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int_binding(value: Any, binding: str, low: int, high: int | None,
                      example: str) -> int:
    """Checks a bound integer (not a bool) in ``low..high``; returns it as int.

    Args:
      value: The bound value.
      binding: Its binding name, e.g. ``encoder.num_latent``.
      low: The least allowed value.
      high: The largest allowed value, or None for no upper bound.
      example: A valid value, shown in the fix.

    Raises:
      ConfigError: Naming the binding, the allowed range and a valid binding.
    """
    if not is_integer(value) or value < low or (high is not None and value > high):
        allowed = f"in {low}..{high}" if high is not None else f">= {low}"
        raise ConfigError(
            f"{binding} must be an integer {allowed}, got {value!r}. "
            f"Fix the binding, e.g. {binding} = {example}.")
    return int(value)


def reference_name(value: Any) -> str | None:
    """The bare configurable name of a gin reference, in any of its recorded forms.

    Accepts gin's ``ConfigurableReference`` (active config), the references
    of :func:`read_operative_config` (``.name``) and dlib's JSON text
    (``"@correlated_noise"``, ``"@splitenc_plugin.model.noise.correlated_noise()"``,
    ``"'@scope/conv_encoder'"``): the module path and scope are dropped, so a
    configurable has one name however a config spelled it. None stays None.
    """
    if value is None:
        return None
    configurable = getattr(value, "configurable", None)
    name = getattr(configurable, "name", None) or getattr(value, "name", None)
    if name is None:
        name = str(value).strip().strip("'\"").removeprefix("@").removesuffix("()")
    return name.rsplit(".", 1)[-1].rsplit("/", 1)[-1]


class _Reference:
    """A ``@name`` in a parsed gin file (only its name is kept)."""

    def __init__(self, name: str, evaluate: bool) -> None:
        self.name = reference_name(name)
        self.evaluate = evaluate


class _Delegate:
    def configurable_reference(self, scoped_name: str, evaluate: bool) -> _Reference:
        return _Reference(scoped_name, evaluate)

    def macro(self, name: str) -> _Reference:
        return _Reference(name, False)


#: Where dlib saves a trained model's operative training config, relative to
#: its model directory (and to every postprocessed representation's, which
#: dlib_postprocess copies it into).
TRAIN_GIN = Path("results") / "gin" / "train.gin"


def read_operative_config(path: str | os.PathLike) -> dict[str, Any]:
    """Unscoped bindings of an operative gin config file, without importing anything.

    Args:
      path: e.g. ``<model_dir>/results/gin/train.gin``.

    Returns:
      {"configurable.param": value} with values as Python literals; references
      (``@x``) become objects with a ``name`` attribute (the last component of
      the configurable's name).
    """
    from gin import config_parser

    bindings: dict[str, Any] = {}
    with open(path) as f:
        for statement in config_parser.ConfigParser(f, _Delegate()):
            if isinstance(statement, config_parser.BindingStatement) and not statement.scope:
                name = statement.selector.rsplit(".", 1)[-1]
                bindings[f"{name}.{statement.arg_name}"] = statement.value
    return bindings


def parse_statements(text: str, what: str, fix: str) -> list:
    """gin's statements of ``text`` (bindings, imports, includes), read by gin's parser.

    Unknown configurables are allowed (their modules are imported only when
    the job runs); only what gin cannot parse at all is an error.

    Args:
      text: gin text.
      what: What the text is, for the message (``"--where 'a.b = ('"``).
      fix: How to fix it, for the message.

    Raises:
      SplitencUserError: ``"<what> does not parse as gin (<gin's reason>); <fix>"``.
    """
    from gin import config_parser

    try:
        return list(config_parser.ConfigParser(text,
                                               gin.config.ParserDelegate(skip_unknown=True)))
    except (SyntaxError, ValueError, tokenize.TokenError) as exc:
        raise SplitencUserError(f"{what} does not parse as gin ({exc}); {fix}") from None
