"""Concurrent listing of department members: ``user/list`` once per department.

``user/list`` returns only a department's direct members, so every visible department is
listed; the calls are latency-bound, hence a thread pool. At most ``2 * max_concurrency``
departments are queued or running at a time, and each department's users are handed on in
department order as soon as every earlier department has finished. :func:`iter_users` yields
them one by one, so a caller can convert them as they come instead of holding every record
(about 1.8 KB each as Python objects).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from wecom_assets.wecom.errcodes import OUT_OF_RANGE
from wecom_assets.wecom.errors import WeComPermissionError
from wecom_assets.wecom.models import User, userid_key

ListUsers = Callable[[int, threading.Event], list[User]]


class FetchCancelled(Exception):
    """Raised inside a worker whose fetch was abandoned because another one failed."""


def iter_users(
    department_ids: Iterable[int],
    list_users: ListUsers,
    max_concurrency: int,
    *,
    userids_case_sensitive: bool = False,
) -> Iterator[User]:
    """List the direct members of every department concurrently and merge them as they come.

    Fetching goes on in the background while the caller handles the users it was given; closing
    the iterator early cancels the outstanding departments.

    Args:
        department_ids: Departments to list, in the order that decides first-seen users.
        list_users: Fetches one department's direct members; must stop early (raise) once the
            event it is given is set.
        max_concurrency: Worker threads, i.e. ``user/list`` calls in flight.
        userids_case_sensitive: Compare userids as they are (service-provider apps), not
            ignoring case.

    Yields:
        Each user once (userid compared case-insensitively, first-seen case kept), in
        first-seen order walking the departments in the given order.

    Raises:
        WeComPermissionError: A department answered 60011 (the visible range changed since the
            departments were listed).
        WeComError: The first failure in department order among those seen; outstanding work
            is cancelled.
    """
    cancel = threading.Event()
    seen: set[str] = set()
    # Submitted, not yet merged, in department order; finished results wait here only while an
    # earlier department is still running.
    unmerged: deque[tuple[int, Future[list[User]]]] = deque()
    running: set[Future[list[User]]] = set()
    # Enough queued work to keep every worker busy without queueing every department at once.
    window = max(1, 2 * max_concurrency)
    remaining = iter(department_ids)

    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="wecom") as pool:
        try:
            while True:
                while len(running) < window:
                    department_id = next(remaining, None)
                    if department_id is None:
                        break
                    future = pool.submit(list_users, department_id, cancel)
                    unmerged.append((department_id, future))
                    running.add(future)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                running -= done
                for department_id, future in unmerged:
                    if future in done and future.exception() is not None:
                        raise _explain(department_id, future.exception())
                # Merge the finished prefix: a slow department (retrying) delays merging, not
                # fetching, and the result order stays deterministic.
                while unmerged and unmerged[0][1].done():
                    _, future = unmerged.popleft()
                    for user in future.result():
                        key = userid_key(user.userid, case_sensitive=userids_case_sensitive)
                        if key not in seen:
                            seen.add(key)
                            yield user
        except BaseException:
            # Also on GeneratorExit, when the caller stops iterating early.
            cancel.set()
            for _, future in unmerged:
                future.cancel()
            raise


def _explain(department_id: int, error: BaseException | None) -> BaseException:
    assert error is not None
    if isinstance(error, WeComPermissionError) and error.errcode == OUT_OF_RANGE:
        return WeComPermissionError(
            f"WeCom user/list for department {department_id} answered 60011 although "
            f"department/list listed it: the app's visible range (可见范围) changed "
            f"during the sync. Check the app's visible range in the WeCom admin console and "
            f"run the sync again. WeCom said: {error.errmsg}",
            path=error.path,
            errcode=error.errcode,
            errmsg=error.errmsg,
        )
    return error
