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


# ------------------------------------------------ verify reports what it finds, exit 1
def _copy(good: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(good, out)
    return out


def _mismatch(out: Path) -> list[int]:
    """verify's mismatched vectors, through the CLI (exit 1 and MISMATCH) and --json."""
    res = run_main("verify", str(out))
    assert res.returncode == 1 and "MISMATCH on vectors" in res.stdout, (res.stdout,
                                                                         res.stderr)
    res = run_main("verify", str(out), "--json")
    assert res.returncode == 1, res.stderr
    result = json.loads(res.stdout)
    assert result["bit_exact"] is False
    return list(result["mismatched"])


def test_an_untouched_build_verifies(good: Path) -> None:
    """The control for the mismatch tests below: the same OUT, unchanged, passes."""
    res = run_main("verify", str(good), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["mismatched"] == []


def test_a_corrupted_expected_vector_is_a_mismatch(good: Path, tmp_path: Path) -> None:
    out = _copy(good, tmp_path)
    exp = out / "test_vectors" / "expected_1.bin"
    data = bytearray(exp.read_bytes())
    data[len(data) // 3] ^= 0x01  # one bit of one byte
    exp.write_bytes(bytes(data))
    assert _mismatch(out) == [1]


def test_a_runner_that_prints_wrong_bytes_is_a_mismatch(good: Path, tmp_path: Path) -> None:
    out = _copy(good, tmp_path)
    main_c = out / "host" / "main.c"
    text = main_c.read_text()
    anchor = "    /* a full disk or a closed pipe"
    assert anchor in text
    main_c.write_text(text.replace(anchor, """\
    {   /* planted: one output bit flipped */
        static int8_t wrong[TG_OUTPUT_SIZE];
        memcpy(wrong, tg_model_output(), TG_OUTPUT_SIZE);
        wrong[TG_OUTPUT_SIZE / 2] ^= 1;
        return fwrite(wrong, 1, TG_OUTPUT_SIZE, stdout) == TG_OUTPUT_SIZE ? 0 : 1;
    }
""" + anchor))
    assert _mismatch(out) == [0, 1]


def test_a_missing_output_vector_is_a_mismatch(good: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A runner that answers the first vector and stops: the second is a mismatch."""
    import tinygen.verify as tv

    real = tv.host.run
    monkeypatch.setattr(tv.host, "run", lambda exe, inputs: real(exe, inputs)[:1])
    assert _mismatch(_copy(good, tmp_path)) == [1]


# --------------------------------------------- --sanitize: the sanitizers are really on
def test_sanitize_catches_an_arena_overflow(good: Path, tmp_path: Path) -> None:
    """A planted bug: the arena 64 bytes short of the plan, so the last buffer runs past
    it. AddressSanitizer stops the run; the same OUT without --sanitize says nothing of
    it (the overflow lands in other static data)."""
    out = _copy(good, tmp_path)
    model_c = out / "model" / "tinygen_model.c"
    text = model_c.read_text()
    decl = "static int8_t tg_arena[TG_ARENA_BYTES]"
    assert decl in text
    model_c.write_text(text.replace(decl, "static int8_t tg_arena[TG_ARENA_BYTES - 64]"))
    assert run_main("verify", str(out)).returncode == 0  # unnoticed without sanitizers
    res = run_main("verify", str(out), "--sanitize")
    assert_one_line_error(res, "the host build failed on a test vector",
                          "AddressSanitizer: global-buffer-overflow")


def test_sanitize_catches_undefined_behaviour(good: Path, tmp_path: Path) -> None:
    """A planted signed overflow in a file of OUT/model: UBSan stops the run."""
    out = _copy(good, tmp_path)
    (out / "model" / "zz_planted.c").write_text(
        "#include <limits.h>\n"
        "volatile int tg_planted_big = INT_MAX;\n"
        "volatile int tg_planted_sum;\n"
        "static void tg_planted(void) __attribute__((constructor));\n"
        "static void tg_planted(void) { tg_planted_sum = tg_planted_big + 1; }\n")
    assert run_main("verify", str(out)).returncode == 0  # unnoticed without sanitizers
    res = run_main("verify", str(out), "--sanitize")
    assert_one_line_error(res, "the host build failed on a test vector",
                          "runtime error: signed integer overflow")
