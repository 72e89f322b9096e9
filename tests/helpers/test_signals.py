"""runtime.signals and each tier's wording around it (no root needed)."""

import signal

import pytest

from runtime import signals
from runtime.errors import InvalidArgument


@pytest.mark.parametrize("value", [9, "9", "KILL", "kill", "SIGKILL", "sigkill", "SigKill"])
def test_names_and_numbers(value):
    assert signals.parse(value) == 9


def test_every_python_signal_name_and_the_range_ends():
    for sig in signal.Signals:
        assert signals.parse(sig.name) == int(sig) == signals.parse(sig.name[3:].lower())
    assert signals.parse(1) == 1 and signals.parse("64") == 64
    assert signals.parse("RTMIN") == signal.SIGRTMIN


@pytest.mark.parametrize("bad", [0, 65, -1, "0", "65", "-9", "", "NOPE", "SIG", "SIG_DFL", "_DFL",
                                 True, False, None, 9.0, "9.0", " KILL", "٩"])
def test_refusals_are_value_errors(bad):
    with pytest.raises(ValueError):
        signals.parse(bad)


def test_name():
    assert signals.name(9) == "SIGKILL" and signals.name(15) == "SIGTERM" and signals.name(99) == "SIG99"


def test_each_tier_keeps_its_wording():
    from runtime.daemon.stop import parse_signal as dockerd
    from runtime.lowlevel.container import parse_signal as runc
    from runtime.shim.task import parse_signal as shim
    assert dockerd("") == signal.SIGKILL and dockerd(None, 15) == 15 and dockerd("HUP") == 1
    with pytest.raises(InvalidArgument, match="^Invalid signal: FOO$"):
        dockerd("FOO")
    with pytest.raises(InvalidArgument, match="^invalid signal: 99$"):
        runc("99")
    with pytest.raises(InvalidArgument, match="^unknown signal 'FOO'$"):
        runc("FOO")
    assert shim(" term ") == 15
    with pytest.raises(InvalidArgument, match="invalid signal True"):
        shim(True)
