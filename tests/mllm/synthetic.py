"""A tiny synthetic planning task for the MLLM tests: coloured frames whose accent colour names the label.

Two level-2 parents with three level-3 children each; a context video shows its parent's background, its own
cluster's block and an accent strip in the colour of its serendipitous label (a sibling cluster). Prompts and
targets come from the data layer's prompt functions, as curated SFT rows do.
"""

from __future__ import annotations

import numpy as np

from serendip.models.mllm.examples import PlanningTask, SftExample
from serendip.models.mllm.prompts import PromptVariant, VisualSetting, prompt_text, target_text

COLOURS = {"red": (235, 30, 30), "yellow": (245, 225, 20), "cyan": (20, 220, 235)}
BACKGROUNDS = {"p0": (60, 60, 160), "p1": (40, 120, 40)}
WORDS = ["surfing", "quiet knitting", "ramen", "jazz", "tea time", 'coral "reef"']


def synthetic_task() -> PlanningTask:
    """Six level-3 clusters under two parents; every cluster's siblings are its serendipitous candidates."""
    descriptions = {
        f"{parent}.{child}": WORDS[index * 3 + child] for index, parent in enumerate(BACKGROUNDS) for child in range(3)
    }
    candidates = {
        cluster: [other for other in descriptions if other != cluster and other[:2] == cluster[:2]]
        for cluster in descriptions
    }
    return PlanningTask(descriptions, level=3, delta=1, context_cluster_of={}, serendipitous_candidates=candidates)


def synthetic_video(parent: str, child: int, label_child: int, num_frames: int = 8, size: int = 32) -> np.ndarray:
    """Frames (num_frames, size, size, 3): background of the parent, block of the cluster, accent of the label."""
    colours = list(COLOURS.values())
    frames = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    frames[:] = BACKGROUNDS[parent]
    frames[:, size // 2 :, size // 2 :] = colours[child]
    frames[:, : size // 2, : size // 4] = colours[label_child]
    return frames


def synthetic_examples(
    variant: PromptVariant, visual: VisualSetting, count: int = 48, seed: int = 0
) -> tuple[list[SftExample], PlanningTask]:
    """``count`` SFT examples of ``variant``; context item i belongs to cluster ``context_cluster_of[v<i>]``."""
    task = synthetic_task()
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    examples = []
    for index in range(count):
        parent = list(BACKGROUNDS)[index % 2]
        child = int(rng.integers(3))
        cluster = f"{parent}.{child}"
        label = str(rng.choice(task.serendipitous_candidates[cluster]))
        label_child = int(label.split(".")[1])
        item_id = f"v{index:03d}"
        task.context_cluster_of[item_id] = cluster
        video = synthetic_video(parent, child, label_child)
        pixels = None
        if variant.uses_video:
            pixels = video[0] if visual.thumbnail else video[np.linspace(0, len(video) - 1, visual.frames).astype(int)]
        caption = f"a {names[child]} block and a {names[label_child]} accent"
        title = f"all about {task.descriptions[cluster]}"
        examples.append(
            SftExample(
                example_id=f"{item_id}->{label}",
                context_item_id=item_id,
                label_cluster_id=label,
                prompt=prompt_text(variant, title),
                target=target_text(variant, task.descriptions[label], caption),
                pixels=pixels,
            )
        )
    return examples, task
