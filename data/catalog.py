"""Static facts about the datasets: names, splits, class names, official URLs
and checksums, and the text that tells a user how to get a missing dataset.

Everything here is data; the loaders in the other modules read it.
"""

# Canonical dataset names, in the order `known_datasets()` lists them.
TFDS_NAMES = ("cifar10", "cifar100", "celeb_a", "fashion_mnist", "mnist")
SYNTHETIC = "synthetic"
FOLDER_PREFIX = "folder:"

# Spellings users type -> canonical name.
ALIASES = {
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "cifar-100": "cifar100",
    "cifar_100": "cifar100",
    "celeba": "celeb_a",
    "celeb-a": "celeb_a",
    "fashion-mnist": "fashion_mnist",
    "fashionmnist": "fashion_mnist",
}

# Datasets whose images are gray: they train and are scored in one channel unless the
# user asks for three (run_all.py --channels 3); every other dataset is RGB.
GRAY_DATASETS = ("fashion_mnist", "mnist")

# Our split names per dataset (tfds uses the same names for these datasets).
SPLITS = {
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "celeb_a": ("train", "validation", "test"),
    "fashion_mnist": ("train", "test"),
    "mnist": ("train", "test"),
    "synthetic": ("train", "test"),
}
FOLDER_SPLITS = ("train", "test")

MNIST_CLASS_NAMES = [str(d) for d in range(10)]
FASHION_MNIST_CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
# CelebA has attributes but no class label: every image gets label 0.
CELEB_A_CLASS_NAMES = ["face"]

# Official CIFAR python tarballs (md5s as published on the CIFAR page).
CIFAR_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}
CIFAR_MD5 = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
}

# Official idx files (md5 of the published .gz files; repacked copies such as
# Debian's dataset-fashion-mnist differ and are validated structurally instead).
IDX_BASE_URLS = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
IDX_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# Read-only system copies tried last (after tfds), e.g. Debian's
# `dataset-fashion-mnist` package.
SYSTEM_DIRS = {
    "fashion_mnist": ["/usr/share/datasets/fashion-mnist"],
    "mnist": ["/usr/share/datasets/mnist"],
}

CELEB_A_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"

PRETTY = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "celeb_a": "CelebA",
    "fashion_mnist": "Fashion-MNIST",
    "mnist": "MNIST",
}


def how_to_get(name: str) -> str:
    """The fix for a missing dataset: what to download and where to put it."""
    if name in CIFAR_URLS:
        return (f"put {CIFAR_URLS[name]} in DATA_DIR (or DATA_DIR/{name}/) and pass "
                f"--data-dir DATA_DIR (Python: data_dir=DATA_DIR), or run with network access "
                f"once so tfds can download it")
    if name in IDX_BASE_URLS:
        files = ", ".join(IDX_MD5[name])
        return (f"put the idx files {files} from {IDX_BASE_URLS[name]} in DATA_DIR "
                f"(or DATA_DIR/{name}/) and pass --data-dir DATA_DIR (Python: "
                f"data_dir=DATA_DIR), or run with network access once so tfds can download it")
    if name == "celeb_a":
        return (f"download img_align_celeba.zip (\"Align&Cropped Images\", linked from "
                f"{CELEB_A_URL}) and pass --data-dir (Python: data_dir) pointing at it, at the "
                f"unpacked img_align_celeba/ folder of JPEGs, or at a folder holding either; or "
                f"run `tfds build celeb_a --data_dir DATA_DIR` once on a machine with network "
                f"access and pass --data-dir DATA_DIR (Python: data_dir=DATA_DIR)")
    return "check the dataset name"
