"""What a figure records about the machine: the instruction sets its speed depends on."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

from lirlab.machine import SIMD_FLAGS, describe_machine


def test_a_figure_names_the_cpu_capability_torch_dispatches_to():
    assert describe_machine()["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()


@pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("lscpu"), reason="needs lscpu")
def test_a_figure_names_the_cpus_vector_instruction_flags_as_lscpu_lists_them():
    listed = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    flags_line = next(line for line in listed.splitlines() if line.startswith("Flags:"))
    expected = sorted(set(flags_line.split(":", 1)[1].split()) & set(SIMD_FLAGS))
    recorded = describe_machine()["cpu_flags"]
    assert recorded == expected and recorded, "x86 machines list at least sse4_2 or avx2"


def test_a_figure_names_the_int8_route_this_process_takes(monkeypatch):
    monkeypatch.setattr("lirlab.machine.int8_route", lambda: "onnxruntime")
    assert describe_machine()["int8_route"] == "onnxruntime"
