"""The package exports its main types, loaded on first use."""
import subprocess
import sys

import orgloop


def test_every_exported_name_resolves_to_its_defining_module():
    from orgloop.bus import FileWalBus, open_bus
    from orgloop.runtime import Runtime
    from orgloop.spec import RuntimeSpec
    from orgloop.wal import Wal

    assert (orgloop.Runtime, orgloop.RuntimeSpec, orgloop.FileWalBus, orgloop.open_bus, orgloop.Wal) == (
        Runtime, RuntimeSpec, FileWalBus, open_bus, Wal)
    for name in orgloop.__all__:
        assert getattr(orgloop, name) is not None, name
    assert set(orgloop.__all__) <= set(dir(orgloop))


def test_unknown_names_raise_attribute_error():
    try:
        orgloop.NoSuchThing
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_the_package_does_not_load_the_runtime():
    code = "import sys, orgloop; print('orgloop.runtime' in sys.modules, 'orgloop.wal' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
