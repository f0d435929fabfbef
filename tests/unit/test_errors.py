"""The errno table is complete, and errno_of walks the MRO."""

from __future__ import annotations

import errno

import pytest

from amofs import errors
from amofs.errors import ERRNO, AmoError, errno_of


def all_subclasses(cls: type[AmoError]) -> set[type[AmoError]]:
    out: set[type[AmoError]] = set()
    for sub in cls.__subclasses__():
        out.add(sub)
        out |= all_subclasses(sub)
    return out


def test_every_error_class_has_an_errno_row() -> None:
    classes = {AmoError} | all_subclasses(AmoError)
    # only classes of amofs.errors itself (tests may define their own subclasses)
    classes = {c for c in classes if c.__module__ == errors.__name__}
    missing = sorted(c.__name__ for c in classes if c not in ERRNO)
    assert not missing, f"no ERRNO row for {missing}"


def test_every_module_level_error_is_in_the_tree() -> None:
    declared = {obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, AmoError)}
    assert declared == set(ERRNO)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (errors.NotFound(), errno.ENOENT),
        (errors.SessionGone(), errno.EIO),
        (errors.Blocked(), errno.EACCES),
        (errors.TooLarge(), errno.EFBIG),
        (errors.BadRequest(), errno.EINVAL),
        (errors.ProtocolError(), errno.EIO),
        (errors.CrossDevice(), errno.EXDEV),
        (ValueError(), errno.EIO),
    ],
)
def test_errno_of(exc: BaseException, expected: int) -> None:
    assert errno_of(exc) == expected


def test_errno_of_walks_the_mro_for_unlisted_subclasses() -> None:
    class Deeper(errors.NotFound):
        pass

    class Deepest(Deeper):
        pass

    assert errno_of(Deepest()) == errno.ENOENT

    class OddFsError(errors.ReadOnly):
        pass

    assert errno_of(OddFsError()) == errno.EROFS


def test_api_error_str_names_request_not_token() -> None:
    e = errors.NotFound("no such file", status=404, method="GET", path="/v1.0/files/x")
    assert str(e) == "GET /v1.0/files/x HTTP 404: no such file"
    assert (e.status, e.method, e.path) == (404, "GET", "/v1.0/files/x")
    assert str(errors.Unavailable("down")) == "down"
