"""Fixtures: the Asterisk fake (callback-fake-asterisk, its own process) and services on it.

Run by ctest (test `python_bindings`), which sets PYTHONPATH to the build's python folder and
names the plugin folder and the fake; by hand:
    PYTHONPATH=build/python CALLBACK_PLUGIN_DIR=build/lib/callback/plugins \
    CALLBACK_FAKE_ASTERISK=build/bin/callback-fake-asterisk python3 -m pytest bindings/python/tests
"""

import json
import os
import subprocess

import pytest
from decimal import Decimal

import callback

PLUGIN_DIR = os.environ.get("CALLBACK_PLUGIN_DIR", "build/lib/callback/plugins")
FAKE = os.environ.get("CALLBACK_FAKE_ASTERISK", "build/bin/callback-fake-asterisk")

DECK = "prefix;description;rate\n1;ones;0.60\n10;tens;0.30\n"


@pytest.fixture(scope="session")
def asterisk_port():
    """A fake Asterisk at 1/100 of real time (phones by number: 1XXX answers and stays,
    2XXX hangs up 5 s after answering, 3XXX busy, 4XXX rings forever, 5XXX congestion,
    9XXX answers at once, 98XX answers and hangs up at once)."""
    fake = subprocess.Popen([FAKE, "--port", "0", "--time-scale", "0.01"], stdout=subprocess.PIPE, text=True)
    line = fake.stdout.readline()
    assert "listening on 127.0.0.1:" in line, line
    yield int(line.rsplit(":", 1)[1])
    fake.terminate()
    assert fake.wait(timeout=30) == 0


def make_config(tmp_path, port, billing):
    db = str(tmp_path / "callback.db")
    return {
        "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
        "store": {"plugin": "callback.store.sqlite", "config": {"path": db}},
        "billing": {"plugin": "callback.billing.sqlite", "enabled": billing, "config": {"path": db}}
        if billing else {"plugin": "callback.billing.sqlite", "enabled": False},
        "engines": [{"plugin": "callback.engine.ami",
                     "config": {"servers": [f"127.0.0.1:{port}"], "secret": "callbacksecret"}}],
        "service": {"campaigns": {"free": {"limit_seconds": 30}}, "b_ring_timeout_seconds": 600,
                    "max_in_flight": 0},
        "log": {"level": "warning"},
    }


@pytest.fixture
def config(tmp_path, asterisk_port):
    return make_config(tmp_path, asterisk_port, billing=False)


@pytest.fixture
def log_file(tmp_path):
    return str(tmp_path / "service.log")


@pytest.fixture
def service(config, log_file):
    """A started service on the fake, campaign "free", billing off."""
    with callback.Service(config=config, plugin_dirs=[PLUGIN_DIR], log_file=log_file) as s:
        yield s


@pytest.fixture
def billed(tmp_path, asterisk_port, log_file):
    """A started service with SQLite billing: tariff "default" (1: 0.60/min, 10: 0.30/min),
    account "123" with 5.00 CNY and PIN 2468."""
    with callback.Service(config=make_config(tmp_path, asterisk_port, billing=True),
                          plugin_dirs=[PLUGIN_DIR], log_file=log_file) as s:
        assert s.import_rates("default", DECK) == 2
        s.create_account("123", balance=Decimal("5.00"), pin="2468")
        yield s


def write_config(tmp_path, config):
    path = tmp_path / "callback.json"
    path.write_text(json.dumps(config))
    return str(path)
