import subprocess
import sys

from sceneparser import cli


def test_help_lists_every_command(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_console_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "sceneparser.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith("sceneparser ")
