"""Drawn scenes for the shipped camera configs: the lake shore a real person walks down to."""

from __future__ import annotations

import cv2
import numpy as np

from tests.kits import people as people_scenes

FPS = 5  # the shipped cameras' fps
W, H = 640, 480


def shore() -> np.ndarray:
    """A path and grass above the waterline at y = 300, rippled water below."""
    rng = np.random.default_rng(5)
    img = np.empty((H, W, 3), np.uint8)
    img[:300] = (70, 140, 110)
    img[300:] = (130, 90, 40)
    noise = rng.integers(-10, 11, (H // 4, W // 4, 1)).astype(np.int16)
    img = np.clip(
        img + cv2.resize(noise, (W, H), interpolation=cv2.INTER_NEAREST)[..., None], 0, 255
    )
    img = img.astype(np.uint8)
    cv2.rectangle(img, (0, 180), (W, 230), (150, 170, 180), -1)  # the lakeside path
    for yy in range(320, H, 30):
        cv2.line(img, (0, yy), (W, yy + 6), (150, 110, 60), 2)  # ripples
    return img


def walk_to_the_water() -> tuple[list[np.ndarray], int]:
    """A person walks from the path into the water, stands 6 s, walks back; (frames, entered)."""
    walker = people_scenes.shared_scenes()[1]
    assert walker.name == "darknet_person.jpg"
    person, alpha = people_scenes.cutout(walker.image, walker.people[0])
    bg = shore()
    frames = [bg.copy() for _ in range(4 * FPS)]
    h = 190
    path = [(80 + 12 * i, 250 + 8 * i) for i in range(25)]  # feet from the path into the water
    path += [path[-1]] * (6 * FPS)  # stands there 6 s
    path += [(path[-1][0] - 15 * i, path[-1][1] - 15 * i) for i in range(1, 13)]  # and back out
    entered = next(i for i, (_, feet) in enumerate(path) if feet >= 300) + len(frames)
    for x, feet in path:
        f = bg.copy()
        people_scenes.paste(f, person, alpha, x, feet - h, h)
        frames.append(f)
    frames += [bg.copy() for _ in range(6 * FPS)]
    return frames, entered
