"""Finding faces for face restoration, offline.

Out of the box: OpenCV's Haar cascades (frontal face, then the two eyes inside it), which ship inside the
opencv-python-headless wheel. Better, when the user puts OpenCV's YuNet detector (face_detection_yunet*.onnx, from
OpenCV's model zoo) in a face model folder: five landmarks per face, and faces at an angle.

Each face is given as five points in the order of the FFHQ alignment template (image-left eye, image-right eye,
nose, mouth left, mouth right); the Haar path estimates the points it cannot see from the face box."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Where the points sit inside a Haar frontal-face box (fractions of its width/height), measured on a frontal
# portrait: used for the eyes the eye cascade misses, and for the nose and mouth always.
HAAR_POINTS = np.array([[0.29, 0.38], [0.71, 0.38], [0.50, 0.58], [0.34, 0.77], [0.66, 0.77]], dtype=np.float32)


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height
    points: np.ndarray  # 5 x 2, template order
    score: float = 1.0


class HaarDetector:
    name = "OpenCV Haar cascade"

    def __init__(self):
        import cv2

        self.cv2 = cv2
        self.faces = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.eyes = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")

    def detect(self, rgb: np.ndarray) -> list[Face]:
        cv2 = self.cv2
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        smallest = max(24, min(gray.shape) // 16)
        boxes = self.faces.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest))
        return [self._face(gray, tuple(int(v) for v in box)) for box in boxes]

    def _face(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> Face:
        x, y, w, h = box
        points = HAAR_POINTS * [w, h] + [x, y]
        eyes = self._eyes(gray[y:y + int(h * 0.6), x:x + w], w)
        if eyes is not None:
            points[:2] = eyes + [x, y]
        return Face(box, points.astype(np.float32))

    def _eyes(self, upper: np.ndarray, width: int) -> np.ndarray | None:
        """The centres of one eye in each half of the face's upper part, or None."""
        found = self.eyes.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=3,
                                           minSize=(max(4, width // 10),) * 2, maxSize=(width // 2,) * 2)
        centres = [(ex + ew / 2, ey + eh / 2) for ex, ey, ew, eh in found]
        left = [c for c in centres if c[0] < width / 2]
        right = [c for c in centres if c[0] >= width / 2]
        if not left or not right:
            return None
        pair = np.array([max(left, key=lambda c: c[0]), min(right, key=lambda c: c[0])], dtype=np.float32)
        return pair if pair[1, 0] - pair[0, 0] > width * 0.25 else None


class YuNetDetector:
    name = "YuNet"

    def __init__(self, path: Path, score: float = 0.7):
        import cv2

        self.path = path
        self.model = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        import cv2

        height, width = rgb.shape[:2]
        self.model.setInputSize((width, height))
        _, rows = self.model.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        faces = []
        for row in rows if rows is not None else []:
            # YuNet: box, then the subject's right eye, left eye, nose, right and left mouth corner (image-left
            # first, as the template has them), then the score
            faces.append(Face(tuple(int(v) for v in row[:4]), row[4:14].reshape(5, 2).astype(np.float32),
                              float(row[14])))
        return faces


def make_detector(folders: list[Path]):
    """YuNet when a face_detection_yunet*.onnx lies in one of `folders` and loads, else the Haar cascades."""
    for folder in folders:
        for path in sorted(folder.glob("*yunet*.onnx")) if folder.is_dir() else []:
            try:
                detector = YuNetDetector(path)
            except Exception as exc:  # noqa: BLE001 - OpenCV raises cv2.error for a file it cannot read
                log.warning("face detector %s could not be loaded (%s); using the Haar cascades", path, exc)
                continue
            log.info("face detector: YuNet from %s", path)
            return detector
    return HaarDetector()
