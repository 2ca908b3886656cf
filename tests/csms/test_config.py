"""A configuration Loadstar cannot use is refused with the file, the key and the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from csms.config import Config, ConfigError, SiteSpec, load_config
from csms.sites import SiteDirectory

REPO = Path(__file__).resolve().parents[2]
SITE = '[[sites]]\nid = "{id}"\nmax_power_kw = {kw}\n'


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "loadstar.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    prefix = f"{path}: "
    assert all(line.startswith(prefix) for line in caught.value.lines), caught.value.lines
    return [line.removeprefix(prefix) for line in caught.value.lines]


def test_the_shipped_config_and_the_defaults_load() -> None:
    shipped = load_config(REPO / "config.toml")
    assert [s.id for s in shipped.sites] == ["default"]
    assert load_config(None) == Config()


def test_an_explicit_config_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml")
    assert caught.value.lines == [f"{tmp_path / 'nope.toml'}: file not found"]


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    [line] = problems(tmp_path, '[ocpp]\nport = 9000\nhost = \n')
    assert line.startswith("line 3: invalid TOML: ")


@pytest.mark.parametrize(("text", "expected"), [
    ("[ocp]\nport = 1\n", "ocp: unknown section"),
    ("[ocpp]\nprot = 1\n", "ocpp.prot: unknown key"),
    (SITE.format(id="a", kw=10) + "maxpower = 3\n", "sites[0].maxpower: unknown key"),
])
def test_unknown_sections_and_keys_are_named(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [expected]


@pytest.mark.parametrize(("text", "key"), [
    (SITE.format(id="a", kw=-5), "sites[0].max_power_kw"),
    (SITE.format(id="a", kw=0), "sites[0].max_power_kw"),
    (SITE.format(id="a", kw=10) + "max_current_a = -1\n", "sites[0].max_current_a"),
    (SITE.format(id="a", kw=10) + "buffer = 1.0\n", "sites[0].buffer"),
    (SITE.format(id="a", kw=10) + "buffer = -0.1\n", "sites[0].buffer"),
    (SITE.format(id="a", kw=10) + 'timezone = "Mars/Base"\n', "sites[0].timezone"),
    ("[ocpp]\nport = 70000\n", "ocpp.port"),
    ("[http]\nport = -1\n", "http.port"),
    ('[http]\nenabled = "maybe"\n', "http.enabled"),
    ('[http]\nhost = ""\n', "http.host"),
    ("[ocpp]\nheartbeat_interval_s = -300\n", "ocpp.heartbeat_interval_s"),
    ("[ocpp]\ncall_timeout_s = 0\n", "ocpp.call_timeout_s"),
    ("[load]\ncoalesce_s = -0.5\n", "load.coalesce_s"),
    ("[load]\nworkers = 0\n", "load.workers"),
    ("[[chargers]]\npriority = 6\n", "chargers[0].priority"),
    ("[[chargers]]\nmin_current_a = -6\n", "chargers[0].min_current_a"),
    ("[[chargers]]\nphases = [1, 4]\n", "chargers[0].phases[1]"),
    ('[log]\nlevel = "verbose"\n', "log.level"),
    (SITE.format(id="a", kw=10) + "default_dwell_h = 0\n", "sites[0].default_dwell_h"),
])
def test_nonsensical_numbers_are_refused_by_key(tmp_path: Path, text: str, key: str) -> None:
    [line] = problems(tmp_path, text)
    assert line.startswith(f"{key}: "), line


def test_duplicate_site_ids_are_refused(tmp_path: Path) -> None:
    text = SITE.format(id="a", kw=10) + SITE.format(id="a", kw=20)
    assert problems(tmp_path, text) == ["sites[1].id: duplicate id 'a' (also sites[0])"]


def test_duplicate_group_ids_are_refused_within_and_across_sites(tmp_path: Path) -> None:
    group = '[[sites.groups]]\nid = "g"\n'
    assert problems(tmp_path, SITE.format(id="a", kw=10) + group + group) == [
        "sites[0].groups[1].id: duplicate group id 'g'"]
    across = SITE.format(id="a", kw=10) + group + SITE.format(id="b", kw=10) + group
    assert problems(tmp_path, across) == [
        "sites[1].groups[0].id: duplicate id 'g' (also sites[0].groups[0])"]
    named_like_a_site = SITE.format(id="a", kw=10) + SITE.format(id="b", kw=10) + \
        '[[sites.groups]]\nid = "a"\n'
    assert problems(tmp_path, named_like_a_site) == [
        "sites[1].groups[0].id: duplicate id 'a' (also sites[0])"]


def test_a_group_parent_must_be_a_group_of_the_site(tmp_path: Path) -> None:
    text = SITE.format(id="a", kw=10) + '[[sites.groups]]\nid = "g"\nparent = "nope"\n'
    assert problems(tmp_path, text) == ["sites[0].groups[0].parent: no group 'nope' in site 'a'"]
    cycle = SITE.format(id="a", kw=10) + '[[sites.groups]]\nid = "x"\nparent = "y"\n' \
        '[[sites.groups]]\nid = "y"\nparent = "x"\n'
    assert problems(tmp_path, cycle) == [
        "sites[0].groups[0].parent: group 'x' is its own ancestor"]


def test_a_limit_the_planner_could_not_place_in_time_is_refused(tmp_path: Path) -> None:
    scheduled = SITE.format(id="a", kw=10) + \
        '[[sites.limits]]\nkind = "scheduled"\npower_kw = 5\nstart_cron = "0 17 * * *"\n'
    assert problems(tmp_path, scheduled) == [
        "sites[0].limits[0].end_cron: required for a scheduled limit"]


def test_a_transformer_needs_phasor_wiring_its_primary_limit_and_both_voltages(
        tmp_path: Path) -> None:
    base = SITE.format(id="a", kw=10) + 'transformer = "delta_wye"\n'
    assert problems(tmp_path, base) == ['sites[0].wiring: must be "phasor" for a site with a '
                                        'transformer']
    assert problems(tmp_path, base + 'wiring = "phasor"\ntransformer_primary_a = 20\n') == [
        "sites[0].transformer_primary_v: required for a site with a transformer"]


def test_a_phasor_site_with_a_transformer_reaches_the_allocator_as_declared(
        tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(SITE.format(id="a", kw=10) + 'wiring = "phasor"\ntransformer = "delta_wye"\n'
                    'transformer_primary_a = 20\ntransformer_primary_v = 480\n'
                    'transformer_secondary_v = 208\n')
    site = SiteDirectory.from_config(load_config(path)).site("a")
    assert (site.wiring, site.transformer, site.transformer_primary_a,
            site.transformer_primary_v, site.transformer_secondary_v) == (
        "phasor", "delta_wye", 20, 480, 208)
    assert SiteDirectory.from_config(Config()).site("default").wiring == "arithmetic"


def test_a_good_config_keeps_its_tree_and_makes_the_database_path_absolute(
        tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(SITE.format(id="a", kw=10) + '[[sites.groups]]\nid = "g"\n'
                    '[[sites.groups]]\nid = "h"\nparent = "g"\n[store]\npath = "x.db"\n')
    config = load_config(path)
    assert [g.parent for g in config.sites[0].groups] == [None, "g"]
    assert config.store.path == str(tmp_path / "x.db")


@pytest.mark.parametrize("verb", ["serve", "chargers"])
def test_the_cli_prints_one_line_per_problem_and_exits_2(tmp_path: Path, verb: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[ocp]\n[ocpp]\nport = 70000\n")
    done = subprocess.run([sys.executable, "-m", "adapters.cli", verb, "--config", str(path)],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert sorted(done.stderr.splitlines()) == [
        f"loadstar: {path}: ocp: unknown section",
        f"loadstar: {path}: ocpp.port: input should be less than or equal to 65535, got 70000",
    ]


def test_the_cli_refuses_a_missing_config_file(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "adapters.cli", "serve", "--config", "nope.toml"],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, "loadstar: nope.toml: file not found\n")


def test_a_sites_default_dwell_reaches_the_allocators_site(tmp_path: Path) -> None:
    path = tmp_path / "loadstar.toml"
    path.write_text(SITE.format(id="a", kw=10) + 'objective = "fleet"\ndefault_dwell_h = 3.5\n')
    config = load_config(path)
    site = SiteDirectory(config.sites, config.chargers, "a").site("a")
    assert site.default_dwell_h == 3.5
    assert SiteDirectory([SiteSpec(id="b", max_power_kw=5)], [], "b").site("b").default_dwell_h == 8
