"""Settings are read once, validated up front, and errors name the setting."""

import dataclasses
from pathlib import Path

import pytest

from mailq import config
from mailq.errors import ConfigError


def test_defaults_put_database_blobs_and_key_under_var_dir():
    s = config.load({}, env_file=None)
    assert s.database_url == "sqlite:///var/mailq.db"
    assert s.storage_url == "file://var/blobs"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.poll_interval == 60
    assert s.max_message_bytes == 50 * 1024 * 1024
    assert str(s.secret_key_file) == "var/secret.key"


def test_redis_url_falls_back_to_plain_redis_url():
    assert config.load({"REDIS_URL": "redis://10.0.0.9:6380/2"}, env_file=None).redis_url == "redis://10.0.0.9:6380/2"
    s = config.load({"REDIS_URL": "redis://a/1", "MAILQ_REDIS_URL": "redis://b/3"}, env_file=None)
    assert s.redis_url == "redis://b/3"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"MAILQ_DATABASE_URL": "mysqlx://u@h/db"}, "MAILQ_DATABASE_URL: unsupported scheme 'mysqlx', use sqlite:// or postgresql://"),
        ({"MAILQ_POLL_INTERVAL": "soon"}, "MAILQ_POLL_INTERVAL: expected a whole number, got 'soon'"),
        ({"MAILQ_POLL_INTERVAL": "0"}, "MAILQ_POLL_INTERVAL: must be at least 1, got 0"),
        ({"MAILQ_REDIS_URL": "http://x"}, "MAILQ_REDIS_URL: unsupported scheme 'http'"),
        ({"MAILQ_HOOK": "just_a_module"}, "MAILQ_HOOK: expected package.module:function"),
        ({"MAILQ_READ_TIMEOUT": "-1"}, "MAILQ_READ_TIMEOUT: must be at least 0.1"),
    ],
)
def test_invalid_settings_name_the_setting(env, message):
    with pytest.raises(ConfigError) as info:
        config.load(env, env_file=None)
    assert str(info.value).startswith(message)


def test_env_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("MAILQ_POLL_INTERVAL=120\nMAILQ_VAR_DIR=/srv/mailq\n")
    s = config.load({"MAILQ_POLL_INTERVAL": "30"}, env_file=env_file)
    assert s.poll_interval == 30
    assert s.database_url == "sqlite:////srv/mailq/mailq.db"


def test_as_env_round_trips():
    s = config.load({"MAILQ_POLL_INTERVAL": "42", "MAILQ_DATABASE_URL": "postgresql://x@h/db"}, env_file=None)
    assert config.load(s.as_env(), env_file=None) == s


def test_bad_setting_in_cli_is_one_line_exit_1(tmp_path):
    from tests.helpers import run_cli_process

    result = run_cli_process(["mailbox", "list"], {"MAILQ_DATABASE_URL": "mysqlx://u@h/db"}, cwd=tmp_path)
    assert result.code == 1
    assert result.err.strip() == "error: MAILQ_DATABASE_URL: unsupported scheme 'mysqlx', use sqlite:// or postgresql://"
    assert "Traceback" not in result.err


def test_the_readme_table_is_the_one_generated_from_the_declarations():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert config.markdown_table() in readme, "README's configuration table differs: paste config.markdown_table() into it"


def test_every_settings_field_is_a_declared_setting_with_a_valid_default():
    assert list(config.SETTINGS) == [f.name for f in dataclasses.fields(config.Settings)]
    for setting in config.SETTINGS.values():
        if setting.default:
            setting.parse(setting.env, setting.default)  # raises if a default does not pass its own validation
