"""The README's example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # the results cache lives under ~/.cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    result = namespace["result"]
    assert result.params["fast"] == 5
    assert len(result.equity) > 0
    assert abs(result.equity.iloc[-1] - result.stats["Equity Final [$]"]) < 1e-9
