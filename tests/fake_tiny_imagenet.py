"""A fake Tiny ImageNet tree in the public layout (tiny-imagenet-200.zip), for the tests.

All 200 real WNIDs (public data: Tiny ImageNet's wnids.txt, copied here so that no test needs
the dataset), 64x64 JPEGs that differ file by file (smooth random colours), every 29th one
greyscale (mode L; about 3% of Tiny ImageNet's are). Training counts vary so that every rule
bites: most classes get 10..14 files (10% is one intask_valid and one posttask_valid file;
numbers 0..13, so "_10" sorts before "_2" as a string); kimono gets 500 (the public release's
count; a garment, whose 10 subclasses make the cap of 8 rescale the superclass share) and
scorpion 300 (our copy's count; no superclass); cardigan 3, espresso 2 and goldfish 1 are too
few for any validation file. Egyptian cat's files are numbered 0, 7, 14, ... (numbers need not
be consecutive). The val annotations list the classes shuffled, as the real file does.
"""
import io
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

WNIDS = (
    "n01443537", "n01629819", "n01641577", "n01644900", "n01698640", "n01742172", "n01768244",
    "n01770393", "n01774384", "n01774750", "n01784675", "n01855672", "n01882714", "n01910747",
    "n01917289", "n01944390", "n01945685", "n01950731", "n01983481", "n01984695", "n02002724",
    "n02056570", "n02058221", "n02074367", "n02085620", "n02094433", "n02099601", "n02099712",
    "n02106662", "n02113799", "n02123045", "n02123394", "n02124075", "n02125311", "n02129165",
    "n02132136", "n02165456", "n02190166", "n02206856", "n02226429", "n02231487", "n02233338",
    "n02236044", "n02268443", "n02279972", "n02281406", "n02321529", "n02364673", "n02395406",
    "n02403003", "n02410509", "n02415577", "n02423022", "n02437312", "n02480495", "n02481823",
    "n02486410", "n02504458", "n02509815", "n02666196", "n02669723", "n02699494", "n02730930",
    "n02769748", "n02788148", "n02791270", "n02793495", "n02795169", "n02802426", "n02808440",
    "n02814533", "n02814860", "n02815834", "n02823428", "n02837789", "n02841315", "n02843684",
    "n02883205", "n02892201", "n02906734", "n02909870", "n02917067", "n02927161", "n02948072",
    "n02950826", "n02963159", "n02977058", "n02988304", "n02999410", "n03014705", "n03026506",
    "n03042490", "n03085013", "n03089624", "n03100240", "n03126707", "n03160309", "n03179701",
    "n03201208", "n03250847", "n03255030", "n03355925", "n03388043", "n03393912", "n03400231",
    "n03404251", "n03424325", "n03444034", "n03447447", "n03544143", "n03584254", "n03599486",
    "n03617480", "n03637318", "n03649909", "n03662601", "n03670208", "n03706229", "n03733131",
    "n03763968", "n03770439", "n03796401", "n03804744", "n03814639", "n03837869", "n03838899",
    "n03854065", "n03891332", "n03902125", "n03930313", "n03937543", "n03970156", "n03976657",
    "n03977966", "n03980874", "n03983396", "n03992509", "n04008634", "n04023962", "n04067472",
    "n04070727", "n04074963", "n04099969", "n04118538", "n04133789", "n04146614", "n04149813",
    "n04179913", "n04251144", "n04254777", "n04259630", "n04265275", "n04275548", "n04285008",
    "n04311004", "n04328186", "n04356056", "n04366367", "n04371430", "n04376876", "n04398044",
    "n04399382", "n04417672", "n04456115", "n04465501", "n04486054", "n04487081", "n04501370",
    "n04507155", "n04532106", "n04532670", "n04540053", "n04560804", "n04562935", "n04596742",
    "n04597913", "n06596364", "n07579787", "n07583066", "n07614500", "n07615774", "n07695742",
    "n07711569", "n07715103", "n07720875", "n07734744", "n07747607", "n07749582", "n07753592",
    "n07768694", "n07871810", "n07873807", "n07875152", "n07920052", "n09193705", "n09246464",
    "n09256479", "n09332890", "n09428293", "n12267677",
)
TRAIN_COUNT_OVERRIDES = {
    "n03617480": 500,     # kimono: garment (10 subclasses in Tiny ImageNet: the cap binds)
    "n01770393": 300,     # scorpion: no superclass
    "n02963159": 3,       # cardigan: garment
    "n07920052": 2,       # espresso: beverage's only subclass here
    "n01443537": 1,       # goldfish: fish's only subclass here
}
SPARSE_NUMBERS_WNID = "n02124075"     # Egyptian cat
SPARSE_STEP = 7
GREYSCALE_EVERY = 29
IMAGE_SIZE = 64


def default_train_count(index: int, wnid: str) -> int:
    return TRAIN_COUNT_OVERRIDES.get(wnid, 10 + index % 5)


def default_val_count(index: int, wnid: str) -> int:
    return 1 + index % 3


def train_numbers(wnid: str, count: int) -> list[int]:
    """The i of the class's <wnid>_<i>.JPEG files."""
    step = SPARSE_STEP if wnid == SPARSE_NUMBERS_WNID else 1
    return [i * step for i in range(count)]


class _Images:
    """Distinct little JPEGs: a 4x4 random colour grid blown up to IMAGE_SIZE (smooth, so the
    files stay small), every GREYSCALE_EVERY-th one greyscale."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def next_jpeg(self) -> bytes:
        grid = self.rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(grid).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
        if self.count % GREYSCALE_EVERY == GREYSCALE_EVERY - 1:
            image = image.convert("L")
        self.count += 1
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()


def write_fake_tiny_imagenet(root: Path,
                             train_count: Callable[[int, str], int] = default_train_count,
                             val_count: Callable[[int, str], int] = default_val_count,
                             seed: int = 0) -> Path:
    """Write wnids.txt, words.txt, train/ and val/ under ``root``; return ``root``.

    ``train_count(index, wnid)`` / ``val_count(index, wnid)``: files per class (index into
    the sorted WNIDS).
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = _Images(seed)
    # the real wnids.txt is not sorted; words.txt lists more WNIDs than the 200 (all WordNet)
    (root / "wnids.txt").write_text("".join(f"{w}\n" for w in rng.permutation(WNIDS)))
    words = [f"{w}\tfake {w}, synonym of {w}\n" for w in WNIDS] + ["n00001740\tentity\n"]
    (root / "words.txt").write_text("".join(words))
    for index, wnid in enumerate(WNIDS):
        folder = root / "train" / wnid
        (folder / "images").mkdir(parents=True)
        names = [f"{wnid}_{i}.JPEG" for i in train_numbers(wnid, train_count(index, wnid))]
        for name in names:
            (folder / "images" / name).write_bytes(images.next_jpeg())
        (folder / f"{wnid}_boxes.txt").write_text(
            "".join(f"{name}\t0\t0\t63\t63\n" for name in names))
    val_labels = [w for i, w in enumerate(WNIDS) for _ in range(val_count(i, w))]
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for k, wnid in enumerate(rng.permutation(val_labels)):
        (root / "val" / "images" / f"val_{k}.JPEG").write_bytes(images.next_jpeg())
        lines.append(f"val_{k}.JPEG\t{wnid}\t1\t2\t60\t61\n")
    (root / "val" / "val_annotations.txt").write_text("".join(lines))
    return root
