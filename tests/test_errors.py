"""Every error jaxwsi defines for input the user can fix is a `JaxwsiError` (the CLI prints it as
one line), and keeps its builtin base so ``except ValueError`` still works."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import jaxwsi
from jaxwsi.errors import JaxwsiError

# Not about user input: a worker process that could not start, and the native core's own
# (TFRecordError is the Rust extension's; InternalError reports a bug).
NOT_USER_ERRORS = {"WorkerStartError", "TFRecordError", "InternalError"}


def defined_errors() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(jaxwsi.__path__, "jaxwsi."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue  # private modules (the native extension, worker entry points)
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, Exception)
                and value.__module__ == info.name
            ):
                found[f"{info.name}.{name}"] = value
    return found


def test_user_errors_derive_from_jaxwsi_error():
    errors = defined_errors()
    assert len(errors) >= 15  # the walk found the packages' errors
    wrong = [
        path
        for path, cls in errors.items()
        if cls.__name__ not in NOT_USER_ERRORS and not issubclass(cls, JaxwsiError)
    ]
    assert not wrong, wrong
    builtin = [path for path, cls in errors.items() if cls.__mro__[-3] is JaxwsiError]
    assert not builtin, f"{builtin} derive from JaxwsiError alone, not from a builtin error"
