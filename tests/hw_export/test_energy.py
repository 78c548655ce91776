"""hw_export/energy.py: a profile file that does not parse is the user's error; anything else is a bug."""

import sys

import pytest

from hw_export.energy import LOIHI, load_profile
from hw_export.errors import UserError


def profile_toml(tmp_path, text=None):
    path = tmp_path / "mine.toml"
    fields = {**LOIHI.to_dict(), "name": "mine"}
    path.write_text(text if text is not None else "\n".join(
        f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in fields.items()))
    return path


def toml_module():
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib


def test_a_toml_profile_loads_and_a_malformed_one_is_one_line(tmp_path):
    assert load_profile(profile_toml(tmp_path)).name == "mine"
    with pytest.raises(UserError, match="mine.toml: not valid TOML") as error:
        load_profile(profile_toml(tmp_path, 'name = "mine"\ne_synop_pj = = 1\n'))
    assert "\n" not in str(error.value)
    (tmp_path / "bad.json").write_text("{name: mine")
    with pytest.raises(UserError, match="bad.json: not valid JSON"):
        load_profile(tmp_path / "bad.json")
    (tmp_path / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(UserError, match="not valid TOML"):
        load_profile(tmp_path / "latin1.toml")


def test_a_failure_of_the_toml_parser_itself_is_not_turned_into_the_users_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the parser")

    monkeypatch.setattr(toml_module(), "loads", broken)
    with pytest.raises(RuntimeError, match="a bug in the parser"):
        load_profile(profile_toml(tmp_path))


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="tomllib is in the standard library from Python 3.11")
def test_a_missing_toml_package_is_not_called_invalid_toml(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tomli", None)  # `import tomli` fails as if it were not installed
    with pytest.raises(ImportError):
        load_profile(profile_toml(tmp_path))
