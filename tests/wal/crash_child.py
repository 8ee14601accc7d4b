"""Child process for the crash tests: appends from several threads, reports what was acknowledged.

Usage: python crash_child.py DIR THREADS SEGMENT_SIZE ROUND [all]
Prints one line per acknowledged record: "seq thread index" (flushed), "acking seq" before acking and
"ack seq" after. With ``all`` every record is acked (so that compaction runs), else the first of every
third append.
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
    ack_all = sys.argv[5:] == ["all"]
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
            if ack_all or i % 3 == 0:
                acked = [int(line.split()[0]) for line in lines.splitlines()]
                if not ack_all:
                    acked = acked[:1]
                with out_lock:                  # said before: a kill may come between the ack and its report
                    sys.stdout.write("".join(f"acking {s}\n" for s in acked))
                    sys.stdout.flush()
                wal.ack_many(acked)
                with out_lock:
                    sys.stdout.write("".join(f"ack {s}\n" for s in acked))
                    sys.stdout.flush()

    for t in range(threads):
        threading.Thread(target=work, args=(t,), daemon=True).start()
    with out_lock:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    main()
