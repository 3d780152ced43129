from __future__ import annotations

import subprocess
import sys


def test_the_gateway_pins_glibcs_mmap_threshold() -> None:
    script = "from services.gateway.__main__ import return_large_buffers_to_the_os as f; print(f())"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"  # glibc's mallopt accepted it (this project runs on glibc Linux)
