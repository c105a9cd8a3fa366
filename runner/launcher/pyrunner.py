"""Run one python-function job: ``python -P -m runner.launcher.pyrunner WORKDIR/.tolu``.

Reads ``call.json`` (function, arguments, parameters as the server stores them),
calls the function in the job's workdir and writes ``result.json``: the result
(cloudpickled + base64 in ``result``, its ``repr`` in ``result_repr``) or the
exception (type, message, traceback). The exit code is 0 on success, 1 on an
exception, so the launcher's RUN_DONE / RUN_ERROR follows the function.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

#: longest repr kept in the job's data.
REPR_LIMIT = 1000


def run(meta_dir: Path) -> int:
    from runner.apps import call_python

    call = json.loads((meta_dir / "call.json").read_text())
    out: dict[str, Any]
    code = 0
    try:
        value = call_python(call["function"], call.get("args"), call.get("parameters") or {})
        out = {"result": _dumps(value), "result_repr": repr(value)[:REPR_LIMIT]}
    except BaseException as exc:  # the job's own error, reported, not raised
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        out = {
            "exception": {
                "type": type(exc).__name__,
                "message": str(exc)[:REPR_LIMIT],
                "traceback": tb[-4000:],
            }
        }
        code = 1
    (meta_dir / "result.json").write_text(json.dumps(out))
    return code


def _dumps(value: Any) -> str:
    import base64

    import cloudpickle

    return base64.b64encode(cloudpickle.dumps(value)).decode("ascii")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m runner.launcher.pyrunner WORKDIR/.tolu")
    # Started with -P (runner/interpreter.py), so the workdir cannot shadow tolu's own
    # packages; the function may still import modules from its workdir (the cwd), as
    # under a plain ``python -m``, but after the installed ones.
    sys.path.append(os.getcwd())
    sys.exit(run(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
