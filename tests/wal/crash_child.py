"""Child process for the crash tests: appends from several threads, reports what was acknowledged.

Usage: python crash_child.py DIR THREADS SEGMENT_SIZE ROUND
Prints one line per acknowledged record: "seq thread index" (flushed), and "ack seq" after acking.
Payloads are derived from (round, thread, index), so the parent can check their bytes.
"""
import hashlib
import sys
import threading

from orgloop.wal import Wal


def payload(round_: int, thread: int, i: int) -> bytes:
    head = b"%d:%d:%d:" % (round_, thread, i)
    return head + hashlib.sha256(head).digest() * (1 + (i * 7 + thread) % 40)


def main() -> None:
    directory, threads, segment, round_ = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    wal = Wal(directory, segment_size=segment, sync="always", ack_flush_interval=0.01)
    out_lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(10**9):
            if i % 5 == 4:
                seqs = wal.append_many([payload(round_, t, i + k) for k in range(3)])
                lines = "".join(f"{s} {t} {i + k}\n" for k, s in enumerate(seqs))
            else:
                seq = wal.append(payload(round_, t, i))
                lines = f"{seq} {t} {i}\n"
            with out_lock:
                sys.stdout.write(lines)
                sys.stdout.flush()
            if i % 3 == 0:
                first = int(lines.split()[0])
                wal.ack(first)
                with out_lock:
                    sys.stdout.write(f"ack {first}\n")
                    sys.stdout.flush()

    for t in range(threads):
        threading.Thread(target=work, args=(t,), daemon=True).start()
    with out_lock:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    main()
