# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True, initializedcheck=False
"""Compiled twin of ``_wal_py.py``: record framing, scanning, checksums and the group-commit loop.

The write + fdatasync loop runs with the GIL released, so a busy Python producer cannot delay a
commit (see ``shared/research/wal-performance.md``, fact 4). Behaviour, bytes on disk and error
messages are identical to the pure-Python twin; the test suite runs on both.
"""
import os
import threading

from orgloop.errors import WalError

from libc.stdint cimport uint32_t, uint64_t, int64_t
from libc.string cimport memcpy, memset, memcmp, memchr
from libc.stdlib cimport malloc, realloc, free
from libc.stdio cimport snprintf
from libc.errno cimport errno, EINTR, ENOSPC
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_CheckExact
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from posix.types cimport off_t

cdef extern from "_crc32c.h" nogil:
    void ol_crc32c_init()
    uint32_t ol_crc32c(uint32_t prev, const unsigned char *p, size_t n)

cdef extern from "<unistd.h>" nogil:
    ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
    ssize_t write(int fd, const void *buf, size_t count)
    int fdatasync(int fd)
    int getpid()

cdef extern from "<signal.h>" nogil:
    int kill(int pid, int sig)
    int SIGKILL

cdef extern from "<time.h>" nogil:
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int CLOCK_MONOTONIC
    int CLOCK_REALTIME

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)
    int pthread_cond_init(pthread_cond_t *c, void *attr)
    int pthread_cond_destroy(pthread_cond_t *c)
    int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
    int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const timespec *t)
    int pthread_cond_broadcast(pthread_cond_t *c)

ol_crc32c_init()

# The committer's data-path syscalls. Tests (and only tests) point them at a file layer that models a
# power cut (``set_io_hooks``); an indirect call per write round costs nothing measurable.
ctypedef ssize_t (*pwrite_fn)(int fd, const void *buf, size_t count, off_t offset) noexcept nogil
ctypedef int (*fdatasync_fn)(int fd) noexcept nogil
cdef pwrite_fn _io_pwrite = <pwrite_fn>pwrite
cdef fdatasync_fn _io_fdatasync = <fdatasync_fn>fdatasync


def set_io_hooks(size_t pwrite_addr=0, size_t fdatasync_addr=0):
    """Test hook: route the committer's ``pwrite``/``fdatasync`` through C functions at these addresses
    (e.g. ctypes callbacks); 0 restores the system calls."""
    global _io_pwrite, _io_fdatasync
    _io_pwrite = <pwrite_fn>pwrite_addr if pwrite_addr else <pwrite_fn>pwrite
    _io_fdatasync = <fdatasync_fn>fdatasync_addr if fdatasync_addr else <fdatasync_fn>fdatasync

SCAN_MORE = 0
SCAN_END = 1
SCAN_CORRUPT = 2
SYNC_BUCKETS_US = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000)

DEF C_RECORD_HEADER = 24
DEF C_JSONL_PREFIX = 97
DEF C_JSONL_CRC_START = 17
DEF C_ENC_JSONL = 1
DEF N_BUCKETS = 10
DEF C_MAX_RECORD = 0x7FFFFFFF
DEF C_MARK_BIN = 40       # a binary durable mark: header + u64 offset + u64 ack watermark
DEF C_MARK_JSONL = 144    # a JSONL durable mark line: prefix + [%20d,%20d] + "  }\n"
DEF C_MARK_PAYLOAD = 16
DEF C_JSONL_MARK_PAYLOAD = 43
DEF C_MARK_V2_PAYLOAD = 8         # format 2 marks carry the offset only (still read)
DEF C_JSONL_MARK_V2_PAYLOAD = 20
DEF ST_MARK = -2          # _frame_at: a valid durable mark (a valid record is -1)
cdef int64_t[9] _BUCKET_BOUNDS = [50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000]


cdef inline void _put32(char *p, uint32_t v) noexcept nogil:
    p[0] = <char>(v & 0xFF); p[1] = <char>((v >> 8) & 0xFF); p[2] = <char>((v >> 16) & 0xFF); p[3] = <char>(v >> 24)


cdef inline void _put64(char *p, uint64_t v) noexcept nogil:
    _put32(p, <uint32_t>v)
    _put32(p + 4, <uint32_t>(v >> 32))


cdef inline uint32_t _get32(const unsigned char *p) noexcept nogil:
    return (<uint32_t>p[0]) | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline uint64_t _get64(const unsigned char *p) noexcept nogil:
    return (<uint64_t>_get32(p)) | ((<uint64_t>_get32(p + 4)) << 32)


def crc32c(data, uint32_t value=0):
    """CRC-32C (Castagnoli) of ``data``, continuing from ``value``."""
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return ol_crc32c(value, <const unsigned char *>view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)


cdef object _as_bytes(object r, Py_ssize_t i):
    try:
        return bytes(memoryview(r))
    except TypeError:
        raise TypeError(f"WAL records must be bytes-like, not {type(r).__name__} (record {i})") from None


cdef list _measure(list recs, Py_ssize_t start, bint jsonl, Py_ssize_t max_bytes, Py_ssize_t *count,
                   Py_ssize_t *size):
    """Pass 1 of framing: how many of ``recs[start:]`` fit in ``max_bytes``, and their framed size.

    Returns the list to frame from: ``recs`` itself, or a copy in which bytes-like records became bytes.
    """
    cdef Py_ssize_t n = len(recs), i = start, total = 0, ln, fs
    cdef bint copied = False
    cdef object r
    while i < n:
        r = recs[i]
        if not PyBytes_CheckExact(r):
            if not copied:
                recs = list(recs)
                copied = True
            r = _as_bytes(r, i)
            recs[i] = r
        ln = PyBytes_GET_SIZE(r)
        if ln == 0:
            raise ValueError(f"WAL records must not be empty (record {i}): length 0 marks the end of data")
        if ln > C_MAX_RECORD:
            raise ValueError(f"WAL records must be smaller than 2 GiB (record {i} has {ln} bytes)")
        if jsonl:
            if memchr(PyBytes_AS_STRING(r), 10, <size_t>ln) != NULL:
                raise ValueError(f"JSONL records must be single-line JSON: record {i} contains a newline")
            fs = (C_JSONL_PREFIX + ln + 2 + 7) & ~7
        else:
            fs = (C_RECORD_HEADER + ln + 7) & ~7
        if total + fs > max_bytes:
            break
        total += fs
        i += 1
    count[0] = i - start
    size[0] = total
    return recs


cdef void _fill(list recs, Py_ssize_t start, Py_ssize_t count, char *dst, uint64_t seq, uint64_t segment_id,
                bint jsonl):
    """Pass 2 of framing: write ``recs[start:start+count]`` (measured by ``_measure``) framed at ``dst``."""
    cdef Py_ssize_t i, ln, fs, raw
    cdef object r
    cdef const char *p
    cdef uint32_t crc
    cdef char hexbuf[16]
    for i in range(start, start + count):
        r = recs[i]
        p = PyBytes_AS_STRING(r)
        ln = PyBytes_GET_SIZE(r)
        if jsonl:
            raw = C_JSONL_PREFIX + ln + 2
            fs = (raw + 7) & ~7
            snprintf(dst, C_JSONL_PREFIX + 1,
                     b'{"crc":"00000000","len":%10u,"seq":%20llu,"seg":%20llu,"event":',
                     <unsigned int>ln, <unsigned long long>seq, <unsigned long long>segment_id)
            memcpy(dst + C_JSONL_PREFIX, p, <size_t>ln)
            memset(dst + C_JSONL_PREFIX + ln, 32, <size_t>(fs - raw))
            dst[fs - 2] = b'}'
            dst[fs - 1] = b'\n'
            crc = ol_crc32c(0, <const unsigned char *>(dst + C_JSONL_CRC_START), <size_t>(C_JSONL_PREFIX - C_JSONL_CRC_START + ln))
            snprintf(hexbuf, 9, b"%08x", crc)
            memcpy(dst + 8, hexbuf, 8)
        else:
            fs = (C_RECORD_HEADER + ln + 7) & ~7
            _put32(dst + 4, <uint32_t>ln)
            _put64(dst + 8, seq)
            _put64(dst + 16, segment_id)
            memcpy(dst + C_RECORD_HEADER, p, <size_t>ln)
            if fs > C_RECORD_HEADER + ln:
                memset(dst + C_RECORD_HEADER + ln, 0, <size_t>(fs - C_RECORD_HEADER - ln))
            _put32(dst, ol_crc32c(0, <const unsigned char *>(dst + 4), <size_t>(20 + ln)))
        dst += fs
        seq += 1


cdef Py_ssize_t _put_mark(char *dst, uint64_t seq, uint64_t segment_id, bint jsonl, uint64_t durable,
                          uint64_t acked) noexcept nogil:
    """Write a durable mark at ``dst``; returns its size."""
    cdef char hexbuf[16]
    cdef Py_ssize_t k
    if jsonl:
        snprintf(dst, C_JSONL_PREFIX + 1, b'{"crc":"00000000","len":%10u,"seq":%20llu,"seg":%20llu,"mark" :',
                 <unsigned int>C_JSONL_MARK_PAYLOAD, <unsigned long long>seq, <unsigned long long>segment_id)
        snprintf(dst + C_JSONL_PREFIX, C_JSONL_MARK_PAYLOAD + 1, b"[%20llu,%20llu]", <unsigned long long>durable,
                 <unsigned long long>acked)
        for k in range(C_JSONL_PREFIX + C_JSONL_MARK_PAYLOAD, C_MARK_JSONL - 2):
            dst[k] = b' '
        dst[C_MARK_JSONL - 2] = b'}'
        dst[C_MARK_JSONL - 1] = b'\n'
        snprintf(hexbuf, 9, b"%08x", ol_crc32c(0, <const unsigned char *>(dst + C_JSONL_CRC_START),
                                               <size_t>(C_JSONL_PREFIX - C_JSONL_CRC_START + C_JSONL_MARK_PAYLOAD)))
        memcpy(dst + 8, hexbuf, 8)
        return C_MARK_JSONL
    _put32(dst + 4, (<uint32_t>1 << 31) | C_MARK_PAYLOAD)
    _put64(dst + 8, seq)
    _put64(dst + 16, segment_id)
    _put64(dst + 24, durable)
    _put64(dst + 32, acked)
    _put32(dst, ol_crc32c(0, <const unsigned char *>(dst + 4), 20 + C_MARK_PAYLOAD))
    return C_MARK_BIN


def frame_mark(uint64_t seq, uint64_t segment_id, int encoding, uint64_t durable, uint64_t acked):
    """A durable mark; see the pure twin."""
    cdef bint jsonl = encoding == C_ENC_JSONL
    out = PyBytes_FromStringAndSize(NULL, C_MARK_JSONL if jsonl else C_MARK_BIN)
    _put_mark(PyBytes_AS_STRING(out), seq, segment_id, jsonl, durable, acked)
    return out


def frame(records, Py_ssize_t start, uint64_t first_seq, uint64_t segment_id, int encoding,
          Py_ssize_t max_bytes):
    """Frame ``records[start:]`` as consecutive records; see the pure twin for the contract."""
    cdef list recs = records if type(records) is list else list(records)
    cdef Py_ssize_t count, size
    cdef bint jsonl = encoding == C_ENC_JSONL
    recs = _measure(recs, start, jsonl, max_bytes, &count, &size)
    out = PyBytes_FromStringAndSize(NULL, size)
    _fill(recs, start, count, PyBytes_AS_STRING(out), first_seq, segment_id, jsonl)
    return count, out


cdef inline bint _dec_field(const unsigned char *p, int width, uint64_t *out) noexcept nogil:
    """Spaces then at least one decimal digit, exactly ``width`` bytes (the writer's %Nu format)."""
    cdef int k = 0
    cdef uint64_t v = 0
    while k < width and p[k] == 32:
        k += 1
    if k == width:
        return False
    while k < width:
        if p[k] < 48 or p[k] > 57:
            return False
        v = v * 10 + (p[k] - 48)
        k += 1
    out[0] = v
    return True


cdef inline bint _hex8(const unsigned char *p, uint32_t *out) noexcept nogil:
    cdef uint32_t v = 0
    cdef int k
    cdef unsigned char c
    for k in range(8):
        c = p[k]
        if 48 <= c <= 57:
            v = (v << 4) | (c - 48)
        elif 97 <= c <= 102:
            v = (v << 4) | (c - 87)
        else:
            return False
    out[0] = v
    return True


cdef inline bint _jsonl_mark_fields(const unsigned char *p, Py_ssize_t ln, uint64_t *durable,
                                    uint64_t *acked) noexcept nogil:
    """Parse a JSONL mark payload: ``[%20u,%20u]`` (format 2: ``%20u``, acked 0)."""
    if ln == C_JSONL_MARK_V2_PAYLOAD:
        acked[0] = 0
        return _dec_field(p, 20, durable)
    return (p[0] == 91 and p[21] == 44 and p[42] == 93 and _dec_field(p + 1, 20, durable)
            and _dec_field(p + 22, 20, acked))


cdef int _frame_at(const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, uint64_t segment_id, int encoding,
                   uint64_t *seq, Py_ssize_t *fs, Py_ssize_t *p0, Py_ssize_t *ln) noexcept nogil:
    """-1 for a valid record, ST_MARK for a valid durable mark (filling seq/fs/p0/ln), else SCAN_MORE /
    SCAN_END / SCAN_CORRUPT."""
    cdef uint64_t v, seg, dummy
    cdef uint32_t crc
    cdef Py_ssize_t k, raw
    cdef int valid = -1
    if encoding == C_ENC_JSONL:
        if end - pos < 1:
            return 0
        if b[pos] != 123:
            return 1
        if end - pos < C_JSONL_PREFIX:
            return 0
        b = b + pos
        if (memcmp(b, b'{"crc":"', 8) != 0 or memcmp(b + 16, b'","len":', 8) != 0
                or memcmp(b + 34, b',"seq":', 7) != 0 or memcmp(b + 61, b',"seg":', 7) != 0):
            return 2
        if memcmp(b + 88, b',"event":', 9) != 0:
            if memcmp(b + 88, b',"mark" :', 9) != 0:
                return 2
            valid = ST_MARK
        if not _hex8(b + 8, &crc) or not _dec_field(b + 24, 10, &v) or not _dec_field(b + 41, 20, seq) \
                or not _dec_field(b + 68, 20, &seg):
            return 2
        if seg != segment_id:
            return 1
        if v == 0 or (valid == ST_MARK and v != C_JSONL_MARK_PAYLOAD and v != C_JSONL_MARK_V2_PAYLOAD):
            return 2
        ln[0] = <Py_ssize_t>v
        raw = C_JSONL_PREFIX + ln[0] + 2
        fs[0] = (raw + 7) & ~7
        if pos + fs[0] > end:
            return 0
        if ol_crc32c(0, b + C_JSONL_CRC_START, <size_t>(C_JSONL_PREFIX - C_JSONL_CRC_START + ln[0])) != crc:
            return 2
        if b[fs[0] - 2] != 125 or b[fs[0] - 1] != 10:
            return 2
        for k in range(C_JSONL_PREFIX + ln[0], fs[0] - 2):
            if b[k] != 32:
                return 2
        if valid == ST_MARK and not _jsonl_mark_fields(b + C_JSONL_PREFIX, ln[0], &dummy, &dummy):
            return 2
        p0[0] = pos + C_JSONL_PREFIX
        return valid
    if end - pos < C_RECORD_HEADER:
        if end - pos >= 8 and _get32(b + pos + 4) == 0:
            return 1
        return 0
    v = _get32(b + pos + 4)
    if v == 0:
        return 1
    seg = _get64(b + pos + 16)
    if seg != segment_id:
        return 1
    seq[0] = _get64(b + pos + 8)
    if v >> 31:                      # the length field's top bit: a durable mark
        v &= C_MAX_RECORD
        if v != C_MARK_PAYLOAD and v != C_MARK_V2_PAYLOAD:
            return 2
        valid = ST_MARK
    ln[0] = <Py_ssize_t>v
    fs[0] = (C_RECORD_HEADER + ln[0] + 7) & ~7
    if pos + fs[0] > end:
        return 0
    if ol_crc32c(0, b + pos + 4, <size_t>(20 + ln[0])) != _get32(b + pos):
        return 2
    p0[0] = pos + C_RECORD_HEADER
    return valid


def scan(buf, Py_ssize_t start, Py_ssize_t end, uint64_t segment_id, uint64_t expected_seq, int encoding,
         bint collect):
    """Walk and verify frames in ``buf[start:end]``; see the pure twin for the contract."""
    cdef Py_buffer view
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    cdef const unsigned char *b = <const unsigned char *>view.buf
    cdef list out = [] if collect else None
    cdef Py_ssize_t pos = start, fs = 0, p0 = 0, ln = 0
    cdef uint64_t seq = expected_seq, rseq = 0, durable = 0, d = 0, acked = 0, a = 0
    cdef int status
    if end > view.len:
        end = view.len
    try:
        while True:
            status = _frame_at(b, pos, end, segment_id, encoding, &rseq, &fs, &p0, &ln)
            if status >= 0:
                break
            if rseq != seq:
                status = 2
                break
            if status == ST_MARK:
                if encoding == C_ENC_JSONL:
                    _jsonl_mark_fields(b + p0, ln, &d, &a)
                else:
                    d = _get64(b + p0)
                    a = _get64(b + p0 + 8) if ln == C_MARK_PAYLOAD else 0
                if d > durable:
                    durable = d
                if a > acked:
                    acked = a
            else:
                if collect:
                    out.append(PyBytes_FromStringAndSize(<const char *>(b + p0), ln))
                seq += 1
            pos += fs
    finally:
        PyBuffer_Release(&view)
    return out, seq - expected_seq, pos, status, durable, acked


def resync(buf, Py_ssize_t start, Py_ssize_t end, uint64_t segment_id, uint64_t min_seq, int encoding):
    """First valid frame of ``segment_id`` with seq ≥ ``min_seq`` at an aligned offset ≥ ``start``."""
    cdef Py_buffer view
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    cdef const unsigned char *b = <const unsigned char *>view.buf
    cdef Py_ssize_t cand = (start + 7) & ~7, fs = 0, p0 = 0, ln = 0
    cdef uint64_t seq = 0
    cdef Py_ssize_t found = -1
    if end > view.len:
        end = view.len
    try:
        with nogil:
            while cand + 8 <= end:
                if encoding == C_ENC_JSONL:
                    if memcmp(b + cand, b'{"crc":"', 8) == 0:
                        if _frame_at(b, cand, end, segment_id, encoding, &seq, &fs, &p0, &ln) < 0 and seq >= min_seq:
                            found = cand
                            break
                elif cand + 24 <= end and _get64(b + cand + 16) == segment_id:
                    if _frame_at(b, cand, end, segment_id, encoding, &seq, &fs, &p0, &ln) < 0 and seq >= min_seq:
                        found = cand
                        break
                cand += 8
    finally:
        PyBuffer_Release(&view)
    if found < 0:
        return -1, 0
    return found, seq


cdef struct Chunk:
    int fd
    int64_t offset
    size_t start
    size_t length


cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef class Committer:
    """Group commit with the write + fdatasync loop outside the GIL; see the pure twin's docstring."""

    cdef pthread_mutex_t mu
    cdef pthread_cond_t cv
    cdef char *pbuf
    cdef size_t pused, pcap
    cdef Chunk *pchunks
    cdef size_t pn, pcapn
    cdef char *wbuf
    cdef size_t wcap
    cdef Chunk *wchunks
    cdef size_t wcapn
    cdef uint64_t pending_seq, written, durable
    cdef int leader, err_no, stop_flag, crash_after_write
    cdef int last_fd, synced_fd          # the file and end offset of the last chunk written, and of the
    cdef int64_t last_end, synced_end    # last chunk known fdatasynced (what durable marks carry)
    cdef uint64_t acked_pending          # the ack watermark of the mark queued in this round, of the
    cdef uint64_t acked_written, acked_synced   # marks written so far, and of those known fdatasynced
    cdef int *dirty
    cdef size_t ndirty, capdirty
    cdef uint64_t syncs, sync_ns
    cdef uint64_t buckets[N_BUCKETS]
    cdef object _thread

    def __cinit__(self):
        pthread_mutex_init(&self.mu, NULL)
        pthread_cond_init(&self.cv, NULL)
        self.capdirty = 16
        self.dirty = <int *>malloc(self.capdirty * sizeof(int))
        if self.dirty == NULL:
            raise MemoryError()
        memset(self.buckets, 0, sizeof(self.buckets))
        self.last_fd = self.synced_fd = -1

    def __dealloc__(self):
        free(self.pbuf)
        free(self.wbuf)
        free(self.pchunks)
        free(self.wchunks)
        free(self.dirty)
        pthread_cond_destroy(&self.cv)
        pthread_mutex_destroy(&self.mu)

    def set_fault(self, str point, int hits):
        """Test hook: SIGKILL this process at the ``hits``-th time ``point`` is reached.

        The only point is ``after_write``: data written, not yet fdatasynced.
        """
        if point != "after_write":
            raise ValueError(f"unknown fault point {point!r}")
        self.crash_after_write = hits

    def reset(self, uint64_t seq, int fd=-1, int64_t offset=0):
        """Declare everything up to ``seq`` written and durable (used when a log is opened), and the
        bytes of ``fd`` before ``offset`` fdatasynced."""
        pthread_mutex_lock(&self.mu)
        if seq < self.durable:
            seq = self.durable
        self.pending_seq = self.written = self.durable = seq
        self.last_fd = self.synced_fd = fd
        self.last_end = self.synced_end = offset
        pthread_mutex_unlock(&self.mu)

    cdef str _message(self):
        return (f"WAL write failed ({os.strerror(self.err_no)}); the log refuses further writes "
                f"until it is reopened")

    cdef int _reserve(self, size_t extra) except -1:
        """Room for ``extra`` more pending bytes (caller holds the mutex)."""
        cdef size_t need = self.pused + extra, ncap
        cdef void *grown
        if need > self.pcap:
            ncap = self.pcap * 2 if self.pcap else 1 << 20
            while ncap < need:
                ncap *= 2
            grown = realloc(self.pbuf, ncap)
            if grown == NULL:
                raise MemoryError()
            self.pbuf = <char *>grown
            self.pcap = ncap
        return 0

    cdef int _queued(self, int fd, int64_t offset, size_t length, uint64_t last_seq) except -1:
        """Record that the ``length`` bytes just placed at ``pbuf + pused`` go to ``fd`` at ``offset``."""
        cdef size_t ncap
        cdef void *grown
        cdef Chunk *last = &self.pchunks[self.pn - 1] if self.pn else NULL
        if last != NULL and last.fd == fd and last.offset + <int64_t>last.length == offset:
            last.length += length
        else:
            if self.pn == self.pcapn:
                ncap = self.pcapn * 2 if self.pcapn else 16
                grown = realloc(self.pchunks, ncap * sizeof(Chunk))
                if grown == NULL:
                    raise MemoryError()
                self.pchunks = <Chunk *>grown
                self.pcapn = ncap
            self.pchunks[self.pn].fd = fd
            self.pchunks[self.pn].offset = offset
            self.pchunks[self.pn].start = self.pused
            self.pchunks[self.pn].length = length
            self.pn += 1
        self.pused += length
        self.pending_seq = last_seq
        return 0

    def submit(self, int fd, int64_t offset, data, uint64_t last_seq):
        cdef Py_buffer view
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            pthread_mutex_lock(&self.mu)
            try:
                if self.err_no:
                    raise WalError(self._message())
                self._reserve(<size_t>view.len)
                memcpy(self.pbuf + self.pused, view.buf, <size_t>view.len)
                self._queued(fd, offset, <size_t>view.len, last_seq)
            finally:
                pthread_mutex_unlock(&self.mu)
        finally:
            PyBuffer_Release(&view)

    def submit_framed(self, int fd, int64_t offset, records, Py_ssize_t start, uint64_t first_seq,
                      uint64_t segment_id, int encoding, Py_ssize_t max_bytes, uint64_t acked):
        """``frame`` + ``submit`` in one step, framing straight into the pending buffer (one copy less).

        The first submission of a write round starts with a durable mark; see the pure twin.
        """
        cdef list recs = records if type(records) is list else list(records)
        cdef Py_ssize_t count, size, mark
        cdef bint jsonl = encoding == C_ENC_JSONL, need
        while True:
            pthread_mutex_lock(&self.mu)
            need = self.pn == 0
            pthread_mutex_unlock(&self.mu)
            mark = (C_MARK_JSONL if jsonl else C_MARK_BIN) if need else 0
            recs = _measure(recs, start, jsonl, max_bytes - mark, &count, &size)
            if count == 0:
                return 0, 0
            pthread_mutex_lock(&self.mu)
            try:
                if self.err_no:
                    raise WalError(self._message())
                if (self.pn == 0) != need:
                    continue       # a leader took the queue meanwhile: measure again
                self._reserve(<size_t>(size + mark))
                if mark:
                    _put_mark(self.pbuf + self.pused, first_seq, segment_id, jsonl,
                              <uint64_t>(self.synced_end if self.synced_fd == fd else 0), acked)
                    self.acked_pending = acked
                _fill(recs, start, count, self.pbuf + self.pused + mark, first_seq, segment_id, jsonl)
                self._queued(fd, offset, <size_t>(size + mark), first_seq + <uint64_t>count - 1)
                return count, size + mark
            finally:
                pthread_mutex_unlock(&self.mu)

    @property
    def written_seq(self):
        return self.written

    @property
    def durable_seq(self):
        return self.durable

    @property
    def synced_acked(self):
        """The highest ack watermark carried by a durable mark known to be fdatasynced."""
        return self.acked_synced

    @property
    def failed(self):
        return self._message() if self.err_no else None

    cdef int _io(self, size_t n, bint sync) noexcept nogil:
        """Write the swapped-out chunks, then fdatasync every file touched since the last sync."""
        cdef size_t i, done
        cdef ssize_t w
        cdef Chunk *c
        cdef int64_t t0, dt
        cdef int b
        cdef void *grown
        for i in range(n):
            c = &self.wchunks[i]
            done = 0
            while done < c.length:
                w = _io_pwrite(c.fd, self.wbuf + c.start + done, c.length - done, <off_t>(c.offset + <int64_t>done))
                if w < 0:
                    if errno == EINTR:
                        continue
                    return errno
                if w == 0:
                    return ENOSPC
                done += <size_t>w
            if self.ndirty == 0 or self.dirty[self.ndirty - 1] != c.fd:
                if self.ndirty == self.capdirty:
                    grown = realloc(self.dirty, self.capdirty * 2 * sizeof(int))
                    if grown == NULL:
                        return 12  # ENOMEM
                    self.dirty = <int *>grown
                    self.capdirty *= 2
                self.dirty[self.ndirty] = c.fd
                self.ndirty += 1
        if self.crash_after_write > 0:
            self.crash_after_write -= 1
            if self.crash_after_write == 0:
                write(2, b"ORGLOOP-WAL-FAULT after_write\n", 30)    # the crash tests check it was reached
                kill(getpid(), SIGKILL)
        if sync:
            for i in range(self.ndirty):
                t0 = _now_ns()
                if _io_fdatasync(self.dirty[i]) != 0:
                    return errno
                dt = (_now_ns() - t0) // 1000
                self.syncs += 1
                self.sync_ns += <uint64_t>(dt * 1000)
                b = 0
                while b < N_BUCKETS - 1 and dt > _BUCKET_BOUNDS[b]:
                    b += 1
                self.buckets[b] += 1
            self.ndirty = 0
        return 0

    cdef int _commit(self, uint64_t seq, bint sync) noexcept nogil:
        cdef size_t n, tcap
        cdef char *tbuf
        cdef Chunk *tch
        cdef uint64_t target, batch_acked
        cdef int rc, last_fd
        cdef int64_t last_end
        pthread_mutex_lock(&self.mu)
        while True:
            if self.err_no:
                rc = self.err_no
                break
            if (self.durable if sync else self.written) >= seq:
                rc = 0
                break
            if self.leader:
                pthread_cond_wait(&self.cv, &self.mu)
                continue
            self.leader = 1
            tbuf = self.wbuf; self.wbuf = self.pbuf; self.pbuf = tbuf
            tcap = self.wcap; self.wcap = self.pcap; self.pcap = tcap
            tch = self.wchunks; self.wchunks = self.pchunks; self.pchunks = tch
            tcap = self.wcapn; self.wcapn = self.pcapn; self.pcapn = tcap
            n = self.pn
            self.pn = 0
            self.pused = 0
            batch_acked = self.acked_pending
            self.acked_pending = 0
            target = self.pending_seq if n else self.written
            if n:
                self.last_fd = self.wchunks[n - 1].fd
                self.last_end = self.wchunks[n - 1].offset + <int64_t>self.wchunks[n - 1].length
            last_fd = self.last_fd
            last_end = self.last_end
            pthread_mutex_unlock(&self.mu)
            rc = self._io(n, sync)
            pthread_mutex_lock(&self.mu)
            self.leader = 0
            if rc:
                self.err_no = rc
            else:
                if target > self.written:
                    self.written = target
                if batch_acked > self.acked_written:
                    self.acked_written = batch_acked
                if sync:
                    if target > self.durable:
                        self.durable = target
                    self.synced_fd = last_fd
                    self.synced_end = last_end
                    self.acked_synced = self.acked_written
            pthread_cond_broadcast(&self.cv)
        pthread_mutex_unlock(&self.mu)
        return rc

    def commit(self, uint64_t seq, bint sync):
        cdef int rc
        with nogil:
            rc = self._commit(seq, sync)
        if rc:
            raise WalError(self._message())

    def sync_now(self):
        """Write everything queued and fdatasync it."""
        self.commit(self.pending_seq, True)

    def stats(self):
        return {"syncs": self.syncs, "sync_seconds": self.sync_ns / 1e9,
                "sync_histogram": [self.buckets[i] for i in range(N_BUCKETS)],
                "written_seq": self.written, "durable_seq": self.durable}

    def _syncer_loop(self, double interval):
        cdef timespec deadline
        cdef int64_t ns
        cdef uint64_t target
        cdef bint need
        with nogil:
            while True:
                clock_gettime(CLOCK_REALTIME, &deadline)
                ns = <int64_t>deadline.tv_nsec + <int64_t>(interval * 1e9)
                deadline.tv_sec += <long>(ns // 1000000000)
                deadline.tv_nsec = <long>(ns % 1000000000)
                pthread_mutex_lock(&self.mu)
                while not self.stop_flag:
                    if pthread_cond_timedwait(&self.cv, &self.mu, &deadline) != 0:
                        break
                if self.stop_flag:
                    pthread_mutex_unlock(&self.mu)
                    break
                need = self.durable < self.pending_seq
                target = self.pending_seq
                pthread_mutex_unlock(&self.mu)
                if need and self._commit(target, 1) != 0:
                    break

    def start_syncer(self, double interval):
        """fdatasync at most ``interval`` seconds after a write (the ``interval`` sync policy)."""
        pthread_mutex_lock(&self.mu)
        self.stop_flag = 0
        pthread_mutex_unlock(&self.mu)
        self._thread = threading.Thread(target=self._syncer_loop, args=(interval,),
                                        name="orgloop-wal-syncer", daemon=True)
        self._thread.start()

    def stop_syncer(self):
        if self._thread is not None:
            pthread_mutex_lock(&self.mu)
            self.stop_flag = 1
            pthread_cond_broadcast(&self.cv)
            pthread_mutex_unlock(&self.mu)
            self._thread.join()
            self._thread = None
