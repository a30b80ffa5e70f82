"""Loading DeepFloyd (tiny stand-ins, offline) and prompt embeddings: does the real loading code work?"""

from __future__ import annotations

import time

import pytest
import torch

from fwd_kit import loading
from fwd_kit.tiny import install_in_fake_hub_cache


def test_load_stage1_and_stage2_fp32_from_directories(tiny_model_dirs):
    """Do both stages load without a text encoder, in fp32 on the CPU, as the right pipelines?"""
    s1 = loading.load_stage1(tiny_model_dirs["stage1"], device="cpu")
    s2 = loading.load_stage2(tiny_model_dirs["stage2"], device="cpu")
    assert type(s1).__name__ == "IFPipeline" and type(s2).__name__ == "IFSuperResolutionPipeline"
    assert s1.text_encoder is None and s1.tokenizer is None and s2.text_encoder is None
    assert s1.unet.dtype == torch.float32 and s1.unet.device.type == "cpu"
    assert s1.scheduler.config.variance_type == "learned_range"


def test_load_stage1_fp16_variant(tiny_model_dirs, stage1):
    """Does dtype=float16 load the fp16 variant files, and does the UNet still agree with the fp32 one?"""
    s1 = loading.load_stage1(tiny_model_dirs["stage1"], device="cpu", dtype=torch.float16)
    assert s1.unet.dtype == torch.float16
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # small: fp16 on CPU is slow
    text = torch.randn(1, 77, stage1.unet.config.encoder_hid_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        half = s1.unet(x.half(), 500, encoder_hidden_states=text.half(), return_dict=False)[0]
        full = stage1.unet(x, 500, encoder_hidden_states=text, return_dict=False)[0]
    assert half.dtype == torch.float16
    assert (half.float() - full).abs().max() < 0.05  # fp16 rounding of a random tiny UNet


def test_fp16_variant_requested_only_where_it_exists(tmp_path, tiny_model_dirs):
    assert loading._wants_fp16_variant(tiny_model_dirs["stage1"], torch.float16)
    assert not loading._wants_fp16_variant(tiny_model_dirs["stage1"], torch.float32)
    assert not loading._wants_fp16_variant(tmp_path, torch.float16)  # a directory without fp16 files
    assert loading._wants_fp16_variant("DeepFloyd/IF-I-XL-v1.0", torch.float16)  # hub ids: always


def test_hub_id_loads_offline_from_fake_cache(tmp_path, tiny_model_dirs, monkeypatch):
    """Does the unmodified hub id load through the hub code path, via cache_dir= and via HF_HUB_CACHE?"""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    install_in_fake_hub_cache(tiny_model_dirs["stage1"], loading.STAGE1_DEFAULT, cache)
    install_in_fake_hub_cache(tiny_model_dirs["stage2"], loading.STAGE2_DEFAULT, cache)
    s1 = loading.load_stage1(device="cpu", dtype=torch.float16, cache_dir=cache)
    assert s1.unet.dtype == torch.float16 and s1.text_encoder is None
    # The default cache: huggingface_hub read HF_HUB_CACHE when imported, so patch the constant it kept.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    s2 = loading.load_stage2(device="cpu")
    assert type(s2).__name__ == "IFSuperResolutionPipeline" and s2.unet.dtype == torch.float32


def test_uncached_hub_id_fails_fast_with_help(tmp_path):
    start = time.perf_counter()
    with pytest.raises(OSError) as info:
        loading.load_stage1("DeepFloyd/IF-I-M-v1.0", device="cpu", cache_dir=tmp_path)
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert "licence" in message and "HF_TOKEN" in message and "DIGIT_MODEL" in message


def test_missing_directory_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="no such directory"):
        loading.load_stage1(tmp_path / "nope", device="cpu")


def test_choose_stage1(tmp_path, tiny_model_dirs, monkeypatch):
    """Is the model chosen from the device, the cache and the digit model, without touching the network?"""
    assert loading.choose_stage1("my/model")[0] == "my/model"
    monkeypatch.setattr(loading, "DIGIT_MODEL", tmp_path / "no_digit_model")
    model, reason = loading.choose_stage1(device="cpu", cache_dir=tmp_path)
    assert model is None and "GPU" in reason and "digit model" in reason
    model, reason = loading.choose_stage1(device="cuda", cache_dir=tmp_path)  # offline, nothing cached
    assert model is None and "HF_HUB_OFFLINE" in reason
    install_in_fake_hub_cache(tiny_model_dirs["stage1"], loading.STAGE1_DEFAULT, tmp_path)
    assert loading.choose_stage1(device="cuda", cache_dir=tmp_path)[0] == loading.STAGE1_DEFAULT
    monkeypatch.setattr(loading, "DIGIT_MODEL", tiny_model_dirs["stage1"])  # any saved pipeline
    assert loading.choose_stage1(device="cpu", cache_dir=tmp_path)[0] == tiny_model_dirs["stage1"]


def test_compute_prompt_embeds_equals_encode_prompt(tiny_model_dirs, stage1):
    prompts = ["a photo of a dog", "a rocket ship"]
    embeds = loading.compute_prompt_embeds(prompts, model_id=tiny_model_dirs["stage1"], device="cpu")
    assert list(embeds) == ["", *prompts]
    for prompt in ["", *prompts]:
        with torch.no_grad():
            expected = stage1.encode_prompt(prompt, do_classifier_free_guidance=True)
        assert embeds[prompt].shape == (1, 77, stage1.unet.config.encoder_hid_dim)
        assert torch.equal(embeds[prompt], expected[0])
    assert torch.equal(embeds[""], expected[1])  # the pipeline's own negative embedding is that of ""


def test_save_load_round_trip_is_bit_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    embeds = {"": torch.randn(1, 77, 8, generator=g), "a man wearing a hat": torch.randn(1, 77, 8, generator=g)}
    path = loading.save_prompt_embeds(embeds, tmp_path / "e.safetensors")
    back = loading.load_prompt_embeds(path)
    assert list(back) == list(embeds) and all(torch.equal(back[p], embeds[p]) for p in embeds)
    half = loading.load_prompt_embeds(loading.save_prompt_embeds(embeds, tmp_path / "h.safetensors", torch.float16))
    assert half[""].dtype == torch.float16 and torch.equal(half[""], embeds[""].half())
    # the course's original format: a torch.save'd dict
    torch.save({p: e.half() for p, e in embeds.items()}, tmp_path / "prompt_embeds_dict.pth")
    pth = loading.load_prompt_embeds(tmp_path / "prompt_embeds_dict.pth", dtype=torch.float32)
    assert torch.equal(pth["a man wearing a hat"], embeds["a man wearing a hat"].half().float())


def test_save_requires_the_empty_prompt(tmp_path):
    with pytest.raises(ValueError, match='empty prompt ""'):
        loading.save_prompt_embeds({"a dog": torch.zeros(1, 77, 8)}, tmp_path / "e.safetensors")


def test_prompt_embeds_concatenates_and_names_missing_prompts():
    embeds = {"": torch.zeros(1, 77, 4), "a": torch.ones(1, 77, 4)}
    out = loading.prompt_embeds(embeds, ["a", "", "a"])
    assert out.shape == (3, 77, 4) and torch.equal(out[1], embeds[""][0]) and torch.equal(out[2], embeds["a"][0])
    assert loading.prompt_embeds(embeds, "a").shape == (1, 77, 4)
    with pytest.raises(ValueError, match="'a pencil'"):
        loading.prompt_embeds(embeds, ["a", "a pencil"])


def test_embed_cli_writes_the_file(tmp_path, tiny_model_dirs, stage1, capsys):
    from course.cli import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# my prompts\na photo of a dog\n\n  a rocket ship  \n")
    out = tmp_path / "embeds.safetensors"
    args = ["embed", str(prompts), "--out", str(out), "--model", str(tiny_model_dirs["stage1"]), "--device", "cpu"]
    assert main(args + ["--dtype", "float32"]) == 0
    embeds = loading.load_prompt_embeds(out)
    assert list(embeds) == ["", "a photo of a dog", "a rocket ship"]
    with torch.no_grad():
        expected = stage1.encode_prompt("a rocket ship", do_classifier_free_guidance=False)[0]
    assert torch.equal(embeds["a rocket ship"], expected)
    assert "'a rocket ship'" in capsys.readouterr().out
    assert main(["embed", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2


@pytest.mark.parametrize("model_id", ["./digit_model", "/no/such/dir", "not a hub id"])
def test_strings_that_are_not_hub_ids_must_be_directories(model_id):
    with pytest.raises(ValueError, match="no such directory"):
        loading.load_stage2(model_id, device="cpu")
