"""``tinygen verify`` on a damaged OUT: one line and exit 2, or MISMATCH and exit 1;
never a traceback, never a pass with fewer vectors than report.json counts, and --json is
strict JSON."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_main

FAST = ("--calib", "1", "--vectors", "2", "--window-ms", "200")


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "good"
    res = run_main("build", "preset:share-blocks", "-o", str(out), *FAST)
    assert res.returncode == 0, res.stderr
    return out


def _report(edit: Callable[[dict], object]) -> Callable[[Path], None]:  # type: ignore[type-arg]
    def damage(out: Path) -> None:
        report = json.loads((out / "report.json").read_text())
        edited = edit(report)
        (out / "report.json").write_text(json.dumps(report if edited is None else edited))
    return damage


def _set(d: dict, key: str, value: object) -> None:  # type: ignore[type-arg]
    d[key] = value


def _unlink(rel: str) -> Callable[[Path], None]:
    return lambda out: (out / rel).unlink()


def _to_dir(out: Path) -> None:
    (out / "test_vectors" / "expected_0.bin").unlink()
    (out / "test_vectors" / "expected_0.bin").mkdir()


def _short_float(out: Path) -> None:
    f = out / "test_vectors" / "float_0.bin"
    f.write_bytes(f.read_bytes()[:-3])


DAMAGES: list[tuple[str, Callable[[Path], None], str]] = [
    ("report is a list", _report(lambda r: []), "not a JSON object"),
    ("report lacks output", _report(lambda r: r.pop("output") and None), "'output'"),
    ("report not utf-8", lambda out: (out / "report.json").write_bytes(b"\xff\xfe{"),
     "not valid UTF-8 JSON"),
    ("string scale", _report(lambda r: _set(r["output"], "scale", "0.1")),
     "output.scale '0.1'"),
    ("expected_1 missing", _unlink("test_vectors/expected_1.bin"), "expected_1.bin"),
    ("expected_0 is a folder", _to_dir, "expected_0.bin is missing or not a file"),
    ("float_0 short", _short_float, "float_0.bin holds"),
    ("fewer vectors than the report", _unlink("test_vectors/input_1.bin"),
     "input_1.bin is missing"),
]


@pytest.mark.parametrize("what,damage,needle", DAMAGES, ids=[d[0] for d in DAMAGES])
def test_damaged_out_is_one_line(good: Path, tmp_path: Path, what: str,
                                 damage: Callable[[Path], None], needle: str) -> None:
    out = tmp_path / "out"
    shutil.copytree(good, out)
    damage(out)
    assert_one_line_error(run_main("verify", str(out)), needle)
    assert_one_line_error(run_main("verify", str(out), "--json"), needle)


def test_a_runner_that_prints_nothing_is_a_mismatch(good: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(good, out)
    main_c = out / "host" / "main.c"
    main_c.write_text(main_c.read_text().split("int main(")[0] + "int main(void)\n"
                      "{\n    return 0;\n}\n")
    res = run_main("verify", str(out), "--json")
    assert res.returncode == 1, res.stderr
    result = json.loads(res.stdout)
    assert result["bit_exact"] is False and result["mismatched"] == [0, 1]
    assert result["snr_db"] is None


def test_json_is_strict_when_the_float_output_is_silent(good: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(good, out)
    for f in (out / "test_vectors").glob("float_*.bin"):  # an all-zero float reference
        f.write_bytes(bytes(f.stat().st_size))
    res = run_main("verify", str(out), "--json")
    assert res.returncode == 0 and res.stderr == ""
    assert json.loads(res.stdout, parse_constant=lambda c: pytest.fail(c))["snr_db"] is None
