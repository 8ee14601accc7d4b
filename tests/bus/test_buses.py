from orgloop.bus import FileWalBus, InMemoryBus, open_bus

from .conformance import BusContract, events


class TestInMemoryBus(BusContract):
    def make_bus(self, tmp_path):
        return InMemoryBus()


class TestFileWalBus(BusContract):
    durable = True

    def make_bus(self, tmp_path):
        return FileWalBus(tmp_path / "wal", segment_size=64 << 10)

    def reopen(self, bus, tmp_path):
        return FileWalBus(tmp_path / "wal", segment_size=64 << 10)


class TestFileWalBusPureTwin(TestFileWalBus):
    def make_bus(self, tmp_path):
        return FileWalBus(tmp_path / "wal", segment_size=64 << 10, implementation="pure")

    def reopen(self, bus, tmp_path):
        return FileWalBus(tmp_path / "wal", segment_size=64 << 10, implementation="pure")


def test_choosing_the_bus_is_one_line_of_config(tmp_path):
    mem = open_bus("memory")
    wal = open_bus("filewal", path=tmp_path / "w", segment_size=64 << 10)
    try:
        assert isinstance(mem, InMemoryBus) and isinstance(wal, FileWalBus)
        assert list(wal.publish_many(events(2))) == [1, 2]
    finally:
        mem.close()
        wal.close()
