"""``orgloop logs`` reads the rotated files too (gzipped or not, oldest first), and ``--tail N`` prints the last
N matching entries across them. The files are written by the real file logger, rotating by size."""
import json

from orgloop.loggers.jsonl import JsonlFileLogger


def _fill(demo, n, compress=True):
    logger = JsonlFileLogger("pipeline-log", {"path": "out/pipeline.jsonl", "max_size": "200B", "max_files": 10,
                                              "compress": compress}, base_dir=demo)
    try:
        for i in range(n):
            logger.log_many([{"timestamp": "2026-01-01T00:00:00Z", "phase": "deliver.success",
                              "route": "even" if i % 2 == 0 else "odd", "metadata": {"i": i}}])
    finally:
        logger.close()
    return sorted(p.name for p in (demo / "out").iterdir())


def _numbers(result):
    assert result.exit_code == 0, result.output
    return [json.loads(line)["metadata"]["i"] for line in result.stdout.splitlines()]


def test_logs_read_every_rotated_file_in_order(demo, cli):
    files = _fill(demo, 20)
    assert "pipeline.jsonl.1.gz" in files and "pipeline.jsonl.3.gz" in files      # really rotated
    assert _numbers(cli("logs", "-p", demo, "-o", "json")) == list(range(20))


def test_logs_tail_crosses_rotated_files_and_filters_first(demo, cli):
    _fill(demo, 20, compress=False)
    assert (demo / "out" / "pipeline.jsonl.2").is_file()
    current = [json.loads(x)["metadata"]["i"] for x in (demo / "out" / "pipeline.jsonl").read_text().splitlines()]
    assert len(current) < 7                                                       # so a tail of 7 needs older files
    assert _numbers(cli("logs", "-p", demo, "-o", "json", "--tail", "7")) == list(range(13, 20))
    assert _numbers(cli("logs", "-p", demo, "-o", "json", "--tail", "4", "--route", "even")) == [12, 14, 16, 18]
    assert _numbers(cli("logs", "-p", demo, "-o", "json", "--tail", "0")) == []
    assert cli("logs", "-p", demo, "--tail", "-1").exit_code == 64
