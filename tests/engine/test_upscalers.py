"""Model upscalers: random-weight spandrel models written as .pth and .safetensors into A1111's folders, tiled
against untiled, sizes, a malicious .pth refused without running, a LoRA in the folder named as not an upscaler,
and their use in Extras, hires fix and /sdapi/v1/upscalers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from webui.engine.requests import NotFoundError


def tiny_esrgan(scale: int = 4, seed: int = 0) -> dict:
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale)
    return {k: v.contiguous() for k, v in net.state_dict().items()}


class RunsCode:
    def __reduce__(self):  # what a malicious pickle does: run a command when unpickled
        import os

        return os.system, ("touch /tmp/latent-studio-pwned",)


@pytest.fixture
def upscaler_engine(data_dir):
    from webui.engine.facade import Engine
    from webui.settings import Settings

    esrgan = data_dir / "models" / "ESRGAN"
    esrgan.mkdir(parents=True)
    torch.save(tiny_esrgan(4), esrgan / "4x-Tiny.pth")
    save_file(tiny_esrgan(2, seed=1), str(esrgan / "2x-TinySafe.safetensors"))
    engine = Engine(Settings(data_dir=data_dir, ckpt="tiny-sd1", upscaler_tile=16, upscaler_tile_overlap=4))
    yield engine
    engine.close()


def picture(size=(40, 32)) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def test_models_are_listed_and_upscale_to_the_size_asked(upscaler_engine):
    names = upscaler_engine.list_upscalers()
    assert names[:3] == ["None", "Lanczos", "Nearest"] and {"4x-Tiny", "2x-TinySafe"} <= set(names)
    lib = upscaler_engine.upscalers
    assert lib.upscale(picture(), "4x-tiny", 160, 128).size == (160, 128)
    assert lib.upscale(picture(), "2x-TinySafe", 120, 96).size == (120, 96)  # 2x twice, then down to 3x
    items = {i["name"]: i for i in upscaler_engine.upscaler_items()}
    assert items["4x-Tiny"]["scale"] == 4.0 and items["4x-Tiny"]["model_path"].endswith("4x-Tiny.pth")


def test_real_esrgan_files_with_their_weights_under_params_ema_load(upscaler_engine, data_dir):
    folder = data_dir / "models" / "RealESRGAN"
    folder.mkdir()
    torch.save({"params_ema": tiny_esrgan(2, seed=2)}, folder / "RealESRGAN_x2plus.pth")
    upscaler_engine.list_upscalers(refresh=True)
    out = upscaler_engine.upscalers.upscale(picture(), "RealESRGAN_x2plus", 80, 64)
    lanczos = picture().resize((80, 64), Image.LANCZOS)
    assert out.size == (80, 64) and np.abs(np.asarray(out, int) - np.asarray(lanczos, int)).mean() > 5


def test_tiled_equals_untiled_within_a_seam_tolerance(upscaler_engine):
    lib = upscaler_engine.upscalers
    tiled = np.asarray(lib.upscale(picture(), "4x-Tiny", 160, 128), dtype=np.float32)
    lib.tile = 0
    whole = np.asarray(lib.upscale(picture(), "4x-Tiny", 160, 128), dtype=np.float32)
    diff = np.abs(tiled - whole)
    assert diff.mean() < 1.0 and np.percentile(diff, 99) < 12, (diff.mean(), np.percentile(diff, 99))
    assert whole.std() > 1  # a real picture, not a constant


def test_a_malicious_pth_is_refused_and_nothing_runs(upscaler_engine, tmp_path):
    import os

    marker = "/tmp/latent-studio-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    bad = upscaler_engine.settings.upscaler_search_dirs[0] / "4x-Evil.pth"
    torch.save({"params_ema": RunsCode()}, bad)  # how a malicious .pth is made: torch's own zip + pickle
    upscaler_engine.list_upscalers(refresh=True)
    with pytest.raises(Exception, match="4x-Evil.pth.*refused"):
        upscaler_engine.upscalers.upscale(picture(), "4x-Evil", 160, 128)
    assert not os.path.exists(marker)


def test_a_lora_in_the_folder_is_named_as_not_an_upscaler(upscaler_engine):
    folder = upscaler_engine.settings.upscaler_search_dirs[0]
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32, 1, 1)},
              str(folder / "detail.safetensors"))
    upscaler_engine.list_upscalers(refresh=True)
    with pytest.raises(Exception, match="detail.safetensors: not an upscaler"):
        upscaler_engine.upscalers.upscale(picture(), "detail", 160, 128)
    with pytest.raises(NotFoundError, match="No-Such"):
        upscaler_engine.upscalers.resolve("No-Such")


def test_extras_and_hires_fix_use_model_upscalers(upscaler_engine):
    from webui.engine import ExtrasRequest, GenerationRequest
    from webui.engine.infotext import parse_infotext

    result = upscaler_engine.extras(ExtrasRequest(images=[picture()], upscaler_1="4x-Tiny", upscaling_resize=4))
    assert result.images[0].size == (160, 128) and "Postprocess upscaler: 4x-Tiny" in result.infotexts[0]
    r = upscaler_engine.generate(GenerationRequest(prompt="a red circle", steps=2, width=64, height=64, seed=5,
                                                   sampler_name="Euler", enable_hr=True, hr_upscaler="4x-Tiny",
                                                   denoising_strength=0.4))
    assert r.images[0].size == (128, 128) and parse_infotext(r.infotexts[0])["Hires upscaler"] == "4x-Tiny"
