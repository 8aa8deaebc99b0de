"""The trainer's compute dtype follows the CPU's capability (native bf16 or not), through one
probe that HEADROOM_CPU_BF16 overrides; both paths run here on any CPU."""
import pytest

from conftest import ENV, run_trainer, write_config
from headroom_runtime._device import CPU_BF16_ENV, cpu_has_native_bf16

SKYLAKE_FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl\n"
COOPER_LAKE_FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS_FLAGS = "processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n"


@pytest.mark.parametrize("cpuinfo, env, expected", [
    (SKYLAKE_FLAGS, None, False),
    (COOPER_LAKE_FLAGS, None, True),
    (SAPPHIRE_RAPIDS_FLAGS, None, True),
    (None, None, False),  # no /proc/cpuinfo (macOS, Windows): assume no native bf16
    (SKYLAKE_FLAGS, "1", True),
    (COOPER_LAKE_FLAGS, "0", False),
    (None, "1", True),
    (COOPER_LAKE_FLAGS, "", True),  # only '1' and '0' override; anything else probes
    (SKYLAKE_FLAGS, "yes", False),
])
def test_probe(tmp_path, cpuinfo, env, expected):
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    assert cpu_has_native_bf16({} if env is None else {CPU_BF16_ENV: env}, path) is expected


def test_probe_reads_this_machine_unless_overridden():
    text = open("/proc/cpuinfo").read() if __import__("os").path.exists("/proc/cpuinfo") else ""
    assert cpu_has_native_bf16({}) is ("avx512_bf16" in text or "amx_bf16" in text)


# A bf16 run on a CPU without native bf16 (HEADROOM_CPU_BF16=1 there) is emulated by PyTorch:
# slower, same results; three steps of a tiny model stay well inside the test's timeout.
@pytest.mark.parametrize("method", ["lora", "qlora"])
@pytest.mark.parametrize("native", ["0", "1"])
def test_bf16_config_computes_by_capability(method, native, models, tmp_path):
    quant = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "bfloat16"} if method == "qlora" else None
    config = write_config(tmp_path / "config.yaml", quant=quant, max_steps=3)
    config.write_text(config.read_text().replace("torch_dtype: float32", "torch_dtype: bfloat16"))
    out = tmp_path / "out"
    result = run_trainer("--config", str(config), "--model", "tiny-llama", "--output", str(out), "--method", method,
                         env={**ENV, CPU_BF16_ENV: native})
    assert result.rc == 0, result.stderr[-3000:]
    start = result.of("start")[0]
    assert start["computeDtype"] == ("bfloat16" if native == "1" else "float32")
    key = "QuantizationConfig.bnb_4bit_compute_dtype" if method == "qlora" else "ModelConfig.torch_dtype"
    fallback = f"{key}=bfloat16: this CPU has no native bfloat16 matmul"
    assert (fallback in result.stderr) == (native == "0")
    losses = [e["loss"] for e in result.of("step")]
    assert len(losses) == 3 and all(0 < loss < 100 for loss in losses)
    assert (out / "adapter_model.safetensors").is_file()
