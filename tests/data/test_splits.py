"""CIFAR-10's classes, as every source labels them."""

from src.data.splits import CLASSES


def test_classes_are_in_official_label_order():
    assert list(CLASSES) == sorted(CLASSES)
    assert CLASSES[0] == "airplane" and CLASSES[9] == "truck"
