"""make lab opens the notebooks with nothing in front of them: no news prompt, no update check.

JupyterLab asks on first open whether to fetch Jupyter news, a popup over the first notebook. Its settings
can be overridden per environment (``<sys.prefix>/share/jupyter/lab/settings/overrides.json``,
https://jupyterlab.readthedocs.io/en/stable/user/directories.html#overridesjson); the Makefile installs
jupyter/overrides.json there, and ``make lab`` also turns news and update checks off on the server
(https://jupyterlab.readthedocs.io/en/stable/user/announcements.html).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from jupyterlab.labapp import LabApp
from jupyterlab_server.settings_utils import get_settings

ROOT = Path(__file__).resolve().parents[1]


def test_the_environment_defaults_to_no_news_and_no_update_check(tmp_path: Path) -> None:
    app = LabApp()
    installed = Path(app.app_settings_dir) / "overrides.json"
    assert installed.exists(), "make's install step copies jupyter/overrides.json into the environment"
    assert json.loads(installed.read_text()) == json.loads((ROOT / "jupyter" / "overrides.json").read_text())
    found, _ = get_settings(
        app.app_settings_dir, app.schemas_dir, str(tmp_path), schema_name="@jupyterlab/apputils-extension:notification"
    )
    defaults = found["schema"]["properties"]
    assert defaults["fetchNews"]["default"] == "false" and defaults["checkForUpdates"]["default"] is False


def test_make_lab_turns_news_and_update_checks_off_on_the_server() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe and "$(LAB_QUIET)" in recipe[1]
    quiet = re.search(r"^LAB_QUIET := (.*)$", makefile, re.MULTILINE)
    assert quiet, "the Makefile defines LAB_QUIET"
    app = LabApp()
    app.parse_command_line(quiet[1].split())
    assert app.news_url is None and app.check_for_updates_class.__name__ == "NeverCheckForUpdate"
