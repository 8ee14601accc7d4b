# cython: language_level=3, embedsignature=True, annotation_typing=False, auto_pickle=False, autotestdict=False
# cython: boundscheck=False, wraparound=False, cdivision=True
"""Compiled bounded queue: a ring buffer whose operations need no lock, only the GIL.

Why no lock is needed: every method below reads and changes the ring in straight C code that
never calls back into Python between the first read of the state and the last write, so no
other Python thread can run in between (CPython only switches threads inside the bytecode loop
or where C code explicitly releases the GIL). Anything that *could* run Python code - building
an exception, converting the ``items`` argument, dropping the last reference to an evicted item
(its ``__del__``) - happens before the state is read or after it is consistent again.

Waiting (``get`` on an empty queue, ``put`` on a full ``block`` queue) uses a C-level waiter: a
``PyThread`` lock per waiting call, linked into an intrusive list that lives on the waiting
thread's C stack. The "is there an item?" check and the linking happen in one GIL-atomic step,
and every put unlinks and releases one waiter per item, so a wakeup cannot be lost. This relies
on the GIL: it is not safe on a free-threaded (``--disable-gil``) CPython.
"""

from cpython.pythread cimport (
    NOWAIT_LOCK,
    PY_LOCK_INTR,
    PyLockStatus,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject, Py_DECREF, Py_INCREF, Py_XDECREF
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from orgloop.queues.errors import (
    Empty,
    QueueClosed,
    QueueFull,
    check_max_items,
    check_maxsize,
    check_policy,
    check_timeout,
)

cdef extern from "Python.h":
    # Raw list slot access: GET returns a borrowed pointer, SET steals one and drops nothing.
    PyObject* _slot_get "PyList_GET_ITEM" (object, Py_ssize_t)
    void _slot_set "PyList_SET_ITEM" (object, Py_ssize_t, PyObject*)
    object PyList_New(Py_ssize_t)
    int PyErr_CheckSignals() except -1

cdef extern from "pythread.h":
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock, long long, int) nogil
    const long long PY_TIMEOUT_MAX


cdef struct Waiter:
    PyThread_type_lock lock
    Waiter* prev
    Waiter* next
    bint signalled


cdef struct WaitList:
    Waiter* head
    Waiter* tail


cdef inline void _link(WaitList* wl, Waiter* w) noexcept:
    w.prev = wl.tail
    w.next = NULL
    if wl.tail != NULL:
        wl.tail.next = w
    else:
        wl.head = w
    wl.tail = w


cdef inline void _unlink(WaitList* wl, Waiter* w) noexcept:
    if w.prev != NULL:
        w.prev.next = w.next
    else:
        wl.head = w.next
    if w.next != NULL:
        w.next.prev = w.prev
    else:
        wl.tail = w.prev
    w.prev = NULL
    w.next = NULL


cdef inline void _wake(WaitList* wl, Py_ssize_t n) noexcept:
    """Release up to ``n`` waiters (all of them if ``n`` < 0), oldest first."""
    cdef Waiter* w
    while wl.head != NULL and n != 0:
        w = wl.head
        _unlink(wl, w)
        w.signalled = True
        PyThread_release_lock(w.lock)
        n -= 1


cdef inline double _now() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline long long _micros(double seconds) noexcept:
    if seconds * 1e6 >= <double>PY_TIMEOUT_MAX:
        return PY_TIMEOUT_MAX
    return <long long>(seconds * 1e6) + 1


cdef class BoundedQueue:
    """A FIFO holding at most ``maxsize`` items; see :mod:`orgloop.queues` for the contract."""

    cdef list _ring            # fixed length maxsize; empty slots hold None
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _head
    cdef Py_ssize_t _count
    cdef unsigned long long _dropped
    cdef bint _block
    cdef bint _closed
    cdef str _policy
    cdef WaitList _getters
    cdef WaitList _putters

    def __cinit__(self, maxsize: int = 1000, policy: str = "drop_oldest") -> None:
        # __cinit__, not __init__: the ring must exist even if __init__ is skipped or called twice.
        self._cap = check_maxsize(maxsize)
        self._policy = check_policy(policy)
        self._block = self._policy == "block"
        self._ring = [None] * self._cap

    @property
    def maxsize(self) -> int:
        return self._cap

    @property
    def policy(self) -> str:
        return self._policy

    @property
    def dropped(self) -> int:
        """Items evicted by ``drop_oldest`` since the queue was made."""
        return self._dropped

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return (f"<BoundedQueue len={self._count} maxsize={self._cap} policy={self._policy}"
                f" dropped={self._dropped}{' closed' if self._closed else ''}>")

    # --- ring operations: pure C, callers must hold the GIL and not run Python code ----------

    cdef inline void _push(self, object item) noexcept:
        cdef Py_ssize_t tail = self._head + self._count
        if tail >= self._cap:
            tail -= self._cap
        Py_INCREF(item)
        Py_DECREF(None)  # the reference the empty slot held
        _slot_set(self._ring, tail, <PyObject*>item)
        self._count += 1

    cdef inline PyObject* _take(self) noexcept:
        """Unlink the oldest item and hand over the ring's reference to it."""
        cdef PyObject* p = _slot_get(self._ring, self._head)
        Py_INCREF(None)
        _slot_set(self._ring, self._head, <PyObject*>None)
        self._head += 1
        if self._head == self._cap:
            self._head = 0
        self._count -= 1
        return p

    cdef inline object _pop(self):
        cdef PyObject* p = self._take()
        cdef object item = <object>p  # a new reference ...
        Py_DECREF(item)               # ... replacing the ring's, which we now give up
        return item

    cdef int _wait(self, WaitList* wl, bint for_items, bint has_deadline, double deadline) except -2:
        """Wait once for an item (or room). 1: go and look again; 0: timed out; -1: closed."""
        cdef Waiter w
        cdef long long micros = -1
        cdef double remaining
        cdef PyLockStatus status
        # This check and the _link below form one GIL-atomic step: no put can slip between them.
        if for_items:
            if self._count > 0:
                return 1
            if self._closed:
                return -1
        else:
            if self._closed:
                return -1
            if self._count < self._cap:
                return 1
        if has_deadline:
            remaining = deadline - _now()
            if remaining <= 0:
                return 0
            micros = _micros(remaining)
        w.lock = PyThread_allocate_lock()
        if w.lock == NULL:
            raise MemoryError("could not allocate a waiter lock")
        PyThread_acquire_lock(w.lock, NOWAIT_LOCK)  # hold it, so the timed acquire below blocks
        w.signalled = False
        _link(wl, &w)
        try:
            while True:
                with nogil:
                    status = PyThread_acquire_lock_timed(w.lock, micros, 1)
                if status != PY_LOCK_INTR:
                    break
                PyErr_CheckSignals()  # a signal handler may raise (KeyboardInterrupt)
                if has_deadline:
                    remaining = deadline - _now()
                    if remaining <= 0:
                        break
                    micros = _micros(remaining)
        finally:
            if not w.signalled:
                _unlink(wl, &w)
            PyThread_free_lock(w.lock)
        return 1

    # --- public API -----------------------------------------------------------------------------

    def put(self, item: object, timeout: float | None = None) -> int:
        """Add one item; return how many items were dropped to make room (0 or 1)."""
        cdef bint has_deadline = False
        cdef double deadline = 0.0
        cdef int r
        cdef PyObject* evicted
        if timeout is not None:
            deadline = _now() + check_timeout(timeout)
            has_deadline = True
        while True:
            if self._closed:
                raise QueueClosed()
            if self._count < self._cap:
                self._push(item)
                if self._getters.head != NULL:
                    _wake(&self._getters, 1)
                return 0
            if not self._block:
                evicted = self._take()
                self._push(item)
                self._dropped += 1
                Py_XDECREF(evicted)  # last: its __del__ may run Python code
                return 1
            r = self._wait(&self._putters, False, has_deadline, deadline)
            if r == 0:
                raise QueueFull(self._cap, 0)

    def put_many(self, items: object, timeout: float | None = None) -> int:
        """Add every item in order; return how many items were dropped to make room."""
        cdef list seq = items if type(items) is list else list(items)
        cdef bint has_deadline = False
        cdef double deadline = 0.0
        cdef Py_ssize_t n, i, take, accepted = 0
        cdef int r
        if timeout is not None:
            deadline = _now() + check_timeout(timeout)
            has_deadline = True
        if not self._block:
            return self._put_dropping(seq, None)
        while True:
            if self._closed:
                raise QueueClosed(accepted)
            n = len(seq)  # re-read: the caller's list is not ours between waits
            take = min(self._cap - self._count, n - accepted)
            if take > 0:
                for i in range(accepted, accepted + take):
                    self._push(seq[i])
                accepted += take
                if self._getters.head != NULL:
                    _wake(&self._getters, take)
            if accepted >= n:
                return 0
            r = self._wait(&self._putters, False, has_deadline, deadline)
            if r == 0:
                raise QueueFull(self._cap, accepted)

    def put_many_evicting(self, items: object, timeout: float | None = None) -> list:
        """Like :meth:`put_many`, but return the dropped items themselves (oldest first)."""
        cdef list seq = items if type(items) is list else list(items)
        cdef list out = []
        if not self._block:
            self._put_dropping(seq, out)
            return out
        self.put_many(seq, timeout)
        return out

    cdef Py_ssize_t _put_dropping(self, list seq, list out) except -1:
        cdef Py_ssize_t n = len(seq)
        cdef Py_ssize_t skipped, kept, evicted, i
        cdef PyObject** graveyard = NULL
        if self._closed:
            raise QueueClosed()
        skipped = n - self._cap if n > self._cap else 0  # the head of an oversized batch never fits
        kept = n - skipped
        evicted = max(0, self._count + kept - self._cap)
        if evicted:
            # Hold the evicted items until the ring is consistent again: dropping the last reference
            # may run a __del__. PyMem_Malloc never runs the GC, so this step stays GIL-atomic.
            graveyard = <PyObject**>PyMem_Malloc(evicted * sizeof(PyObject*))
            if graveyard == NULL:
                raise MemoryError("could not allocate room for the evicted items")
            for i in range(evicted):
                graveyard[i] = self._take()
        for i in range(skipped, n):
            self._push(seq[i])
        self._dropped += skipped + evicted
        if kept and self._getters.head != NULL:
            _wake(&self._getters, kept)
        if evicted:
            for i in range(evicted):
                if out is not None:
                    out.append(<object>graveyard[i])
                Py_XDECREF(graveyard[i])
            PyMem_Free(graveyard)
        if skipped and out is not None:
            out.extend(seq[:skipped])
        return skipped + evicted

    def get(self, timeout: float | None = None) -> object:
        """Remove and return the oldest item, waiting up to ``timeout`` seconds (``None``: forever).

        Raises :class:`Empty` on timeout and :class:`QueueClosed` once the queue is closed and drained.
        """
        cdef bint has_deadline = False
        cdef double deadline = 0.0
        cdef int r
        if timeout is not None:
            deadline = _now() + check_timeout(timeout)
            has_deadline = True
        while True:
            if self._count > 0:
                item = self._pop()
                if self._putters.head != NULL:
                    _wake(&self._putters, 1)
                return item
            r = self._wait(&self._getters, True, has_deadline, deadline)
            if r == 0:
                raise Empty()
            if r == -1:
                raise QueueClosed()

    def get_many(self, max_items: int, timeout: float | None = None) -> list:
        """Wait up to ``timeout`` for one item, then return up to ``max_items`` without waiting more.

        Returns ``[]`` on timeout; raises :class:`QueueClosed` once the queue is closed and drained.
        """
        cdef Py_ssize_t limit = min(check_max_items(max_items), self._cap)  # never more than fits
        cdef bint has_deadline = False
        cdef double deadline = 0.0
        cdef Py_ssize_t take, i
        cdef int r
        cdef list out
        if timeout is not None:
            deadline = _now() + check_timeout(timeout)
            has_deadline = True
        while True:
            if self._count > 0:
                take = min(limit, self._count)
                out = PyList_New(take)  # allocating may run the GC, and the GC may run Python code
                if self._count < take:  # ... so another consumer may have taken items meanwhile
                    for i in range(take):
                        Py_INCREF(None)
                        _slot_set(out, i, <PyObject*>None)
                    continue
                for i in range(take):
                    _slot_set(out, i, self._take())
                if self._putters.head != NULL:
                    _wake(&self._putters, take)
                return out
            r = self._wait(&self._getters, True, has_deadline, deadline)
            if r == 0:
                return []
            if r == -1:
                raise QueueClosed()

    def close(self) -> None:
        """Refuse further puts and wake every waiter; queued items can still be taken."""
        self._closed = True
        _wake(&self._getters, -1)
        _wake(&self._putters, -1)
