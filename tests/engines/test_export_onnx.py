"""`embody4d export` and the onnxruntime engine: graphs, manifest, per-part parity with torch, whole-generation parity.

Tolerances: every exported part matches its torch module within rtol 1e-3 / atol 1e-4 (float32, onnxruntime CPU);
route weights, whose routing rule thresholds continuous values, must agree at >= 99 % of latent positions; a whole
image-mode generation through onnxruntime matches the torch engine (same seed, same noise) at >= 40 dB PSNR.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from model.engines import EngineError, GenerationRequest, create_engine
from model.engines.onnxruntime_engine import OnnxRuntimeEngine
from model.engines.processing import to_network_frames
from model.engines.torch_engine import TorchEngine
from model.export import export_model
from model.export.graphs import PARTS, file_sha256, part_specs
from model.export.manifest import Manifest
from model.pipeline import Embody4DPipeline
from offline_training.metrics import psnr

torch.set_num_threads(2)
H, W = 48, 64  # the tiny preset at a small resolution: latent 6 x 8, rotary embeddings on
skimage_data = pytest.importorskip("skimage.data")


def tiny_pipeline(height: int = H, width: int = W) -> Embody4DPipeline:
    pipeline = Embody4DPipeline.from_preset("tiny", seed=3)
    pipeline.settings.height, pipeline.settings.width = height, width
    # a non-zero curriculum coefficient, so the interaction-aware path changes the output and is exercised
    pipeline.transformer.set_interaction_curriculum(0.5)
    return pipeline


def real_request(height: int, width: int, seed: int = 0, regions: bool = True) -> GenerationRequest:
    """A photo (skimage's cat) as the source; the target is the photo shifted right with the uncovered strip a hole."""
    import cv2

    source = cv2.resize(skimage_data.chelsea(), (width, height), interpolation=cv2.INTER_AREA)[None]
    shift = width // 8
    warped = np.zeros_like(source)
    warped[:, :, shift:] = source[:, :, :-shift]
    mask = warped.any(-1)
    region = np.zeros(mask.shape, np.float32)
    region[:, height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 1.0
    return GenerationRequest(
        source_rgb=source,
        warped_rgb=warped,
        warp_mask=mask,
        coverage=mask.astype(np.float32),
        source_interaction=region if regions else None,
        target_interaction=np.roll(region, shift, axis=2) if regions else None,
        caption="a cat looks at the robot",
        seed=seed,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pipeline = tiny_pipeline()
    out = tmp_path_factory.mktemp("export") / "image"
    export_model(pipeline, out, "image", H, W, steps=2, source="test")
    return pipeline, out


def ort_outputs(directory, part: str, feeds: dict[str, torch.Tensor]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(directory / f"{part}.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: feeds[i.name].numpy() for i in session.get_inputs()})


def assert_part_matches(name: str, expected: tuple[torch.Tensor, ...], got: list[np.ndarray]) -> None:
    for reference, value in zip(expected, got):
        if name == "router" and reference.shape[-1] == 3:  # route weights: thresholded, compare per position
            agree = np.isclose(value, reference.numpy(), rtol=1e-3, atol=1e-4).all(-1).mean()
            assert agree >= 0.99, f"route weights agree at {agree:.4f} of positions"
        else:
            np.testing.assert_allclose(value, reference.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)


def test_files_manifest_and_checker(exported):
    pipeline, out = exported
    manifest = Manifest.load(out)
    assert set(manifest.parts) == set(PARTS)
    assert (manifest.mode, manifest.height, manifest.width, manifest.frames, manifest.steps) == ("image", H, W, 1, 2)
    assert manifest.latent_shape == [1, 16, 1, H // 8, W // 8]
    pipeline.scheduler.set_timesteps(2)
    assert manifest.timesteps == [float(t) for t in pipeline.scheduler.timesteps]
    for part in manifest.parts.values():
        graph, data = out / part.file, out / part.data
        assert data.stat().st_size > 0 and part.sha256 == file_sha256(graph, data)
        onnx.checker.check_model(str(graph))
        inline = [
            i for i in onnx.load(str(graph), load_external_data=False).graph.initializer if len(i.raw_data) > 1024
        ]
        assert not inline, "weights belong in the .onnx.data file"
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["parts"]["denoiser"]["inputs"][0] == {
        "name": "latents",
        "shape": manifest.latent_shape,
        "dtype": "float32",
    }
    assert "interaction_latent" in [t.name for t in manifest.parts["denoiser"].inputs]  # α > 0: the masks matter


def test_moved_export_directory_still_runs(exported, tmp_path):
    _, out = exported
    moved = tmp_path / "moved"
    moved.mkdir()
    for file in out.iterdir():
        (moved / file.name).write_bytes(file.read_bytes())
    assert OnnxRuntimeEngine(moved).generate(real_request(H, W)).shape == (1, H, W, 3)
    (moved / "denoiser.onnx.data").unlink()
    with pytest.raises(EngineError, match="denoiser.onnx.data is missing"):
        OnnxRuntimeEngine(moved)


def test_parts_match_torch_on_random_inputs(exported):
    pipeline, out = exported
    for name, spec in part_specs(pipeline, 1, H, W, torch.Generator().manual_seed(11)).items():
        with torch.no_grad():
            expected = spec.module(*spec.inputs.values())
        assert_part_matches(
            name, expected if isinstance(expected, tuple) else (expected,), ort_outputs(out, name, spec.inputs)
        )


def test_parts_match_torch_on_real_inputs(exported):
    """The chain of a real generation: each part fed the torch chain's own intermediate tensors."""
    pipeline, out = exported
    specs = part_specs(pipeline, 1, H, W, torch.Generator().manual_seed(0))
    request = real_request(H, W)

    def load(array):
        return to_network_frames(array, (H, W), torch.float32, torch.device("cpu"))

    with torch.no_grad():
        videos = torch.cat([load(request.warped_rgb), load(request.source_rgb)])
        feeds = {"vae_encoder": {"videos": videos}}
        latents = specs["vae_encoder"].module(videos)
        feeds["router"] = {
            "warped_latents": latents[:1],
            "coverage": load(request.coverage),
            "interaction": load(request.target_interaction),
            "source_interaction": load(request.source_interaction),
        }
        routed = specs["router"].module(*feeds["router"].values())
        assert routed[1].argmax(-1).unique().numel() >= 2, "the real input should use more than one route"
        text_ids = torch.tensor([pipeline.text_encoder.token_ids(request.caption)])
        feeds["text_encoder"] = {"token_ids": text_ids}
        text = specs["text_encoder"].module(text_ids)
        torch.testing.assert_close(text, pipeline.text_encoder([request.caption]))
        noise = torch.randn(latents[:1].shape, generator=torch.Generator().manual_seed(0))
        feeds["denoiser"] = dict(
            zip(specs["denoiser"].inputs, (noise, torch.tensor([1000.0]), *routed, latents[:1], latents[1:], text))
        )
        prediction = specs["denoiser"].module(*feeds["denoiser"].values())
        feeds["vae_decoder"] = {"latents": noise - prediction}
        for name in PARTS:
            expected = specs[name].module(*feeds[name].values())
            assert_part_matches(
                name, expected if isinstance(expected, tuple) else (expected,), ort_outputs(out, name, feeds[name])
            )


@pytest.mark.parametrize("regions", [True, False])
def test_whole_generation_matches_torch_engine(exported, regions):
    pipeline, out = exported
    request = real_request(H, W, seed=5, regions=regions)
    expected = TorchEngine(pipeline=pipeline, steps=2).generate(request)
    got = create_engine("onnxruntime", model_path=str(out), steps=2).generate(request)
    assert got.shape == expected.shape == (1, H, W, 3) and got.dtype == np.uint8
    assert psnr(got, expected) >= 40.0
    other_seed = create_engine("onnxruntime", model_path=str(out)).generate(real_request(H, W, seed=6, regions=regions))
    assert psnr(other_seed, expected) < 40.0  # the comparison can tell generations apart


def test_clip_mode_export_runs_and_matches(tmp_path):
    pipeline = tiny_pipeline(32, 48)
    pipeline.settings.window_frames = 5
    pipeline.transformer.set_interaction_curriculum(0.0)  # masks cannot matter: the graph leaves them out
    out = tmp_path / "clip"
    manifest = export_model(pipeline, out, "clip", 32, 48, steps=1)
    assert manifest.frames == 5 and manifest.latent_shape[2] == 2
    assert "interaction_latent" not in [t.name for t in manifest.parts["denoiser"].inputs]
    base = real_request(32, 48)
    frames = np.concatenate([base.source_rgb, np.roll(base.source_rgb, 2, axis=2)] * 2 + [base.source_rgb])
    mask = np.ones(frames.shape[:3], bool)
    request = GenerationRequest(source_rgb=frames, warped_rgb=frames, warp_mask=mask, coverage=mask.astype(np.float32))
    got = OnnxRuntimeEngine(out, steps=1).generate(request)
    expected = TorchEngine(pipeline=pipeline, steps=1).generate(request)
    assert got.shape == (5, 32, 48, 3) and psnr(got, expected) >= 40.0


def test_bad_requests_and_directories(exported, tmp_path):
    _, out = exported
    with pytest.raises(EngineError, match="export again with --steps 4"):
        OnnxRuntimeEngine(out, steps=4)
    with pytest.raises(EngineError, match="model_path must name an export directory"):
        create_engine("onnxruntime")
    with pytest.raises(EngineError, match="holds no manifest.json"):
        OnnxRuntimeEngine(tmp_path)
    with pytest.raises(EngineError, match="--mode clip"):
        frames = real_request(H, W)
        OnnxRuntimeEngine(out).generate(
            GenerationRequest(
                source_rgb=np.repeat(frames.source_rgb, 3, 0),
                warped_rgb=np.repeat(frames.warped_rgb, 3, 0),
                warp_mask=np.repeat(frames.warp_mask, 3, 0),
                coverage=np.repeat(frames.coverage, 3, 0),
            )
        )
    with pytest.raises(ValueError, match="multiples of 16"):
        export_model(tiny_pipeline(), tmp_path / "bad", "image", 40, 64)


def test_cli_export(tmp_path):
    from embody4d_ros.cli import main

    out = tmp_path / "cli"
    assert (
        main(
            [
                "export",
                "--preset",
                "tiny",
                "--mode",
                "image",
                "--height",
                "32",
                "--width",
                "48",
                "--steps",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert Manifest.load(out).steps == 1 and Manifest.load(out).source_model == "preset:tiny seed 0"
    assert main(["export", "--preset", "nope", "--out", str(tmp_path / "x")]) == 2


@pytest.mark.slow
def test_tiny_240x320_generation_matches_torch_engine(tmp_path):
    pipeline = tiny_pipeline(240, 320)
    export_model(pipeline, tmp_path, "image", 240, 320, steps=2)
    request = real_request(240, 320, seed=1)
    assert (
        psnr(OnnxRuntimeEngine(tmp_path).generate(request), TorchEngine(pipeline=pipeline, steps=2).generate(request))
        >= 40.0
    )


def test_ddim_sampler_and_guidance_match_torch_engine(tmp_path):
    """The v-prediction DDIM sampler unrolls exactly, and guidance > 1 runs the null caption too."""
    from model.pipeline import make_scheduler

    pipeline = tiny_pipeline()
    pipeline.scheduler = make_scheduler({"sampler": "ddim_v"})
    pipeline.settings.guidance_scale = 3.0
    manifest = export_model(pipeline, tmp_path, "image", H, W, steps=3)
    assert manifest.sampler == "CogVideoXDDIMScheduler" and manifest.guidance_scale == 3.0
    assert len(set(manifest.step_scale)) > 1  # DDIM scales the latents, unlike the flow sampler
    request = real_request(H, W, seed=2)
    expected = TorchEngine(pipeline=pipeline, steps=3).generate(request)
    assert psnr(OnnxRuntimeEngine(tmp_path).generate(request), expected) >= 40.0


@pytest.mark.parametrize("residual_decoding", [False, True])
def test_warp_initialised_sampling_matches_torch_engine(tmp_path, residual_decoding):
    """init_strength < 1: the export carries the shortened sigma schedule and the warp-initialised latents; with
    residual_decoding the runner decodes the change to the conditioning frames as the pipeline does."""
    pipeline = tiny_pipeline()
    pipeline.settings.init_strength = 0.4
    pipeline.settings.residual_decoding = residual_decoding
    manifest = export_model(pipeline, tmp_path, "image", H, W, steps=2)
    assert manifest.init_strength == 0.4 and manifest.timesteps[0] == pytest.approx(400.0)
    assert manifest.residual_decoding == residual_decoding
    request = real_request(H, W, seed=4)
    expected = TorchEngine(pipeline=pipeline, steps=2).generate(request)
    assert psnr(OnnxRuntimeEngine(tmp_path).generate(request), expected) >= 40.0
