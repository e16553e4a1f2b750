"""torchvision imported without TorchDynamo, and TorchDynamo still whole afterwards (each check in a fresh process:
this one has imported torchvision long ago)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_torchvision_comes_without_dynamo_and_dynamo_stays_whole() -> None:
    out = _python(
        """
        import sys, types
        from headstart.features._torchvision import import_torchvision
        tv = import_torchvision()
        assert "torch._dynamo" not in sys.modules and "torch._dynamo.utils" not in sys.modules
        assert not any(f.__class__.__name__ == "_Watch" for f in sys.meta_path)
        from headstart.features.registry import BackboneSpec, load_backbone
        backbone = load_backbone(BackboneSpec("mobilenet_v2", "none", layers=("features.3", "default")))
        backbone.extractor(backbone.spec.layers, backbone.spec.poolings)  # truncation (FX) works as before
        assert "torch._dynamo" not in sys.modules
        import torch
        x, boxes = torch.rand(1, 3, 16, 16), torch.tensor([[0.0, 0.0, 0.0, 8.0, 8.0]])
        assert tv.ops.roi_align(x, boxes, 2).shape == (1, 3, 2, 2)
        # the stand-in's function, which imports the real one when called
        deferred = sys.modules["torchvision.ops.roi_align"].is_compile_supported
        assert deferred("cpu") is True
        import torch._dynamo.utils as real
        assert type(real) is types.ModuleType and real.is_compile_supported("cpu") is True
        assert torch._dynamo.utils is real and hasattr(torch._dynamo, "optimize")
        print("ok")
        """
    )
    assert out == "ok"


def test_a_real_dynamo_import_during_the_window_takes_the_stand_in_out() -> None:
    out = _python(
        """
        import sys, types
        import torch
        from headstart.features import _torchvision as m
        stand_in = m._StandIn(m._UTILS)
        sys.modules[m._UTILS] = stand_in
        sys.meta_path.insert(0, m._Watch(stand_in))
        import torch._dynamo  # what some other library might do while torchvision is imported
        assert type(sys.modules["torch._dynamo.utils"]) is types.ModuleType
        assert torch._dynamo.utils.is_compile_supported("cpu") is True
        print("ok")
        """
    )
    assert out == "ok"


def test_with_dynamo_imported_first_torchvision_is_imported_plainly() -> None:
    out = _python(
        """
        import sys
        import torch._dynamo
        from headstart.features._torchvision import import_torchvision
        tv = import_torchvision()
        assert sys.modules["torchvision.ops.roi_align"].is_compile_supported is torch._dynamo.utils.is_compile_supported
        print("ok")
        """
    )
    assert out == "ok"
