"""Make a JupyterLab display language the default for every user of the environment.

Usage: python set-default-locale.py LOCALE   (e.g. zh_CN)

Merges the translation setting into <app dir>/settings/overrides.json, the
file JupyterLab reads for site-wide setting defaults, keeping other entries.
A user can still pick another language in the Settings > Language menu.
"""
import json
import sys
from pathlib import Path

from jupyterlab.commands import get_app_dir

PLUGIN = "@jupyterlab/translation-extension:plugin"

locale = sys.argv[1]
path = Path(get_app_dir()) / "settings" / "overrides.json"
overrides = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
overrides.setdefault(PLUGIN, {})["locale"] = locale
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(overrides, indent=2, sort_keys=True) + "\n", encoding="utf-8")
print(f"{path}: {PLUGIN} locale = {locale}")
