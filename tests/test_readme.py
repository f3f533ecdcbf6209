"""The README's library example runs as written and prints two pw-JS values."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_usage_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    values = eval(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(values) == 2 and all(0.0 <= v <= 1.0 for v in values)
