"""Starting the example server for the scripts: on 127.0.0.1, with a fresh SQLite
database in `directory`, its log in a file (a pipe nobody drains would stall it)."""

import contextlib
import subprocess
import time


@contextlib.contextmanager
def example_server(binary, directory, extra_args=()):
    """Yields (address, bootstrap admin token, process); stops the server afterwards.
    `extra_args` go after the address and database. Raises SystemExit if it does not
    start within 30 s."""
    log_path = f"{directory}/server.log"
    with open(log_path, "w+") as log:
        server = subprocess.Popen(
            [binary, "--addr", "127.0.0.1:0", "--db", f"{directory}/example.db", *extra_args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            # The session key goes to the state directory, never beside the database.
            env={
                "RUST_LOG": "warn",
                "PATH": "/usr/bin:/bin",
                "XDG_STATE_HOME": f"{directory}/state",
            },
        )
        try:
            admin = server.stdout.readline().strip().removeprefix("admin token: ")
            addr = None
            deadline = time.time() + 30
            while addr is None and time.time() < deadline:
                with open(log_path) as lines:
                    for line in lines:
                        # Only a whole line: the server writes this one in pieces
                        # (eprintln! with arguments), and a read can land between them.
                        if line.endswith("\n") and "listening on http://" in line:
                            addr = line.split("listening on http://")[1].strip()
                time.sleep(0.05)
            if addr is None:
                raise SystemExit("the example server did not start")
            yield addr, admin, server
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.seek(0)
            errors = [line for line in log if " ERROR " in line or "panicked" in line]
            if errors:
                print("server errors:\n" + "".join(errors))
