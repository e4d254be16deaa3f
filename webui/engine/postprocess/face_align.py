"""Aligning a face to the square a face restorer expects, and pasting the restored face back.

GFPGAN, CodeFormer and RestoreFormer were trained on FFHQ crops: 512 x 512, the eyes, nose and mouth at fixed
places (the five-point template below, the one facexlib uses). A face is warped onto that template by a similarity
transform (rotation, scale, shift), restored, warped back, and blended in with a mask that is eroded and blurred at
its edge (feathered), so only the face area changes and no seam shows. Written here with OpenCV's warps because
facexlib, which does this for A1111, would pull in its own detector downloads and a second OpenCV."""
from __future__ import annotations

import numpy as np

FACE_SIZE = 512
TEMPLATE = np.array([[192.98138, 239.94708], [318.90277, 240.19366], [256.63416, 314.01935],
                     [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float32)


def align_matrix(points: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """The 2 x 3 similarity transform taking the face's five points onto the template at `size`."""
    import cv2

    matrix, _ = cv2.estimateAffinePartial2D(points.astype(np.float32), TEMPLATE * (size / FACE_SIZE),
                                            method=cv2.LMEDS)
    if matrix is None:  # degenerate points: the eyes alone fix a similarity transform
        matrix = _from_eyes(points[:2], TEMPLATE[:2] * (size / FACE_SIZE))
    return matrix


def _from_eyes(eyes: np.ndarray, target: np.ndarray) -> np.ndarray:
    src, dst = complex(*(eyes[1] - eyes[0])), complex(*(target[1] - target[0]))
    rot = dst / src if src else 1
    shift = complex(*target[0]) - rot * complex(*eyes[0])
    return np.array([[rot.real, -rot.imag, shift.real], [rot.imag, rot.real, shift.imag]], dtype=np.float64)


def crop(rgb: np.ndarray, matrix: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    import cv2

    # facexlib's grey border: a face at the image's edge is completed with a neutral colour, not a mirror
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(135, 133, 132))


def paste(canvas: np.ndarray, face: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """`canvas` (H x W x 3 float32) with the restored `face` warped back into it through a feathered mask. Pixels
    outside the face's square are left exactly as they were."""
    import cv2

    height, width = canvas.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    back = cv2.warpAffine(face.astype(np.float32), inverse, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.ones(face.shape[:2], np.float32), inverse, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # the warp's soft border
    edge = max(1, int(np.sqrt(mask.sum())) // 20)
    mask = cv2.erode(mask, np.ones((2 * edge, 2 * edge), np.uint8))
    mask = cv2.GaussianBlur(mask, (4 * edge + 1, 4 * edge + 1), 0)[..., None]
    return mask * back + (1 - mask) * canvas
