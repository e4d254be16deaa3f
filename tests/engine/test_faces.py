"""Face restoration: faces found offline in a real photograph, restored by random-weight GFPGAN / CodeFormer /
RestoreFormer models in A1111's folders, pasted back so that pixels away from the face stay exactly as they were;
visibility and CodeFormer's weight as in A1111; a job's restore_faces stage and its infotext; and every way it can
be unavailable ends in a message naming the folder, never a silent no-op."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.fixtures.face_models import face_photo, link_face_models
from webui.engine.requests import GenerationRequest, RequestError

FACE_BOX = (177, 67, 93, 93)  # x, y, w, h of the face in the photo


@pytest.fixture
def face_engine(data_dir, face_models):
    from webui.engine.facade import Engine
    from webui.settings import Settings

    link_face_models(face_models, data_dir / "models")
    engine = Engine(Settings(data_dir=data_dir, ckpt="tiny-sd1", face_restoration_model="GFPGAN"))
    yield engine
    engine.close()


def far_from_face(array: np.ndarray) -> np.ndarray:
    """The photo's left third and bottom half: well away from the face and its 512 px alignment square."""
    return np.concatenate([array[:, :60].reshape(-1, 3), array[420:].reshape(-1, 3)])


def test_the_face_in_a_real_photo_is_found_with_its_eyes():
    from webui.engine.postprocess.face_detect import HaarDetector

    faces = HaarDetector().detect(np.asarray(face_photo()))
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert abs(x - FACE_BOX[0]) < 12 and abs(y - FACE_BOX[1]) < 12 and abs(w - FACE_BOX[2]) < 15
    left, right = faces[0].points[:2]
    assert x < left[0] < x + w / 2 < right[0] < x + w  # one eye in each half, image-left first
    assert y + h * 0.2 < left[1] < y + h * 0.55 and abs(left[1] - right[1]) < h * 0.1


def test_alignment_puts_the_eyes_on_the_template_and_pastes_back_in_place():
    from webui.engine.postprocess.face_align import TEMPLATE, align_matrix, crop, paste

    photo = np.asarray(face_photo())
    points = TEMPLATE / 4 + [150, 60]  # a face a quarter of the template's size
    matrix = align_matrix(points)
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - TEMPLATE).max() < 0.5
    square = crop(photo, matrix)
    assert square.shape == (512, 512, 3)
    back = paste(photo.astype(np.float32), square.astype(np.float32), matrix)  # the same pixels, warped twice
    inside = (slice(90, 150), slice(170, 230))
    assert np.abs(back[inside] - photo[inside]).mean() < 6  # only resampling blur
    assert np.array_equal(far_from_face(back), far_from_face(photo.astype(np.float32)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["GFPGAN", "CodeFormer", "RestoreFormer"])
def test_each_model_changes_the_face_and_nothing_far_from_it(face_engine, kind):
    photo = face_photo()
    out, found = face_engine.faces.restore(photo, kind)
    assert found == 1 and out.size == photo.size and out.mode == "RGB"
    before, after = np.asarray(photo), np.asarray(out)
    assert np.array_equal(far_from_face(after), far_from_face(before))
    x, y, w, h = FACE_BOX
    face_diff = np.abs(after[y:y + h, x:x + w].astype(int) - before[y:y + h, x:x + w]).mean()
    assert face_diff > 10  # random weights: the face is replaced, not kept
    again, _ = face_engine.faces.restore(photo, kind)
    assert np.array_equal(np.asarray(again), after)  # deterministic (GFPGAN's noise is the weights' own)


@pytest.mark.slow
def test_visibility_blends_and_codeformer_weight_is_used(face_engine):
    photo = face_photo()
    assert face_engine.faces.restore(photo, "GFPGAN", visibility=0)[0] is photo  # 0: the input itself
    full = np.asarray(face_engine.faces.restore(photo, "CodeFormer", weight=0.5)[0], dtype=float)
    half = np.asarray(face_engine.faces.restore(photo, "CodeFormer", visibility=0.5, weight=0.5)[0], dtype=float)
    assert np.abs(half - (np.asarray(photo) + full) / 2).max() <= 1
    other = np.asarray(face_engine.faces.restore(photo, "CodeFormer", weight=1.0)[0], dtype=float)
    assert np.abs(other - full).mean() > 0.5  # the fidelity weight reaches the model


def test_an_image_without_a_face_is_returned_unchanged(face_engine):
    flat = Image.new("RGB", (96, 96), (120, 90, 60))
    out, found = face_engine.faces.restore(flat, "GFPGAN")
    assert found == 0 and out is flat


def test_files_are_listed_by_kind_and_detectors_are_not_restorers(face_engine, data_dir):
    (data_dir / "models" / "GFPGAN" / "detection_Resnet50_Final.pth").write_bytes(b"not a restorer")
    listed = {info.kind: info for info in face_engine.face_restorers(refresh=True)}
    assert list(listed) == ["CodeFormer", "GFPGAN", "RestoreFormer"]
    assert listed["GFPGAN"].path.name == "GFPGANv1.4.pth"
    assert listed["CodeFormer"].as_api() == {"name": "CodeFormer",
                                             "cmd_dir": str(data_dir / "models" / "Codeformer")}


def test_no_model_installed_is_a_clear_error_naming_the_folders(engine):
    req = GenerationRequest(prompt="a face", steps=2, width=64, height=64, restore_faces=True)
    with pytest.raises(RequestError, match=r"restore_faces: no CodeFormer .*installed: none.*models/GFPGAN or "
                                           r"models/Codeformer"):
        engine.submit(req)
    assert engine.queue_length() == 0 and engine.current_job() is None


def test_a_model_of_another_kind_is_named_as_such(data_dir, face_models):
    from webui.engine.facade import Engine
    from webui.settings import Settings

    link_face_models(face_models, data_dir / "models", kinds=("GFPGAN",))
    engine = Engine(Settings(data_dir=data_dir, ckpt="tiny-sd1"))  # face_restoration_model: CodeFormer
    try:
        with pytest.raises(RequestError, match=r"no CodeFormer .*installed: GFPGAN"):
            engine.submit(GenerationRequest(prompt="a face", steps=2, width=64, height=64, restore_faces=True))
        req = GenerationRequest(prompt="a face", steps=2, width=64, height=64, restore_faces=True,
                                override_settings={"face_restoration_model": "GFPGAN"})
        assert engine.plan(req).faces.kind == "GFPGAN"
    finally:
        engine.close()


def test_an_upscaler_or_a_pickle_with_code_in_a_face_folder_is_refused(data_dir):
    from tests.engine.test_upscalers import RunsCode, tiny_esrgan
    from webui.engine.postprocess.face_restore import FaceRestorers

    folder = data_dir / "models" / "Codeformer"
    folder.mkdir(parents=True)
    torch.save(tiny_esrgan(4), folder / "codeformer.pth")
    faces = FaceRestorers({"CodeFormer": [folder]})
    with pytest.raises(RequestError, match=r"codeformer.pth: a ESRGAN model for SR, not a face restoration"):
        faces.restore(face_photo(), "CodeFormer")
    marker = data_dir / "pwned"
    torch.save({"params_ema": RunsCode()}, folder / "codeformer.pth")
    with pytest.raises(RequestError, match="codeformer.pth"):
        faces.restore(face_photo(), "CodeFormer")
    assert not marker.exists()


@pytest.mark.slow
def test_a_job_with_restore_faces_records_it_and_warns_when_no_face_is_found(face_engine):
    result = face_engine.generate(GenerationRequest(prompt="a portrait", steps=2, width=64, height=64, seed=5,
                                                    restore_faces=True))
    assert result.params["Face restoration"] == "GFPGAN"
    assert "Face restoration: GFPGAN" in result.infotexts[0]
    assert "restore_faces: no face found in image 1" in result.warnings
    plain = face_engine.generate(GenerationRequest(prompt="a portrait", steps=2, width=64, height=64, seed=5))
    assert np.array_equal(np.asarray(plain.images[0]), np.asarray(result.images[0]))  # no face: unchanged


def test_the_stage_restores_what_the_sampler_made(face_engine, monkeypatch):
    """restore_faces runs between decode and the inpainting overlay, on every image of the batch."""
    from webui.engine.stages import GenerationJob

    assert GenerationJob.STAGES.index("decode") < GenerationJob.STAGES.index("restore_faces") \
        < GenerationJob.STAGES.index("overlay")
    seen = []
    monkeypatch.setattr(face_engine.faces, "restore",
                        lambda image, kind, visibility=1.0, weight=0.5: (seen.append((kind, weight)) or image, 1))
    req = GenerationRequest(prompt="a portrait", steps=2, width=64, height=64, batch_size=2, restore_faces=True,
                            override_settings={"code_former_weight": 0.25})
    result = face_engine.generate(req)
    assert seen == [("GFPGAN", 0.25)] * 2 and not any("no face" in w for w in result.warnings)


@pytest.mark.slow
def test_extras_restore_faces_after_upscaling_with_their_infotext(face_engine):
    from webui.engine.extras import ExtrasRequest

    photo = face_photo().resize((256, 256))
    req = ExtrasRequest(images=[photo], upscaling_resize=2, upscaler_1="Lanczos", gfpgan_visibility=1.0,
                        codeformer_visibility=0.5, codeformer_weight=0.3)
    result = face_engine.extras(req)
    out = np.asarray(result.images[0])
    assert out.shape == (512, 512, 3)
    plain = np.asarray(photo.resize((512, 512), Image.LANCZOS))
    assert np.array_equal(far_from_face(out), far_from_face(plain))
    assert np.abs(out.astype(int) - plain).max() > 50
    for key in ("Postprocess upscaler: Lanczos", "GFPGAN visibility: 1", "CodeFormer visibility: 0.5",
                "CodeFormer weight: 0.3"):
        assert key in result.infotexts[0]
    assert result.paths[0].exists()


def test_a_yunet_detector_in_a_face_folder_is_used_with_its_landmarks(tmp_path, caplog):
    from tests.fixtures.face_models import write_yunet
    from webui.engine.postprocess.face_detect import HaarDetector, YuNetDetector, make_detector

    points = np.array([[205, 100], [250, 101], [228, 125], [210, 142], [246, 143]], dtype=np.float32)
    write_yunet(tmp_path / "face_detection_yunet_2023mar.onnx", 512, (180, 70, 90, 95), points)
    detector = make_detector([tmp_path / "missing", tmp_path])
    assert isinstance(detector, YuNetDetector)
    faces = detector.detect(np.asarray(face_photo()))
    assert len(faces) == 1 and faces[0].score > 0.9
    assert np.abs(np.array(faces[0].box) - [180, 70, 90, 95]).max() <= 1
    assert np.abs(faces[0].points - points).max() < 0.5
    (tmp_path / "face_detection_yunet_2023mar.onnx").write_bytes(b"not onnx")
    assert isinstance(make_detector([tmp_path]), HaarDetector)  # a broken file: the built-in detector, logged
    assert "could not be loaded" in caplog.text
