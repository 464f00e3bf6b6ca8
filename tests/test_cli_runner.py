"""`thugrq`'s arguments and messages, in this process through click's CliRunner.

Each case runs the real command on the private Redis; a refusal says why on stderr, prints
nothing on stdout and writes nothing to Redis. End-to-end behaviour (the console scripts as
processes, real workers) is tested elsewhere.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points

import click
import pytest
from click.testing import CliRunner, Result

from tests.conftest import ROOT
from thugrq.cli import main

README = (ROOT / "README.md").read_text()


@pytest.fixture
def thugrq(redis_url: str):
    """Run `thugrq ARGS...` on the private Redis (whatever REDIS_URL says); click's Result."""

    def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
        environment = {"THUGRQ_REDIS_URL": redis_url, "REDIS_URL": None, **(env or {})}
        return CliRunner().invoke(main, args, prog_name="thugrq", env=environment)

    return run


def assert_refused(result: Result, message: str, exit_code: int = 1) -> None:
    """Refused as a user error (1: thugrq's, 2: click's usage errors), never by an exception."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == exit_code, result.output
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args, exit_code, message",
    [
        (["not-a-url"], 1, "invalid URL 'not-a-url'"),
        (["ftp://x.test/"], 1, "give a full http:// or https:// URL"),
        (["http://x.test/", "http://bad host/"], 1, "spaces or control characters"),
        (["http://x.test:99999/"], 1, "invalid URL 'http://x.test:99999/'"),
        (["--useragent", "nosuchua", "http://x.test/"], 1, "invalid useragent 'nosuchua'"),
        (
            ["--useragent", "win7ie90", "--useragent", "nosuch", "http://x.test/"], 1,
            "invalid useragent 'nosuch'",
        ),
        (["--queue", "Narnia", "http://x.test/"], 1, "unknown country 'Narnia'"),
        (["--country", "Narnia", "http://x.test/"], 1, "unknown country 'Narnia'"),
        (["--referer", "javascript:alert(1)", "http://x.test/"], 1, "invalid referer"),
        (["--timeout", "0", "http://x.test/"], 2, "Invalid value for '--timeout': 0 is not"),
        (["--proxy", "ftp://127.0.0.1:21", "http://x.test/"], 1, "invalid proxy"),
        (["--proxy", "socks5://nohost", "http://x.test/"], 1, "invalid proxy"),
        (["--events", "click,<script>", "http://x.test/"], 1, "invalid events"),
        (["--shockwave", "11; rm -rf /", "http://x.test/"], 1, "invalid shockwave"),
        (["--delay", "-1", "http://x.test/"], 2, "Invalid value for '--delay': -1 is not"),
        (
            ["--job-timeout", "30", "--timeout", "60", "http://x.test/"], 1,
            "must be longer than the analysis timeout",
        ),
    ],
)
def test_invalid_enqueue_input_is_refused_and_nothing_is_written(
    thugrq, connection, args, exit_code, message
):
    assert_refused(thugrq("enqueue", *args), message, exit_code)
    assert connection.dbsize() == 0


def test_an_unknown_useragent_is_refused_with_the_allowed_values(thugrq):
    refused = thugrq("enqueue", "--useragent", "nosuchua", "http://x.test/")
    assert "winxpie60" in refused.stderr and "win7ie90" in refused.stderr


def test_one_invalid_line_among_a_thousand_is_named_and_nothing_is_written(
    thugrq, connection, tmp_path
):
    lines = [f"http://host{n}.test/page" for n in range(1000)]
    lines.insert(616, "htp://typo.test/")
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(lines) + "\n")
    refused = thugrq("enqueue", "--url-file", str(urls), "--country", "IT")
    assert_refused(refused, f"{urls} line 617: invalid URL 'htp://typo.test/'")
    assert connection.dbsize() == 0


def test_a_bad_line_of_a_country_file_is_named_and_nothing_is_written(
    thugrq, connection, tmp_path
):
    countries = tmp_path / "countries.txt"
    countries.write_text("it\nAtlantis\n")
    refused = thugrq("enqueue", "http://a.test/", "--country-file", str(countries))
    assert_refused(refused, f"{countries} line 2: unknown country 'Atlantis'")
    assert connection.dbsize() == 0


def test_countries_of_a_country_file_are_queues(thugrq, tmp_path):
    countries = tmp_path / "countries.txt"
    countries.write_text("it\n# comment\nGermany\n")
    enqueued = thugrq("enqueue", "http://a.test/", "--country-file", str(countries))
    assert enqueued.exit_code == 0, enqueued.output
    listed = thugrq("queues").stdout.splitlines()[1:]
    assert sorted(line.split()[:2] for line in listed) == [["DE", "1"], ["IT", "1"]]


def test_enqueue_warns_for_a_country_with_no_live_worker(thugrq):
    enqueued = thugrq("enqueue", "--country", "BR", "http://x.test/")
    assert enqueued.exit_code == 0, enqueued.output
    assert "no live worker serves BR" in enqueued.stderr
    assert len(enqueued.stdout.split()) == 1


def test_wait_needs_ids_or_a_group(thugrq):
    assert_refused(thugrq("wait"), "give job ids or --group ID", exit_code=2)


def test_result_of_a_queued_job_says_so(thugrq):
    job_id = thugrq("enqueue", "http://a.test/").stdout.strip()
    assert_refused(thugrq("result", job_id), "still queued")


def test_result_of_an_unknown_id_says_so(thugrq):
    assert_refused(thugrq("result", "no-such-job"), "no job 'no-such-job'")


def test_an_unreachable_redis_is_one_line_naming_it(thugrq, connection):
    refused = thugrq("enqueue", "http://a.test/", env={"THUGRQ_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert_refused(refused, "cannot reach Redis at redis://127.0.0.1:1/0")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert connection.dbsize() == 0


def test_an_invalid_redis_url_is_refused_with_the_expected_form(thugrq):
    refused = thugrq("--redis-url", "http://127.0.0.1:6379", "queues")
    assert_refused(refused, "invalid Redis URL")
    assert "redis://" in refused.stderr


def test_the_redis_url_flag_wins_over_the_environment(thugrq, redis_url, connection):
    enqueued = thugrq(
        "--redis-url", redis_url, "enqueue", "http://a.test/",
        env={"THUGRQ_REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert enqueued.exit_code == 0, enqueued.output
    assert connection.exists(f"rq:job:{enqueued.stdout.strip()}")


def test_useragents_lists_thug_personalities(thugrq):
    listed = thugrq("useragents").stdout
    assert "winxpie60" in listed and "Internet Explorer 6.0 (Windows XP)" in listed


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.0.2.1"])
def test_the_dashboard_refuses_a_non_loopback_bind_without_credentials(thugrq, address):
    refused = thugrq("dashboard", "--bind", address, "--port", "9")
    assert_refused(
        refused, f"refusing to serve the dashboard on {address} without credentials"
    )
    assert len(refused.stderr.strip().splitlines()) == 1


def test_the_dashboard_refuses_a_username_without_a_password(thugrq):
    refused = thugrq("dashboard", "--username", "analyst", "--port", "9")
    assert_refused(refused, "give both --username and --password")


def test_the_dashboard_refuses_an_allowed_host_that_is_no_host_name(thugrq):
    refused = thugrq("dashboard", "--allowed-host", "a.example/path", "--port", "9")
    assert_refused(refused, "'a.example/path'", exit_code=2)
    assert "--allowed-host" in refused.stderr


def test_the_dashboard_on_an_unreachable_redis_is_one_line_naming_it(thugrq):
    refused = thugrq("dashboard", env={"THUGRQ_REDIS_URL": "redis://127.0.0.1:9/0"})
    assert_refused(refused, "cannot reach Redis at redis://127.0.0.1:9/0")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_dashboard_help_documents_the_bind_refusal(thugrq):
    shown = thugrq("dashboard", "--help")
    assert "refuses" in shown.stdout and "--username" in shown.stdout


def subcommands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every command under `group`, subcommands of subgroups included."""
    paths = []
    for name, command in group.commands.items():
        paths.append((*path, name))
        if isinstance(command, click.Group):
            paths.extend(subcommands(command, (*path, name)))
    return paths


def command_at(path: tuple[str, ...]) -> click.Command:
    command = main
    for name in path:
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", subcommands(main), ids=" ".join)
def test_every_thugrq_command_has_help_and_is_in_the_readme(thugrq, path):
    assert (command_at(path).help or "").strip(), f"thugrq {' '.join(path)} has no help text"
    shown = thugrq(*path, "--help")
    assert shown.exit_code == 0, shown.output
    assert f"Usage: thugrq {' '.join(path)}" in shown.stdout
    assert re.search(rf"`thugrq {' '.join(path)}\b", README), "not in README.md"


def test_thugrq_worker_has_help_and_is_in_the_readme():
    (script,) = entry_points(group="console_scripts", name="thugrq-worker")
    worker = script.load()
    assert (worker.help or "").strip()
    shown = CliRunner().invoke(worker, ["--help"], prog_name="thugrq-worker")
    assert shown.exit_code == 0, shown.output
    assert "Usage: thugrq-worker" in shown.stdout
    assert "`thugrq-worker" in README
